"""Chapter 08: attention forward with FlashAttention-3's Hopper schedule, written by hand in Gluon
(Hopper GPUs only).

``kernels.attention`` leaves the schedule to Triton's compiler: a warpgroup waits for its scores, then
runs its softmax while its tensor cores idle (``benchmarks/probe_attention.py`` reads it from the SASS).
FlashAttention-3 (Shah et al., 2024, "FlashAttention-3: Fast and Accurate Attention with Asynchrony and
Low-precision", section 3) keeps the tensor cores busy with two ideas, both written out here with
Gluon (``triton.experimental.gluon``, where the programmer places warps, shared memory, barriers, TMA
copies and ``wgmma``s), as chapter 05's ping-pong matmul was:

* **warp specialization**: one program per ``(batch x head, 128 query rows)``; a **producer** warp
  loads the program's two 64-row halves of ``Q`` once, then streams ``K`` and ``V`` tiles of
  ``BLOCK_N`` keys through a ring of ``STAGES`` shared-memory slots with TMA (``ready`` barriers
  signalled by the copy engine, ``empty`` barriers released by both consumers); two **consumer**
  warpgroups (4 warps each) own 64 query rows each and share every ``K``/``V`` tile;
* **intra-warpgroup overlap**: a consumer issues the next tile's scores ``S_j = Q K_j^T`` and the
  previous tile's ``O += P_{j-1} V_{j-1}`` as asynchronous ``wgmma``s, waits only for ``S_j``, and runs
  the softmax of tile ``j`` while ``P_{j-1} V_{j-1}`` is still on the tensor cores; then it waits for
  that product and rescales ``O`` by ``alpha_j``. ``P`` goes to the tensor cores from registers.
  With ``pingpong=True`` the two consumers also take turns to issue their ``wgmma``s (a ``turn``
  barrier pair, as in FlashAttention-3's inter-warpgroup schedule), so that one's softmax lines up
  with the other's matrix products.

The online softmax is :func:`kernels.attention.online_softmax_update` in base 2, as in
``kernels.attention``: ``log2(e)`` folded into the scale, one multiply-add and one ``exp2`` per score.

Takes ``(B, H, S, D)`` contiguous ``q`` and ``(B, H_kv, S_k, D)`` contiguous ``k``/``v`` (grouped-query
heads, ``H_kv`` dividing ``H``), bfloat16 or float16, head dim 64 or 128, any ``S_q``/``S_k``
(ragged tiles are masked), ``causal`` aligned at the top left like
``scaled_dot_product_attention``'s ``is_causal``. The tensors are addressed as 2-D
``(rows, D)`` views through host-side TMA descriptors: rows past a head's end belong to the next
head (or lie past the tensor and read as zeros); keys there are masked, queries there are computed
and never stored.

Gluon does not run in Triton's interpreter: without a Hopper GPU :func:`attention_fa3` raises a
clear error, and the chapter shows the numbers recorded on the H200 and what the compiled code holds
(``benchmarks/probe_attention.py`` compiles this kernel for ``sm_90`` on any machine).
"""
from __future__ import annotations

import math

import torch

from .pingpong import available  # the same question as chapter 05's Gluon kernels: Gluon and a Hopper GPU

try:  # Gluon is experimental: present in Triton 3.6 (the H200's) and 3.9 (this course's CPU pin)
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import mbarrier, tma, warpgroup_mma, warpgroup_mma_wait
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    _tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared  # renamed after 3.6
    HAVE_GLUON = True
except ImportError as exc:  # pragma: no cover - older Triton
    HAVE_GLUON = False
    _GLUON_ERROR = exc

LOG2E = 1.4426950408889634
BLOCK_M = 128  # query rows a program: 64 for each consumer warpgroup (wgmma's M is 64 per warpgroup)
HEAD_DIMS = (64, 128)


