"""What the scenes draw, as plain data computed from ``kernels.schedule`` (no Manim here).

Every tile position, every panel and every byte count in the animations comes from these functions,
and these functions only call the schedule the kernels use (``tile_order``, ``footprint``, ``cdiv``).
Nothing is typed in by hand, so a change to the schedule changes the pictures.
"""
from __future__ import annotations

from dataclasses import dataclass

from kernels.schedule import (WARP_ROLES, Footprint, PipelineSpan, Span, cdiv, footprint, makespan, mma_busy,
                              persistent_tiles, pipeline_time, pipeline_timeline, roles_finish,
                              schedule_pieces, simulate_launch, tile_order, utilisation, warp_roles_timeline)

# --------------------------------------------------------------------------------------------------
# One program walking K (KLoopScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KStep:
    """Step ``index`` of the K loop: columns ``[k0, k1)`` of A and the same rows of B."""

    index: int
    k0: int
    k1: int


@dataclass(frozen=True)
class KLoopPlan:
    """One program of a tiled matmul ``C[M, N] = A[M, K] @ B[K, N]`` and the K steps it takes."""

    M: int
    N: int
    K: int
    block_m: int
    block_n: int
    block_k: int
    order: str
    group_m: int
    pid: int
    grid_m: int
    grid_n: int
    tile: tuple  # (pid_m, pid_n): the C tile this program computes
    rows: tuple  # [r0, r1): rows of C and of A's row-panel
    cols: tuple  # [c0, c1): columns of C and of B's column-panel
    steps: tuple  # KStep, in loop order

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def a_reuse(self) -> int:
        """How many times each loaded element of A is used: once per column of the C tile."""
        return self.block_n

    @property
    def b_reuse(self) -> int:
        """How many times each loaded element of B is used: once per row of the C tile."""
        return self.block_m


