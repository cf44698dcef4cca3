"""Split-K (kernels.splitk) and kernels.matmul (kernels.dispatch): the plans cover every K step and
tile exactly once, the kernels match float64 at ragged sizes, every dtype, every split and every layout
(odd strides, transposed views, slices, an out with strides), give the same bits on every run, and
refuse bad arguments with a clear error. The rule of kernels.dispatch.plan is checked at the H200's
size (132 SMs) against the choices its docstring states."""
import itertools

import pytest
import torch

import kernels
from kernels import ON_GPU
from kernels import dispatch as D
from kernels import splitk as SK
from kernels import testing
from kernels.tiled import TileConfig

CFG = TileConfig(16, 16, 16, 2, 4, 2) if not ON_GPU else TileConfig(64, 64, 64, 8, 4, 3)
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _inputs(M, N, K, dtype, seed=0):
    return testing.randn(M, K, dtype=dtype, seed=seed), testing.randn(K, N, dtype=dtype, seed=seed + 1)


@pytest.mark.parametrize("K,block_k,split_k", list(itertools.product((1, 16, 17, 100, 4096), (16, 64), (1, 2, 3, 7, 64))))
def test_split_plan_covers_every_k_step_once_with_no_empty_split(K, block_k, split_k):
    per, splits = SK.split_plan(K, block_k, split_k)
    steps = -(-K // block_k)
    ranges = [(s * per, min(s * per + per, steps)) for s in range(splits)]
    assert all(lo < hi for lo, hi in ranges), "no split may be empty"
    assert [k for lo, hi in ranges for k in range(lo, hi)] == list(range(steps))
    assert 1 <= splits <= split_k


@pytest.mark.parametrize("tiles,sms", [(1, 4), (4, 4), (5, 4), (9, 4), (144, 132), (272, 132), (264, 132)])
def test_tail_plan_splits_only_the_last_partial_wave(tiles, sms):
    dp, shared = SK.tail_plan(tiles, sms)
    assert dp + shared == tiles
    assert dp % sms == 0
    assert shared == (tiles if tiles <= sms else tiles % sms)
    assert SK.tail_plan(tiles, sms, split_k=3) == (0, tiles)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K,split_k", [(33, 40, 100, 3), (16, 64, 128, 4), (40, 48, 96, 1), (5, 24, 200, 64),
                                           (70, 56, 64, None), (50, 50, 48, None)])
