"""Which program computes which output tile: the tile schedule, written once.

A matmul ``C = A @ B`` with ``C`` of shape ``(M, N)`` is cut into a ``grid_m x grid_n`` grid of
``BLOCK_M x BLOCK_N`` tiles. A launch starts programs numbered ``pid = 0, 1, 2, ...``; the schedule says
which tile ``(pid_m, pid_n)`` program ``pid`` computes.

The functions here use only integer arithmetic and ``min``, so the *same source* runs as plain Python
(for the animations, the widgets and the tests) and, wrapped with ``triton.jit``, inside the kernels
(``kernels.tiled``). What a picture shows is therefore exactly what the kernel does.
"""
from __future__ import annotations

from dataclasses import dataclass

ORDERS = ("row", "grouped")


def cdiv(a, b):
    """Ceiling division: how many tiles of size ``b`` cover ``a``."""
    return (a + b - 1) // b


def row_major_tile(pid, grid_m, grid_n):
    """Row-major order: program ``pid`` takes tile ``(pid // grid_n, pid % grid_n)``.

    Consecutive programs walk along a row of C, so they share one row-panel of A but each needs a
    different column-panel of B.
    """
    pid_m = pid // grid_n
    pid_n = pid % grid_n
    return pid_m, pid_n


def grouped_tile(pid, grid_m, grid_n, group_m):
    """Grouped ("L2-friendly", "super-grouping") order.

    Programs are taken in groups that cover ``group_m`` rows of tiles; inside a group they go down a
    column first, then move to the next column. Programs that run at the same time then touch
    ``group_m`` row-panels of A and a few column-panels of B instead of one row-panel of A and
    *every* column-panel of B, so more of what they read is still in L2.
    """
    tiles_per_group = group_m * grid_n
    group_id = pid // tiles_per_group
    first_m = group_id * group_m
    rows_in_group = min(grid_m - first_m, group_m)  # the last group can be shorter
    local = pid % tiles_per_group
    pid_m = first_m + local % rows_in_group
    pid_n = local // rows_in_group
    return pid_m, pid_n


def tile_of(pid, grid_m, grid_n, order="grouped", group_m=8):
    """``(pid_m, pid_n)`` of program ``pid`` under the named order (plain Python)."""
    if order == "row":
        return row_major_tile(pid, grid_m, grid_n)
    if order == "grouped":
        return grouped_tile(pid, grid_m, grid_n, group_m)
    raise ValueError(f"order must be one of {ORDERS}, not {order!r}")


def tile_order(grid_m, grid_n, order="grouped", group_m=8):
    """The list of tiles in launch order: element ``pid`` is the tile program ``pid`` computes."""
    if grid_m < 1 or grid_n < 1:
        raise ValueError(f"the grid must be at least 1x1, got {grid_m}x{grid_n}")
    if order == "grouped" and group_m < 1:
        raise ValueError(f"group_m must be >= 1, got {group_m}")
    return [tile_of(pid, grid_m, grid_n, order, group_m) for pid in range(grid_m * grid_n)]


@dataclass(frozen=True)
class Footprint:
    """What a set of programs running at the same time reads, in panels and bytes."""

    a_panels: int  # distinct row-panels of A (BLOCK_M x K each)
    b_panels: int  # distinct column-panels of B (K x BLOCK_N each)
    bytes: int  # bytes of A and B those panels hold
    tiles: int  # how many output tiles they produce

    @property
    def bytes_per_tile(self) -> float:
        return self.bytes / max(self.tiles, 1)


def footprint(tiles, K, block_m, block_n, elem_bytes=2):
    """Panels of A and B that the given tiles need, and their size in bytes.

    If these tiles run at the same time (one wave of programs), this is the working set that has to
    sit in L2 for each panel to come from DRAM only once.
    """
    tiles = list(tiles)
    rows = {m for m, _ in tiles}
    cols = {n for _, n in tiles}
    nbytes = (len(rows) * block_m + len(cols) * block_n) * K * elem_bytes
    return Footprint(len(rows), len(cols), nbytes, len(tiles))


