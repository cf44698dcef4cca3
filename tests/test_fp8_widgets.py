"""Chapter 06's FP8 error widget: the example tensors, the error summary and the figure."""
import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kernels import fp8, widgets  # noqa: E402


def test_example_tensors_have_the_outliers_they_promise():
    g = fp8.example_tensor("gaussian", 64, 96, outlier=1e3, seed=1)
    assert g.shape == (64, 96) and np.abs(g).max() < 10
    rows = fp8.example_tensor("outlier_rows", 64, 96, outlier=1e3, count=3, seed=1)
    big = np.abs(rows) == 1e3
    assert big.sum() == 9 and (big.sum(axis=1) > 0).sum() == 3 and set(big.sum(axis=1)) == {0, 3}
    assert np.array_equal(rows[~big], g[~big])  # the same Gaussian values around them
    cols = fp8.example_tensor("outlier_columns", 64, 96, outlier=1e3, count=3, seed=1)
    ratio = np.abs(cols).max(axis=0) / np.abs(g).max(axis=0)
    assert np.isclose(ratio, 1e3).sum() == 3 and np.isclose(ratio, 1).sum() == 93
    for bad in (dict(kind="uniform"), dict(M=0), dict(count=0), dict(count=97, M=200), dict(outlier=-1.0),
                dict(outlier=math.inf)):
        kw = dict(dict(kind="outlier_columns", M=64, N=96), **bad)
        with pytest.raises(ValueError, match="example_tensor"):
            fp8.example_tensor(**kw)


def test_error_summary_by_hand():
    # unscaled e4m3: 1 is exact, 1.0625 is a tie between 1 and 1.125 (to even: 1), 500 saturates to 448,
    # 1e-4 is below half the smallest subnormal (2**-10) and becomes 0
    x = np.array([[1.0, 1.0625, 500.0, 1e-4]])
    s = fp8.error_summary(x, "none", "e4m3")
    assert s["dequantized"].tolist() == [[1.0, 1.0, 448.0, 0.0]]
    assert s["elementwise"] == pytest.approx([0.0, 0.0625 / 1.0625, 52 / 500, 1.0])
    assert (s["flushed"], s["saturated"], s["exact"]) == (0.25, 0.25, 0.25)
    assert s["frobenius"] == pytest.approx(math.sqrt(0.0625**2 + 52**2 + 1e-8) / np.linalg.norm(x))
    assert s["unit_roundoff"] == 2**-4 and fp8.error_summary(x, "none", "e5m2")["unit_roundoff"] == 2**-3
    # e5m2 reaches 57344, so 500 is not saturated (it rounds to 512), and 1e-4 is above its 2**-16
    e5 = fp8.error_summary(x, "none", "e5m2")
    assert e5["saturated"] == 0 and e5["flushed"] == 0 and e5["dequantized"][0, 2] == 512


@pytest.mark.parametrize("scaling,recipe,block", [("tensor", "tensor", None), ("row", "row", None),
                                                  ("column", "column", None), ("block 1x128", "block", (1, 128)),
                                                  ("block 128x128", "block", (128, 128))])
def test_error_summary_agrees_with_the_recipes(scaling, recipe, block):
    x = fp8.example_tensor("outlier_rows", 200, 300, outlier=1e5, seed=3)
    kw = {"block": block} if block else {}
    s = fp8.error_summary(x, scaling, "e4m3")
    rep = fp8.error_report(x, recipe, "e4m3", **kw)
    assert s["frobenius"] == pytest.approx(fp8.relative_error(x, recipe, "e4m3", **kw), rel=1e-12)
    assert np.array_equal(s["elementwise"], rep["elementwise"]) and s["flushed"] == rep["flushed"]
    assert s["saturated"] == 0  # amax / max_finite scales never clip


def test_what_each_scaling_does_to_outliers():
    cols = fp8.example_tensor("outlier_columns", outlier=1e4)
    by = {k: fp8.error_summary(cols, k, "e4m3") for k in fp8.SCALINGS}
    # one scale per channel leaves the small channels alone; one per token (row) or tensor squeezes them
    assert by["column"]["flushed"] == 0 and by["tensor"]["flushed"] > 0.01
    assert by["row"]["flushed"] > 0.01 and by["block 1x128"]["flushed"] < by["row"]["flushed"]
    # no scale at all: the large channels clip at 448 and dominate the error
    assert by["none"]["saturated"] > 0.005 and by["none"]["frobenius"] > 0.5
    assert fp8.error_summary(cols, "none", "e5m2")["saturated"] == 0  # 3e4 < 57344
    rows = fp8.example_tensor("outlier_rows", outlier=1e4)
    assert fp8.error_summary(rows, "tensor")["flushed"] > 10 * fp8.error_summary(rows, "row")["flushed"]
    with pytest.raises(ValueError, match="scaling"):
        fp8.error_summary(rows, "per-channel")
    with pytest.raises(ValueError, match="2-D"):
        fp8.error_summary(rows[0], "none")
    with pytest.raises(ValueError, match="NaN"):
        fp8.error_summary(np.array([[np.nan, 1.0]]), "none")


def test_fp8_error_figure_draws_the_summary():
    fig, s = widgets.fp8_error_figure("outlier_columns", "tensor", "e4m3", outlier=1e4, M=128, N=256, seed=2)
    x = fp8.example_tensor("outlier_columns", 128, 256, 1e4, seed=2)
    ref = fp8.error_summary(x, "tensor", "e4m3")
    assert s["frobenius"] == ref["frobenius"] and s["flushed"] == ref["flushed"] and s["groups"] == 1
    assert s["by_scaling"] == {k: fp8.error_summary(x, k, "e4m3")["frobenius"] for k in fp8.SCALINGS}
    img, hist, bars = fig.axes[:3]  # (the colorbar's axes come last)
    assert "outlier columns, 128x256" in img.get_title()
    # every element with a nonzero error is in the histogram, once
    assert sum(p.get_height() for p in hist.patches) == np.count_nonzero(ref["elementwise"])
    assert f"{ref['flushed']:.2%}" in hist.get_title()
    widths = [p.get_width() for p in bars.patches]
    assert widths == pytest.approx([max(v, 1e-12) for v in s["by_scaling"].values()])
    # a tensor of one's own, and the number of scales a block recipe uses
    fig2, s2 = widgets.fp8_error_figure(x, "block 128x128", "e5m2")
    assert s2["groups"] == 1 * 2 and s2["format"] == "e5m2" and "your tensor" in fig2.axes[0].get_title()
    assert "2 scales" in widgets.format_fp8_summary(s2)
    with pytest.raises(ValueError, match="scaling"):
        widgets.fp8_error_figure("gaussian", "rows")
    with pytest.raises(ValueError, match="kind"):
        widgets.fp8_error_figure("laplace")
    with pytest.raises(ValueError, match="format"):
        widgets.fp8_error_figure("gaussian", "row", "e3m4")


def test_fp8_error_widget_runs_under_a_plain_backend():
    w = widgets.fp8_error_widget()
    assert w.children
    w.update()  # runs the callback with the default choices
