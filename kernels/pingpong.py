"""Chapter 05: a ping-pong warp-specialized matmul, written by hand in Gluon (Hopper GPUs only).

Triton's ``tl.range(..., warp_specialize=True)`` (``kernels.tma``) builds the *cooperative* schedule on
Hopper: both consumer warpgroups work on halves of the same tile, so the tensor cores sit idle while they
both run the epilogue. The *ping-pong* schedule gives each consumer warpgroup whole tiles of its own,
in turn: while one consumer runs its K loop on the tensor cores, the other stores its finished tile. The
Triton compiler does not build it, so this module writes it with Gluon
(``triton.experimental.gluon``), Triton's lower-level dialect where the programmer places the warps, the
shared memory, the barriers and every TMA copy and ``wgmma`` by hand.

One program per SM (persistent), three partitions (warp roles):

* **producer** (1 warp, few registers): walks the program's tiles in grouped order and, for every K step,
  waits until a slot of the shared-memory ring is free (``empty``), then issues the two TMA loads into
  it; the hardware signals ``ready`` when the bytes have landed;
* **consumer 0** (the default partition, 4 warps = one warpgroup) takes the program's even tiles (its
  1st, 3rd, ... tile), **consumer 1** (4 warps) the odd ones. A consumer waits for its *turn*, runs the
  tile's K loop with asynchronous ``wgmma`` (``ready`` -> MMA -> ``empty`` per slot), hands the turn to
  the other consumer and only then runs its epilogue (fp32 accumulator -> 16 bit -> shared memory ->
  TMA store), which overlaps the other consumer's K loop.

The ring is shared: the producer fills it in the order the consumers use it (tile by tile), so the two
consumers read the slots alternately, one tile's worth at a time. ``kernels.schedule.pingpong_tiles``
is the same assignment in plain Python (tests, pictures).

``matmul_cooperative`` is the other Hopper schedule in the same machinery (the same producer, ring,
barriers, host-side descriptors and register split): both consumers take every tile of their program,
each its half of the rows, and each slot's ``empty`` barrier waits for both. Chapter 05 times the two
side by side so that only the schedule differs (``schedule_counts`` says how the work is shared out).

Gluon does not run in Triton's interpreter: on a machine without a Hopper GPU, ``matmul_pingpong``
raises a clear error, and the chapter shows the numbers recorded on the H200 and the H100.
"""
from __future__ import annotations

import dataclasses
import functools
import types

import torch

from . import ON_GPU
from ._jit import device_fn
from .schedule import cdiv, grouped_tile

try:  # Gluon is experimental: present in Triton 3.6 (the H100) and 3.9 (this course's CPU pin)
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    # Triton 3.6 names the TMA copies async_copy_global_to_shared / async_copy_shared_to_global;
    # later versions renamed them async_load / async_store (and removed the old store name)
    _tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
    _tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global
    HAVE_GLUON = True
except ImportError as exc:  # pragma: no cover - older Triton
    HAVE_GLUON = False
    _GLUON_ERROR = exc


