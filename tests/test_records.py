"""Records per GPU (``results/<gpu>/``): names, which one a notebook shows, writing without touching
another GPU's records, and the peer benchmarks' loader. No GPU needed."""
import json

import pytest

import kernels
from kernels import bench


def _doc(gpu_name, date, time=None, records=()):
    env = {"gpu": gpu_name, "sm_count": 132, "torch": "t", "triton": "x", "cuda": "c", "date": date}
    if time:
        env["time"] = time
    return {"environment": env, "script": "s", "meta": {}, "records": list(records)}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    for gpu, name, date in (("h100", "NVIDIA H100 80GB HBM3", "2026-11-24"), ("h200", "NVIDIA H200", "2026-12-01")):
        (tmp_path / gpu).mkdir()
        (tmp_path / gpu / "ch02_tiled.json").write_text(json.dumps(_doc(name, date, records=[{"gpu": gpu}])))
    (tmp_path / "h100" / "only_h100.json").write_text(json.dumps(_doc("NVIDIA H100 80GB HBM3", "2026-11-24")))
    return tmp_path


@pytest.mark.parametrize("name,slug", [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
                                       ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
                                       ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H100 NVL", "h100-nvl"),
                                       ("NVIDIA H200 NVL", "h200-nvl"), ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "h100-mig-1g.10gb")])
def test_gpu_slug(name, slug):
    assert bench.gpu_slug(name) == slug


@pytest.mark.parametrize("bad", [None, "", "   ", "!!!", "logs"])
def test_gpu_slug_needs_a_name(bad):
    with pytest.raises(ValueError):
        bench.gpu_slug(bad)


def test_stray_and_broken_files_are_not_gpus(results):
    (results / "logs").mkdir()
    (results / "logs" / "ch02_tiled.json").write_text(json.dumps(_doc("NVIDIA H300", "2030-01-01")))
    (results / "h300").mkdir()
    (results / "h300" / "ch02_tiled.json").write_text("{ not json")
    with pytest.warns(UserWarning, match="not a readable record"):
        assert bench.recorded_gpus("ch02_tiled") == ["h100", "h200"]
    with pytest.warns(UserWarning):
        assert bench.gpus() == ["h200", "h100"]
    with pytest.raises(ValueError, match="not a readable record"):
        bench.load("ch02_tiled", "h300")


@pytest.mark.parametrize("value,wanted", [("", False), ("0", False), ("false", False), ("No", False), ("off", False),
                                          ("n", False), ("disable", False), ("1", True), ("yes", True), ("true", True),
                                          ("On", True)])
def test_ttc_measure(monkeypatch, value, wanted):
    monkeypatch.setenv("TTC_MEASURE", value)
    assert bench.measure_requested() is wanted


def test_the_most_recent_record_is_shown_without_a_gpu(results):
    if kernels.ON_GPU:
        pytest.skip("on a GPU the GPU's own record comes first")
    assert bench.recorded_gpus("ch02_tiled") == ["h100", "h200"]
    doc = bench.load("ch02_tiled")
    assert doc["gpu_slug"] == "h200" and doc["records"] == [{"gpu": "h200"}]
    assert bench.load("ch02_tiled", "h100")["records"] == [{"gpu": "h100"}]
    assert bench.load("only_h100")["gpu_slug"] == "h100"
    shown = bench.recorded_or_fresh("ch02_tiled", fresh=lambda: pytest.fail("measured without a GPU"))
    assert shown["fresh"] is False and "NVIDIA H200" in shown["shown"] and "no GPU" in shown["shown"]


def test_missing_records_say_how_to_make_them(results):
    with pytest.raises(FileNotFoundError, match="run the benchmark"):
        bench.load("nothing_here")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.load("only_h100", "h200")


def test_save_writes_this_gpus_folder_only(results, monkeypatch):
    monkeypatch.setattr(bench, "environment", lambda: _doc("NVIDIA H300 Imaginary", "2027-01-01")["environment"])
    before = {p: p.read_text() for p in results.rglob("*.json")}
    path = bench.save([{"x": 1}], "ch02_tiled", script="test")
    assert path == results / "h300" / "ch02_tiled.json"
    assert {p: p.read_text() for p in before} == before  # no other GPU's record touched
    assert json.loads(path.read_text())["records"] == [{"x": 1}]


def test_peer_loader_runs_only_a_tutorials_definitions(tmp_path):
    from benchmarks._peers import load_tutorial

    f = tmp_path / "03-fake.py"
    f.write_text(
        "import math\n"
        "RAN = []\n"
        "SCALE = math.sqrt(4)\n"
        "def matmul(a, b):\n    return a * b * SCALE\n"
        "RAN.append('module-level test')\n"
        "def perf_report(x):\n    return lambda f: f\n"
        "configs = []\n"
        "@perf_report(configs)\n"
        "def benchmark():\n    pass\n"
        "benchmark.run(show_plots=True)\n")
    mod = load_tutorial(f, definitions_only=True)
    assert mod.matmul(2, 3) == 12 and mod.RAN == [] and not hasattr(mod, "benchmark")
