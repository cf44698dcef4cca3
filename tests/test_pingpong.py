"""The hand-written ping-pong kernel (chapter 05, Gluon, Hopper only).

On any machine: its schedule (every tile once, the two consumers alternating), its input checks, and
its compiled code for sm_90 (Triton compiles Gluon without a GPU; it only cannot *run* it), which must
show a real warp-specialized kernel: two 4-warp consumer regions with wgmma and TMA stores, a 1-warp
producer region with the TMA loads, and the register moves. On a Hopper GPU: results on random ragged
shapes, every configuration, and program counts that make each consumer wrap around the ring.
"""
import numpy as np
import pytest
import torch

import kernels
from kernels import inspect_code as ic
from kernels import pingpong as pp
from kernels import testing as T
from kernels.schedule import persistent_tiles, pingpong_tiles

RUNS, WHY_NOT = pp.available()
gpu_only = pytest.mark.skipif(not RUNS, reason=f"needs a Hopper GPU: {WHY_NOT}")


@pytest.mark.parametrize("num_programs,num_tiles", [(1, 1), (1, 7), (4, 19), (132, 1024), (132, 133), (5, 3)])
def test_pingpong_tiles_cover_every_tile_once(num_programs, num_tiles):
    got = [t for p in range(num_programs) for c in (0, 1) for t in pingpong_tiles(p, num_programs, num_tiles, c)]
    assert sorted(got) == list(range(num_tiles))
    for p in range(num_programs):
        mine = persistent_tiles(p, num_programs, num_tiles)
        c0, c1 = pingpong_tiles(p, num_programs, num_tiles, 0), pingpong_tiles(p, num_programs, num_tiles, 1)
        assert mine[0::2] == c0 and mine[1::2] == c1  # they alternate through the program's tiles
        assert 0 <= len(c0) - len(c1) <= 1
        # the kernel's loop: range(program_id + consumer * P, num_tiles, 2 * P)
        assert c0 == list(range(p, num_tiles, 2 * num_programs))
        assert c1 == list(range(p + num_programs, num_tiles, 2 * num_programs))


def test_pingpong_tiles_rejects_a_third_consumer():
    with pytest.raises(ValueError, match="consumer must be 0 or 1"):
        pingpong_tiles(0, 4, 10, 2)


@pytest.fixture(scope="module")
def compiled():
    return pp.compile_for_hopper()


def test_compiled_code_is_warp_specialized_ping_pong(compiled):
    s = ic.summarize_ttgir(compiled.asm["ttgir"])
    assert s["specialized"]
    assert s["requested_registers"] == [232, 40]
    roles = [(r.name, r.num_warps, r.role()) for r in s["regions"]]
    assert roles == [("default", 4, "consumer: wgmma + TMA store"),
                     ("partition0", 4, "consumer: wgmma + TMA store"),
                     ("partition1", 1, "producer: issues TMA loads")]
    assert compiled.metadata.num_warps == 12  # 4 + 4 + 1 warps, in whole warpgroups
    moves = ic.setmaxnreg(compiled.asm["ptx"])
    assert ("dec", 40) in moves and ("inc", 232) in moves
    assert compiled.asm["ptx"].count("wgmma.mma_async") > 0
    assert compiled.asm["ptx"].count("cp.async.bulk.tensor") > 0


@pytest.mark.parametrize("config", pp.PINGPONG_CONFIGS)
def test_every_config_compiles_within_shared_memory(config):
    k = pp.compile_for_hopper(config)
    assert k.metadata.shared <= 227 * 1024


def test_bad_input_fails_clearly():
    a = T.randn(64, 64, dtype=torch.float16)
    with pytest.raises(TypeError, match="16-bit inputs only"):
        pp.matmul_pingpong(T.randn(64, 64), T.randn(64, 64))
    with pytest.raises(ValueError, match="64, 128 or 256"):
        pp.matmul_pingpong(a, a, (96, 128, 64, 8, 4))
    with pytest.raises(ValueError, match="accumulator registers"):
        pp.matmul_pingpong(a, a, (128, 256, 64, 8, 3))
    with pytest.raises(ValueError, match="shared memory"):
        pp.matmul_pingpong(a, a, (128, 128, 64, 8, 6))
    with pytest.raises(ValueError, match="config must be"):
        pp.matmul_pingpong(a, a, (128, 128))
    with pytest.raises(ValueError, match="multiple of 16"):
        pp.matmul_pingpong(T.randn(16, 12, dtype=torch.float16), T.randn(12, 16, dtype=torch.float16))
    with pytest.raises(ValueError, match="inner dimensions"):
        pp.matmul_pingpong(a, T.randn(32, 64, dtype=torch.float16))


