import kernels, torch, triton
import triton.language as tl
from kernels.operands import prepare_matmul
import kernels.tiled
from clone_util import clone
tile = clone(kernels.tiled.matmul_tile)

@triton.jit
def tiled_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr):
    tile(a_ptr, b_ptr, c_ptr, tl.program_id(0), tl.program_id(1), M, N, K,
         stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, False)

def tiled_matmul(a, b, out=None, block_m=32, block_n=32, block_k=32):
    M, N, K, out = prepare_matmul("tiled_matmul", a, b, out, kernel=tiled_matmul_kernel, min_block=16,
                                  blocks={"block_m": block_m, "block_n": block_n, "block_k": block_k})
    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))
    tiled_matmul_kernel[grid](a, b, out, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        out.stride(0), out.stride(1), BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, EVEN_K=K % block_k == 0)
    return out