def wave_footprints(grid_m, grid_n, programs_at_once, K, block_m, block_n, order="grouped",
                    group_m=8, elem_bytes=2):
    """Footprint of each wave of ``programs_at_once`` consecutive programs."""
    order_list = tile_order(grid_m, grid_n, order, group_m)
    return [
        footprint(order_list[i : i + programs_at_once], K, block_m, block_n, elem_bytes)
        for i in range(0, len(order_list), programs_at_once)
    ]


# ---------------------------------------------------------------- persistent kernels (chapter 03)
def persistent_tiles(program, num_programs, num_tiles):
    """Tile ids that persistent program ``program`` computes, in order.

    A persistent launch starts only ``num_programs`` programs (one per SM); program ``p`` takes tiles
    ``p, p + num_programs, p + 2*num_programs, ...`` (the kernel's loop is
    ``for tile_id in range(program_id, num_tiles, num_programs)``). Each tile id then goes through
    ``grouped_tile`` to become a ``(pid_m, pid_n)``, exactly as a program id does in chapter 02.
    """
    if num_programs < 1 or not 0 <= program < num_programs:
        raise ValueError(f"need 0 <= program < num_programs, got program={program}, num_programs={num_programs}")
    return list(range(program, num_tiles, num_programs))



def pingpong_tiles(program, num_programs, num_tiles, consumer):
    """Tile ids that consumer warpgroup ``consumer`` (0 or 1) of persistent program ``program`` computes
    in the ping-pong kernel (``kernels.pingpong``), in order.

    The program's tiles are ``persistent_tiles(program, num_programs, num_tiles)``; consumer 0 takes the
    1st, 3rd, 5th, ... of them and consumer 1 the 2nd, 4th, ... (the kernel's loop is
    ``for tile_id in range(program_id + consumer * P, num_tiles, 2 * P)``), so the two take turns.
    """
    if consumer not in (0, 1):
        raise ValueError(f"consumer must be 0 or 1, got {consumer!r}")
    return persistent_tiles(program, num_programs, num_tiles)[consumer::2]

# ---------------------------------------------------------------- stream-K (Osama et al., 2023)
def stream_k_split(num_tiles, num_programs):
    """How many tiles (the last ones) stream-K shares out; the others go data-parallel.

    A launch of ``num_programs`` persistent programs computes whole tiles in full waves ("data
    parallel", as chapter 03) and spreads the rest over every program by K step ("stream-K"): when the
    tiles fill whole waves, none are shared (``0``); with fewer tiles than two waves, all of them;
    otherwise the tiles of the last partial wave plus one full wave, so that each program's share is
    more than one tile's K loop (the "data-parallel + one-tile stream-K" hybrid of Osama et al.,
    "Stream-K: Work-centric Parallel Decomposition for Dense Matrix Multiplication on the GPU", 2023)."""
    if num_programs < 1:
        raise ValueError(f"num_programs must be >= 1, got {num_programs}")
    rem = num_tiles % num_programs
    if rem == 0:
        return 0
    if num_tiles < 2 * num_programs:
        return num_tiles
    return rem + num_programs


def stream_k_programs(num_programs, total_iters):
    """Programs that take part in stream-K: every one, or one per shared iteration when there are fewer
    (so that no program's run is empty)."""
    return min(num_programs, total_iters)


def stream_k_range(program, num_programs, total_iters):
    """``[start, end)`` of the shared iterations that ``program`` computes: the ``total_iters``
    (tile, K step) iterations of the shared tiles, tile after tile, split evenly into contiguous runs
    (``num_programs`` from :func:`stream_k_programs`: then no run is empty)."""
    return program * total_iters // num_programs, (program + 1) * total_iters // num_programs


def stream_k_first_program(iteration, num_programs, total_iters):
    """The program whose run holds shared iteration ``iteration``: the largest ``p`` with
    ``p * total_iters // num_programs <= iteration``."""
    return ((iteration + 1) * num_programs - 1) // total_iters