if HAVE_GLUON:

    @gluon.jit
    def _fa3_producer(q_desc, k_desc, v_desc, q_bufs, k_bufs, v_bufs, q_bar, k_ready, k_empty, v_ready, v_empty,
                      q_row, kv_row, n_tiles, STAGES: gl.constexpr):
        """One warp: both halves of Q once, then K_j and V_j for every key tile j, into ring slot
        ``j % STAGES`` once both consumers have released what the slot held."""
        BMH: gl.constexpr = q_desc.block_type.shape[0]
        BN: gl.constexpr = k_desc.block_type.shape[0]
        mbarrier.expect(q_bar.index(0), 2 * q_desc.block_type.nbytes)
        _tma_load(q_desc, [q_row, 0], q_bar.index(0), q_bufs.index(0))
        _tma_load(q_desc, [q_row + BMH, 0], q_bar.index(0), q_bufs.index(1))
        for j in range(n_tiles):
            s = j % STAGES
            # the first pass through the ring waits on the phase "before" the first, already complete
            free = ((j // STAGES) & 1) ^ 1
            mbarrier.wait(k_empty.index(s), free)
            mbarrier.expect(k_ready.index(s), k_desc.block_type.nbytes)
            _tma_load(k_desc, [kv_row + j * BN, 0], k_ready.index(s), k_bufs.index(s))
            mbarrier.wait(v_empty.index(s), free)
            mbarrier.expect(v_ready.index(s), v_desc.block_type.nbytes)
            _tma_load(v_desc, [kv_row + j * BN, 0], v_ready.index(s), v_bufs.index(s))

    @gluon.jit
    def _fa3_mask(s, rows, cols, n0, S_K, r0, CAUSAL: gl.constexpr, BN: gl.constexpr):
        """-inf where key ``n0 + c`` is past ``S_K`` or (causal) after the row; only on the tiles that
        cross the end or the diagonal (a scalar test per tile: the others pay nothing)."""
        need = n0 + BN > S_K
        if CAUSAL:
            need = need | (n0 + BN - 1 > r0)
        if need:
            keys = n0 + cols
            keep = (keys < S_K)[None, :]
            if CAUSAL:
                keep = keep & (keys[None, :] <= rows[:, None])
            s = gl.where(keep, s, float("-inf"))
        return s

    @gluon.jit
    def _fa3_consumer(q_bufs, k_bufs, v_bufs, q_bar, k_ready, k_empty, v_ready, v_empty, turn,
                      o_ptr, lse_ptr, stride_os, bh, m0, S_Q, S_K, n_tiles, qk_scale,
                      STAGES: gl.constexpr, CONSUMER: gl.constexpr, CAUSAL: gl.constexpr,
                      STORE_LSE: gl.constexpr, PINGPONG: gl.constexpr,
                      s_layout: gl.constexpr, o_layout: gl.constexpr):
        """One warpgroup: query rows ``m0 + 64 * CONSUMER ...`` of head ``bh`` over every key tile."""
        BMH: gl.constexpr = q_bufs.shape[1]
        HEAD_DIM: gl.constexpr = q_bufs.shape[2]
        BN: gl.constexpr = k_bufs.shape[1]
        dtype: gl.constexpr = q_bufs.dtype
        p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
        o_rows: gl.constexpr = gl.SliceLayout(1, o_layout)
        r0 = m0 + CONSUMER * BMH
        rows = r0 + gl.arange(0, BMH, layout=gl.SliceLayout(1, s_layout))
        cols = gl.arange(0, BN, layout=gl.SliceLayout(0, s_layout))
        q_smem = q_bufs.index(CONSUMER)
        zero_s = gl.zeros([BMH, BN], gl.float32, s_layout)
        mbarrier.wait(q_bar.index(0), 0)

        # tile 0: its scores, alone
        if PINGPONG:
            mbarrier.wait(turn.index(CONSUMER), CONSUMER ^ 1)
        mbarrier.wait(k_ready.index(0), 0)
        s_tok = warpgroup_mma(q_smem, k_bufs.index(0).permute((1, 0)), zero_s, use_acc=False, is_async=True)
        if PINGPONG:
            mbarrier.arrive(turn.index(1 - CONSUMER), count=1)
        s = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok])
        mbarrier.arrive(k_empty.index(0), count=1)
        s = _fa3_mask(s, rows, cols, 0, S_K, r0, CAUSAL, BN)
        m_i = gl.max(s, axis=1) * qk_scale
        p = gl.exp2(s * qk_scale - m_i[:, None])
        l_i = gl.sum(p, axis=1)
        acc = gl.zeros([BMH, HEAD_DIM], gl.float32, o_layout)

        for j in range(1, n_tiles):
            sj = j % STAGES
            sp = (j - 1) % STAGES
            if PINGPONG:  # our turn on the tensor cores: the other consumer has issued its two wgmmas
                mbarrier.wait(turn.index(CONSUMER), (j & 1) ^ (1 - CONSUMER))
            # issue S_j = Q K_j^T, then O += P_{j-1} V_{j-1}; both run on the tensor cores meanwhile
            mbarrier.wait(k_ready.index(sj), (j // STAGES) & 1)
            s_tok = warpgroup_mma(q_smem, k_bufs.index(sj).permute((1, 0)), zero_s, use_acc=False, is_async=True)
            mbarrier.wait(v_ready.index(sp), ((j - 1) // STAGES) & 1)
            p_op = gl.convert_layout(p.to(dtype), p_layout)
            acc_tok = warpgroup_mma(p_op, v_bufs.index(sp), acc, is_async=True)
            if PINGPONG:
                mbarrier.arrive(turn.index(1 - CONSUMER), count=1)
            # wgmmas finish in order: with one left outstanding, S_j is ready and P V still running
            s = warpgroup_mma_wait(num_outstanding=1, deps=[s_tok])
            mbarrier.arrive(k_empty.index(sj), count=1)
            s = _fa3_mask(s, rows, cols, j * BN, S_K, r0, CAUSAL, BN)
            m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
            alpha = gl.exp2(m_i - m_new)
            p = gl.exp2(s * qk_scale - m_new[:, None])
            l_i = l_i * alpha + gl.sum(p, axis=1)
            m_i = m_new
            # now P_{j-1} V_{j-1} is needed: wait, release V's slot, and rescale to the new maximum
            acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc_tok])
            mbarrier.arrive(v_empty.index(sp), count=1)
            acc = acc * gl.convert_layout(alpha, o_rows)[:, None]

        last = n_tiles - 1
        sl = last % STAGES
        mbarrier.wait(v_ready.index(sl), (last // STAGES) & 1)
        p_op = gl.convert_layout(p.to(dtype), p_layout)
        acc = warpgroup_mma(p_op, v_bufs.index(sl), acc, is_async=True)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc])
        mbarrier.arrive(v_empty.index(sl), count=1)

        # epilogue: O = acc / l (rows past S_Q belong to the next head: not stored), lse in natural log
        o = acc / gl.convert_layout(l_i, o_rows)[:, None]
        orow = r0 + gl.arange(0, BMH, layout=o_rows)
        ocol = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, o_layout))
        optrs = o_ptr + (bh.to(gl.int64) * S_Q + orow)[:, None] * stride_os + ocol[None, :]
        gl.store(optrs, o.to(dtype), mask=(orow < S_Q)[:, None])
        if STORE_LSE:
            lse = (m_i + gl.log2(l_i)) * 0.6931471805599453
            gl.store(lse_ptr + bh.to(gl.int64) * S_Q + rows, lse, mask=rows < S_Q)

    @gluon.jit
    def attention_fa3_kernel(q_desc, k_desc, v_desc, o_ptr, lse_ptr, stride_os, H, GROUP, S_Q, S_K, qk_scale,
                             CAUSAL: gl.constexpr, STORE_LSE: gl.constexpr, STAGES: gl.constexpr,
                             PINGPONG: gl.constexpr, PRODUCER_REGS: gl.constexpr, CONSUMER_REGS: gl.constexpr):
        BMH: gl.constexpr = q_desc.block_type.shape[0]
        HEAD_DIM: gl.constexpr = q_desc.block_type.shape[1]
        BN: gl.constexpr = k_desc.block_type.shape[0]
        dtype: gl.constexpr = q_desc.dtype
        pid_m = gl.program_id(0)
        if CAUSAL:  # the query tiles with the most keys start first
            pid_m = gl.num_programs(0) - 1 - pid_m
        bh = gl.program_id(1)
        b = bh // H
        hk = (bh % H) // GROUP  # grouped-query attention: the key/value head of this query head
        m0 = pid_m * (2 * BMH)
        end = S_K
        if CAUSAL:
            end = gl.minimum(m0 + 2 * BMH, S_K)
        n_tiles = gl.cdiv(end, BN)
        q_row = bh * S_Q + m0
        kv_row = (b * (H // GROUP) + hk) * S_K

        q_bufs = gl.allocate_shared_memory(dtype, [2, BMH, HEAD_DIM], q_desc.layout)
        k_bufs = gl.allocate_shared_memory(dtype, [STAGES, BN, HEAD_DIM], k_desc.layout)
        v_bufs = gl.allocate_shared_memory(dtype, [STAGES, BN, HEAD_DIM], v_desc.layout)
        q_bar = gl.allocate_shared_memory(gl.int64, [1, 1], mbarrier.MBarrierLayout())
        k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        k_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        v_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
        mbarrier.init(q_bar.index(0), count=1)
        for i in gl.static_range(STAGES):
            mbarrier.init(k_ready.index(i), count=1)
            mbarrier.init(k_empty.index(i), count=2)  # both consumers release a slot
            mbarrier.init(v_ready.index(i), count=1)
            mbarrier.init(v_empty.index(i), count=2)
        for i in gl.static_range(2):
            mbarrier.init(turn.index(i), count=1)
        # one warpgroup's wgmma results: 64 rows x BN scores, 64 rows x HEAD_DIM output
        s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                           instr_shape=[16, BN, 16])
        o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                           instr_shape=[16, HEAD_DIM, 16])
        gl.warp_specialize([
            (_fa3_consumer, (q_bufs, k_bufs, v_bufs, q_bar, k_ready, k_empty, v_ready, v_empty, turn, o_ptr,
                             lse_ptr, stride_os, bh, m0, S_Q, S_K, n_tiles, qk_scale, STAGES, 0, CAUSAL, STORE_LSE,
                             PINGPONG, s_layout, o_layout)),  # default partition: the kernel's 4 warps
            (_fa3_consumer, (q_bufs, k_bufs, v_bufs, q_bar, k_ready, k_empty, v_ready, v_empty, turn, o_ptr,
                             lse_ptr, stride_os, bh, m0, S_Q, S_K, n_tiles, qk_scale, STAGES, 1, CAUSAL, STORE_LSE,
                             PINGPONG, s_layout, o_layout)),
            (_fa3_producer, (q_desc, k_desc, v_desc, q_bufs, k_bufs, v_bufs, q_bar, k_ready, k_empty, v_ready,
                             v_empty, q_row, kv_row, n_tiles, STAGES)),
        ], [4, 1], [CONSUMER_REGS, PRODUCER_REGS])
        mbarrier.invalidate(q_bar.index(0))
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(k_ready.index(i))
            mbarrier.invalidate(k_empty.index(i))
            mbarrier.invalidate(v_ready.index(i))
            mbarrier.invalidate(v_empty.index(i))
        for i in gl.static_range(2):
            mbarrier.invalidate(turn.index(i))


