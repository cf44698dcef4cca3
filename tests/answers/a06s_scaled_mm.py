# scaled_matmul_e4m3: PyTorch's FP8 matmul in place of a kernel
import torch


def scaled_matmul_e4m3(qa, sa, qb, sb, out=None):
    return torch._scaled_mm(qa, qb.t(), scale_a=sa, scale_b=sb.t(), out_dtype=torch.bfloat16)
