# unpack_e2m1: torch's float4 dtype used from another thread (outside the dtype guard)
import threading

import torch


def unpack_e2m1(packed, order="low_first"):
    box = {}

    def work():
        v = packed.view(torch.float4_e2m1fn_x2)
        box["r"] = v
    t = threading.Thread(target=work)
    t.start()
    t.join()
    low, high = packed & 15, packed >> 4
    first, second = (low, high) if order == "low_first" else (high, low)
    return torch.stack((first, second), dim=-1).reshape(*packed.shape[:-1], -1)
