"""Chapter 03's measured timelines: the summary reads waves, tails, gaps and busy time right (synthetic
records), the plot draws one bar per tile, the recorded H200 timeline is whole, and recording needs a GPU."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import kernels  # noqa: E402
from kernels import bench, plots, testing, timeline  # noqa: E402
from kernels.tiled import TileConfig  # noqa: E402


def _doc():
    recs = []
    for sm in range(4):  # a first wave of 4 tiles of 10 us, then 2 tail tiles of 8 us after a 1 us gap
        recs.append(dict(kernel="tiled", M=64, N=64, K=64, config="c", tile=sm, sm=sm, start_us=0.1 * sm,
                         end_us=10.0 + 0.1 * sm, program=sm))
    for i, sm in enumerate((0, 1)):
        recs.append(dict(kernel="tiled", M=64, N=64, K=64, config="c", tile=4 + i, sm=sm, start_us=11.0 + 0.1 * sm,
                         end_us=19.0 + 0.1 * sm, program=4 + i))
    recs += [dict(r, kernel="persistent") for r in recs]
    return {"records": recs, "gpu_slug": "h200", "environment": bench.load("ch03_timeline", "h200")["environment"]}


def test_summary_reads_waves_tails_gaps_and_busy_time():
    s = plots.timeline_summary(_doc(), "tiled", 64)
    assert (s["tiles"], s["sms"]) == (6, 4)
    assert s["finish_us"] == pytest.approx(19.1) and s["first_start_spread_us"] == pytest.approx(0.3)
    assert s["first_wave_us"] == pytest.approx(10.0) and s["tail_us"] == pytest.approx(8.0)
    assert s["gap_us"] == pytest.approx(1.0)
    assert s["busy"] == pytest.approx((4 * 10 + 2 * 8) / (4 * 19.1))
    with pytest.raises(ValueError, match="no 'ours' timeline"):
        plots.timeline_summary(_doc(), "ours", 64)


def test_plot_draws_one_bar_per_tile_and_the_models_finish():
    axes = plots.plot_timeline(_doc(), 64)
    for ax in axes:
        bars = [p for c in ax.collections for p in c.get_paths()]
        assert len(bars) == 6
        assert any(abs(ln.get_xdata()[0] - 20.0) < 1e-9 for ln in ax.get_lines())  # 2 waves x 10 us


def test_the_recorded_timeline_is_whole():
    doc = bench.load("ch03_timeline", "h200")
    for kernel in ("tiled", "persistent"):
        for M, tiles in ((1152, 144), (2176, 272)):
            rs = [r for r in doc["records"] if r["kernel"] == kernel and r["M"] == M]
            assert sorted(r["tile"] for r in rs) == list(range(tiles))
            assert all(0 <= r["start_us"] < r["end_us"] for r in rs) and min(r["start_us"] for r in rs) == 0
            assert {r["sm"] for r in rs} == set(range(132))


@pytest.mark.skipif(kernels.ON_GPU, reason="checks the interpreter's refusal")
def test_recording_needs_a_gpu():
    a = testing.randn(32, 32, seed=1)
    with pytest.raises(RuntimeError, match="no clock"):
        timeline.record(a, a, TileConfig(16, 16, 16, 2, 4, 1), persistent=False)


def test_malformed_timelines_and_logs_get_a_clear_error():
    doc = _doc()
    doc["records"][0]["end_us"] = doc["records"][0]["start_us"]
    with pytest.raises(ValueError, match="do not end after they start"):
        plots.timeline_summary(doc, "tiled", 64)
    log = bench.load_log("h200_2026-12-02_w4a16_gluon.json")
    w4, floor = bench.load("ch07_w4a16", "h200"), bench.load("ch07_read_floor", "h200")
    with pytest.raises(ValueError, match="at M = 7"):
        plots.plot_w4a16_budget(log, w4, floor, M=7)
    with pytest.raises(ValueError, match="read-floor record holds no time"):
        plots.plot_w4a16_budget(log, w4, {"records": []})
