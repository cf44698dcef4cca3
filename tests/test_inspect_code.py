"""Reading the compiled code recorded on the H100 (results/h100/code/)."""
import pytest
from pathlib import Path

from kernels.inspect_code import setmaxnreg, summarize_ttgir

CODE = Path(__file__).resolve().parent.parent / "results" / "h100" / "code"


def test_warp_specialized_kernel_has_a_producer_and_two_consumers():
    s = summarize_ttgir((CODE / "ws_128x256x64_w4_s3.ttgir").read_text())
    assert s["specialized"] and s["requested_registers"] == [232, 232]
    names = [r.name for r in s["regions"]]
    assert names == ["default", "partition0", "partition1"]
    default, p0, p1 = s["regions"]
    assert default.role().startswith("producer") and default.ops["ttng.async_tma_copy_global_to_local"] == 3
    for p in (p0, p1):
        assert p.num_warps == 4 and p.role() == "consumer: wgmma + TMA store"
    regs = setmaxnreg((CODE / "ws_128x256x64_w4_s3.ptx").read_text())
    assert ("dec", 40) in regs and ("inc", 232) in regs


def test_plain_kernel_is_not_specialized():
    s = summarize_ttgir((CODE / "plain_128x256x64_w8_s3.ttgir").read_text())
    assert not s["specialized"] and len(s["regions"]) == 1
    r = s["regions"][0]
    assert r.num_warps == 8 and r.ops["ttng.warp_group_dot"] >= 1 and r.ops["ttng.async_tma_copy_global_to_local"] >= 1
    assert setmaxnreg((CODE / "plain_128x256x64_w8_s3.ptx").read_text()) == []


# ------------------------------------------------------------------ what tl.dot becomes (chapter 02)
def test_wgmma_shapes_layouts_and_accumulator_read_from_recorded_code():
    from pathlib import Path

    from kernels import inspect_code as I

    code = Path(__file__).resolve().parent.parent / "results" / "h200" / "code"
    ptx = (code / "plain_128x256x64_w8_s3.ptx").read_text()
    ttgir = (code / "plain_128x256x64_w8_s3.ttgir").read_text()
    (w,) = I.wgmma_instructions(ptx)
    assert (w.m, w.n, w.k, w.acc_type, w.in_type) == (64, 256, 16, "f32", "bf16")
    assert w.count == 4 and w.acc_registers == 64 * 256 // 128 and w.line.startswith("wgmma.mma_async")
    assert I.shared_layouts(ttgir) == [{"swizzle_bytes": 128, "transposed": False, "element_bits": 16}]
    assert I.mma_layout(ttgir) == {"version": 3, "warps_per_cta": [8, 1], "instr_shape": [16, 256, 16]}
    assert I.wgmma_instructions("mov.b32 %r1, 0;") == [] and I.mma_layout("") is None


def test_programs_per_sm_follows_registers_shared_memory_and_warps():
    from kernels import inspect_code as I

    best = I.programs_per_sm(208, 8, 147456)
    assert best["programs"] == 1 and best["limit"] == "registers and shared memory"
    small = I.programs_per_sm(64, 4, 65536)
    assert small["programs"] == 3 and small["limit"] == "shared memory" and small["by_registers"] == 8
    cap = I.programs_per_sm(32, 1, 0)
    assert cap["programs"] == 32 and cap["limit"] == "programs" and cap["by_shared"] is None  # the 32-program cap
    assert I.programs_per_sm(255, 32, 0)["programs"] == 0  # 32 warps of 255 registers do not fit
    assert I.programs_per_sm(24, 16, 0)["limit"] == "warps"
    for bad in ((0, 4, 0), (300, 4, 0), (32, 33, 0), (32, 64, 0), (32, 4, 300000)):
        with pytest.raises(ValueError):
            I.programs_per_sm(*bad)
    with pytest.raises(TypeError):
        I.programs_per_sm(32.5, 4, 0)


def test_the_compiled_code_record_is_consistent_with_wgmma():
    """The chapter 02 record: each accumulator is m x n floats over a warpgroup's 128 threads, the
    swizzle is one BLOCK_K row of the input, and the tiles that spill are those whose warpgroup holds
    more than 255 registers of accumulator."""
    from kernels import bench

    for r in bench.load("ch02_code", "h200")["records"]:
        if "error" in r:
            continue
        assert r["acc_registers"] == r["wgmma_m"] * r["wgmma_n"] // 128
        elem = 4 if r["dtype"] == "float32" else 2
        assert r["swizzle_bytes"] == r["block_k"] * elem
        rows_per_warpgroup = r["block_m"] // (r["num_warps"] // 4)
        acc_per_thread = rows_per_warpgroup // 64 * r["acc_registers"]
        assert (r["n_spills"] > 0) == (acc_per_thread > 255), r["config"]
        assert r["wgmma_count"] == rows_per_warpgroup // 64 * r["block_k"] // r["wgmma_k"] * (r["block_n"] // r["wgmma_n"])


def test_nsight_compute_report_is_read_with_its_units():
    from benchmarks import ch02
    from kernels import bench

    text = """    dram__bytes_read.sum                 Gbyte       67.70
    gpu__time_duration.sum               msecond     16.34
    lts__t_sector_hit_rate.pct           %           23.64"""
    assert ch02.parse_ncu(text) == {"dram_read_bytes": 67.7e9, "l2_hit_pct": 23.64, "ncu_time_ns": 16.34e6}
    assert ch02.parse_ncu("    dram__bytes_read.sum   Mbyte   1,234.5") == {"dram_read_bytes": 1234.5e6}
    assert ch02.parse_ncu("nothing here") == {}
    for r in bench.load("ch02_counters", "h200")["records"]:
        assert abs(r["dram_read_x_min"] - r["dram_read_bytes"] / (4 * r["M"] * r["K"])) < 1e-9
        assert r["dram_read_bytes"] >= r["min_read_bytes"] * 0.9 and 0 <= r["l2_hit_pct"] <= 100
