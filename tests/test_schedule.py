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


# ---- software pipelining (chapter 04) -------------------------------------------------------------
from kernels.schedule import mma_busy, pipeline_time, pipeline_timeline  # noqa: E402

PIPE_CASES = [(k, s, lt, mt) for k in (0, 1, 2, 6, 17) for s in (1, 2, 3, 4, 8)
              for lt, mt in ((1.0, 1.0), (1.5, 1.0), (3.0, 1.0), (0.5, 2.0))]


@pytest.mark.parametrize("k_steps,stages,load_time,mma_time", PIPE_CASES)
def test_pipeline_every_step_loaded_and_computed_once_in_order(k_steps, stages, load_time, mma_time):
    spans = pipeline_timeline(k_steps, stages, load_time, mma_time)
    loads = sorted((s for s in spans if s.engine == "load"), key=lambda s: s.k)
    mmas = sorted((s for s in spans if s.engine == "mma"), key=lambda s: s.k)
    assert len(spans) == 2 * k_steps and {s.engine for s in spans} <= {"load", "mma"}
    assert [s.k for s in loads] == [s.k for s in mmas] == list(range(k_steps))
    assert all(s.slot == s.k % stages for s in spans)
    assert [s.end - s.start for s in loads] == [load_time] * k_steps
    assert [s.end - s.start for s in mmas] == [mma_time] * k_steps
    # loads are issued in K order; the tensor cores do one step at a time, in K order
    assert all(a.start <= b.start for a, b in zip(loads, loads[1:]))
    assert all(a.end <= b.start for a, b in zip(mmas, mmas[1:]))
    # step k is computed only once its tile has arrived
    assert all(m.start >= ld.end for ld, m in zip(loads, mmas))
    assert [(s.start, s.engine != "load", s.k) for s in spans] == sorted(
        (s.start, s.engine != "load", s.k) for s in spans)


@pytest.mark.parametrize("k_steps,stages,load_time,mma_time", PIPE_CASES)
def test_pipeline_no_slot_overwritten_before_its_math_is_done(k_steps, stages, load_time, mma_time):
    spans = pipeline_timeline(k_steps, stages, load_time, mma_time)
    mma_of = {s.k: s for s in spans if s.engine == "mma"}
    for ld in (s for s in spans if s.engine == "load"):
        if ld.k >= stages:  # the previous tile in this slot, step k - stages, must have been used
            prev = mma_of[ld.k - stages]
            assert prev.slot == ld.slot and ld.start >= prev.end
    # at no time are more than `stages` tiles loading or waiting in shared memory
    for t in sorted({s.start for s in spans}):
        held = [s.k for s in spans if s.engine == "load" and s.start <= t < mma_of[s.k].end]
        assert len(held) <= stages


@pytest.mark.parametrize("k_steps", [1, 2, 6, 17])
@pytest.mark.parametrize("load_time,mma_time", [(1.0, 1.0), (1.5, 1.0), (0.5, 2.0)])
def test_one_stage_is_no_overlap(k_steps, load_time, mma_time):
    spans = pipeline_timeline(k_steps, 1, load_time, mma_time)
    assert pipeline_time(spans) == pytest.approx(k_steps * (load_time + mma_time))
    # load k, compute k, load k+1, ...: nothing overlaps
    seq = sorted(spans, key=lambda s: s.start)
    assert [(s.engine, s.k) for s in seq] == [(e, k) for k in range(k_steps) for e in ("load", "mma")]
    assert all(a.end <= b.start for a, b in zip(seq, seq[1:]))
    assert mma_busy(spans) == pytest.approx(mma_time / (load_time + mma_time))


@pytest.mark.parametrize("k_steps", [1, 2, 6, 17, 64])
@pytest.mark.parametrize("stages", [2, 3, 4, 8])
@pytest.mark.parametrize("t", [1.0, 0.25])
def test_stages_overlap_loads_with_math(k_steps, stages, t):
    spans = pipeline_timeline(k_steps, stages, t, t)
    # load == mma: (k_steps + 1) * max(load, mma), i.e. only the first load is exposed
    assert pipeline_time(spans) == pytest.approx((k_steps + 1) * t)
    assert pipeline_time(spans) <= pipeline_time(pipeline_timeline(k_steps, 1, t, t))
    assert mma_busy(spans) == pytest.approx(k_steps / (k_steps + 1))