def kloop_plan(M, N, K, block_m, block_n, block_k, pid, order="grouped", group_m=8) -> KLoopPlan:
    """The tile program ``pid`` computes (from ``tile_order``) and its ``cdiv(K, block_k)`` K steps."""
    for name, v in (("M", M), ("N", N), ("K", K), ("block_m", block_m), ("block_n", block_n),
                    ("block_k", block_k)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    grid_m, grid_n = cdiv(M, block_m), cdiv(N, block_n)
    order_list = tile_order(grid_m, grid_n, order, group_m)
    if not 0 <= pid < len(order_list):
        raise ValueError(f"pid must be in [0, {len(order_list)}), got {pid}")
    pid_m, pid_n = order_list[pid]
    rows = (pid_m * block_m, min((pid_m + 1) * block_m, M))
    cols = (pid_n * block_n, min((pid_n + 1) * block_n, N))
    steps = tuple(KStep(i, i * block_k, min((i + 1) * block_k, K)) for i in range(cdiv(K, block_k)))
    return KLoopPlan(M, N, K, block_m, block_n, block_k, order, group_m, pid, grid_m, grid_n,
                     (pid_m, pid_n), rows, cols, steps)


# --------------------------------------------------------------------------------------------------
# Waves of programs and their L2 working set (TileOrderScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wave:
    """``programs_at_once`` consecutive programs, the tiles they compute and the panels they read."""

    index: int
    pids: tuple  # program ids in this wave, in launch order
    tiles: tuple  # (pid_m, pid_n) of each program, same order
    a_rows: tuple  # sorted distinct tile rows: the row-panels of A this wave reads
    b_cols: tuple  # sorted distinct tile columns: the column-panels of B this wave reads
    footprint: Footprint  # kernels.schedule.footprint of these tiles

    @property
    def panels(self) -> int:
        return self.footprint.a_panels + self.footprint.b_panels


def wave_plan(grid_m, grid_n, programs_at_once, K, block_m, block_n, order="grouped", group_m=8,
              elem_bytes=2) -> list:
    """The launch order (``tile_order``) cut into waves, each with its ``footprint``."""
    if programs_at_once < 1:
        raise ValueError(f"programs_at_once must be >= 1, got {programs_at_once}")
    order_list = tile_order(grid_m, grid_n, order, group_m)
    waves = []
    for w, start in enumerate(range(0, len(order_list), programs_at_once)):
        tiles = tuple(order_list[start : start + programs_at_once])
        waves.append(Wave(
            index=w,
            pids=tuple(range(start, start + len(tiles))),
            tiles=tiles,
            a_rows=tuple(sorted({m for m, _ in tiles})),
            b_cols=tuple(sorted({n for _, n in tiles})),
            footprint=footprint(tiles, K, block_m, block_n, elem_bytes),
        ))
    return waves


# --------------------------------------------------------------------------------------------------
# One program per tile vs persistent programs on the SMs (PersistentScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchPlan:
    """One launch of ``num_tiles`` tiles on ``num_sms`` SMs, as ``kernels.schedule.simulate_launch``
    lays it out over time: what each SM computes when, and when each program was started."""

    persistent: bool
    num_tiles: int
    num_sms: int
    tile_time: float
    block_overhead: float
    grid_m: int
    grid_n: int
    tile_pos: tuple  # tile id -> (pid_m, pid_n) in the C grid (tile_order)
    spans: tuple  # Span, as simulate_launch returns them (sorted by start)
    launches: tuple  # (time, program, sm): each program starting, in time order
    overheads: tuple  # (sm, start, end): a program paying its start overhead
    program_tiles: tuple  # program -> tile ids it computes, in order
    idle: tuple  # (sm, start, end): an SM with nothing left to do before the launch ends

    @property
    def programs(self) -> int:
        return len(self.launches)

    @property
    def makespan(self) -> float:
        return makespan(self.spans)

    @property
    def utilisation(self) -> float:
        return utilisation(self.spans, self.num_sms)


def launch_plan(grid_m, grid_n, num_sms, persistent, tile_time=1.0, block_overhead=0.1,
                order="grouped", group_m=8) -> LaunchPlan:
    """``simulate_launch`` for a ``grid_m x grid_n`` grid of C tiles, with the programs' starts, their
    overheads and the idle tail of each SM derived from its spans."""
    if num_sms < 1:
        raise ValueError(f"num_sms must be >= 1, got {num_sms}")
    tile_pos = tuple(tile_order(grid_m, grid_n, order, group_m))
    num_tiles = len(tile_pos)
    spans = tuple(simulate_launch(num_tiles, num_sms, tile_time, block_overhead, persistent))
    by_program = {}
    for s in spans:  # spans are in start order, so each program's tiles come in order
        by_program.setdefault(s.program, []).append(s)
    launches = sorted((ss[0].start - block_overhead, p, ss[0].sm) for p, ss in by_program.items())
    overheads = tuple((sm, t, t + block_overhead) for t, _, sm in launches)
    end = makespan(spans)
    last = {}
    for s in spans:
        last[s.sm] = max(last.get(s.sm, 0.0), s.end)
    idle = tuple((sm, last.get(sm, 0.0), end) for sm in range(num_sms) if last.get(sm, 0.0) < end)
    program_tiles = tuple(tuple(s.tile for s in by_program[p]) for p in sorted(by_program))
    return LaunchPlan(bool(persistent), num_tiles, num_sms, tile_time, block_overhead, grid_m, grid_n,
                      tile_pos, spans, tuple(launches), overheads, program_tiles, idle)


# --------------------------------------------------------------------------------------------------
# One program's K loop with a multi-stage buffer (PipelineScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelinePlan:
    """One program's K loop with ``stages`` shared-memory slots, as
    ``kernels.schedule.pipeline_timeline`` lays it out: when each K step's tile is loaded (into which
    slot) and when the tensor cores compute it, and when they wait."""

    k_steps: int
    stages: int
    load_time: float
    mma_time: float
    spans: tuple  # PipelineSpan, as pipeline_timeline returns them
    loads: tuple  # the "load" spans, by k
    mmas: tuple  # the "mma" spans, by k
    mma_waits: tuple  # (start, end): the tensor cores waiting for a tile, before the loop ends
    in_flight: tuple  # k -> the later steps whose loads are issued while step k is computed

    @property
    def total(self) -> float:
        return pipeline_time(self.spans)

    @property
    def mma_busy(self) -> float:
        return mma_busy(self.spans)


def pipeline_plan(k_steps, stages, load_time=1.0, mma_time=1.0) -> PipelinePlan:
    """``pipeline_timeline`` split by engine, with the tensor cores' waits and, for each step, which
    later loads overlap its math."""
    spans = tuple(pipeline_timeline(k_steps, stages, load_time, mma_time))
    loads = tuple(sorted((s for s in spans if s.engine == "load"), key=lambda s: s.k))
    mmas = tuple(sorted((s for s in spans if s.engine == "mma"), key=lambda s: s.k))
    waits, t = [], 0.0
    for m in mmas:
        if m.start > t:
            waits.append((t, m.start))
        t = m.end
    in_flight = tuple(tuple(ld.k for ld in loads if ld.k > m.k and ld.start < m.end and ld.end > m.start)
                      for m in mmas)
    return PipelinePlan(k_steps, stages, load_time, mma_time, spans, loads, mmas, tuple(waits),
                        in_flight)


# --------------------------------------------------------------------------------------------------
# Producer and consumer warpgroups: cooperative vs ping-pong (WarpRolesScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarpRolesPlan:
    """A warp-specialized program computing ``tiles`` tiles, as ``kernels.schedule.warp_roles_timeline``
    lays it out: what each warpgroup does when, and when the tensor cores have nothing to compute."""

    mode: str
    tiles: int
    k_steps: int
    stages: int
    load_time: float
    mma_time: float
    epilogue_time: float
    spans: tuple  # WarpRoleSpan, as warp_roles_timeline returns them
    lanes: dict  # role -> its spans, in start order
    tensor_idle: tuple  # (start, end): no consumer computing, between the first and the last math

    @property
    def finish(self) -> float:
        return roles_finish(self.spans)

    def label(self, span) -> str:
        """``L t.k`` for a load, ``M t.k`` for math, ``E t`` for an epilogue."""
        if span.what == "epilogue":
            return f"E{span.tile}"
        return f"{'L' if span.what == 'load' else 'M'}{span.tile}.{span.k}"


def warp_roles_plan(tiles, k_steps, stages=3, load_time=1.0, mma_time=1.0, epilogue_time=1.5,
                    mode="cooperative") -> WarpRolesPlan:
    """``warp_roles_timeline`` split by warpgroup, with the gaps of the tensor cores."""
    spans = tuple(warp_roles_timeline(tiles, k_steps, stages, load_time, mma_time, epilogue_time, mode))
    lanes = {r: tuple(s for s in spans if s.role == r) for r in WARP_ROLES}
    busy = sorted({(s.start, s.end) for s in spans if s.what == "mma"})
    idle, t = [], busy[0][0] if busy else 0.0
    for a, b in busy:
        if a > t:
            idle.append((t, a))
        t = max(t, b)
    return WarpRolesPlan(mode, tiles, k_steps, stages, load_time, mma_time, epilogue_time, spans, lanes,
                         tuple(idle))


def fmt_bytes(n) -> str:
    """Short human size: ``9437184 -> '9.0 MiB'``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------------------------------
# One block of 32 values quantized to MXFP4 and packed two per byte (FP4BlockScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FP4BlockPlan:
    """One MXFP4 block, as ``kernels.fp4.quantize_block`` quantizes it, with each step of the scene:
    the shared scale from the block's largest magnitude, the values divided by it, the e2m1 code each
    rounds to, and the codes packed two per byte (first value of a pair in the low nibble)."""

    values: tuple  # the 32 originals
    amax_index: int  # where the largest magnitude is
    amax: float
    exponent: int  # the shared scale is 2**exponent
    scale_byte: int  # e8m0: exponent + 127
    scaled: tuple  # values / 2**exponent
    codes: tuple  # e2m1 code (0..15) of each value
    landed: tuple  # the e2m1 value of each code (before the scale)
    dequantized: tuple  # landed * 2**exponent
    packed: tuple  # 16 bytes: codes[2i] | codes[2i + 1] << 4
    saturated: tuple  # indices whose scaled magnitude is beyond 6
    flushed: tuple  # indices of nonzero values that became 0

    @property
    def scale(self) -> float:
        return 2.0 ** self.exponent

    @property
    def stored_bytes(self) -> int:
        """Bytes the block takes: its packed codes and the one scale byte."""
        return len(self.packed) + 1

    @staticmethod
    def bits(code) -> str:
        """``code`` as 4 bits: sign, 2 exponent bits, 1 mantissa bit."""
        return format(int(code), "04b")


def fp4_block_plan(values) -> FP4BlockPlan:
    """``kernels.fp4.quantize_block(values, "mxfp4")`` for one block of 32 values, split into the
    scene's steps. Raises what ``quantize_block`` raises, and ValueError for more than one block."""
    import numpy as np

    from kernels import fp4

    b = fp4.quantize_block(values, "mxfp4")
    if b.values.size != 32:
        raise ValueError(f"fp4_block_plan: one block is 32 values, got {b.values.size}")
    v = b.values
    exp = int(b.scale_bytes[0]) - fp4.E8M0_BIAS
    scaled = v / b.scales[0]
    landed = fp4.VALUES[b.codes]
    return FP4BlockPlan(
        values=tuple(float(a) for a in v), amax_index=int(np.argmax(np.abs(v))), amax=float(np.abs(v).max()),
        exponent=exp, scale_byte=int(b.scale_bytes[0]), scaled=tuple(float(s) for s in scaled),
        codes=tuple(int(c) for c in b.codes), landed=tuple(float(x) for x in landed),
        dequantized=tuple(float(d) for d in b.dequantized), packed=tuple(int(p) for p in b.packed),
        saturated=tuple(int(i) for i in np.nonzero(np.abs(scaled) > fp4.MAX)[0]),
        flushed=tuple(int(i) for i in np.nonzero((v != 0) & (b.dequantized == 0))[0]))


# --------------------------------------------------------------------------------------------------
# One block of query rows through the online softmax, one tile of keys at a time (OnlineSoftmaxScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineSoftmaxStep:
    """The state of every row after tile ``index`` (keys ``[start, stop)``), as
    ``kernels.attention.online_softmax_steps`` returns it, with what the scene marks: the maximum each
    row had before (``m_old``, ``-inf`` before the first tile), the rows whose maximum moved, and the
    key where each row's running maximum now is."""

    index: int
    start: int
    stop: int
    m_old: tuple  # per row, the running maximum before this tile
    m: tuple  # per row, after it
    alpha: tuple  # per row, exp(m_old - m): what l and acc were multiplied by (0 on the first tile)
    l: tuple  # per row, the running sum of exp(s - m)
    acc: tuple  # per row, the running sum of exp(s - m) * v (head_dim numbers)
    moved: tuple  # rows whose maximum went up in this tile (every row on the first tile)
    argmax: tuple  # per row, the first key holding its running maximum


@dataclass(frozen=True)
class OnlineSoftmaxPlan:
    """``R`` query rows' scores against ``S`` keys, their values, and the online softmax over them
    ``tile`` keys at a time (``kernels.attention.online_softmax_steps``), with the output it ends with
    (``acc / l``) and the softmax computed directly on the whole rows, for comparison."""

    scores: tuple  # R rows of S scores
    values: tuple  # S rows of head_dim values
    tile: int
    steps: tuple  # OnlineSoftmaxStep, one a tile
    out: tuple  # acc / l after the last tile: R rows of head_dim
    reference: tuple  # softmax(scores, axis=1) @ values, in one go
    max_error: float  # the largest |out - reference|

    @property
    def rows(self) -> int:
        return len(self.scores)

    @property
    def keys(self) -> int:
        return len(self.values)

    @property
    def head_dim(self) -> int:
        return len(self.values[0])


def example_scores(seed=16, rows=4, keys=16, head_dim=2, top=8, value_max=3):
    """Small-integer scores ``(rows, keys)`` in ``[0, top]`` and values ``(keys, head_dim)`` in
    ``[-value_max, value_max]`` from ``numpy.random.default_rng(seed)``: numbers short enough to read."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.integers(0, top + 1, (rows, keys)).astype(np.float64),
            rng.integers(-value_max, value_max + 1, (keys, head_dim)).astype(np.float64))


def online_softmax_plan(seed=16, rows=4, keys=16, tile=4, head_dim=2, scores=None, values=None) -> OnlineSoftmaxPlan:
    """``kernels.attention.online_softmax_steps(scores, values, tile)`` split into the scene's steps.

    ``scores`` ``(R, S)`` and ``values`` ``(S, D)`` default to ``example_scores(seed, rows, keys,
    head_dim)``. Raises what ``online_softmax_steps`` raises (shapes that disagree, a bad tile)."""
    import numpy as np

    from kernels.attention import online_softmax_steps

    if scores is None or values is None:
        scores, values = example_scores(seed, rows, keys, head_dim)
    s = np.asarray(scores, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    raw = online_softmax_steps(s, v, tile)
    steps, m_old = [], np.full(s.shape[0], -np.inf)
    for i, st in enumerate(raw):
        stop = min(st["start"] + tile, s.shape[1])
        seen = s[:, :stop]
        steps.append(OnlineSoftmaxStep(
            index=i, start=int(st["start"]), stop=int(stop),
            m_old=tuple(float(x) for x in m_old), m=tuple(float(x) for x in st["m"]),
            alpha=tuple(float(a) for a in st["alpha"]), l=tuple(float(x) for x in st["l"]),
            acc=tuple(tuple(float(x) for x in row) for row in st["acc"]),
            moved=tuple(int(r) for r in np.nonzero(st["m"] > m_old)[0]),
            argmax=tuple(int(j) for j in np.argmax(seen, axis=1))))
        m_old = st["m"]
    last = raw[-1]
    out = last["acc"] / last["l"][:, None]
    p = np.exp(s - s.max(axis=1, keepdims=True))
    reference = (p / p.sum(axis=1, keepdims=True)) @ v
    return OnlineSoftmaxPlan(
        scores=tuple(tuple(float(x) for x in row) for row in s),
        values=tuple(tuple(float(x) for x in row) for row in v), tile=tile, steps=tuple(steps),
        out=tuple(tuple(float(x) for x in row) for row in out),
        reference=tuple(tuple(float(x) for x in row) for row in reference),
        max_error=float(np.abs(out - reference).max()))


# --------------------------------------------------------------------------------------------------
# Sharing the last wave by K: data-parallel, split tail, stream-K (StreamKScene)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharingPlan:
    """``kernels.schedule.schedule_pieces`` laid out over time, one K step = one time unit: each
    program computes its pieces back to back."""

    kind: str
    num_tiles: int
    num_programs: int
    k_iters: int
    spans: tuple  # (program, start, end, tile, k_begin, k_end), by program then time
    adds: tuple  # (tile, program, time): a shared tile's partial sums complete, added by that program

    @property
    def makespan(self) -> float:
        return max((end for _, _, end, *_ in self.spans), default=0)

    @property
    def partial_pieces(self) -> int:
        return sum(1 for *_, kb, ke in self.spans if (kb, ke) != (0, self.k_iters))


def sharing_plan(kind, num_tiles, num_programs, k_iters) -> SharingPlan:
    """The pieces of ``schedule_pieces(kind, ...)`` with start and end times, and for every tile
    computed in pieces the program that finishes its last piece (the one that adds the partial sums
    when the last to arrive adds them, as ``kernels.splitk`` and ``kernels.streamk`` do)."""
    pieces = schedule_pieces(kind, num_tiles, num_programs, k_iters)
    spans, ends = [], {}
    for p, prog in enumerate(pieces):
        t = 0
        for tile, kb, ke in prog:
            spans.append((p, t, t + ke - kb, tile, kb, ke))
            if (kb, ke) != (0, k_iters):
                ends.setdefault(tile, []).append((t + ke - kb, p))
            t += ke - kb
    adds = tuple(sorted((tile, max(e)[1], max(e)[0]) for tile, e in ends.items()))
    return SharingPlan(kind, num_tiles, num_programs, k_iters, tuple(spans), adds)
