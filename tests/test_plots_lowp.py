"""The plots of chapters 06-07 draw what their records hold (synthetic records here; the recorded ones
are drawn by the notebooks)."""
import matplotlib

matplotlib.use("Agg")

import kernels  # noqa: E402,F401
from kernels import bench, plots  # noqa: E402

ENV = bench.load("ch06_fp8_gemm")["environment"]


def _doc(recs):
    return {"records": recs, "gpu_slug": "h200", "environment": ENV}


def test_w4a16_over_m_draws_one_line_per_kernel_and_its_byte_floor():
    recs = [dict(kernel=k, M=m, N=8192, K=8192, weight_bytes=b, graph_us=t * m ** 0.5)
            for k, b, t in (("ours", 35_651_584, 9.0), ("cublas", 134_217_728, 33.0)) for m in (1, 4, 16)]
    recs.append(dict(kernel="gemlite", M=1, N=8192, K=8192, weight_bytes=1, error="ImportError"))  # not drawn
    ax = plots.plot_w4a16_over_m(_doc(recs))
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert [list(ln.get_ydata()) for ln in lines] == [[9.0, 18.0, 36.0], [33.0, 66.0, 132.0]]
    floors = sorted(ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":")
    assert abs(floors[0] - 35_651_584 / 4.8e6) < 1e-6 and abs(floors[1] - 134_217_728 / 4.8e6) < 1e-6


def test_launch_bars_are_the_recorded_times():
    recs = [dict(kernel="lean", M=1, python_us=61.0, gpu_us=9.0), dict(kernel="graph", M=1, python_us=12.0, gpu_us=9.0)]
    ax = plots.plot_launch(_doc(recs))
    widths = sorted(round(p.get_width(), 3) for p in ax.patches)
    assert widths == [9.0, 9.0, 12.0, 61.0]


def test_fp8_plots_label_each_case_with_its_ratio():
    ax = plots.plot_fp8_gemm(bench.load("ch06_fp8_gemm"))
    labels = {t.get_text() for t in ax.texts}
    doc = bench.load("ch06_fp8_gemm")
    want = {f"{r['ratio_graph']:.2f}x" for r in doc["records"] if r["kernel"].startswith("fp8") and "graph_tflops" in r}
    assert want <= labels
    ax = plots.plot_quantize_cost(bench.load("ch06_quantize"))
    assert {f"{r['speedup_over_bf16']:.2f}x" for r in bench.load("ch06_quantize")["records"]} <= {t.get_text() for t in ax.texts}
