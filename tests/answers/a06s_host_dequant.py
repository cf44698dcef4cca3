# scaled_matmul_e4m3: qa and qb converted to bfloat16 on the host, then an ordinary bf16 matmul kernel
import kernels, torch, triton
import triton.language as tl


@triton.jit
def _mm(a_ptr, b_ptr, sa_ptr, sb_ptr, c_ptr, M, N, K, sam, sak, sbn, sbk, scm, scn, ssa, ssb,
        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        a = tl.load(a_ptr + rows[:, None] * sam + ks[None, :] * sak, mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        b = tl.load(b_ptr + cols[None, :] * sbn + ks[:, None] * sbk, mask=(cols[None, :] < N) & (ks[:, None] < K), other=0.0)
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    c = acc * tl.load(sa_ptr + rows * ssa, mask=rows < M, other=0.0)[:, None] * tl.load(sb_ptr + cols * ssb, mask=cols < N, other=0.0)[None, :]
    tl.store(c_ptr + rows[:, None] * scm + cols[None, :] * scn, c.to(tl.bfloat16), mask=(rows[:, None] < M) & (cols[None, :] < N))


def scaled_matmul_e4m3(qa, sa, qb, sb, out=None):
    a, b = qa.to(torch.bfloat16), qb.to(torch.bfloat16)
    M, K = a.shape
    N = b.shape[0]
    out = torch.empty((M, N), dtype=torch.bfloat16, device=a.device) if out is None else out
    _mm[(triton.cdiv(M, 32), triton.cdiv(N, 32))](a, b, sa, sb, out, M, N, K, a.stride(0), a.stride(1), b.stride(0),
                                                 b.stride(1), out.stride(0), out.stride(1), sa.stride(0), sb.stride(0),
                                                 BM=32, BN=32, BK=32)
    return out
