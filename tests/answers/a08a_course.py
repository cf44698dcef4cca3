# attention_forward: the course's own fused kernel
from kernels.attention import attention


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    return attention(q, k, v, causal=causal, return_lse=True)
