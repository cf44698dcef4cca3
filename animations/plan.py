"""What the scenes draw, as plain data computed from ``kernels.schedule`` (no Manim here).

Every tile position, every panel and every byte count in the animations comes from these functions,
and these functions only call the schedule the kernels use (``tile_order``, ``footprint``, ``cdiv``).
Nothing is typed in by hand, so a change to the schedule changes the pictures.
"""
from __future__ import annotations

from dataclasses import dataclass

from kernels.schedule import Footprint, cdiv, footprint, tile_order

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


def fmt_bytes(n) -> str:
    """Short human size: ``9437184 -> '9.0 MiB'``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
