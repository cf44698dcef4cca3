import kernels  # first: it decides GPU or interpreter before anything imports triton

print(kernels.describe_world())

import kernels  # before triton: it decides GPU or interpreter (as in the cell above)
import torch
import triton
import triton.language as tl

import grader
from kernels.operands import prepare_matmul
from kernels.testing import matmul_reference, randn, rel_error

@triton.jit
def naive_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_K: tl.constexpr,
):
    ### BEGIN SOLUTION
    m = tl.program_id(0)
    n = tl.program_id(1)
    row_a = a_ptr + m * stride_am  # start of row m of A
    col_b = b_ptr + n * stride_bn  # start of column n of B
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        inside = ks < K  # the last chunk may run past K
        a = tl.load(row_a + ks * stride_ak, mask=inside, other=0.0)
        b = tl.load(col_b + ks * stride_bk, mask=inside, other=0.0)
        acc += a.to(tl.float32) * b.to(tl.float32)
    total = tl.sum(acc, axis=0)
    tl.store(c_ptr + m * stride_cm + n * stride_cn, total.to(c_ptr.dtype.element_ty))
    ### END SOLUTION

def naive_matmul(a, b, out=None, block_k=32):
    """C = a @ b with one Triton program per element of C."""
    # a one-line error for a bad a, b, out or block_k; without out, a NaN-filled C (unwritten elements show)
    M, N, K, out = prepare_matmul("naive_matmul", a, b, out, blocks={"block_k": block_k},
                                  kernel=naive_matmul_kernel)
    naive_matmul_kernel[(M, N)](
        a, b, out, M, N, K,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
        BLOCK_K=block_k,
    )
    assert not torch.isnan(out).any()
    return out