if HAVE_GLUON:
    # the plain-Python schedule, compiled as a Gluon helper (same source as the other kernels' copy)
    _grouped_tile = device_fn(grouped_tile, jit=gluon.jit)

    @gluon.jit
    def _producer(a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K,
                  GROUP_M: gl.constexpr, STAGES: gl.constexpr, HALVES: gl.constexpr = 1):
        # HALVES = 1 (ping-pong): one A tile of BM rows per K step. HALVES = 2 (cooperative): the
        # program's tile has 2 * BM rows, loaded as two BM-row halves, one for each consumer.
        BM: gl.constexpr = a_desc.block_type.shape[0] * HALVES
        BMH: gl.constexpr = a_desc.block_type.shape[0]
        BK: gl.constexpr = a_desc.block_type.shape[1]
        BN: gl.constexpr = b_desc.block_type.shape[1]
        grid_m = gl.cdiv(M, BM)
        grid_n = gl.cdiv(N, BN)
        k_steps = gl.cdiv(K, BK)
        g = 0  # ring step: the g-th K step this program loads, over all its tiles
        for tile_id in range(gl.program_id(0), grid_m * grid_n, gl.num_programs(0)):
            pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
            for ks in range(k_steps):
                s = g % STAGES
                # wait until the consumers released this slot's previous contents (the first pass
                # through the ring waits on the phase "before" the first one, which is complete)
                mbarrier.wait(empty.index(s), ((g // STAGES) & 1) ^ 1)
                mbarrier.expect(ready.index(s), HALVES * a_desc.block_type.nbytes + b_desc.block_type.nbytes)
                for h in gl.static_range(HALVES):
                    _tma_load(a_desc, [pid_m * BM + h * BMH, ks * BK], ready.index(s),
                              a_bufs.index(s * HALVES + h))
                _tma_load(b_desc, [ks * BK, pid_n * BN], ready.index(s), b_bufs.index(s))
                g += 1

    @gluon.jit
    def _consumer(a_bufs, b_bufs, ready, empty, turn, c_desc, c_bufs, M, N, K,
                  GROUP_M: gl.constexpr, STAGES: gl.constexpr, CONSUMER: gl.constexpr,
                  acc_layout: gl.constexpr):
        BM: gl.constexpr = c_desc.block_type.shape[0]
        BN: gl.constexpr = c_desc.block_type.shape[1]
        BK: gl.constexpr = a_bufs.shape[2]
        grid_m = gl.cdiv(M, BM)
        grid_n = gl.cdiv(N, BN)
        k_steps = gl.cdiv(K, BK)
        P = gl.num_programs(0)
        c_smem = c_bufs.index(CONSUMER)
        j = CONSUMER  # the program's tile ordinal: consumer 0 takes 0, 2, 4, ...; consumer 1 1, 3, 5, ...
        n = 0  # tiles this consumer has done
        for tile_id in range(gl.program_id(0) + CONSUMER * P, grid_m * grid_n, 2 * P):
            pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
            g0 = j * k_steps  # ring step of this tile's first K step
            # wait for our turn on the tensor cores: consumer 0's first wait passes at once, every
            # later one waits for the other consumer to finish a K loop. The turn also keeps the ring
            # correct: a slot's barrier is waited on by phase *parity*, so a consumer that ran ahead
            # could take a phase two laps old (the other consumer's data) for its own.
            mbarrier.wait(turn.index(CONSUMER), (n & 1) ^ (1 - CONSUMER))
            acc = gl.zeros([BM, BN], gl.float32, acc_layout)
            for ks in range(k_steps):
                g = g0 + ks
                s = g % STAGES
                mbarrier.wait(ready.index(s), (g // STAGES) & 1)
                acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s), acc, is_async=True)
                # keep one wgmma in flight: when this returns, the previous step's has finished ...
                acc = warpgroup_mma_wait(num_outstanding=1, deps=[acc])
                # ... so its slot can be refilled
                mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES), count=1, pred=ks > 0)
            acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc])
            mbarrier.arrive(empty.index((g0 + k_steps - 1) % STAGES), count=1)
            # the K loop is done: the other consumer may use the tensor cores while we store
            mbarrier.arrive(turn.index(1 - CONSUMER), count=1)
            tma.store_wait(0)  # our previous tile's store has left c_smem
            c_smem.store(acc.to(c_desc.dtype))
            fence_async_shared()  # make the shared-memory writes visible to the TMA engine
            _tma_store(c_desc, [pid_m * BM, pid_n * BN], c_smem)  # clipped at C's edges
            j += 2
            n += 1
        tma.store_wait(0)

    @gluon.jit
    def pingpong_matmul_kernel(a_desc, b_desc, c_desc, M, N, K,
                               GROUP_M: gl.constexpr, STAGES: gl.constexpr, PRODUCER_REGS: gl.constexpr,
                               CONSUMER_REGS: gl.constexpr):
        BM: gl.constexpr = c_desc.block_type.shape[0]
        BN: gl.constexpr = c_desc.block_type.shape[1]
        BK: gl.constexpr = a_desc.block_type.shape[1]
        dtype: gl.constexpr = a_desc.dtype
        # shared memory: a STAGES-slot ring for A and B tiles, one C tile per consumer, and barriers
        a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], a_desc.layout)
        b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], b_desc.layout)
        c_bufs = gl.allocate_shared_memory(dtype, [2, BM, BN], c_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)
            mbarrier.init(empty.index(i), count=1)
        for i in gl.static_range(2):
            mbarrier.init(turn.index(i), count=1)
        # the accumulator of one warpgroup (4 warps) computing a whole BM x BN tile with wgmma
        acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                             instr_shape=[16, BN, 16])
        gl.warp_specialize([
            (_consumer, (a_bufs, b_bufs, ready, empty, turn, c_desc, c_bufs, M, N, K,
                         GROUP_M, STAGES, 0, acc_layout)),  # default partition: the kernel's 4 warps
            (_consumer, (a_bufs, b_bufs, ready, empty, turn, c_desc, c_bufs, M, N, K,
                         GROUP_M, STAGES, 1, acc_layout)),
            (_producer, (a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, GROUP_M, STAGES, 1)),
        ], [4, 1], [CONSUMER_REGS, PRODUCER_REGS])
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))
            mbarrier.invalidate(empty.index(i))
        for i in gl.static_range(2):
            mbarrier.invalidate(turn.index(i))


    @gluon.jit
    def _coop_consumer(a_bufs, b_bufs, ready, empty, c_desc, c_bufs, M, N, K,
                       GROUP_M: gl.constexpr, STAGES: gl.constexpr, HALF: gl.constexpr,
                       acc_layout: gl.constexpr):
        # the cooperative schedule: both consumers work on every tile of the program, consumer HALF
        # on rows [HALF * BMH, (HALF + 1) * BMH) of it, and both release each slot (empty counts 2)
        BMH: gl.constexpr = c_desc.block_type.shape[0]
        BM: gl.constexpr = 2 * BMH
        BN: gl.constexpr = c_desc.block_type.shape[1]
        BK: gl.constexpr = a_bufs.shape[2]
        grid_m = gl.cdiv(M, BM)
        grid_n = gl.cdiv(N, BN)
        k_steps = gl.cdiv(K, BK)
        c_smem = c_bufs.index(HALF)
        g = 0
        for tile_id in range(gl.program_id(0), grid_m * grid_n, gl.num_programs(0)):
            pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
            acc = gl.zeros([BMH, BN], gl.float32, acc_layout)
            for ks in range(k_steps):
                s = g % STAGES
                mbarrier.wait(ready.index(s), (g // STAGES) & 1)
                acc = warpgroup_mma(a_bufs.index(s * 2 + HALF), b_bufs.index(s), acc, is_async=True)
                acc = warpgroup_mma_wait(num_outstanding=1, deps=[acc])
                mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES), count=1, pred=ks > 0)
                g += 1
            acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc])
            mbarrier.arrive(empty.index((g + STAGES - 1) % STAGES), count=1)
            # no turn: both consumers reach the epilogue together, and the tensor cores wait for it
            tma.store_wait(0)
            c_smem.store(acc.to(c_desc.dtype))
            fence_async_shared()
            _tma_store(c_desc, [pid_m * BM + HALF * BMH, pid_n * BN], c_smem)
        tma.store_wait(0)

    @gluon.jit
    def cooperative_matmul_kernel(a_desc, b_desc, c_desc, M, N, K,
                                  GROUP_M: gl.constexpr, STAGES: gl.constexpr, PRODUCER_REGS: gl.constexpr,
                                  CONSUMER_REGS: gl.constexpr):
        """The same producer, ring and barriers as ``pingpong_matmul_kernel``, with the cooperative
        schedule: a program's tile is 2 * BMH x BN and its two consumer warpgroups each compute one
        BMH-row half of every tile. Built to compare the two schedules with everything else equal."""
        BMH: gl.constexpr = c_desc.block_type.shape[0]
        BN: gl.constexpr = c_desc.block_type.shape[1]
        BK: gl.constexpr = a_desc.block_type.shape[1]
        dtype: gl.constexpr = a_desc.dtype
        a_bufs = gl.allocate_shared_memory(dtype, [2 * STAGES, BMH, BK], a_desc.layout)
        b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], b_desc.layout)
        c_bufs = gl.allocate_shared_memory(dtype, [2, BMH, BN], c_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)
            mbarrier.init(empty.index(i), count=2)  # both consumers release a slot
        acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                             instr_shape=[16, BN, 16])
        gl.warp_specialize([
            (_coop_consumer, (a_bufs, b_bufs, ready, empty, c_desc, c_bufs, M, N, K,
                              GROUP_M, STAGES, 0, acc_layout)),
            (_coop_consumer, (a_bufs, b_bufs, ready, empty, c_desc, c_bufs, M, N, K,
                              GROUP_M, STAGES, 1, acc_layout)),
            (_producer, (a_desc, b_desc, a_bufs, b_bufs, ready, empty, M, N, K, GROUP_M, STAGES, 2)),
        ], [4, 1], [CONSUMER_REGS, PRODUCER_REGS])
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))
            mbarrier.invalidate(empty.index(i))