def shared_layout(block, dtype):
    """The NVMMA shared-memory layout of a ``block`` tile of ``dtype`` (wgmma's swizzled operand layout)."""
    return gl.NVMMASharedLayout.get_default_for(list(block), {torch.float16: gl.float16,
                                                             torch.bfloat16: gl.bfloat16}[dtype])


def check_fa3_config(head_dim: int, block_n: int, stages: int, elem_bytes: int = 2,
                     name: str = "attention_fa3") -> None:
    """Raise ``ValueError`` for tiles the kernel cannot hold: ``block_n`` 64 or 128, ``stages`` 2 to 4,
    and the shared memory (two 64-row Q halves, ``stages`` K and V tiles) within Hopper's 227 KiB."""
    if not isinstance(block_n, int) or isinstance(block_n, bool) or block_n not in (64, 128):
        raise ValueError(f"{name}: block_n must be 64 or 128, got {block_n!r}")
    if not isinstance(stages, int) or isinstance(stages, bool) or not 2 <= stages <= 4:
        raise ValueError(f"{name}: stages must be 2, 3 or 4, got {stages!r}")
    smem = (BLOCK_M * head_dim + 2 * stages * block_n * head_dim) * elem_bytes
    if smem > 227 * 1024:
        raise ValueError(f"{name}: {stages} stages of {block_n}x{head_dim} K and V tiles and the Q tile need "
                         f"{smem // 1024} KiB of shared memory; Hopper has 227 KiB per block")


