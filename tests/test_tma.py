"""The TMA persistent kernel (chapter 04 groundwork): ragged shapes need no masks, bad layouts fail clearly."""
import numpy as np
import pytest
import torch

import kernels
from kernels import testing as T
from kernels.tiled import TileConfig
from kernels.tma import matmul_tma


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("warp_specialize", [False, True])
def test_tma_random_ragged(dtype, warp_specialize):
    if warp_specialize and dtype == torch.float32 and kernels.ON_GPU:
        with pytest.raises(ValueError, match="does not compile for float32"):
            matmul_tma(T.randn(64, 64), T.randn(64, 64), warp_specialize=True)
        return
    rng = np.random.default_rng(11)
    hi = kernels.pick(cpu=90, gpu=700)
    shapes = [(8, 8, 8), (64, 64, 64)] + [tuple(int(8 * x) for x in rng.integers(1, hi // 8, 3)) for _ in range(2)]
    shapes += [(37, 8 * 5, 8 * 9)]  # M need not be aligned, only the row strides
    for M, N, K in shapes:
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        out = T.poisoned_empty((M, N), dtype)
        matmul_tma(a, b, warp_specialize=warp_specialize, out=out)
        T.assert_close_matmul(out, a, b, label=f"tma {M}x{N}x{K}")


@pytest.mark.parametrize("num_programs", [1, 3, 7])
def test_tma_program_counts(num_programs):
    a, b = T.randn(70, 48, dtype=torch.float16), T.randn(48, 56, dtype=torch.float16)
    out = T.poisoned_empty((70, 56), torch.float16)
    cfg = TileConfig(32, 32, 16, 2, 4, 1) if not kernels.ON_GPU else TileConfig(64, 64, 32, 2, 4, 3)
    matmul_tma(a, b, cfg, num_programs=num_programs, out=out)
    T.assert_close_matmul(out, a, b)


def test_tma_rejects_layouts_it_cannot_describe():
    a = T.randn(16, 12, dtype=torch.float16)  # rows of 24 bytes: not a multiple of 16
    b = T.randn(12, 16, dtype=torch.float16)
    with pytest.raises(ValueError, match="multiple of 16"):
        matmul_tma(a, b)
    a = T.randn(16, 16, dtype=torch.float16)
    with pytest.raises(ValueError, match="contiguous along its last dimension"):
        matmul_tma(a.t(), T.randn(16, 16, dtype=torch.float16))
    with pytest.raises(ValueError, match="inner dimensions"):
        matmul_tma(a, T.randn(8, 16, dtype=torch.float16))
    with pytest.raises(ValueError, match="num_programs"):
        matmul_tma(a, a, num_programs=0)
    if kernels.ON_GPU:  # compiler failures measured on the H100 with Triton 3.6, refused up front
        with pytest.raises(ValueError, match="choose one of the two"):
            matmul_tma(a, a, warp_specialize=True, epilogue_subtile=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tma_epilogue_subtile(dtype):
    cfg = TileConfig(32, 32, 32, 2, 4, 1) if not kernels.ON_GPU else TileConfig(128, 256, 64, 8, 8, 4)
    for M, N, K in [(70, 48, 40), (33, 104, 64)] + ([(1000, 1000, 520)] if kernels.ON_GPU else []):
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        out = T.poisoned_empty((M, N), dtype)
        matmul_tma(a, b, cfg, epilogue_subtile=True, out=out)
        T.assert_close_matmul(out, a, b, label=f"tma subtile {M}x{N}x{K}")


@pytest.mark.parametrize("warp_specialize", [False, True])
def test_tma_tuned(warp_specialize):
    from kernels.tma import matmul_tma_tuned

    for M, N, K in [(64, 64, 64), kernels.pick((72, 40, 56), (2000, 1032, 1000))]:
        a, b = T.randn(M, K, dtype=torch.bfloat16), T.randn(K, N, dtype=torch.bfloat16)
        out = T.poisoned_empty((M, N), torch.bfloat16)
        matmul_tma_tuned(a, b, warp_specialize=warp_specialize, out=out)
        T.assert_close_matmul(out, a, b, label=f"tma tuned {M}x{N}x{K}")


@pytest.mark.parametrize("host_descriptors", [False, True])
@pytest.mark.parametrize("flatten", [False, True])
@pytest.mark.parametrize("epilogue_subtile", [False, True])
def test_tma_host_descriptors_and_flatten(host_descriptors, flatten, epilogue_subtile):
    cfg = TileConfig(32, 32, 16, 2, 4, 1) if not kernels.ON_GPU else TileConfig(128, 256, 64, 8, 8, 3)
    shapes = [(70, 48, 40), (33, 104, 64)] + ([(1000, 1000, 520), (64, 1024, 2048)] if kernels.ON_GPU else [])
    for M, N, K in shapes:
        for num_programs in (None, 3):
            a, b = T.randn(M, K, dtype=torch.bfloat16), T.randn(K, N, dtype=torch.bfloat16)
            out = T.poisoned_empty((M, N), torch.bfloat16)
            matmul_tma(a, b, cfg, num_programs=num_programs, out=out, host_descriptors=host_descriptors,
                       flatten=flatten, epilogue_subtile=epilogue_subtile)
            T.assert_close_matmul(out, a, b, label=f"tma host={host_descriptors} flat={flatten} {M}x{N}x{K}")


@pytest.mark.skipif(not kernels.ON_GPU, reason="the refusals are for combinations that fail on the GPU")
def test_tma_refuses_ws_with_host_descriptors_or_flatten():
    a = T.randn(64, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="host_descriptors=True does not compile"):
        matmul_tma(a, a, warp_specialize=True, host_descriptors=True)
    with pytest.raises(ValueError, match="not specialized"):
        matmul_tma(a, a, warp_specialize=True, flatten=True)


@pytest.mark.skipif(not kernels.ON_GPU, reason="the autotuned path runs only on a GPU")
@pytest.mark.parametrize("host_descriptors", [False, True])
def test_tma_tuned_on_ragged_shapes(host_descriptors):
    from kernels.tma import matmul_tma_tuned

    for M, N, K in [(1000, 1000, 520), (64, 8192, 1024), (2048, 1536, 2048)]:
        a, b = T.randn(M, K, dtype=torch.bfloat16), T.randn(K, N, dtype=torch.bfloat16)
        out = T.poisoned_empty((M, N), torch.bfloat16)
        matmul_tma_tuned(a, b, out=out, host_descriptors=host_descriptors)
        T.assert_close_matmul(out, a, b)
