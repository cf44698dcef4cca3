# dequantize_mxfp4: the table of e2m1 values built on the host by the course's reference (kernels.fp4.decode),
# then a lookup kernel of one's own (r07d_lookup_table with its own table is right)
import kernels, torch, triton
import triton.language as tl
from kernels import fp4


@triton.jit
def _dequantize_row(p_ptr, e_ptr, table_ptr, out_ptr, K, spn, sen, son, HIGH_FIRST: tl.constexpr,
                    BLOCK: tl.constexpr):
    row = tl.program_id(0)
    for k0 in range(0, K, BLOCK):
        ks = k0 + tl.arange(0, BLOCK)
        byte = tl.load(p_ptr + row * spn + ks // 2, mask=ks < K, other=0).to(tl.int32)
        code = (byte >> (4 * ((ks % 2) ^ HIGH_FIRST))) & 15
        value = tl.load(table_ptr + code)
        e = tl.load(e_ptr + row * sen + ks // 32, mask=ks < K, other=127).to(tl.int32)
        tl.store(out_ptr + row * son + ks, (value * (e << 23).to(tl.float32, bitcast=True)).to(tl.bfloat16),
                 mask=ks < K)


def dequantize_mxfp4(packed, exponents, order="low_first", out=None):
    N, K = packed.shape[0], 2 * packed.shape[1]
    table = torch.tensor([fp4.decode(c) for c in range(16)], dtype=torch.float32, device=packed.device)
    if out is None:
        out = torch.full((N, K), float("nan"), dtype=torch.bfloat16, device=packed.device)
    _dequantize_row[(N,)](packed, exponents, table, out, K, packed.stride(0), exponents.stride(0), out.stride(0),
                          HIGH_FIRST=int(order == "high_first"), BLOCK=64)
    return out