def attention_fa3(q, k, v, causal: bool = False, scale: float | None = None, return_lse: bool = False,
                  block_n: int = 128, stages: int = 2, pingpong: bool = False,
                  consumer_regs: int = 232, producer_regs: int = 40):
    """Attention forward with the hand-written FlashAttention-3 schedule (module docstring).

    ``q`` ``(B, H, S_q, D)``, ``k``/``v`` ``(B, H_kv, S_k, D)``, contiguous, one dtype (float16 or
    bfloat16), ``D`` in ``HEAD_DIMS``, ``H_kv`` dividing ``H``, on a Hopper GPU. ``scale`` defaults to
    ``1/sqrt(D)``. Returns ``O`` like ``q`` and, with ``return_lse``, ``lse`` ``(B, H, S_q)`` float32
    (natural log). ``block_n`` keys a step (64 or 128), ``stages`` ring slots, ``pingpong``: the two
    consumer warpgroups take turns to issue their ``wgmma``s. Raises ``TypeError``/``ValueError`` for
    operands (as :func:`kernels.attention.attention`, plus the contiguous ``(B, H, S, D)`` layout this
    kernel needs) and tiles it cannot take, ``RuntimeError`` where it cannot run (no Gluon, no Hopper GPU)."""
    from . import attention as A
    from .pingpong import check_registers

    name = "attention_fa3"
    for t, label in ((q, "q"), (k, "k"), (v, "v")):  # before the general checks: their advice is for kernels.attention
        if isinstance(t, torch.Tensor) and t.dtype not in (torch.float16, torch.bfloat16):
            raise TypeError(f"{name}: wgmma on 16-bit inputs only (float16, bfloat16); {label} is {t.dtype}")
        if isinstance(t, torch.Tensor) and t.dim() != 4:
            raise ValueError(f"{name}: {label} must be a (B, H, S, D) tensor (this kernel takes that layout only), "
                             f"got shape {tuple(t.shape)}")
        if isinstance(t, torch.Tensor) and t.dim() == 4 and t.layout == torch.strided and not t.is_contiguous():
            raise ValueError(f"{name}: {label} must be a contiguous (B, H, S, D) tensor (the kernel reads it as "
                             f"(B*H*S, D) rows through TMA); got strides {t.stride()}: pass {label}.contiguous()")
        if isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[-1] not in HEAD_DIMS:
            raise ValueError(f"{name}: head dim {t.shape[-1]}; this kernel takes {HEAD_DIMS} "
                             f"(kernels.attention.attention takes 16, 32, 64 and 128)")
    B, H, Hk, Sq, Sk, D = A.check_attention(name, q, k, v, "bhsd", scale)
    A.check_flags(name, causal=causal, return_lse=return_lse, pingpong=pingpong)
    if q.dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"{name}: wgmma on 16-bit inputs only (float16, bfloat16); got {q.dtype}")
    for t, label in ((q, "q"), (k, "k"), (v, "v")):
        if t.data_ptr() % 16:
            raise ValueError(f"{name}: {label}'s first element is {t.data_ptr() % 16} bytes past a 16-byte boundary; "
                             f"TMA needs 16-byte aligned tensors: pass {label}.clone()")
    check_fa3_config(D, block_n, stages, q.element_size(), name)
    consumer_regs, producer_regs = check_registers(consumer_regs, producer_regs, name)
    ok, why = available()
    if not ok:
        raise RuntimeError(f"{name}: {why}. kernels.attention.attention runs everywhere; the chapter shows the "
                           f"numbers recorded on the H200.")
    o = torch.empty_like(q)
    lse = torch.empty((B, H, Sq), dtype=torch.float32, device=q.device) if return_lse else o
    launch(q, k, v, o, lse, causal, scale, block_n, stages, pingpong, consumer_regs, producer_regs, return_lse)
    return (o, lse) if return_lse else o