# (block_m, block_n, block_k, group_m, stages): block_m x block_n is ONE consumer's tile; its fp32
# accumulator takes block_m * block_n / 128 registers per thread of the warpgroup (128 for 128 x 128)
PINGPONG_CONFIGS = [
    (128, 128, 64, 8, 4),
    (128, 128, 64, 8, 5),
    (128, 64, 64, 8, 6),
    (64, 256, 64, 8, 4),
]
DEFAULT_PINGPONG = PINGPONG_CONFIGS[0]
# The cooperative schedule's (block_m, block_n, block_k, group_m, stages): block_m x block_n is the
# program's tile, block_m / 2 rows for each consumer. 256x128 gives each consumer ping-pong's 128x128.
COOPERATIVE_CONFIGS = [
    (128, 128, 64, 8, 4),
    (256, 128, 64, 8, 3),
    (128, 256, 64, 8, 3),
]
DEFAULT_COOPERATIVE = COOPERATIVE_CONFIGS[0]


@functools.lru_cache(maxsize=None)
def available() -> tuple[bool, str]:
    """Whether the Gluon kernels (this module's, and ``kernels.attention_gluon``'s) can run here, and if
    not, why: Triton with Gluon, a GPU, and a Hopper one (compute capability 9.x)."""
    if not HAVE_GLUON:
        return False, f"this Triton has no Gluon ({_GLUON_ERROR})"
    if not ON_GPU:
        return False, "Gluon kernels run only on a GPU (Triton's interpreter does not run Gluon)"
    major, minor = torch.cuda.get_device_capability()
    if major != 9:
        return False, f"the kernel uses Hopper's wgmma and TMA (compute capability 9.x); this GPU is {major}.{minor}"
    return True, "Hopper GPU with Gluon"


