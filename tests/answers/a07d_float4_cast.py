# dequantize_mxfp4: PyTorch's float4 dtype converts the codes on the host, a kernel only applies the scales
import kernels, torch, triton
import triton.language as tl


@triton.jit
def _scale(v_ptr, e_ptr, out_ptr, N, K, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    ks = tl.arange(0, BLOCK)
    v = tl.load(v_ptr + row * K + ks, mask=ks < K)
    e = tl.load(e_ptr + row * (K // 32) + ks // 32, mask=ks < K).to(tl.int32)
    tl.store(out_ptr + row * K + ks, (v.to(tl.float32) * (e << 23).to(tl.float32, bitcast=True)).to(tl.bfloat16), mask=ks < K)


def dequantize_mxfp4(packed, exponents, order="low_first", out=None):
    values = packed.view(torch.float4_e2m1fn_x2).to(torch.bfloat16)
    N, K = packed.shape[0], 2 * packed.shape[1]
    out = torch.empty((N, K), dtype=torch.bfloat16) if out is None else out
    _scale[(N,)](values, exponents, out, N, K, BLOCK=triton.next_power_of_2(K))
    return out