def launch(q, k, v, o, lse, causal, scale, block_n=128, stages=2, pingpong=False, consumer_regs=232,
           producer_regs=40, store_lse=True):
    """Launch with no checks (``attention_fa3`` checks first): the lean path a CUDA graph captures."""
    B, H, Sq, D = q.shape
    Hk, Sk = k.shape[1], k.shape[2]
    sm_scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    half = BLOCK_M // 2
    q_desc = TensorDescriptor.from_tensor(q.view(B * H * Sq, D), [half, D], shared_layout((half, D), q.dtype))
    k_desc = TensorDescriptor.from_tensor(k.view(B * Hk * Sk, D), [block_n, D], shared_layout((block_n, D), k.dtype))
    v_desc = TensorDescriptor.from_tensor(v.view(B * Hk * Sk, D), [block_n, D], shared_layout((block_n, D), v.dtype))
    grid = (triton_cdiv(Sq, BLOCK_M), B * H)
    attention_fa3_kernel[grid](q_desc, k_desc, v_desc, o, lse, D, H, H // Hk, Sq, Sk, sm_scale * LOG2E,
                               CAUSAL=bool(causal), STORE_LSE=bool(store_lse), STAGES=stages, PINGPONG=bool(pingpong),
                               PRODUCER_REGS=producer_regs, CONSUMER_REGS=consumer_regs, num_warps=4)
    return o


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)
