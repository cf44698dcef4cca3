import kernels  # first: it decides GPU or interpreter before anything imports triton

print(kernels.describe_world())

import kernels  # before triton: it decides GPU or interpreter (as in the cell above)
import torch
import triton
import triton.language as tl

import grader
from kernels._jit import device_fn
from kernels.operands import prepare_matmul
from kernels.persistent import sm_count
from kernels.schedule import grouped_tile, persistent_tiles
from kernels.testing import matmul_reference, randn, rel_error
from kernels.tiled import matmul_tile

num_tiles, num_programs = 10, 4
for p in range(num_programs):
    print(f"program {p} computes tile ids {persistent_tiles(p, num_programs, num_tiles)}")

grouped_tile_jit = device_fn(grouped_tile)  # chapter 02's grouped order, callable inside a kernel

@triton.jit
def persistent_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    num_programs,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,  # K % BLOCK_K == 0 (matmul_tile then needs no mask along K)
    UPCAST: tl.constexpr,  # bf16 in the interpreter: matmul_tile computes the dot in fp32
):
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = grid_m * grid_n
    ### BEGIN SOLUTION
    for tile_id in range(tl.program_id(0), num_tiles, num_programs):
        pid_m = tile_id // grid_n
        pid_n = tile_id % grid_n
        matmul_tile(a_ptr, b_ptr, c_ptr, pid_m, pid_n, M, N, K,
                    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                    BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST)
    ### END SOLUTION

BLOCKS = kernels.pick(cpu=(32, 32, 32), gpu=(128, 128, 32))  # (BLOCK_M, BLOCK_N, BLOCK_K)
GROUP_M = kernels.pick(cpu=4, gpu=8)


def persistent_matmul(a, b, out=None, num_programs=None):
    """C = a @ b with num_programs persistent programs (default: one per SM) looping over the tiles."""
    block_m, block_n, block_k = BLOCKS
    # a one-line error for a bad a, b, out or block (tl.dot: powers of two >= 16); without out, a NaN-filled C
    M, N, K, out = prepare_matmul("persistent_matmul", a, b, out, kernel=persistent_matmul_kernel, min_block=16,
                                  blocks={"block_m": block_m, "block_n": block_n, "block_k": block_k})
    num_tiles = triton.cdiv(M, block_m) * triton.cdiv(N, block_n)
    if num_programs is None:
        num_programs = min(sm_count(), num_tiles)
    if not isinstance(num_programs, int) or num_programs < 1:
        raise ValueError(f"persistent_matmul: num_programs must be a positive int, got {num_programs!r}")
    persistent_matmul_kernel[(num_programs,)](
        a, b, out, M, N, K,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
        num_programs,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=GROUP_M,
        EVEN_K=K % block_k == 0,
        UPCAST=a.dtype == torch.bfloat16 and not kernels.ON_GPU,
    )
    return out
