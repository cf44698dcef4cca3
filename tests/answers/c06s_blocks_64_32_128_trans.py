# scaled_matmul_e4m3, a right answer: 64x32x128 tiles, qb's tile loaded as it lies (N, K) and transposed
# with tl.trans, the partial products added to the accumulator, the two scales multiplied first
import kernels, torch, triton
import triton.language as tl


@triton.jit
def _mm(qa_ptr, sa_ptr, qb_ptr, sb_ptr, c_ptr, M, N, K, sam, sak, sbn, sbk, scm, scn, ssa, ssb, 
        BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        a = tl.load(qa_ptr + rows[:, None] * sam + ks[None, :] * sak, mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        b = tl.load(qb_ptr + cols[:, None] * sbn + ks[None, :] * sbk, mask=(cols[:, None] < N) & (ks[None, :] < K), other=0.0)
        acc += tl.dot(a, tl.trans(b))
    sa = tl.load(sa_ptr + rows * ssa, mask=rows < M, other=0.0)
    sb = tl.load(sb_ptr + cols * ssb, mask=cols < N, other=0.0)
    c = acc * (sa[:, None] * sb[None, :])
    tl.store(c_ptr + rows[:, None] * scm + cols[None, :] * scn, c.to(tl.bfloat16), mask=(rows[:, None] < M) & (cols[None, :] < N))


def scaled_matmul_e4m3(qa, sa, qb, sb, out=None):
    (M, K), N = qa.shape, qb.shape[0]
    if out is None:
        out = torch.full((M, N), float("nan"), dtype=torch.bfloat16, device=qa.device)
    bm, bn, bk = (64, 32, 128)
    _mm[(triton.cdiv(M, bm), triton.cdiv(N, bn))](qa, sa, qb, sb, out, M, N, K, qa.stride(0), qa.stride(1), qb.stride(0),
                                                 qb.stride(1), out.stride(0), out.stride(1), sa.stride(0), sb.stride(0),
                                                 BM=bm, BN=bn, BK=bk)
    return out
