"""Chapter 01: the naive Triton matmul, one program per output element.

Program ``(m, n)`` computes the single number ``C[m, n]``: it walks along row ``m`` of ``A`` and
column ``n`` of ``B`` in chunks of ``BLOCK_K`` and sums the products. Every program reads ``2*K``
numbers to produce one, so the kernel moves ``2*M*N*K`` elements for ``2*M*N*K`` flops: an arithmetic
intensity of about one flop per element loaded, far below what the tensor cores need.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .operands import check_blocks, check_grid, check_inputs, plan_output


@triton.jit
def naive_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_K: tl.constexpr,
    INT64: tl.constexpr = False,  # an operand spans >= 2**31 elements: offsets in 64 bits (the wrapper decides)
):
    m = tl.program_id(0)  # which row of C
    n = tl.program_id(1)  # which column of C
    if INT64:  # every offset below is an index times a stride: 64-bit strides make them all 64-bit
        stride_am, stride_ak = tl.cast(stride_am, tl.int64), tl.cast(stride_ak, tl.int64)
        stride_bk, stride_bn = tl.cast(stride_bk, tl.int64), tl.cast(stride_bn, tl.int64)
        stride_cm, stride_cn = tl.cast(stride_cm, tl.int64), tl.cast(stride_cn, tl.int64)
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        in_k = ks < K
        a = tl.load(a_ptr + m * stride_am + ks * stride_ak, mask=in_k, other=0.0)
        b = tl.load(b_ptr + ks * stride_bk + n * stride_bn, mask=in_k, other=0.0)
        acc += a.to(tl.float32) * b.to(tl.float32)
    tl.store(c_ptr + m * stride_cm + n * stride_cn, tl.sum(acc, axis=0).to(c_ptr.dtype.element_ty))


def naive_matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None,
                 block_k: int = 64) -> torch.Tensor:
    """``a @ b`` with one Triton program per output element (slow on purpose: chapter 01).

    ``a``: ``(M, K)``, ``b``: ``(K, N)``, float32/float16/bfloat16, on ``kernels.DEVICE``; returns C,
    ``(M, N)`` in the inputs' dtype (``out`` if given; accumulated in float32). ``block_k``: how many
    products a program takes per step, a power of two (an ``int`` or a NumPy integer). The grid is ``(M, N)``: rows of C on axis x
    (up to ``2**31 - 1``), columns on axis y, which CUDA limits to 65535, so ``N <= 65535``.

    Raises ``TypeError``/``ValueError`` for operands outside ``kernels.operands``' contract (an ``out``
    that shares memory with ``a`` or ``b`` is computed through a temporary), ``ValueError`` for a bad
    ``block_k`` or a grid CUDA cannot launch.
    """
    name = "naive_matmul"
    M, N, K = check_inputs(name, a, b)
    block_k = check_blocks(name, {"block_k": block_k})["block_k"]  # a NumPy integer becomes an int
    check_grid(name, (M, N), " (rows of C go on x, columns on y; kernels.tiled.matmul_tiled has no such "
                             "limit)")
    call = plan_output(name, a, b, out)
    c = call.c
    naive_matmul_kernel[(M, N)](
        a, b, c, M, N, K,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BLOCK_K=block_k, INT64=call.int64,
    )
    return call.result()
