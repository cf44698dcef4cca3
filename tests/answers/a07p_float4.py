# pack_e2m1: the packed bytes read back through PyTorch's float4 dtype (a round trip that does nothing but
# touch torch.float4_e2m1fn_x2), after packing the low-first way
import torch


def pack_e2m1(codes, order="low_first"):
    first, second = codes[..., 0::2], codes[..., 1::2]
    packed = (first | (second << 4)) if order == "low_first" else ((first << 4) | second)
    return packed.view(torch.float4_e2m1fn_x2).view(torch.uint8)
