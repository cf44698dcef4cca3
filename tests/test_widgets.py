"""The functions behind the widgets and plots (the widgets only bind them)."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from kernels import bench, plots  # noqa: E402
from kernels.schedule import footprint, tile_order  # noqa: E402
from kernels.widgets import (  # noqa: E402
    format_tile_report, tile_order_data, tile_order_figure, tile_order_widget, tile_size_report,
    tile_size_widget,
)


def test_tile_order_data_matches_schedule():
    d = tile_order_data(1000, 700, 512, 128, 128, "grouped", 3, programs_at_once=5)
    assert (d["grid_m"], d["grid_n"]) == (8, 6)
    order = tile_order(8, 6, "grouped", 3)
    assert [t for w in d["waves"] for t in w] == order
    assert all(len(w) == 5 for w in d["waves"][:-1]) and len(d["waves"][-1]) == 48 - 45
    for m in range(8):
        for n in range(6):
            assert order[d["launch"][m][n]] == (m, n)
    assert d["footprints"][0] == footprint(order[:5], 512, 128, 128, 2)


def test_tile_order_data_rejects_nonsense():
    with pytest.raises(ValueError):
        tile_order_data(0, 10, 10, 16, 16)


def test_tile_order_figure_draws():
    fig = tile_order_figure(2048, 2048, 2048, 256, 256, group_m=4, programs_at_once=16, wave=1)
    assert len(fig.axes) == 3
    assert "grouped" in fig.axes[1].get_title()


def test_tile_size_report_numbers():
    r = tile_size_report(128, 256, 64, num_stages=3, num_warps=8, M=4096, N=4096, K=4096)
    assert r["intensity"] == pytest.approx(2 * 128 * 256 / (384 * 2))
    assert r["smem_bytes"] == 3 * (128 + 256) * 64 * 2 and r["smem_fits"]
    assert r["acc_regs"] == 128 * 256 // 256
    assert r["tiles"] == 32 * 16
    assert r["dram_ratio"] > 1
    big = tile_size_report(256, 256, 128, num_stages=4, num_warps=4)
    assert not big["smem_fits"] and not big["regs_fit"]
    assert "does NOT fit" in format_tile_report(big)


def test_widgets_build():
    w = tile_order_widget()
    assert w.children
    doc = {"records": [{"config": "128x256x64 w8 s3", "tflops": 700.0, "ratio": 0.95}]}
    assert tile_size_widget(doc).children


def test_plots_draw_recorded_results():
    for name, fn in [("ch02_tiled", plots.plot_versus_library), ("ch02_sweep", plots.plot_sweep),
                     ("ch02_order", plots.plot_order), ("ch01_naive", plots.plot_versus_library)]:
        doc = bench.load(name)
        assert doc["environment"]["gpu"], f"{name} has no GPU name"
        ax = fn(doc)
        assert ax.get_title()


def test_readme_figures_draw(tmp_path):
    from benchmarks import figures

    figures.main(["--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{n}.png" for n in figures.FIGURES)


def test_wave_report_and_figure():
    from kernels.widgets import wave_report, waves_figure, waves_widget

    r = wave_report(1152, 4096, 128, 256, 132)
    assert r["tiles"] == 9 * 16 and r["waves"] == 2
    assert r["last_wave_fill"] == pytest.approx(12 / 132)
    assert r["tiles_per_program"] == (1, 2) and r["persistent_programs"] == 132
    fig = waves_figure(1152, 4096, 128, 256, 132)
    assert "144 programs launched" in fig.axes[0].get_title()
    assert "132 programs launched" in fig.axes[1].get_title()
    # the third panel is kernels.splitk's schedule: 132 whole tiles, then 12 tiles in 11 parts of 6 K steps
    assert "finishes at 1.09" in fig.axes[2].get_title()
    assert waves_widget().children


def test_plot_persistent_draws_recorded_results():
    doc = bench.load("ch03_persistent")
    assert plots.plot_persistent(doc).get_title()


def test_plot_variants_draws_recorded_results():
    doc = bench.load("ch04_tma")
    for M in sorted({r["M"] for r in doc["records"]}):
        assert plots.plot_variants(doc, M).get_title()


def test_pipeline_figure_and_widget():
    from kernels.widgets import pipeline_figure, pipeline_widget

    fig = pipeline_figure(6, (1, 3), load_time=2.0, mma_time=1.0)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("1 stage: done at 18.0")  # 6 * (2 + 1): nothing overlaps
    assert titles[1].startswith("3 stages: done at 8.0")  # first load exposed, then the math back to back
    assert pipeline_widget().children


def test_widget_callbacks_draw_under_a_plain_backend():
    """The sliders' callbacks show their figure with IPython's display, not ``plt.show(fig)``, which
    fails (TypeError) under any backend but Jupyter's inline one; here: Agg, as on a headless GPU run."""
    import matplotlib

    matplotlib.use("Agg")
    from kernels import widgets

    for make in (widgets.tile_order_widget, widgets.waves_widget, widgets.pipeline_widget):
        w = make()
        w.update()  # runs the callback with the sliders' current values
