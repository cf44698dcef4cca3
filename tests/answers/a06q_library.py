# quantize_e4m3: the course's own kernel
from kernels.quantize import quantize_rows


def quantize_e4m3(x, block_n=64):
    return quantize_rows(x, block_n=max(block_n, 16), check_finite=False)  # no host-side torch ops first