@functools.lru_cache(maxsize=None)
def _smem_layout(block, dtype):
    return gl.NVMMASharedLayout.get_default_for(list(block), {torch.float16: gl.float16,
                                                             torch.bfloat16: gl.bfloat16}[dtype])


def _descriptor(t, block):
    return TensorDescriptor.from_tensor(t, list(block), _smem_layout(tuple(block), t.dtype))


def consumer_rows(block_m: int, schedule: str) -> int:
    """Rows of one consumer's accumulator: the whole tile's in ping-pong, half in the cooperative schedule."""
    return block_m // 2 if schedule == "cooperative" else block_m


def check_config(config, elem_bytes=2, name="matmul_pingpong", schedule="pingpong"):
    """Check a ``(block_m, block_n, block_k, group_m, stages)`` tuple; return it as a tuple.

    ``block_m x block_n`` is a ping-pong consumer's whole tile, or (``schedule="cooperative"``) the
    program's tile, of which each consumer computes ``block_m / 2`` rows."""
    from .operands import as_int

    try:
        vals = [as_int(v) for v in config]
    except TypeError:
        vals = []
    if len(vals) != 5 or any(v is None for v in vals):
        raise ValueError(f"{name}: config must be (block_m, block_n, block_k, group_m, stages), five integers; "
                         f"got {config!r}")
    bm, bn, bk, group_m, stages = vals
    if schedule not in ("pingpong", "cooperative"):
        raise ValueError(f"{name}: schedule must be 'pingpong' or 'cooperative', got {schedule!r}")
    for label, v in (("block_m", bm), ("block_n", bn), ("block_k", bk)):
        if v not in (64, 128, 256):
            raise ValueError(f"{name}: {label}={v}; this kernel takes 64, 128 or 256")
    rows = consumer_rows(bm, schedule)
    if schedule == "cooperative" and bm < 128:
        raise ValueError(f"{name}: the cooperative schedule splits block_m between two warpgroups of "
                         f"64 rows or more; block_m={bm}")
    if rows * bn // 128 > 128:
        raise ValueError(f"{name}: a {rows}x{bn} accumulator needs {rows * bn // 128} fp32 accumulator registers per "
                         f"thread of one warpgroup; keep it at 128 (e.g. 128x128 per consumer)")
    if group_m < 1 or stages < 2:
        raise ValueError(f"{name}: need group_m >= 1 and stages >= 2, got {group_m}, {stages}")
    smem = (stages * (bm * bk + bk * bn) + 2 * rows * bn) * elem_bytes
    if smem > 227 * 1024:
        raise ValueError(f"{name}: {stages} stages of {bm}x{bk} + {bk}x{bn} tiles and two {rows}x{bn} C tiles "
                         f"need {smem // 1024} KiB of shared memory; Hopper has 227 KiB per block")
    return bm, bn, bk, group_m, stages