def test_more_stages_never_slower_and_enough_stages_hide_the_loads():
    for lt, mt in ((1.0, 1.0), (1.5, 1.0), (3.0, 1.0), (0.5, 2.0)):
        times = [pipeline_time(pipeline_timeline(12, s, lt, mt)) for s in range(1, 9)]
        assert all(a >= b - 1e-12 for a, b in zip(times, times[1:]))
        for s in range(1, 9):
            if s * mt >= lt + mt:  # a slot comes round no sooner than its next tile is needed
                assert times[s - 1] == pytest.approx(lt + 12 * mt)
    # loads 3x longer than the math: 2 stages still leave the tensor cores waiting, 4 do not
    assert pipeline_time(pipeline_timeline(12, 2, 3.0, 1.0)) > 3.0 + 12
    assert pipeline_time(pipeline_timeline(12, 4, 3.0, 1.0)) == pytest.approx(3.0 + 12)


def test_pipeline_bad_arguments():
    with pytest.raises(ValueError):
        pipeline_timeline(4, 0)
    with pytest.raises(ValueError):
        pipeline_timeline(-1, 2)
    with pytest.raises(ValueError):
        pipeline_timeline(4, 2, load_time=-1.0)
    assert pipeline_timeline(0, 3) == [] and pipeline_time([]) == 0.0 and mma_busy([]) == 0.0


# ---- warp specialization: producer / consumer warpgroups -------------------------------------------
from kernels.schedule import WARP_ROLES, WS_MODES, roles_finish, warp_roles_timeline  # noqa: E402

WS_CASES = [(t, k, s, lt, mt, et) for t in (1, 2, 3, 5) for k in (1, 2, 4, 7) for s in (1, 2, 3, 4)
            for lt, mt, et in ((1.0, 1.0, 1.5), (1.0, 0.5, 1.5), (3.0, 0.5, 0.0), (0.5, 2.0, 4.0))]


def _overlap(a, b):
    return a.start < b.end and b.start < a.end


@pytest.mark.parametrize("mode", WS_MODES)
@pytest.mark.parametrize("tiles,k_steps,stages,load_time,mma_time,epilogue_time", WS_CASES)
def test_warp_roles_every_step_loaded_once_and_computed_once(mode, tiles, k_steps, stages, load_time,
                                                            mma_time, epilogue_time):
    spans = warp_roles_timeline(tiles, k_steps, stages, load_time, mma_time, epilogue_time, mode)
    steps = [(t, k) for t in range(tiles) for k in range(k_steps)]
    loads = [s for s in spans if s.what == "load"]
    assert all(s.role == "producer" for s in loads)
    assert sorted((s.tile, s.k) for s in loads) == steps
    assert all(s.role != "producer" for s in spans if s.what != "load")
    mmas = [s for s in spans if s.what == "mma"]
    epis = [s for s in spans if s.what == "epilogue"]
    if mode == "cooperative":  # both consumers compute their half of every step, at the same time
        for role in ("consumer0", "consumer1"):
            assert sorted((s.tile, s.k) for s in mmas if s.role == role) == steps
            assert sorted(s.tile for s in epis if s.role == role) == list(range(tiles))
        by_step = {}
        for s in mmas:
            by_step.setdefault((s.tile, s.k), []).append((s.start, s.end))
        assert all(len(v) == 2 and v[0] == v[1] for v in by_step.values())
    else:  # one consumer per tile: even tiles on consumer0, odd on consumer1
        assert sorted((s.tile, s.k) for s in mmas) == steps
        assert sorted(s.tile for s in epis) == list(range(tiles))
        assert all(s.role == f"consumer{s.tile % 2}" for s in mmas + epis)
    assert all(s.end - s.start == pytest.approx(2 * mma_time) for s in mmas)
    assert all(s.end - s.start == pytest.approx(epilogue_time) for s in epis)
    assert all(s.end - s.start == pytest.approx(load_time) for s in loads)
    load_of = {(s.tile, s.k): s for s in loads}
    # a step's math starts only once its tile has arrived, in the slot it was loaded into
    for m in mmas:
        assert m.start >= load_of[(m.tile, m.k)].end and m.slot == load_of[(m.tile, m.k)].slot
    # each consumer does one thing at a time: its steps in K order, then the tile's epilogue
    for role in ("consumer0", "consumer1"):
        own = sorted((s for s in spans if s.role == role), key=lambda s: (s.start, s.end))
        assert all(a.end <= b.start + 1e-12 for a, b in zip(own, own[1:]))
        for e in (s for s in own if s.what == "epilogue"):
            assert e.start >= max(m.end for m in own if m.what == "mma" and m.tile == e.tile)
    # loads are issued in K order across the tiles
    order = sorted(loads, key=lambda s: (s.tile, s.k))
    assert all(a.start <= b.start for a, b in zip(order, order[1:]))
    assert roles_finish(spans) == max(s.end for s in spans)
    key = [(s.start, WARP_ROLES.index(s.role)) for s in spans]
    assert key == sorted(key)


