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
from kernels.schedule import grouped_tile
from kernels.testing import matmul_reference, randn, rel_error
from kernels.tma import _ensure_allocator

grouped_tile_jit = device_fn(grouped_tile)  # chapter 02's grouped order, callable inside a kernel

@triton.jit
def tma_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_bk, stride_cm,  # row strides in elements; every column stride is 1
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    UPCAST: tl.constexpr,  # bf16 in the interpreter: compute the dot in fp32
):
    ### BEGIN SOLUTION
    a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[stride_am, 1],
                                       block_shape=[BLOCK_M, BLOCK_K])
    b_desc = tl.make_tensor_descriptor(b_ptr, shape=[K, N], strides=[stride_bk, 1],
                                       block_shape=[BLOCK_K, BLOCK_N])
    c_desc = tl.make_tensor_descriptor(c_ptr, shape=[M, N], strides=[stride_cm, 1],
                                       block_shape=[BLOCK_M, BLOCK_N])
    ### END SOLUTION
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = grid_m * grid_n
    k_steps = tl.cdiv(K, BLOCK_K)
    for tile_id in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        pid_m, pid_n = grouped_tile_jit(tile_id, grid_m, grid_n, GROUP_M)
        row0 = pid_m * BLOCK_M
        col0 = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        ### BEGIN SOLUTION
        for ks in range(k_steps):
            a = a_desc.load([row0, ks * BLOCK_K])  # zero-filled past the edges of A
            b = b_desc.load([ks * BLOCK_K, col0])
            if UPCAST:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc)
        rr = row0 + tl.arange(0, BLOCK_M)
        cc = col0 + tl.arange(0, BLOCK_N)
        tl.store(c_ptr + rr[:, None] * stride_cm + cc[None, :], acc.to(c_ptr.dtype.element_ty), mask=(rr[:, None] < M) & (cc[None, :] < N))
        ### END SOLUTION

BLOCKS = kernels.pick(cpu=(32, 32, 32), gpu=(128, 128, 64))  # (BLOCK_M, BLOCK_N, BLOCK_K)
GROUP_M = kernels.pick(cpu=4, gpu=8)


def _check_tma_layout(t, label):
    """TMA's rules: rows contiguous, row stride and base address multiples of 16 bytes."""
    size = t.element_size()
    if t.stride(1) != 1:
        raise ValueError(f"tma_matmul: {label} must be contiguous along its rows for TMA (strides {t.stride()})")
    if (t.stride(0) * size) % 16:
        raise ValueError(f"tma_matmul: {label}'s rows are {t.stride(0) * size} bytes apart; TMA needs a multiple "
                         f"of 16 bytes: for {t.dtype} a row length that is a multiple of {16 // size}")
    if t.data_ptr() % 16:
        raise ValueError(f"tma_matmul: {label} does not start on a 16-byte boundary")


def tma_matmul(a, b, out=None):
    """C = a @ b with one persistent program per SM, tiles moved by TMA descriptors."""
    block_m, block_n, block_k = BLOCKS
    # a one-line error for a bad a, b, out or block (tl.dot: powers of two >= 16); without out, a NaN-filled C
    M, N, K, out = prepare_matmul("tma_matmul", a, b, out, kernel=tma_matmul_kernel, min_block=16,
                                  blocks={"block_m": block_m, "block_n": block_n, "block_k": block_k})
    for label, t in (("a", a), ("b", b), ("out", out)):
        _check_tma_layout(t, label)
    _ensure_allocator()  # on a GPU: scratch memory for the descriptors made inside the kernel
    if a.dtype == torch.float32 and kernels.ON_GPU:
        block_k = 32  # fp32 tiles take twice the shared memory: 128x128x64 fp32 would not fit in 227 KiB
    num_tiles = triton.cdiv(M, block_m) * triton.cdiv(N, block_n)
    num_programs = min(sm_count(), num_tiles)
    tma_matmul_kernel[(num_programs,)](
        a, b, out, M, N, K, a.stride(0), b.stride(0), out.stride(0),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=GROUP_M,
        UPCAST=a.dtype == torch.bfloat16 and not kernels.ON_GPU,
    )
    return out