# 12 warps (two consumer warpgroups and the producer's): Triton launches them with .maxnreg 168
# (65,536 / 384 threads, rounded down to a multiple of 8), so the program holds 384 x 168 registers.
LAUNCH_REGISTERS = 384 * (65536 // 384 // 8 * 8)


def check_registers(consumer_regs, producer_regs, name="matmul_pingpong", accumulator_regs=0) -> tuple[int, int]:
    """``setmaxnreg`` takes a count from 24 to 256 that is a multiple of 8; the two consumer warpgroups
    and the producer's warpgroup (128 threads each) must fit in what the program holds from launch
    (``LAUNCH_REGISTERS``, 64,512), or Triton quietly lowers the counts; and a consumer must hold its
    fp32 accumulator (``accumulator_regs`` per thread). Returns the two counts as ints; raises
    ValueError otherwise."""
    from .operands import as_int

    regs = {"consumer_regs": as_int(consumer_regs), "producer_regs": as_int(producer_regs)}
    for label, v in regs.items():
        if v is None or not 24 <= v <= 256 or v % 8:
            given = consumer_regs if label == "consumer_regs" else producer_regs
            raise ValueError(f"{name}: {label}={given!r}; setmaxnreg takes a multiple of 8 from 24 to 256")
    total = 128 * (2 * regs["consumer_regs"] + regs["producer_regs"])
    if total > LAUNCH_REGISTERS:
        raise ValueError(f"{name}: 2 x 128 x {regs['consumer_regs']} + 128 x {regs['producer_regs']} = {total:,} "
                         f"registers; the program holds {LAUNCH_REGISTERS:,} (384 threads x 168)")
    if regs["consumer_regs"] <= accumulator_regs:
        raise ValueError(f"{name}: consumer_regs={regs['consumer_regs']} cannot hold the {accumulator_regs} fp32 "
                         f"accumulator registers a consumer needs per thread, and its addresses")
    return regs["consumer_regs"], regs["producer_regs"]


def matmul_pingpong(a: torch.Tensor, b: torch.Tensor, config=None, num_programs: int | None = None,
                    out: torch.Tensor | None = None, consumer_regs: int = 232, producer_regs: int = 40):
    """``a @ b`` (float16/bfloat16) with the hand-written ping-pong kernel. ``config`` is a
    ``(block_m, block_n, block_k, group_m, stages)`` tuple (default ``DEFAULT_PINGPONG``).

    ``a``: ``(M, K)``, ``b``: ``(K, N)`` on a Hopper GPU; returns C, ``(M, N)`` in the inputs' dtype
    (``out`` if given). Raises ``TypeError``/``ValueError`` for operands outside ``kernels.operands``'
    contract (an ``out`` that shares memory with ``a`` or ``b`` is computed through a temporary) or TMA's
    layout rules (as ``kernels.tma.matmul_tma``), ``TypeError`` for float32, ``ValueError`` for a bad
    config or register counts (``check_registers``: ``setmaxnreg`` takes multiples of 8 from 24 to 256),
    ``RuntimeError`` where the kernel cannot run (no Gluon, no Hopper GPU)."""
    name = "matmul_pingpong"
    from .persistent import resolve_programs
    from .tma import _prepare_tma

    return _launch("pingpong", a, b, config, num_programs, out, consumer_regs, producer_regs, name)


def matmul_cooperative(a: torch.Tensor, b: torch.Tensor, config=None, num_programs: int | None = None,
                       out: torch.Tensor | None = None, consumer_regs: int = 232, producer_regs: int = 40):
    """``a @ b`` with the same Gluon kernel machinery as ``matmul_pingpong`` (one producer warp,
    host-side TMA descriptors, the same ring and barriers, the same register split) but the
    **cooperative** schedule: each program's ``block_m x block_n`` tile is split between the two
    consumer warpgroups, ``block_m / 2`` rows each, and both run its epilogue together. It exists to
    compare the two schedules with everything else equal. ``config`` defaults to
    ``DEFAULT_COOPERATIVE``; operands, result and errors as ``matmul_pingpong``."""
    return _launch("cooperative", a, b, DEFAULT_COOPERATIVE if config is None else config, num_programs, out,
                   consumer_regs,
                   producer_regs, "matmul_cooperative")


def _launch(schedule, a, b, config, num_programs, out, consumer_regs, producer_regs, name):
    from .persistent import resolve_programs
    from .tma import _prepare_tma

    M, N, K, call = _prepare_tma(a, b, out, name)
    c = call.c
    if a.dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"{name}: wgmma on 16-bit inputs only; got {a.dtype}")
    bm, bn, bk, group_m, stages = check_config(DEFAULT_PINGPONG if config is None else config,
                                               a.element_size(), name, schedule)
    rows = consumer_rows(bm, schedule)
    consumer_regs, producer_regs = check_registers(consumer_regs, producer_regs, name, rows * bn // 128)
    ok, why = available()
    if not ok:
        raise RuntimeError(f"{name}: {why}. Use kernels.tma.matmul_tma_tuned(warp_specialize=True) for "
                           f"Triton's cooperative kernel, or see the recorded numbers.")
    tiles = cdiv(M, bm) * cdiv(N, bn)
    programs = resolve_programs(num_programs, tiles, name)
    a_desc = _descriptor(a, (rows, bk))
    b_desc = _descriptor(b, (bk, bn))
    c_desc = _descriptor(c, (rows, bn))
    kernel = cooperative_matmul_kernel if schedule == "cooperative" else pingpong_matmul_kernel
    kernel[(programs,)](a_desc, b_desc, c_desc, M, N, K, GROUP_M=group_m, STAGES=stages,
                        PRODUCER_REGS=producer_regs, CONSUMER_REGS=consumer_regs, num_warps=4)
    return call.result()


def schedule_counts(M: int, N: int, config, schedule: str = "pingpong", sms: int = 132) -> dict:
    """How the work of ``(M, N)`` is shared out: output tiles, programs (one per SM, at most one per
    tile), the fewest and most tiles a program gets, and the fewest and most tiles (or half tiles, in
    the cooperative schedule) a consumer warpgroup computes. From ``kernels.schedule``, the same
    assignment the kernels make."""
    from .operands import as_int
    from .schedule import pingpong_tiles, persistent_tiles

    bm, bn = check_config(config, name="schedule_counts", schedule=schedule)[:2]
    M, N, sms = as_int(M), as_int(N), as_int(sms)
    if M is None or N is None or sms is None or M < 1 or N < 1 or sms < 1:
        raise ValueError(f"schedule_counts: M, N and sms must be positive integers, got {M!r}, {N!r}, {sms!r}")
    tiles = cdiv(M, bm) * cdiv(N, bn)
    programs = min(sms, tiles)
    per_program = [len(persistent_tiles(p, programs, tiles)) for p in range(programs)]
    if schedule == "pingpong":
        per_consumer = [len(pingpong_tiles(p, programs, tiles, c)) for p in range(programs) for c in (0, 1)]
    else:  # both consumers take a half of every tile of their program
        per_consumer = per_program
    return dict(tiles=tiles, programs=programs, tiles_per_program=[min(per_program), max(per_program)],
                tiles_per_consumer=[min(per_consumer), max(per_consumer)])


_best = {}


def matmul_pingpong_tuned(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None):
    """``a @ b`` with the ping-pong kernel and the fastest of ``PINGPONG_CONFIGS`` for this shape,
    found by timing each once per (M, N, K, dtype), like ``triton.autotune``. The candidates are timed
    as CUDA-graph replays: GPU time only. Timed from Python, small shapes measure the launch cost,
    the same for every candidate, and the pick would be noise. Operands, result and errors as
    ``matmul_pingpong``."""
    from .operands import check_inputs

    check_inputs("matmul_pingpong_tuned", a, b)
    key = (a.shape[0], b.shape[1], a.shape[1], a.dtype)
    if key not in _best:
        ok, why = available()
        if not ok:
            raise RuntimeError(f"matmul_pingpong_tuned: {why}")
        import triton.testing

        c = torch.empty((key[0], key[1]), dtype=a.dtype, device=a.device)
        times = {}
        for cfg in PINGPONG_CONFIGS:
            matmul_pingpong(a, b, cfg, out=c)  # compile outside the timing
            times[cfg] = triton.testing.do_bench_cudagraph(lambda cfg=cfg: matmul_pingpong(a, b, cfg, out=c),
                                                           rep=100, return_mode="median")
        _best[key] = min(times, key=times.get)
    return matmul_pingpong(a, b, _best[key], out=out)


def tuned_config(a_shape, b_shape, dtype):
    """The configuration ``matmul_pingpong_tuned`` picked for these shapes, as a short string."""
    cfg = _best.get((a_shape[0], b_shape[1], a_shape[1], dtype))
    return None if cfg is None else config_label(cfg)


def config_label(config) -> str:
    """``(block_m, block_n, block_k, group_m, stages)`` as records name it: ``"128x128x64 g8 s4"``."""
    return "{}x{}x{} g{} s{}".format(*config)


@dataclasses.dataclass(frozen=True)
class HopperBuild:
    """What ``compile_for_hopper`` returns: the compiled code (``asm``: ``"ttir"``, ``"ttgir"``,
    ``"llir"``, ``"ptx"``, ``"cubin"``) and Triton's metadata about it (``metadata.num_warps``,
    ``metadata.shared`` in bytes, ...), as plain data."""

    asm: dict
    metadata: types.SimpleNamespace


def _build_for_hopper(config, dtype, consumer_regs, producer_regs, schedule="pingpong") -> HopperBuild:
    """Compile in this process (see ``compile_for_hopper``)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource

    bm, bn, bk, group_m, stages = config
    bm = consumer_rows(bm, schedule)  # the A and C descriptors' blocks are one consumer's rows
    el = {"bf16": gl.bfloat16, "fp16": gl.float16}[dtype]

    def desc(shape):
        layout = gl.NVMMASharedLayout.get_default_for(list(shape), el)
        return f"tensordesc<{dtype}[{shape[0]}, {shape[1]}],{layout!r}>"

    signature = {"a_desc": desc((bm, bk)), "b_desc": desc((bk, bn)), "c_desc": desc((bm, bn)),
                 "M": "i32", "N": "i32", "K": "i32", "GROUP_M": "constexpr", "STAGES": "constexpr",
                 "PRODUCER_REGS": "constexpr", "CONSUMER_REGS": "constexpr"}
    constants = {"GROUP_M": group_m, "STAGES": stages, "PRODUCER_REGS": producer_regs,
                 "CONSUMER_REGS": consumer_regs}
    kernel = cooperative_matmul_kernel if schedule == "cooperative" else pingpong_matmul_kernel
    src = GluonASTSource(kernel, signature, constants)
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    meta = k.metadata._asdict() if hasattr(k.metadata, "_asdict") else dict(vars(k.metadata))
    return HopperBuild(asm=dict(k.asm), metadata=types.SimpleNamespace(**meta))


def compile_for_hopper(config=None, dtype: str = "bf16", consumer_regs: int = 232,
                       producer_regs: int = 40, schedule: str = "pingpong") -> HopperBuild:
    """Compile the kernel for an H100/H200 (sm_90) *without a GPU*, with Triton's own compiler and
    ptxas, and return its code and metadata (``HopperBuild``: ``.asm["ttgir"]``, ``.asm["ptx"]``,
    ``.metadata.num_warps``, ``.metadata.shared``). Works on any machine with Triton: Gluon kernels
    cannot run in the interpreter, but they can be compiled.

    ``config`` is a ``(block_m, block_n, block_k, group_m, stages)`` tuple (default
    ``DEFAULT_PINGPONG``), ``dtype`` ``"bf16"`` or ``"fp16"``. Raises ``RuntimeError`` when this Triton
    has no Gluon, ``ValueError`` for a bad config or dtype.

    In the interpreter world the compile runs in a fresh Python process: once Triton's interpreter
    has run a kernel that calls a ``@triton.jit`` helper, it leaves ``triton.language`` patched for
    the interpreter (Triton 3.6 and 3.9 alike), and a compile in the same process then fails with
    "'block_argument' object has no attribute 'dtype'"."""
    if not HAVE_GLUON:
        raise RuntimeError(f"compile_for_hopper: this Triton has no Gluon ({_GLUON_ERROR})")
    default = DEFAULT_COOPERATIVE if schedule == "cooperative" else DEFAULT_PINGPONG
    config = tuple(check_config(default if config is None else config, name="compile_for_hopper", schedule=schedule))
    if dtype not in ("bf16", "fp16"):
        raise ValueError(f"compile_for_hopper: dtype must be 'bf16' or 'fp16', got {dtype!r}")
    consumer_regs, producer_regs = check_registers(consumer_regs, producer_regs, "compile_for_hopper",
                                                   consumer_rows(config[0], schedule) * config[1] // 128)
    return _compile_once(config, dtype, consumer_regs, producer_regs, schedule)


@functools.lru_cache(maxsize=None)
def _compile_once(*args) -> HopperBuild:
    if ON_GPU:
        return _build_for_hopper(*args)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_build_for_hopper, *args).result()