@pytest.mark.parametrize("mode", WS_MODES)
@pytest.mark.parametrize("tiles,k_steps,stages,load_time,mma_time,epilogue_time", WS_CASES)
def test_warp_roles_no_slot_overwritten_early(mode, tiles, k_steps, stages, load_time, mma_time,
                                             epilogue_time):
    spans = warp_roles_timeline(tiles, k_steps, stages, load_time, mma_time, epilogue_time, mode)
    loads = sorted((s for s in spans if s.what == "load"), key=lambda s: (s.tile, s.k))
    used = {}  # step -> when the last math reading its slot is done
    for s in spans:
        if s.what == "mma":
            used[(s.tile, s.k)] = max(used.get((s.tile, s.k), 0.0), s.end)
    for g, ld in enumerate(loads):
        assert ld.slot == g % stages
        if g >= stages:  # the previous tile in this slot must have been read by all its math
            prev = loads[g - stages]
            assert prev.slot == ld.slot and ld.start >= used[(prev.tile, prev.k)]
    # at no time are more than `stages` tiles loading or waiting in shared memory
    for t in sorted({s.start for s in spans}):
        assert sum(1 for ld in loads if ld.start <= t < used[(ld.tile, ld.k)]) <= stages


@pytest.mark.parametrize("tiles,k_steps,stages,load_time,mma_time,epilogue_time", WS_CASES)
def test_pingpong_shares_the_tensor_cores_and_hides_the_epilogue(tiles, k_steps, stages, load_time,
                                                                mma_time, epilogue_time):
    spans = warp_roles_timeline(tiles, k_steps, stages, load_time, mma_time, epilogue_time, "pingpong")
    m0 = [s for s in spans if s.what == "mma" and s.role == "consumer0"]
    m1 = [s for s in spans if s.what == "mma" and s.role == "consumer1"]
    assert not any(_overlap(a, b) for a in m0 for b in m1)  # one consumer on the tensor cores at a time
    if tiles >= 2 and epilogue_time > 0:
        # some epilogue runs while the other consumer computes
        epis = [s for s in spans if s.what == "epilogue"]
        assert any(_overlap(e, m) for e in epis for m in (m1 if e.role == "consumer0" else m0))
        coop = warp_roles_timeline(tiles, k_steps, stages, load_time, mma_time, epilogue_time, "cooperative")
        assert roles_finish(spans) <= roles_finish(coop) + 1e-9
        # in cooperative every epilogue stops both consumers' math
        c_mmas = [s for s in coop if s.what == "mma"]
        assert not any(_overlap(e, m) for e in coop if e.what == "epilogue" for m in c_mmas)


def test_warp_roles_example_numbers():
    # 3 tiles x 4 steps, the tensor cores never wait for a load once started: cooperative pays every
    # epilogue, ping-pong only the last one
    coop = warp_roles_timeline(3, 4, 3, 1.0, 0.5, 1.5, "cooperative")
    ping = warp_roles_timeline(3, 4, 3, 1.0, 0.5, 1.5, "pingpong")
    assert roles_finish(coop) == pytest.approx(1.0 + 3 * (4 * 1.0 + 1.5))
    assert roles_finish(ping) == pytest.approx(1.0 + 3 * 4 * 1.0 + 1.5)
    assert warp_roles_timeline(0, 4) == [] and roles_finish([]) == 0.0


@pytest.mark.parametrize("kwargs", [
    dict(tiles=-1, k_steps=4), dict(tiles=2, k_steps=0), dict(tiles=2, k_steps=4, stages=0),
    dict(tiles=2, k_steps=4, load_time=-1.0), dict(tiles=2, k_steps=4, mma_time=-0.5),
    dict(tiles=2, k_steps=4, epilogue_time=-1.0), dict(tiles=2, k_steps=4, mode="ping-pong"),
    dict(tiles=2.5, k_steps=4), dict(tiles=2, k_steps=4, stages=True),
    dict(tiles=2, k_steps=4, load_time=float("nan")),
])
def test_warp_roles_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        warp_roles_timeline(**kwargs)
