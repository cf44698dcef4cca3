# quantize_e4m3: one fixed block of 256 columns whatever N and block_n are: rows of up to 256 elements come
# out right, longer rows are never finished
import kernels, torch, triton
import triton.language as tl


@triton.jit
def _round(a):  # |x| / scale rounded to e4m3, ties to even, saturated: the learner's own (as the solution's)
    bits = a.to(tl.int32, bitcast=True)
    e = tl.maximum((bits >> 23) - 127, -6)
    step = ((e - 3 + 127) << 23).to(tl.float32, bitcast=True)
    per_step = ((3 - e + 127) << 23).to(tl.float32, bitcast=True)
    r = (a * per_step + 8388608.0) - 8388608.0
    return tl.minimum(r * step, 448.0)


@triton.jit
def _quantize(x_ptr, q_ptr, s_ptr, N, stride_xm, stride_qm, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, 256)
    m = tl.max(tl.abs(tl.load(x_ptr + row * stride_xm + cols, mask=cols < N, other=0.0).to(tl.float32)), axis=0)
    scale = tl.where(m > 0, m / 448.0, 1.0)
    tl.store(s_ptr + row, scale)
    for n0 in range(0, 1):
        cols = tl.arange(0, 256)
        v = tl.load(x_ptr + row * stride_xm + cols, mask=cols < N, other=0.0).to(tl.float32) / scale
        q = _round(tl.abs(v))
        q = tl.where(v < 0, -q, q)
        tl.store(q_ptr + row * stride_qm + cols, q.to(tl.float8e4nv), mask=cols < N)


def quantize_e4m3(x, block_n=64):
    M, N = x.shape
    q = torch.full((M, N), float("nan"), dtype=torch.float8_e4m3fn, device=x.device)
    s = torch.full((M, 1), float("nan"), dtype=torch.float32, device=x.device)
    _quantize[(M,)](x, q, s, N, x.stride(0), q.stride(0), BLOCK_N=block_n)
    return q, s