def stream_k_chunks(program, num_programs, sk_tiles, k_iters):
    """``[(tile, k_begin, k_end), ...]``: the pieces of shared tiles (numbered from 0 among the shared
    tiles) that ``program`` computes, in order, each a range of K steps. A piece with ``k_begin == 0``
    and ``k_end == k_iters`` is a whole tile; any other is a partial sum to be added to the others'."""
    start, end = stream_k_range(program, num_programs, sk_tiles * k_iters)
    out, it = [], start
    while it < end:
        tile = it // k_iters
        k_end = min(end - tile * k_iters, k_iters)
        out.append((tile, it - tile * k_iters, k_end))
        it = tile * k_iters + k_end
    return out


def stream_k_contributors(tile, num_programs, sk_tiles, k_iters):
    """``[(program, slot), ...]``: who computes a piece of shared tile ``tile``, in program order (the
    order their partial sums are added in, so the result does not depend on who finishes first).
    ``slot`` is 0 when the piece is that program's first, 1 when it is its last: a program holds at most
    two partial pieces (its run can start and end inside tiles), kept in its two workspace slots."""
    total = sk_tiles * k_iters
    first = stream_k_first_program(tile * k_iters, num_programs, total)
    last = stream_k_first_program((tile + 1) * k_iters - 1, num_programs, total)
    out = []
    for p in range(first, last + 1):
        start = p * total // num_programs
        out.append((p, 0 if start >= tile * k_iters else 1))
    return out


# ---------------------------------------------------------------- split-K (kernels.splitk)
MAX_SPLIT_K = 64  # the most pieces split-K cuts one tile into


def split_k_plan(k_steps, split_k):
    """``(steps_per_split, splits)``: ``k_steps`` K steps cut into at most ``split_k`` contiguous ranges
    of ``steps_per_split`` steps (the last may be shorter), none empty. 64 steps with ``split_k = 3``:
    22 steps each, 3 splits; with ``split_k = 100``: 1 step each, 64 splits."""
    if split_k < 1 or k_steps < 1:
        raise ValueError(f"need k_steps >= 1 and split_k >= 1, got {k_steps} and {split_k}")
    per = cdiv(k_steps, min(split_k, k_steps))
    return per, cdiv(k_steps, per)


def split_tail(num_tiles, num_programs, split_k=None):
    """``(whole_tiles, shared_tiles)``: the tiles computed whole and the tiles split by K. With
    ``split_k`` given, every tile is split (plain split-K). Without it, only the last, partial wave is:
    the tiles that fill whole waves of ``num_programs`` stay whole (``144`` tiles on ``132`` SMs:
    ``(132, 12)``; with fewer tiles than programs, all are shared)."""
    if num_programs < 1:
        raise ValueError(f"num_programs must be >= 1, got {num_programs}")
    if split_k is not None or num_tiles <= num_programs:
        return 0, num_tiles
    return num_tiles - num_tiles % num_programs, num_tiles % num_programs


def split_k_piece(q, splits, steps_per_split, k_steps):
    """``(shared_tile, k_begin, k_end)`` of the ``q``-th split program: shared tile ``q // splits``,
    split ``q % splits``, K steps ``[k_begin, k_end)``. The split-K kernel runs this very function."""
    k_begin = (q % splits) * steps_per_split
    return q // splits, k_begin, min(k_begin + steps_per_split, k_steps)