def test_splitk_matches_float64(M, N, K, split_k, dtype):
    es = torch.empty((), dtype=dtype).element_size()
    K, N = -(-K // (16 // es)) * (16 // es), -(-N // (16 // es)) * (16 // es)  # TMA-readable rows
    a, b = _inputs(M, N, K, dtype)
    out = testing.poisoned_empty((M, N), dtype)
    SK.matmul_splitk(a, b, CFG, split_k=split_k, out=out)
    testing.assert_close_matmul(out, a, b, label=f"split-K {split_k}")


def test_splitk_tail_split_is_used_and_exact_where_the_last_wave_is_partial():
    # 3 x 3 = 9 tiles of 16 x 16 on 4 "SMs": 8 whole, the ninth split 4 ways
    a, b = _inputs(48, 48, 64, torch.float32)
    c = torch.empty(48, 48, device=a.device)
    dp, shared, splits = SK.launch(a, b, c, CFG if not ON_GPU else TileConfig(16, 16, 16, 2, 4, 2), None, sms=4)
    assert (dp, shared, splits) == (8, 1, 4)
    testing.assert_close_matmul(c, a, b, label="tail split")


def test_splitk_is_deterministic():
    a, b = _inputs(40, 48, 256, torch.float32, seed=3)
    first = SK.matmul_splitk(a, b, CFG, split_k=8)
    for _ in range(3):
        assert torch.equal(SK.matmul_splitk(a, b, CFG, split_k=8), first)


def test_splitk_refuses_bad_arguments():
    a, b = _inputs(16, 16, 32, torch.float32)
    for bad in (0, 65, 2.0, True, "4"):
        with pytest.raises(ValueError, match="split_k must be None or an int"):
            SK.matmul_splitk(a, b, CFG, split_k=bad)
    odd = testing.randn(16, 33, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="not a layout TMA can read"):
        SK.matmul_splitk(odd, testing.randn(33, 16, dtype=torch.bfloat16), CFG)
    with pytest.raises(ValueError, match="not a layout TMA can read"):
        SK.matmul_splitk(testing.randn(32, 16).T, b, CFG)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        SK.matmul_splitk(a, testing.randn(8, 16), CFG)


# ------------------------------------------------------------------ kernels.matmul
H200 = 132


@pytest.mark.parametrize("M,N,K,kernel,tile,split", [
    (1, 4096, 4096, "splitk", (16, 64, 256), 1),
    (16, 8192, 8192, "splitk", (16, 64, 256), 1),
    (64, 4096, 4096, "splitk", (64, 64, 128), 1),
    (128, 8192, 8192, "persistent", (64, 128, 64), None),
    (512, 4096, 4096, "persistent", (128, 128, 64), None),
    (1024, 1024, 1024, "persistent", (64, 128, 64), None),
    (1152, 4096, 4096, "splitk", (128, 256, 64), None),
    (2176, 4096, 4096, "splitk", (128, 256, 64), None),
    (4096, 4096, 4096, "persistent", (128, 256, 64), None),
    (3000, 5000, 1700, "persistent", (128, 256, 64), None),
    (16384, 16384, 16384, "persistent", (128, 256, 64), None),
])
def test_plan_follows_the_stated_rule_on_an_h200(M, N, K, kernel, tile, split):
    p = D.plan(M, N, K, torch.bfloat16, sms=H200, on_gpu=True)
    assert (p.kernel, (p.config.block_m, p.config.block_n, p.config.block_k), p.split_k) == (kernel, tile, split), p
    assert p.why


def test_plan_for_float32_fits_shared_memory():
    from kernels.tiled import pipeline_shared_memory, SHARED_MEMORY_LIMIT

    for M, N, K in [(1, 4096, 4096), (64, 4096, 4096), (128, 8192, 8192), (1152, 4096, 4096), (4096, 4096, 4096)]:
        p = D.plan(M, N, K, torch.float32, sms=H200, on_gpu=True)
        c = p.config
        epilogue = c.block_m * c.block_n * 4 if p.kernel == "persistent" else 0
        assert pipeline_shared_memory(c, torch.float32) + epilogue <= SHARED_MEMORY_LIMIT, p


def _layouts(M, N, K, dtype):
    a, b = _inputs(M, N, K, dtype, seed=7)
    yield "contiguous", a, b
    yield "transposed views", a.T.contiguous().T, b.T.contiguous().T
    big_a = testing.randn(M + 3, K + 5, dtype=dtype, seed=9)
    big_b = testing.randn(K + 2, N + 7, dtype=dtype, seed=10)
    yield "slices", big_a[1:M + 1, 3:K + 3], big_b[2:, 5:N + 5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(1, 37, 50), (9, 40, 33), (20, 70, 64), (100, 90, 41), (130, 200, 64), (70, 33, 17)])
def test_matmul_any_shape_layout_and_dtype_matches_float64(M, N, K, dtype):
    for label, a, b in _layouts(M, N, K, dtype):
        c = kernels.matmul(a, b)
        assert c.shape == (M, N) and c.dtype == dtype and c.is_contiguous()
        testing.assert_close_matmul(c, a, b, label=f"kernels.matmul {label}")


def test_matmul_writes_a_strided_out_and_through_overlap():
    a, b = _inputs(40, 24, 32, torch.float32)
    out = testing.poisoned_empty((24, 40), torch.float32).T  # column-major out
    r = kernels.matmul(a, b, out=out)
    assert r is out
    testing.assert_close_matmul(out, a, b, label="column-major out")
    sq = testing.randn(32, 32, seed=4)
    want = sq.double() @ sq.double()
    kernels.matmul(sq, sq, out=sq)  # out is the input: computed through a temporary
    assert torch.allclose(sq.double(), want, rtol=1e-2, atol=1e-2 * want.abs().max().item())


def test_matmul_errors_are_clear():
    a = testing.randn(8, 16)
    with pytest.raises(ValueError, match="kernels.matmul: inner dimensions differ"):
        kernels.matmul(a, testing.randn(8, 16))
    with pytest.raises(TypeError, match="kernels.matmul: a is torch.float32 but b is torch.float16"):
        kernels.matmul(a, testing.randn(16, 8, dtype=torch.float16))
    with pytest.raises(ValueError, match="kernels.matmul: a must be 2-D"):
        kernels.matmul(testing.randn(2, 8, 16), testing.randn(16, 8))
    with pytest.raises(ValueError, match="kernels.matmul: out has shape"):
        kernels.matmul(a, testing.randn(16, 8), out=testing.randn(8, 9))
