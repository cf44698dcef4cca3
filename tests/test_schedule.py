"""The tile schedule: every tile exactly once, and the kernel's mapping equals the Python one."""
import itertools

import pytest
import torch
import triton
import triton.language as tl

from kernels import DEVICE
from kernels._jit import device_fn
from kernels.schedule import footprint, grouped_tile, row_major_tile, tile_of, tile_order, wave_footprints

GRIDS = [(1, 1), (1, 7), (7, 1), (4, 4), (5, 3), (13, 9), (16, 16), (3, 40)]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("order,group_m", [("row", 8), ("grouped", 1), ("grouped", 2), ("grouped", 3),
                                           ("grouped", 8), ("grouped", 64)])
def test_every_tile_exactly_once(grid, order, group_m):
    gm, gn = grid
    tiles = tile_order(gm, gn, order, group_m)
    assert len(tiles) == gm * gn
    assert sorted(tiles) == sorted(itertools.product(range(gm), range(gn)))


def test_row_major_is_row_major():
    assert tile_order(2, 3, "row") == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_grouped_goes_down_columns_within_a_group():
    # grid 4x3, groups of 2 rows: (0,0),(1,0),(0,1),(1,1),(0,2),(1,2), then rows 2-3
    assert tile_order(4, 3, "grouped", 2)[:7] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 0)]


def test_grouped_with_group_1_is_column_major_per_row_and_large_group_is_column_major():
    assert tile_order(3, 4, "grouped", 1) == tile_order(3, 4, "row")
    assert tile_order(3, 4, "grouped", 3) == [(m, n) for n in range(4) for m in range(3)]


def test_bad_arguments():
    with pytest.raises(ValueError):
        tile_order(0, 3)
    with pytest.raises(ValueError):
        tile_order(3, 3, "grouped", 0)
    with pytest.raises(ValueError):
        tile_of(0, 3, 3, "spiral")


def test_grouped_order_needs_less_l2_than_row_major():
    # 32x32 tiles of 128 with K=4096, 132 programs at once: grouped reads far fewer panels per wave
    row = wave_footprints(32, 32, 132, 4096, 128, 128, "row")
    grp = wave_footprints(32, 32, 132, 4096, 128, 128, "grouped", 8)
    assert sum(f.bytes for f in grp) < 0.8 * sum(f.bytes for f in row)  # 25 vs 37 panels a wave
    f = footprint([(0, 0), (0, 1), (1, 0)], K=10, block_m=2, block_n=3, elem_bytes=4)
    assert (f.a_panels, f.b_panels, f.bytes, f.tiles) == (2, 2, (2 * 2 + 2 * 3) * 10 * 4, 3)


_grouped_dev = device_fn(grouped_tile)
_row_dev = device_fn(row_major_tile)


@triton.jit
def _schedule_probe(out_ptr, grid_m, grid_n, GROUP_M: tl.constexpr, GROUPED: tl.constexpr):
    pid = tl.program_id(0)
    if GROUPED:
        pid_m, pid_n = _grouped_dev(pid, grid_m, grid_n, GROUP_M)
    else:
        pid_m, pid_n = _row_dev(pid, grid_m, grid_n)
    tl.store(out_ptr + 2 * pid, pid_m)
    tl.store(out_ptr + 2 * pid + 1, pid_n)


@pytest.mark.parametrize("grid", [(5, 3), (13, 9), (1, 6)])
@pytest.mark.parametrize("order,group_m", [("row", 1), ("grouped", 4), ("grouped", 8)])
def test_device_mapping_equals_python(grid, order, group_m):
    """The function compiled into the kernels gives the same tiles as the Python one."""
    gm, gn = grid
    out = torch.full((gm * gn * 2,), -1, dtype=torch.int32, device=DEVICE)
    _schedule_probe[(gm * gn,)](out, gm, gn, GROUP_M=group_m, GROUPED=order == "grouped")
    got = [tuple(p) for p in out.view(-1, 2).cpu().tolist()]
    assert got == tile_order(gm, gn, order, group_m)