@pytest.mark.skipif(RUNS, reason="checks the message a machine without a Hopper GPU gets")
def test_without_hopper_it_says_so():
    a = T.randn(64, 64, dtype=torch.float16)
    with pytest.raises(RuntimeError, match="matmul_pingpong: .*recorded numbers"):
        pp.matmul_pingpong(a, a)
    assert not kernels.ON_GPU or torch.cuda.get_device_capability()[0] != 9


@gpu_only
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("config", pp.PINGPONG_CONFIGS)
def test_pingpong_random_ragged(dtype, config):
    rng = np.random.default_rng(5)
    shapes = [(8, 8, 8), (128, 128, 64), (37, 40, 72), (1000, 1000, 520), (64, 8192, 1024)]
    shapes += [tuple(int(8 * x) for x in rng.integers(1, 300, 3)) for _ in range(3)]
    for M, N, K in shapes:
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        out = T.poisoned_empty((M, N), dtype)
        pp.matmul_pingpong(a, b, config, out=out)
        T.assert_close_matmul(out, a, b, label=f"pingpong {config} {M}x{N}x{K}")


@gpu_only
@pytest.mark.parametrize("num_programs", [1, 2, 3, 7])
def test_pingpong_few_programs_many_tiles(num_programs):
    # each program loops over many tiles: the ring wraps many times and the turn passes back and forth
    a, b = T.randn(1000, 264, dtype=torch.bfloat16), T.randn(264, 904, dtype=torch.bfloat16)
    out = T.poisoned_empty((1000, 904), torch.bfloat16)
    pp.matmul_pingpong(a, b, num_programs=num_programs, out=out)
    T.assert_close_matmul(out, a, b)


@gpu_only
def test_pingpong_tuned_picks_a_config():
    a, b = T.randn(512, 512, dtype=torch.bfloat16), T.randn(512, 512, dtype=torch.bfloat16)
    out = pp.matmul_pingpong_tuned(a, b)
    T.assert_close_matmul(out, a, b)
    assert pp.tuned_config(a.shape, b.shape, a.dtype) is not None


def test_compiles_after_interpreter_kernels_ran_with_a_cold_cache(tmp_path):
    """Triton's interpreter leaves triton.language patched once a kernel has called a @triton.jit
    helper; a compile in that process then failed ("'block_argument' object has no attribute
    'dtype'"), but only with a cold Triton cache. A fresh process with an empty cache directory runs
    an interpreter kernel that calls helpers, then compiles the Gluon kernel."""
    import os
    import subprocess
    import sys

    import numpy
    import triton

    broken = kernels.interpreter_numpy_problem("interpreter", triton.__version__, numpy.__version__)
    if broken:  # e.g. the GPU machine: Triton 3.6 with numpy 2.5, where the interpreter cannot run
        pytest.skip(f"the interpreter cannot run in this environment: {broken}")
    script = (
        "import kernels, torch\n"
        "from kernels import pingpong as pp, testing as T\n"
        "from kernels.tiled import matmul_tiled\n"
        "a, b = T.randn(40, 24), T.randn(24, 33)\n"
        "T.assert_close_matmul(matmul_tiled(a, b), a, b)\n"
        "k = pp.compile_for_hopper((128, 64, 64, 8, 6))\n"
        "assert k.metadata.num_warps == 12 and 'wgmma' in k.asm['ptx'], k.metadata\n"
        "print('compiled', k.metadata.shared)\n"
    )
    env = dict(os.environ, TRITON_CACHE_DIR=str(tmp_path / "triton-cache"), TTC_WORLD="interpreter")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compiled" in proc.stdout


# The cooperative schedule in the same Gluon machinery (chapter 05's like-for-like comparison)

def test_cooperative_compiles_to_two_half_tile_consumers_and_a_producer():
    k = pp.compile_for_hopper(pp.DEFAULT_COOPERATIVE, schedule="cooperative")
    s = ic.summarize_ttgir(k.asm["ttgir"])
    assert s["specialized"] and s["requested_registers"] == [232, 40]
    assert [r.role() for r in s["regions"]] == ["consumer: wgmma + TMA store"] * 2 + ["producer: issues TMA loads"]
    producer = s["regions"][2]
    assert producer.ops["ttng.async_tma_copy_global_to_local"] == 3  # two A halves and one B tile
    assert k.metadata.num_warps == 12 and k.metadata.shared <= 227 * 1024