def schedule_pieces(kind, num_tiles, num_programs, k_iters):
    """``[[(tile, k_begin, k_end), ...] per program]``: what each of ``num_programs`` SMs computes, in
    order, under three ways of sharing ``num_tiles`` tiles of ``k_iters`` K steps (for pictures; plain
    Python):

    * ``"data-parallel"``: whole tiles, program ``p`` takes tiles ``p, p + P, ...`` (chapter 03);
    * ``"split tail"``: whole tiles for the full waves, then the last wave's tiles each split by K into
      ``num_programs // shared`` pieces (at most ``MAX_SPLIT_K``), one piece a program (``kernels.splitk``
      with ``split_k=None``);
    * ``"stream-K"``: the hybrid of ``kernels.streamk`` (:func:`stream_k_split`): whole tiles for the full
      waves but one, then the rest (every tile, below two waves) cut into equal runs of (tile, K step)
      iterations, one run a program.
    """
    P = num_programs
    if P < 1 or k_iters < 1 or num_tiles < 0:
        raise ValueError(f"need num_programs >= 1, k_iters >= 1, num_tiles >= 0; got {num_programs}, {k_iters}, "
                         f"{num_tiles}")
    if kind == "data-parallel":
        return [[(t, 0, k_iters) for t in persistent_tiles(p, P, num_tiles)] for p in range(P)]
    if kind == "split tail":
        whole, shared = split_tail(num_tiles, P)
        per, splits = split_k_plan(k_iters, max(1, min(MAX_SPLIT_K, P // max(shared, 1))))
        out = [[(t, 0, k_iters) for t in persistent_tiles(p, P, whole)] if whole else [] for p in range(P)]
        for q in range(shared * splits):
            t, kb, ke = split_k_piece(q, splits, per, k_iters)
            out[q % P].append((whole + t, kb, ke))
        return out
    if kind == "stream-K":
        shared = stream_k_split(num_tiles, P)
        whole = num_tiles - shared
        out = [[(t, 0, k_iters) for t in persistent_tiles(p, P, whole)] if whole else [] for p in range(P)]
        sk = stream_k_programs(P, shared * k_iters) if shared else 0
        for p in range(sk):
            out[p] += [(whole + t, kb, ke) for t, kb, ke in stream_k_chunks(p, sk, shared, k_iters)]
        return out
    raise ValueError(f"kind must be 'data-parallel', 'split tail' or 'stream-K', not {kind!r}")


def pieces_makespan(pieces, k_iters, fixup=0.0):
    """The time the busiest program needs, in K steps, for :func:`schedule_pieces`' output; ``fixup``
    K steps are added for every piece that is not a whole tile of ``k_iters`` steps (writing and adding
    its partial sum)."""
    def busy(prog):
        return sum(ke - kb + (0 if (kb, ke) == (0, k_iters) else fixup) for _, kb, ke in prog)
    return max((busy(p) for p in pieces), default=0)


def waves(num_tiles, slots):
    """``(number of waves, fraction of the last wave that has work)`` when ``slots`` run at once.

    With ``num_tiles = 133`` and ``slots = 132`` that is ``(2, 1/132)``: a second wave for one tile,
    during which 131 SMs idle.
    """
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    if num_tiles <= 0:
        return 0, 0.0
    n = cdiv(num_tiles, slots)
    return n, (num_tiles - (n - 1) * slots) / slots


@dataclass(frozen=True)
class Span:
    """One tile computed on one SM from ``start`` to ``end`` (arbitrary time units)."""

    sm: int
    start: float
    end: float
    tile: int
    program: int


def simulate_launch(num_tiles, num_sms, tile_time=1.0, block_overhead=0.1, persistent=False,
                    durations=None):
    """A simple model of how tiles land on SMs over time, for pictures and widgets (not a profiler).

    * one program per tile (``persistent=False``): programs start in ``pid`` order, each on the SM that
      frees up first, and each pays ``block_overhead`` (starting a program, its prologue) before its
      tile's work;
    * persistent: ``min(num_sms, num_tiles)`` programs start once, pay the overhead once, and then
      compute their tiles back to back (``persistent_tiles``).

    ``durations`` (optional, one per tile) replaces the uniform ``tile_time``. Returns ``Span``s sorted
    by start time.
    """
    import heapq

    if num_sms < 1 or num_tiles < 0:
        raise ValueError(f"need num_sms >= 1 and num_tiles >= 0, got {num_sms}, {num_tiles}")
    dur = (lambda t: durations[t]) if durations is not None else (lambda t: tile_time)
    spans = []
    if not persistent:
        free = [(0.0, sm) for sm in range(num_sms)]
        heapq.heapify(free)
        for pid in range(num_tiles):
            t, sm = heapq.heappop(free)
            start = t + block_overhead
            end = start + dur(pid)
            spans.append(Span(sm, start, end, pid, pid))
            heapq.heappush(free, (end, sm))
    else:
        programs = min(num_sms, num_tiles)
        for p in range(programs):
            t = block_overhead
            for tile in persistent_tiles(p, programs, num_tiles):
                spans.append(Span(p, t, t + dur(tile), tile, p))
                t += dur(tile)
    return sorted(spans, key=lambda s: (s.start, s.sm))


def makespan(spans) -> float:
    """When the last tile finishes."""
    return max((s.end for s in spans), default=0.0)


def utilisation(spans, num_sms) -> float:
    """Fraction of SM-time spent computing tiles, up to the makespan."""
    total = makespan(spans) * num_sms
    return sum(s.end - s.start for s in spans) / total if total else 0.0


# ---------------------------------------------------------------- software pipelining (chapter 04)
@dataclass(frozen=True)
class PipelineSpan:
    """One piece of work in one program's K loop: a load (TMA, into shared-memory ``slot``) or the
    math (``"mma"``, the tensor cores reading ``slot``) of K step ``k``, from ``start`` to ``end``."""

    engine: str  # "load" or "mma"
    k: int
    slot: int
    start: float
    end: float


def pipeline_timeline(k_steps, stages, load_time=1.0, mma_time=1.0):
    """A simple model of one program's K loop with a ``stages``-deep buffer (``num_stages``), for
    pictures and widgets (not a profiler).

    * shared memory holds ``stages`` slots; step ``k`` is loaded into slot ``k % stages``;
    * a load (TMA: a request to the copy engine) takes ``load_time`` from issue to arrival. Loads are
      issued in K order, each as soon as its slot is free; several can be in flight at once;
    * a slot is free again only when the math that read it (step ``k - stages``) is done;
    * the tensor cores compute the steps one after the other, step ``k`` once its tile has arrived,
      for ``mma_time`` each.

    ``stages=1`` is no overlap at all: load k, compute k, load k+1, ... (``k_steps * (load + mma)``).
    With ``stages >= 2`` the loads of the next steps are in flight while step ``k`` is computed; with
    enough stages (``stages * mma_time >= load_time + mma_time``) the tensor cores only wait for the
    first tile: ``load_time + k_steps * mma_time``.

    Returns ``PipelineSpan``s sorted by start time (at equal times, loads first, then by ``k``).
    """
    if k_steps < 0 or stages < 1:
        raise ValueError(f"need k_steps >= 0 and stages >= 1, got {k_steps}, {stages}")
    if load_time < 0 or mma_time < 0:
        raise ValueError(f"times must be >= 0, got load_time={load_time}, mma_time={mma_time}")
    loads, mmas = [], []
    for k in range(k_steps):
        slot = k % stages
        issue = loads[-1].start if loads else 0.0  # in K order
        if k >= stages:
            issue = max(issue, mmas[k - stages].end)  # the slot's previous tile has been used
        loads.append(PipelineSpan("load", k, slot, issue, issue + load_time))
        start = max(loads[k].end, mmas[-1].end if mmas else 0.0)
        mmas.append(PipelineSpan("mma", k, slot, start, start + mma_time))
    return sorted(loads + mmas, key=lambda s: (s.start, s.engine != "load", s.k))


def pipeline_time(spans) -> float:
    """When the last step's math is done (the K loop's total time)."""
    return max((s.end for s in spans), default=0.0)


def mma_busy(spans) -> float:
    """Fraction of the K loop's time the tensor cores spend computing (the rest they wait)."""
    total = pipeline_time(spans)
    return sum(s.end - s.start for s in spans if s.engine == "mma") / total if total else 0.0


# ---------------------------------------------------------------- warp specialization (chapter 04)
WARP_ROLES = ("producer", "consumer0", "consumer1")
WS_MODES = ("cooperative", "pingpong")


@dataclass(frozen=True)
class WarpRoleSpan:
    """One piece of work of one warpgroup in a warp-specialized persistent matmul, from ``start`` to
    ``end``: a TMA load (``"load"``, by the producer, into shared-memory ``slot``), the math on one K
    step (``"mma"``, by a consumer, reading ``slot``) or a tile's epilogue (``"epilogue"``: the
    accumulator stored to C; ``k`` and ``slot`` are ``None``)."""

    role: str  # "producer", "consumer0" or "consumer1"
    what: str  # "load", "mma" or "epilogue"
    tile: int
    k: int | None
    start: float
    end: float
    slot: int | None = None


def warp_roles_timeline(tiles, k_steps, stages=3, load_time=1.0, mma_time=1.0, epilogue_time=1.5,
                        mode="cooperative"):
    """A simple model of a warp-specialized matmul program (one producer warpgroup, two consumer
    warpgroups) computing ``tiles`` output tiles of ``k_steps`` K steps each, for pictures and tests
    (not a profiler).

    * the producer issues one TMA load per (tile, K step), in K order across the tiles, into a
      ``stages``-slot ring (step ``g = tile * k_steps + k`` goes to slot ``g % stages``); a load takes
      ``load_time``, several can be in flight, and a slot is free again only when the math that read
      it is done;
    * ``mma_time`` is the tensor-core time of one K step of one *half* tile (64 rows) when it has the
      SM's tensor cores to itself. The tensor cores are shared by the warpgroups, so a K step of a
      whole tile costs ``2 * mma_time`` of tensor-core time in both modes;
    * ``"cooperative"`` (what Triton 3.6 builds): both consumers work on the same tile, each on its
      half, at the same time; as they share the tensor cores, a step takes ``2 * mma_time`` for both.
      After the last K step both do the tile's ``epilogue_time`` before the next tile's math starts;
    * ``"pingpong"`` (CUTLASS's alternative): consumer0 takes the even tiles, consumer1 the odd ones;
      a step of a whole tile takes ``2 * mma_time``, and only one consumer computes at a time (the
      steps go to the tensor cores in K order across the tiles). A consumer's epilogue therefore runs
      while the other consumer computes the next tile.

    Returns ``WarpRoleSpan``s sorted by start time (then role, what, tile, k).
    """
    for name, v in (("tiles", tiles), ("k_steps", k_steps), ("stages", stages)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be an int, got {v!r}")
    if tiles < 0 or k_steps < 1 or stages < 1:
        raise ValueError(f"need tiles >= 0, k_steps >= 1 and stages >= 1, got {tiles}, {k_steps}, {stages}")
    for name, v in (("load_time", load_time), ("mma_time", mma_time), ("epilogue_time", epilogue_time)):
        if not v >= 0:
            raise ValueError(f"times must be >= 0, got {name}={v}")
    if mode not in WS_MODES:
        raise ValueError(f"mode must be one of {WS_MODES}, not {mode!r}")

    step = 2 * mma_time  # tensor-core time of one K step of a whole tile
    spans, loads, mma_end = [], [], []  # mma_end[g]: when the math that read step g's slot is done
    busy_until = {"consumer0": 0.0, "consumer1": 0.0}  # each consumer's last span
    tensor_free = 0.0  # pingpong: when the tensor cores are free again
    for t in range(tiles):
        for k in range(k_steps):
            g = t * k_steps + k
            slot = g % stages
            issue = loads[-1].start if loads else 0.0  # the producer issues in K order
            if g >= stages:
                issue = max(issue, mma_end[g - stages])  # the slot's previous tile has been used
            ld = WarpRoleSpan("producer", "load", t, k, issue, issue + load_time, slot)
            loads.append(ld)
            spans.append(ld)
            if mode == "cooperative":
                start = max(ld.end, *busy_until.values())
                for role in ("consumer0", "consumer1"):
                    spans.append(WarpRoleSpan(role, "mma", t, k, start, start + step, slot))
                    busy_until[role] = start + step
            else:
                role = f"consumer{t % 2}"
                start = max(ld.end, busy_until[role], tensor_free)
                spans.append(WarpRoleSpan(role, "mma", t, k, start, start + step, slot))
                busy_until[role] = tensor_free = start + step
            mma_end.append(start + step)
        for role in (("consumer0", "consumer1") if mode == "cooperative" else (f"consumer{t % 2}",)):
            e0 = busy_until[role]
            spans.append(WarpRoleSpan(role, "epilogue", t, None, e0, e0 + epilogue_time))
            busy_until[role] = e0 + epilogue_time
    what_order = {"load": 0, "mma": 1, "epilogue": 2}
    return sorted(spans, key=lambda s: (s.start, WARP_ROLES.index(s.role), what_order[s.what], s.tile,
                                        -1 if s.k is None else s.k))


def roles_finish(spans) -> float:
    """When the last span (a tile's epilogue) ends."""
    return max((s.end for s in spans), default=0.0)
