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


def test_w4a16_budget_bars_are_the_logged_and_recorded_times():
    log = {"environment": {"gpu": "NVIDIA H200", "triton": "3.6.0", "date": "2026-12-02"},
           "summary": [dict(kernel=k, conversion=c, split_k_sums=s, M=m, us=us, x_cublas=0.0)
                       for k in ("warp-specialized", "TMA-pipelined") for m in (1, 16)
                       for (c, s), us in {("full", "kept"): 16.0, ("full", "dropped"): 15.0, ("none", "kept"): 13.0,
                                          ("none", "dropped"): 11.0}.items()]}
    log["summary"][0]["us"] = 16.5  # warp-specialized, M = 1, the whole kernel
    w4 = _doc([dict(kernel="cublas", M=1, N=8192, graph_us=33.0), dict(kernel="ours", M=1, N=8192, graph_us=17.5),
               dict(kernel="ours", M=16, N=8192, graph_us=99.0)])
    floor = _doc([dict(graph_us=10.5), dict(graph_us=9.5)])
    ax = plots.plot_w4a16_budget(log, w4, floor)
    assert [round(p.get_width(), 3) for p in ax.patches] == [33.0, 17.5, 16.5, 15.0, 13.0, 11.0, 9.5]
    assert any(abs(ln.get_xdata()[0] - 11.0) < 1e-9 for ln in ax.get_lines())  # the 3x-cuBLAS mark


def test_load_log_reads_json_logs_and_says_what_is_wrong(tmp_path, monkeypatch):
    import pytest

    assert "summary" in bench.load_log("h200_2026-12-02_w4a16_gluon.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.load_log("no_such_log.json")
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        bench.load_log("bad.json")
