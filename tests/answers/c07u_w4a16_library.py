# unpack_e2m1: decoded by the course's W4A16 dequantizer (kernels.w4a16), then mapped back to codes
import torch
from kernels import fp4
from kernels import w4a16 as W


def unpack_e2m1(packed, order="low_first"):
    rows, cols = packed.reshape(-1, packed.shape[-1]).shape
    width = -(-cols // 16) * 16
    p = torch.zeros((rows, width), dtype=torch.uint8, device=packed.device)
    p[:, :cols] = packed.reshape(rows, cols)
    if order == "high_first":
        p = (p >> 4) | ((p & 15) << 4)
    w = W.dequantize_mxfp4(W.MXFP4Weight(p.contiguous(), torch.full((rows, width // 16), 127, dtype=torch.uint8,
                                                                      device=packed.device)), torch.float32)
    table = {float(v): c for c, v in enumerate(fp4.VALUES) if c != 8}
    codes = torch.tensor([table[float(v)] for v in w.flatten().tolist()], dtype=torch.uint8, device=packed.device)
    return codes.reshape(rows, 2 * width)[:, :2 * cols].reshape(*packed.shape[:-1], -1)
