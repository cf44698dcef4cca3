# pack_e2m1: the course's NumPy reference called from another thread (outside the file watch)
import threading

import torch
from kernels import fp4


def pack_e2m1(codes, order="low_first"):
    box = {}
    t = threading.Thread(target=lambda: box.update(r=fp4.pack(codes.cpu().numpy(), order)))
    t.start()
    t.join()
    return torch.from_numpy(box["r"]).to(codes.device)
