import kernels
import torch, triton
import triton.language as tl
from kernels.operands import prepare_matmul

@triton.jit
def tiled_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # ONE program computes every tile
    for pm in range(0, tl.cdiv(M, BM)):
        for pn in range(0, tl.cdiv(N, BN)):
            rows = pm * BM + tl.arange(0, BM)
            cols = pn * BN + tl.arange(0, BN)
            acc = tl.zeros((BM, BN), dtype=tl.float32)
            for k0 in range(0, K, BK):
                ks = k0 + tl.arange(0, BK)
                a = tl.load(a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak,
                            mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
                b = tl.load(b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn,
                            mask=(ks[:, None] < K) & (cols[None, :] < N), other=0.0)
                acc = tl.dot(a, b, acc)
            tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc.to(c_ptr.dtype.element_ty),
                     mask=(rows[:, None] < M) & (cols[None, :] < N))

def tiled_matmul(a, b, out=None, block_m=32, block_n=32, block_k=32):
    M, N, K, out = prepare_matmul("tiled_matmul", a, b, out, kernel=tiled_matmul_kernel, min_block=16,
                                  blocks={"block_m": block_m, "block_n": block_n, "block_k": block_k})
    tiled_matmul_kernel[(1,)](a, b, out, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                              out.stride(0), out.stride(1), BM=block_m, BN=block_n, BK=block_k, BLOCK_M=4096, BLOCK_N=4096)
    return out