@pytest.mark.parametrize("config", pp.COOPERATIVE_CONFIGS)
def test_every_cooperative_config_fits(config):
    assert pp.compile_for_hopper(config, schedule="cooperative").metadata.shared <= 227 * 1024


def test_cooperative_bad_config_fails_clearly():
    a = T.randn(64, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="64 rows or more"):
        pp.matmul_cooperative(a, a, (64, 128, 64, 8, 4))
    with pytest.raises(ValueError, match="accumulator registers"):
        pp.matmul_cooperative(a, a, (256, 256, 64, 8, 2))
    with pytest.raises(ValueError, match="schedule must be"):
        pp.check_config((128, 128, 64, 8, 4), schedule="stream-k")


def test_schedule_counts():
    # 1024^3 with 128x128 tiles: 64 tiles for 64 programs; ping-pong's second consumers get none
    c = pp.schedule_counts(1024, 1024, (128, 128, 64, 8, 4), "pingpong")
    assert c == dict(tiles=64, programs=64, tiles_per_program=[1, 1], tiles_per_consumer=[0, 1])
    c = pp.schedule_counts(1024, 1024, (128, 128, 64, 8, 4), "cooperative")
    assert c["tiles_per_consumer"] == [1, 1]
    c = pp.schedule_counts(4096, 4096, (128, 128, 64, 8, 4), "pingpong")  # 1024 tiles on 132 SMs
    assert c["tiles_per_program"] == [7, 8] and c["tiles_per_consumer"] == [3, 4]


@gpu_only
@pytest.mark.parametrize("config", pp.COOPERATIVE_CONFIGS)
def test_cooperative_random_ragged(config):
    rng = np.random.default_rng(6)
    shapes = [(8, 8, 8), (256, 256, 64), (37, 40, 72), (1000, 1000, 520), (64, 8192, 1024)]
    shapes += [tuple(int(8 * x) for x in rng.integers(1, 300, 3)) for _ in range(2)]
    for M, N, K in shapes:
        a, b = T.randn(M, K, dtype=torch.bfloat16), T.randn(K, N, dtype=torch.bfloat16)
        out = T.poisoned_empty((M, N), torch.bfloat16)
        pp.matmul_cooperative(a, b, config, out=out)
        T.assert_close_matmul(out, a, b, label=f"cooperative {config} {M}x{N}x{K}")


@gpu_only
@pytest.mark.parametrize("num_programs", [1, 3])
def test_cooperative_few_programs_many_tiles(num_programs):
    a, b = T.randn(1000, 264, dtype=torch.bfloat16), T.randn(264, 904, dtype=torch.bfloat16)
    out = T.poisoned_empty((1000, 904), torch.bfloat16)
    pp.matmul_cooperative(a, b, num_programs=num_programs, out=out)
    T.assert_close_matmul(out, a, b)


def test_register_counts_and_schedule_counts_are_checked():
    a = T.randn(64, 64, dtype=torch.float16)
    for regs in (dict(consumer_regs=-5), dict(consumer_regs=300), dict(producer_regs=7), dict(consumer_regs=233),
                 dict(consumer_regs=232.0)):
        with pytest.raises(ValueError, match="setmaxnreg takes a multiple of 8"):
            pp.matmul_pingpong(a, a, **regs)
        with pytest.raises(ValueError, match="setmaxnreg takes a multiple of 8"):
            pp.compile_for_hopper(**regs)
    with pytest.raises(ValueError, match="the program holds 64,512"):
        pp.check_registers(232, 48)
    with pytest.raises(ValueError, match="cannot hold the 128 fp32 accumulator"):
        pp.matmul_pingpong(a, a, consumer_regs=128)
    with pytest.raises(ValueError, match="cannot hold the 128 fp32 accumulator"):
        pp.compile_for_hopper(consumer_regs=24)
    with pytest.raises(ValueError, match="five integers"):
        pp.check_config((128.9, 128, 64, 8, 4))
    with pytest.raises(ValueError, match="five integers"):
        pp.matmul_pingpong(a, a, ())
    for bad in ("ping-pong", None, "Pingpong"):
        with pytest.raises(ValueError, match="schedule must be"):
            pp.schedule_counts(1024, 1024, (128, 128, 64, 8, 4), bad)
    with pytest.raises(ValueError, match="64, 128 or 256"):
        pp.schedule_counts(1024, 1024, (96, 128, 64, 8, 4))
    with pytest.raises(ValueError, match="positive integers"):
        pp.schedule_counts(0, 1024, (128, 128, 64, 8, 4))
    with pytest.raises(ValueError, match="positive integers"):
        pp.schedule_counts(1024, 1024, (128, 128, 64, 8, 4), sms=0)
