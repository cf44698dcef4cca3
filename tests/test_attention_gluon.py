"""The hand-written FlashAttention-3 schedule (kernels.attention_gluon, Gluon, Hopper only).

On any machine: its input checks and the message a machine without a Hopper GPU gets (its compiled
code is read in tests/test_attention_compiled.py). On a Hopper GPU: the output and log-sum-exp against
float64 on random ragged shapes, causal or not, grouped-query heads, head dims 64 and 128, every tile
option, with and without ping-pong."""
import pytest
import torch

import kernels
from kernels import attention as A
from kernels import attention_gluon as G
from kernels import testing as T

RUNS, WHY_NOT = G.available()
gpu_only = pytest.mark.skipif(not RUNS, reason=f"needs a Hopper GPU: {WHY_NOT}")


def _qkv(B, H, Hk, Sq, Sk, D, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, generator=g).to(dtype).to(kernels.DEVICE)
            for b in ((B, H, Sq, D), (B, Hk, Sk, D), (B, Hk, Sk, D))]


def test_bad_input_fails_clearly():
    q, k, v = _qkv(1, 2, 2, 32, 32, 64)
    with pytest.raises(TypeError, match="16-bit"):
        G.attention_fa3(q.float(), k.float(), v.float())
    with pytest.raises(TypeError, match="16-bit inputs only .* q is torch.int32"):
        G.attention_fa3(q.int(), k, v)
    with pytest.raises(ValueError, match=r"\(B, H, S, D\) tensor \(this kernel takes that layout only\)"):
        G.attention_fa3(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="head dim 32; this kernel takes"):
        G.attention_fa3(*_qkv(1, 2, 2, 32, 32, 32))
    with pytest.raises(ValueError, match="contiguous"):
        G.attention_fa3(q.transpose(1, 2).contiguous().transpose(1, 2), k, v)
    with pytest.raises(ValueError, match="block_n must be 64 or 128"):
        G.attention_fa3(q, k, v, block_n=32)
    with pytest.raises(ValueError, match="stages must be"):
        G.attention_fa3(q, k, v, stages=1)
    with pytest.raises(ValueError, match="shared memory"):
        G.check_fa3_config(128, 128, 4)
    with pytest.raises(ValueError, match="divide"):
        G.attention_fa3(*_qkv(1, 3, 2, 32, 32, 64))
    with pytest.raises(ValueError, match="setmaxnreg"):
        G.attention_fa3(q, k, v, consumer_regs=230)
    with pytest.raises(ValueError, match="block_n must be 64 or 128"):
        G.attention_fa3(q, k, v, block_n=64.0)
    with pytest.raises(TypeError, match="causal must be True or False"):
        G.attention_fa3(q, k, v, causal="yes")
    with pytest.raises(ValueError, match="head dim 48; this kernel takes"):
        G.attention_fa3(*_qkv(1, 2, 2, 32, 32, 48))
    odd = torch.empty(2 * 32 * 64 + 1, dtype=torch.bfloat16, device=kernels.DEVICE)[1:].view(1, 2, 32, 64)
    with pytest.raises(ValueError, match="16-byte"):
        G.attention_fa3(odd, k, v)


@pytest.mark.skipif(RUNS, reason="checks the message a machine without a Hopper GPU gets")
def test_without_hopper_it_says_so():
    with pytest.raises(RuntimeError, match="attention_fa3: .*kernels.attention.attention runs everywhere"):
        G.attention_fa3(*_qkv(1, 2, 2, 32, 32, 64))


@gpu_only
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("D", G.HEAD_DIMS)
@pytest.mark.parametrize("opts", [dict(), dict(pingpong=True), dict(block_n=64, stages=3),
                                  dict(block_n=64, stages=4, pingpong=True), dict(stages=3)])
def test_fa3_random_ragged(causal, D, opts):
    for seed, (B, H, Hk, Sq, Sk) in enumerate([(1, 4, 4, 128, 128), (2, 4, 2, 200, 200), (1, 8, 1, 77, 301),
                                               (1, 2, 2, 301, 77), (1, 2, 2, 1, 1), (2, 2, 2, 1000, 1000)]):
        for dtype in (torch.bfloat16, torch.float16):
            q, k, v = _qkv(B, H, Hk, Sq, Sk, D, dtype, seed)
            o, lse = G.attention_fa3(q, k, v, causal=causal, return_lse=True, **opts)
            ro, rl = A.attention_reference(q, k, v, causal=causal)
            err = T.rel_error(o, ro)
            assert err < T.tolerance(dtype), (B, H, Hk, Sq, Sk, dtype, err)
            assert (lse.double() - rl).abs().max().item() < 2e-3, (B, H, Hk, Sq, Sk, dtype)


@gpu_only
def test_fa3_matches_sdpa_at_size():
    q, k, v = _qkv(2, 16, 16, 4096, 4096, 128)
    for causal in (False, True):
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        for pingpong in (False, True):
            assert T.rel_error(G.attention_fa3(q, k, v, causal=causal, pingpong=pingpong), ref) < 1e-2
