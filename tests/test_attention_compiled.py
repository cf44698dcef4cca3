"""What Triton builds for the attention key loop on Hopper, read from compiled code (no GPU needed):
compiled for sm_90 in a subprocess (``benchmarks/probe_attention.py``) and read with
``kernels.inspect_code``. The plain loop waits for the scores before its first ``exp2``; the
hand-pipelined loop (``overlap=True``, 128x64 tiles) issues the next tile's ``wgmma``s between the
exponentials of this one."""
import pytest

from benchmarks.probe_attention import probe
from kernels import inspect_code as ic

SASS = """
        /*0100*/                   WARPGROUP.ARRIVE ;
        /*0110*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], RZ, !UPT ;
        /*0120*/                   MUFU.EX2 R3, R4 ;
        /*0130*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR8], R24 ;
        /*0140*/                   MUFU.EX2 R5, R6 ;
        /*0150*/                   MUFU.EX2 R7, R8 ;
        /*0160*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*0170*/              @!P0 BRA 0x100 ;
        /*0180*/                   EXIT ;
"""


def test_loop_schedule_reads_sass():
    runs = ic.loop_schedule(SASS)
    assert runs == [("wgmma", 1), ("exp2", 1), ("wgmma", 1), ("exp2", 2), ("wait(0)", 1)]
    assert ic.format_schedule(runs) == "wgmma > exp2 > wgmma > exp2 x2 > wait(0)"
    assert ic.loop_schedule("        /*0000*/                   EXIT ;") == []


def test_resource_usage_parses_cuobjdump():
    text = "Resource usage:\n Function attention_fwd_kernel:\n  REG:223 STACK:0 SHARED:1024 LOCAL:0 CONSTANT[0]:..."
    assert ic.resource_usage(text) == {"registers": 223, "stack": 0, "shared": 1024}
    with pytest.raises(ValueError, match="REG"):
        ic.resource_usage("nothing here")


def _first(runs, name):
    return next(i for i, (n, _) in enumerate(runs) if n.startswith(name))


def _runs(loop: str):
    return [(part.split(" x")[0], int(part.split(" x")[1]) if " x" in part else 1) for part in loop.split(" > ")]


@pytest.mark.timeout(600)
def test_compiled_key_loops_plain_waits_overlap_interleaves():
    tiles = dict(block_m=128, block_n=64, num_warps=8, num_stages=3)
    plain = probe(128, False, tiles)
    over = probe(128, False, {**tiles, "overlap": True})
    for r in (plain, over):
        assert "failed" not in r, r
        assert r["stack"] == 0 and r["launch_shared_bytes"] <= 232448 and not r["specialized"]
    p, o = _runs(plain["loop"]), _runs(over["loop"])
    # the plain loop: every exp2 of the tile comes after the wait for its scores
    assert _first(p, "wait") < _first(p, "exp2"), plain["loop"]
    # the overlapped loop: exponentials sit between the next tile's wgmmas, before any wait
    assert _first(o, "exp2") < _first(o, "wait"), over["loop"]
    between = [n for i, (name, n) in enumerate(o[:_first(o, "wait")]) if name == "exp2" and 0 < i]
    assert sum(between) >= 32, over["loop"]  # 64 x 64 scores per warpgroup: 32 per thread


@pytest.mark.timeout(600)
@pytest.mark.parametrize("pingpong", [False, True])
def test_gluon_fa3_loop_runs_softmax_under_the_pv_product(pingpong):
    """kernels.attention_gluon, compiled for sm_90: a warp-specialized kernel (two consumer warpgroups
    granted 232 registers, a producer with 40) whose key loop issues both products, waits with one
    still running (wait(1)), runs the tile's exponentials, and only then waits for the last (wait(0))."""
    r = probe(128, False, {"gluon": True, "block_n": 128, "stages": 2, "pingpong": pingpong})
    assert "failed" not in r, r
    assert r["specialized"] and r["requested_registers"] == [232, 40]
    assert r["launch_shared_bytes"] <= 232448
    runs = _runs(r["loop"])
    names = [n for n, _ in runs]
    assert names[0] == "wgmma" and runs[0][1] == 16, r["loop"]  # Q K_j^T (8) and P_{j-1} V_{j-1} (8)
    assert names[1] == "wait(1)", r["loop"]
    assert names[2] == "exp2" and runs[2][1] >= 64, r["loop"]  # 64 x 128 scores per warpgroup: 64 a thread
    assert "wait(0)" in names[3:], r["loop"]
