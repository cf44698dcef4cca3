import kernels, torch, triton
from kernels.operands import prepare_matmul
import kernels.naive
from clone_util import clone
naive_matmul_kernel = clone(kernels.naive.naive_matmul_kernel)

def naive_matmul(a, b, out=None, block_k=32):
    M, N, K, out = prepare_matmul("naive_matmul", a, b, out, blocks={"block_k": block_k})
    naive_matmul_kernel[(M, N)](a, b, out, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                                out.stride(0), out.stride(1), BLOCK_K=block_k)
    return out
