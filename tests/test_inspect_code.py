"""Reading the compiled code recorded on the H100 (results/h100/code/)."""
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
