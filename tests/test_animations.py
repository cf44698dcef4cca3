"""The animations: drawn from kernels.schedule, and they render.

The plan tests are pure Python and instant. The render tests draw each scene once at a tiny size and
frame rate (the layout is the real one) and check the video and what the scene recorded it drew.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from animations import SCENE_NAMES
from animations.plan import fmt_bytes, kloop_plan, launch_plan, pipeline_plan, warp_roles_plan, wave_plan
from kernels.schedule import (WARP_ROLES, cdiv, makespan, mma_busy, persistent_tiles, pipeline_time,
                              pipeline_timeline, roles_finish, simulate_launch, tile_order, utilisation,
                              warp_roles_timeline, wave_footprints)
from kernels.schedule import waves as count_waves

ROOT = Path(__file__).resolve().parent.parent
TINY = {"pixel_width": 256, "pixel_height": 144, "frame_rate": 5}


# ---- pure plans == kernels.schedule ---------------------------------------------------------------

@pytest.mark.parametrize("grid", [(1, 1), (8, 8), (5, 3), (13, 9), (3, 40)])
@pytest.mark.parametrize("order,group_m", [("row", 8), ("grouped", 1), ("grouped", 4), ("grouped", 8)])
@pytest.mark.parametrize("wave", [1, 7, 8, 132])
def test_wave_plan_is_the_schedule(grid, order, group_m, wave):
    gm, gn = grid
    waves = wave_plan(gm, gn, wave, 4096, 128, 64, order, group_m, elem_bytes=2)
    order_list = tile_order(gm, gn, order, group_m)
    assert [t for w in waves for t in w.tiles] == order_list
    assert [p for w in waves for p in w.pids] == list(range(gm * gn))
    assert [w.footprint for w in waves] == wave_footprints(gm, gn, wave, 4096, 128, 64, order, group_m, 2)
    for w in waves:
        assert w.a_rows == tuple(sorted({m for m, _ in w.tiles}))
        assert w.b_cols == tuple(sorted({n for _, n in w.tiles}))
        assert w.panels == len(w.a_rows) + len(w.b_cols)


@pytest.mark.parametrize("shape", [(128, 256, 160, 32, 64, 32), (100, 70, 50, 32, 32, 16), (16, 16, 16, 16, 16, 16)])
@pytest.mark.parametrize("order,group_m", [("row", 8), ("grouped", 2)])
def test_kloop_plan_is_the_schedule(shape, order, group_m):
    M, N, K, bm, bn, bk = shape
    gm, gn = cdiv(M, bm), cdiv(N, bn)
    for pid, tile in enumerate(tile_order(gm, gn, order, group_m)):
        p = kloop_plan(M, N, K, bm, bn, bk, pid, order, group_m)
        assert (p.grid_m, p.grid_n, p.tile) == (gm, gn, tile)
        assert p.rows == (tile[0] * bm, min(tile[0] * bm + bm, M))
        assert p.cols == (tile[1] * bn, min(tile[1] * bn + bn, N))
        assert p.n_steps == cdiv(K, bk)
        assert [(s.k0, s.k1) for s in p.steps] == [(k, min(k + bk, K)) for k in range(0, K, bk)]
        assert (p.a_reuse, p.b_reuse) == (bn, bm)
    with pytest.raises(ValueError):
        kloop_plan(M, N, K, bm, bn, bk, gm * gn)


@pytest.mark.parametrize("grid", [(1, 1), (2, 7), (5, 3), (4, 4)])
@pytest.mark.parametrize("num_sms", [1, 4, 6, 132])
@pytest.mark.parametrize("persistent", [False, True])
def test_launch_plan_is_the_schedule(grid, num_sms, persistent):
    gm, gn = grid
    n = gm * gn
    p = launch_plan(gm, gn, num_sms, persistent, 1.0, 0.25, "grouped", 2)
    spans = simulate_launch(n, num_sms, 1.0, 0.25, persistent=persistent)
    assert list(p.spans) == spans
    assert p.tile_pos == tuple(tile_order(gm, gn, "grouped", 2))
    assert (p.makespan, p.utilisation) == (makespan(spans), utilisation(spans, num_sms))
    if persistent:
        programs = min(num_sms, n)
        assert p.program_tiles == tuple(tuple(persistent_tiles(q, programs, n)) for q in range(programs))
        assert p.launches == tuple((0.0, q, q) for q in range(programs))
    else:
        assert p.program_tiles == tuple((t,) for t in range(n))
        assert sorted(q for _, q, _ in p.launches) == list(range(n))
        assert {(s.sm, s.start - 0.25) for s in spans} == {(sm, t) for t, _, sm in p.launches}
    assert p.overheads == tuple((sm, t, t + 0.25) for t, _, sm in p.launches)
    # every SM is either busy or idle up to the end of the launch
    for sm, start, end in p.idle:
        assert start == max((s.end for s in spans if s.sm == sm), default=0.0) and end == makespan(spans)


@pytest.mark.parametrize("k_steps", [0, 1, 6, 11])
@pytest.mark.parametrize("stages", [1, 2, 3, 5])
@pytest.mark.parametrize("load_time,mma_time", [(1.0, 1.0), (1.5, 1.0), (0.5, 2.0)])
def test_pipeline_plan_is_the_schedule(k_steps, stages, load_time, mma_time):
    p = pipeline_plan(k_steps, stages, load_time, mma_time)
    spans = pipeline_timeline(k_steps, stages, load_time, mma_time)
    assert list(p.spans) == spans
    assert list(p.loads) == sorted((s for s in spans if s.engine == "load"), key=lambda s: s.k)
    assert list(p.mmas) == sorted((s for s in spans if s.engine == "mma"), key=lambda s: s.k)
    assert (p.total, p.mma_busy) == (pipeline_time(spans), mma_busy(spans))
    # the waits are exactly the gaps of the tensor-core lane before the loop ends
    busy = sum(m.end - m.start for m in p.mmas)
    assert sum(b - a for a, b in p.mma_waits) == pytest.approx(p.total - busy)
    for a, b in p.mma_waits:
        assert a < b and not any(m.start < b and m.end > a for m in p.mmas)
    for m, ks in zip(p.mmas, p.in_flight):
        assert all(k > m.k and p.loads[k].start < m.end and p.loads[k].end > m.start for k in ks)
        if stages == 1:
            assert ks == ()


def test_scene_parameters_come_from_the_plans():
    from animations.scenes import KLoopScene, TileOrderScene

    S = TileOrderScene
    plans = S.plans()
    for order, waves in plans.items():
        assert [w.footprint for w in waves] == wave_footprints(
            S.GRID_M, S.GRID_N, S.WAVE, S.K, S.BLOCK_M, S.BLOCK_N, order, S.GROUP_M, S.ELEM_BYTES)
    # the lesson of the scene: grouped order reads fewer panels per wave than row-major
    assert sum(w.panels for w in plans["grouped"]) < sum(w.panels for w in plans["row"])

    K = KLoopScene
    p = K.plan()
    assert p.tile == tile_order(cdiv(K.M, K.BLOCK_M), cdiv(K.N, K.BLOCK_N), K.ORDER, K.GROUP_M)[K.PID]
    assert p.n_steps >= 3  # enough steps to see a loop

    from animations.scenes import PersistentScene as PS

    plans = PS.plans()
    n_tiles = PS.GRID_M * PS.GRID_N
    for persistent, lp in plans.items():
        assert list(lp.spans) == simulate_launch(n_tiles, PS.NUM_SMS, PS.TILE_TIME, PS.BLOCK_OVERHEAD,
                                                 persistent=persistent)
    # the lesson: persistent launches one program per SM and ends sooner, and a ragged wave is visible
    assert (plans[False].programs, plans[True].programs) == (n_tiles, PS.NUM_SMS)
    assert plans[True].makespan < plans[False].makespan
    assert count_waves(n_tiles, PS.NUM_SMS)[1] <= 0.5 and plans[False].idle and plans[True].idle

    from animations.scenes import PipelineScene as PP

    plans = PP.plans()
    assert set(plans) == set(PP.STAGES) and PP.STAGES[0] == 1 and PP.K_STEPS >= 4
    for st, pp in plans.items():
        assert list(pp.spans) == pipeline_timeline(PP.K_STEPS, st, PP.LOAD_TIME, PP.MMA_TIME)
    # the lesson: without stages the tensor cores wait for every load; with them, only for the first
    one, many = plans[PP.STAGES[0]], plans[PP.STAGES[1]]
    assert one.total == pytest.approx(PP.K_STEPS * (PP.LOAD_TIME + PP.MMA_TIME))
    assert len(one.mma_waits) == PP.K_STEPS and len(many.mma_waits) == 1
    assert many.total < 0.6 * one.total and any(many.in_flight)


@pytest.mark.parametrize("mode", ["cooperative", "pingpong"])
@pytest.mark.parametrize("tiles,k_steps,stages", [(0, 1, 1), (1, 4, 3), (3, 4, 3), (5, 2, 2)])
@pytest.mark.parametrize("load_time,mma_time,epilogue_time", [(1.0, 0.5, 1.5), (3.0, 1.0, 0.0)])
def test_warp_roles_plan_is_the_schedule(mode, tiles, k_steps, stages, load_time, mma_time, epilogue_time):
    p = warp_roles_plan(tiles, k_steps, stages, load_time, mma_time, epilogue_time, mode)
    spans = warp_roles_timeline(tiles, k_steps, stages, load_time, mma_time, epilogue_time, mode)
    assert list(p.spans) == spans and p.finish == roles_finish(spans)
    assert {r: list(v) for r, v in p.lanes.items()} == {r: [s for s in spans if s.role == r] for r in WARP_ROLES}
    # the idle gaps are exactly the times between the first and the last math with no math running
    mmas = [s for s in spans if s.what == "mma"]
    for a, b in p.tensor_idle:
        assert a < b and not any(m.start < b and m.end > a for m in mmas)
        assert any(m.end == a for m in mmas) and any(m.start == b for m in mmas)
    if mmas:
        busy = sum(e - s for s, e in {(m.start, m.end) for m in mmas})
        span = max(m.end for m in mmas) - min(m.start for m in mmas)
        assert sum(b - a for a, b in p.tensor_idle) == pytest.approx(span - busy)
    for s in spans:
        lab = p.label(s)
        assert lab == {"load": f"L{s.tile}.{s.k}", "mma": f"M{s.tile}.{s.k}", "epilogue": f"E{s.tile}"}[s.what]


def test_warp_roles_scene_parameters_come_from_the_plans():
    from animations.scenes import WarpRolesScene as W

    plans = W.plans()
    assert tuple(plans) == W.MODES == ("cooperative", "pingpong")
    for mode, wp in plans.items():
        assert list(wp.spans) == warp_roles_timeline(W.TILES, W.K_STEPS, W.STAGES, W.LOAD_TIME, W.MMA_TIME,
                                                     W.EPILOGUE_TIME, mode)
    # the lesson: ping-pong hides all but the last epilogue; cooperative's tensor cores wait for them
    coop, ping = plans["cooperative"], plans["pingpong"]
    assert W.TILES >= 3 and W.K_STEPS >= 3 and W.EPILOGUE_TIME > 0
    assert ping.finish < coop.finish
    assert len(coop.tensor_idle) == W.TILES - 1 and ping.tensor_idle == ()
    # the register split is the measured one (setmaxnreg in Triton 3.6's compiled code), as captioned
    assert (W.PRODUCER_REGS, W.CONSUMER_REGS) == (40, 232)
    # 4 producer warps and 8 consumer warps of 32 threads fit the SM's 64K-register file
    assert 4 * 32 * W.PRODUCER_REGS + 8 * 32 * W.CONSUMER_REGS <= 64 * 1024


def test_fmt_bytes():
    assert fmt_bytes(9 << 20) == "9.0 MiB"
    assert fmt_bytes(1536) == "1.5 KiB"
    assert fmt_bytes(10) == "10 B"


# ---- rendering ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from animations.render import render_scene

    out = tmp_path_factory.mktemp("videos")
    return {name: render_scene(name, "low", out, TINY) for name in SCENE_NAMES}


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_renders_to_mp4(rendered, name):
    import av

    r = rendered[name]
    assert r.path.name == f"{name}.mp4"
    assert r.path.stat().st_size > 1000
    with av.open(str(r.path)) as f:
        v = f.streams.video[0]
        assert (v.width, v.height) == (TINY["pixel_width"], TINY["pixel_height"])
        frames = sum(1 for _ in f.decode(v))
    seconds = frames / TINY["frame_rate"]
    assert 12 <= seconds <= 45, f"{name} lasts {seconds:.1f} s"
    assert not list(r.path.parent.glob(".*part*")), "temporary file left behind"


def test_tile_order_scene_drew_the_schedule(rendered):
    from animations.scenes import TileOrderScene as S

    scene = rendered["TileOrderScene"].scene
    for order in ("row", "grouped"):
        assert scene.drawn_order[order] == tile_order(S.GRID_M, S.GRID_N, order, S.GROUP_M)
        assert scene.drawn_footprints[order] == wave_footprints(
            S.GRID_M, S.GRID_N, S.WAVE, S.K, S.BLOCK_M, S.BLOCK_N, order, S.GROUP_M, S.ELEM_BYTES)


def test_kloop_scene_drew_the_schedule(rendered):
    from animations.scenes import KLoopScene as S

    scene = rendered["KLoopScene"].scene
    gm, gn = cdiv(S.M, S.BLOCK_M), cdiv(S.N, S.BLOCK_N)
    assert scene.drawn_tile == tile_order(gm, gn, S.ORDER, S.GROUP_M)[S.PID]
    assert scene.drawn_steps == [(k, min(k + S.BLOCK_K, S.K)) for k in range(0, S.K, S.BLOCK_K)]


def test_persistent_scene_drew_the_schedule(rendered):
    from animations.scenes import PersistentScene as S

    scene = rendered["PersistentScene"].scene
    n = S.GRID_M * S.GRID_N
    order = tile_order(S.GRID_M, S.GRID_N, S.ORDER, S.GROUP_M)
    for persistent in (False, True):
        spans = simulate_launch(n, S.NUM_SMS, S.TILE_TIME, S.BLOCK_OVERHEAD, persistent=persistent)
        assert scene.drawn_blocks[persistent] == [(s.sm, s.start, s.end, s.tile) for s in spans]
        assert scene.drawn_grid[persistent] == dict(enumerate(order))
        # every C tile lit up, in the order the tiles finish
        lit = scene.drawn_lit[persistent]
        assert sorted(lit) == list(range(n))
        end_of = {s.tile: s.end for s in spans}
        assert [end_of[t] for t in lit] == sorted(end_of[t] for t in lit)
        assert scene.drawn_finish[persistent] == makespan(spans)
        programs = {s.program for s in spans}
        assert scene.drawn_launched[persistent] == len(programs)
        starts = sorted((min(s.start for s in spans if s.program == p), p) for p in programs)
        assert len(scene.drawn_overheads[persistent]) == len(programs)
        assert sorted(scene.drawn_overheads[persistent]) == sorted(
            (next(s.sm for s in spans if s.program == p), t - S.BLOCK_OVERHEAD, t) for t, p in starts)
    assert scene.drawn_launched == {False: n, True: S.NUM_SMS}


def test_pipeline_scene_drew_the_schedule(rendered):
    from animations.scenes import PipelineScene as S

    scene = rendered["PipelineScene"].scene
    assert set(scene.drawn_blocks) == set(S.STAGES)
    for st in S.STAGES:
        spans = pipeline_timeline(S.K_STEPS, st, S.LOAD_TIME, S.MMA_TIME)
        assert scene.drawn_blocks[st] == [(s.engine, s.k, s.slot, s.start, s.end) for s in spans]
        assert scene.drawn_finish[st] == pipeline_time(spans)
        assert scene.drawn_busy[st] == mma_busy(spans)
        # each tile is held in its slot from its arrival until the math that read it is done
        mma_end = {s.k: s.end for s in spans if s.engine == "mma"}
        loads = sorted((s for s in spans if s.engine == "load"), key=lambda s: s.k)
        assert scene.drawn_held[st] == [(s.slot, s.end, mma_end[s.k]) for s in loads]
        assert scene.drawn_waits[st] == list(pipeline_plan(S.K_STEPS, st, S.LOAD_TIME, S.MMA_TIME).mma_waits)


def test_warp_roles_scene_drew_the_schedule(rendered):
    from animations.scenes import WarpRolesScene as S

    scene = rendered["WarpRolesScene"].scene
    assert set(scene.drawn_blocks) == set(S.MODES)
    for mode in S.MODES:
        plan = warp_roles_plan(S.TILES, S.K_STEPS, S.STAGES, S.LOAD_TIME, S.MMA_TIME, S.EPILOGUE_TIME, mode)
        spans = warp_roles_timeline(S.TILES, S.K_STEPS, S.STAGES, S.LOAD_TIME, S.MMA_TIME, S.EPILOGUE_TIME, mode)
        assert [b[:6] for b in scene.drawn_blocks[mode]] == [
            (s.role, s.what, s.tile, s.k, s.start, s.end) for s in spans]
        assert [b[6] for b in scene.drawn_blocks[mode]] == [plan.label(s) for s in spans]
        assert scene.drawn_finish[mode] == roles_finish(spans)
        assert scene.drawn_idle[mode] == list(plan.tensor_idle)
    assert scene.drawn_regs == (40, 232)


# ---- the command line -----------------------------------------------------------------------------

def test_unknown_scene_fails_clearly(tmp_path):
    from animations.render import RenderError, render_scene

    with pytest.raises(RenderError, match="unknown scene 'NoSuchScene'.*KLoopScene"):
        render_scene("NoSuchScene", "low", tmp_path)
    # the real command, from the repository root, with no extra environment
    proc = subprocess.run([sys.executable, "-m", "animations.render", "NoSuchScene", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown scene" in proc.stderr and "NoSuchScene" in proc.stderr
    assert all(name in proc.stderr for name in SCENE_NAMES)
    assert not list(tmp_path.iterdir())


def test_unknown_quality_fails(tmp_path):
    from animations.render import main

    with pytest.raises(SystemExit) as exc:
        main(["--quality", "ultra", "--out", str(tmp_path)])
    assert exc.value.code != 0


def test_default_output_is_chapters_media():
    from animations.render import DEFAULT_OUT

    assert DEFAULT_OUT == ROOT / "chapters" / "media"


# ---- chapter 07: one MXFP4 block (FP4BlockScene) ---------------------------------------------------

@pytest.mark.parametrize("seed,outlier,scale", [(0, 7.0, 0.03), (1, -3.0, 1.0), (2, 0.0, 5.0)])
def test_fp4_block_plan_is_kernels_fp4(seed, outlier, scale):
    import numpy as np

    from animations.plan import fp4_block_plan
    from kernels import fp4

    v = fp4.example_block(seed, outlier, scale)
    p = fp4_block_plan(v)
    codes, exp = fp4.mxfp4(v[None, :])
    assert p.values == tuple(v) and p.codes == tuple(codes[0]) and p.exponent == exp[0, 0]
    assert p.scale_byte == exp[0, 0] + 127 and p.scale == 2.0 ** exp[0, 0]
    assert p.amax == np.abs(v).max() == abs(v[p.amax_index])
    assert p.scaled == tuple(v / 2.0 ** exp[0, 0])
    assert p.landed == tuple(fp4.VALUES[codes[0]])
    assert p.dequantized == tuple(fp4.mxfp4_dequantize(codes, exp)[0])
    assert p.packed == tuple(fp4.pack(codes[0], "low_first")) and p.stored_bytes == 17
    assert all(p.packed[j] & 15 == p.codes[2 * j] and p.packed[j] >> 4 == p.codes[2 * j + 1] for j in range(16))
    assert p.saturated == tuple(i for i in range(32) if abs(v[i]) > 6 * p.scale)
    assert p.flushed == tuple(i for i in range(32) if v[i] != 0 and p.dequantized[i] == 0)
    assert [p.bits(c) for c in (0, 7, 9, 15)] == ["0000", "0111", "1001", "1111"]
    with pytest.raises(ValueError, match="one block is 32"):
        fp4_block_plan(np.r_[v, v])


def test_fp4_block_scene_shows_its_lesson():
    from animations.scenes import FP4BlockScene as S

    p = S.plan()
    # the division is visible (a scale other than 1), one value saturates and some become 0
    assert p.exponent < 0 and len(p.saturated) == 1 and len(p.flushed) >= 3


@pytest.fixture(scope="module")
def rendered_fp4(rendered):
    return rendered["FP4BlockScene"]


def test_fp4_block_scene_renders_what_kernels_fp4_computes(rendered_fp4):
    import av

    from animations.scenes import FP4BlockScene as S
    from kernels import fp4

    r = rendered_fp4
    with av.open(str(r.path)) as f:
        v = f.streams.video[0]
        assert (v.width, v.height) == (TINY["pixel_width"], TINY["pixel_height"])
        seconds = sum(1 for _ in f.decode(v)) / TINY["frame_rate"]
    assert 12 <= seconds <= 45, f"FP4BlockScene lasts {seconds:.1f} s"
    scene = r.scene
    values = S.values()
    codes, exp = fp4.mxfp4(values[None, :])
    assert scene.drawn_values == values.tolist()
    assert scene.drawn_scale == (exp[0, 0], exp[0, 0] + 127)
    assert scene.drawn_scaled == (values / 2.0 ** exp[0, 0]).tolist()
    assert scene.drawn_codes == codes[0].tolist()
    assert scene.drawn_landed == fp4.VALUES[codes[0]].tolist()
    assert scene.drawn_bytes == fp4.pack(codes[0]).tolist()


# ---- chapter 08: the online softmax of one row block (OnlineSoftmaxScene) ---------------------------

def _softmax_at_once(scores, values):
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("seed,rows,keys,tile,head_dim", [(16, 4, 16, 4, 2), (0, 3, 10, 4, 3), (5, 2, 7, 1, 1),
                                                          (7, 4, 16, 16, 2)])
def test_online_softmax_plan_is_kernels_attention(seed, rows, keys, tile, head_dim):
    import numpy as np

    from animations.plan import example_scores, online_softmax_plan
    from kernels.attention import online_softmax_steps

    s, v = example_scores(seed, rows, keys, head_dim)
    assert s.shape == (rows, keys) and v.shape == (keys, head_dim)
    assert (s == np.round(s)).all() and (v == np.round(v)).all()  # small integers, readable
    p = online_softmax_plan(seed, rows, keys, tile, head_dim)
    assert p.scores == tuple(map(tuple, s)) and p.values == tuple(map(tuple, v))
    assert (p.rows, p.keys, p.head_dim, p.tile) == (rows, keys, head_dim, tile)
    raw = online_softmax_steps(s, v, tile)
    assert len(p.steps) == len(raw) == -(-keys // tile)
    m_old = np.full(rows, -np.inf)
    for i, (st, r) in enumerate(zip(p.steps, raw)):
        assert (st.index, st.start, st.stop) == (i, r["start"], min(r["start"] + tile, keys))
        assert st.m == tuple(r["m"]) and st.l == tuple(r["l"]) and st.alpha == tuple(r["alpha"])
        assert st.acc == tuple(map(tuple, r["acc"]))
        assert st.m_old == tuple(m_old)
        assert st.m == tuple(s[:, :st.stop].max(axis=1))  # the running max is the max of what was seen
        assert st.moved == tuple(i for i in range(rows) if r["m"][i] > m_old[i])
        assert all(s[row, st.argmax[row]] == st.m[row] and st.argmax[row] < st.stop for row in range(rows))
        # alpha is exp(m_old - m_new): 0 on the first tile, 1 where the max stayed, < 1 where it moved
        assert st.alpha == pytest.approx(tuple(np.exp(m_old - r["m"])))
        if i > 0:
            assert all((st.alpha[row] < 1) == (row in st.moved) for row in range(rows))
        m_old = r["m"]
    ref = _softmax_at_once(s, v)
    assert np.allclose(p.out, ref, rtol=0, atol=1e-12) and np.allclose(p.reference, ref, rtol=0, atol=1e-15)
    assert p.max_error == np.abs(np.array(p.out) - np.array(p.reference)).max() < 1e-12
    # the last state is l = sum exp(s - m) and acc = sum exp(s - m) v over whole rows
    e = np.exp(s - s.max(axis=1, keepdims=True))
    assert p.steps[-1].l == pytest.approx(tuple(e.sum(axis=1)))
    assert np.allclose(p.steps[-1].acc, e @ v)


def test_online_softmax_plan_takes_explicit_data_and_rejects_bad_shapes():
    from animations.plan import online_softmax_plan

    scores, values = [[1.0, 3.0, 2.0], [0.0, 0.0, 5.0]], [[1.0], [2.0], [3.0]]
    p = online_softmax_plan(tile=2, scores=scores, values=values)
    assert [st.moved for st in p.steps] == [(0, 1), (1,)] and p.steps[1].alpha[0] == 1.0
    assert [o[0] for o in p.out] == pytest.approx(_softmax_at_once(scores, values)[:, 0].tolist())
    with pytest.raises(ValueError, match="must agree"):
        online_softmax_plan(tile=2, scores=scores, values=values[:2])
    with pytest.raises(ValueError, match="tile"):
        online_softmax_plan(tile=0, scores=scores, values=values)


def test_online_softmax_scene_shows_its_lesson():
    from animations.scenes import OnlineSoftmaxScene as S

    p = S.plan()
    assert (p.rows, p.keys, p.tile) == (S.ROWS, S.KEYS, S.TILE) and p.keys // p.tile >= 3
    later = p.steps[1:]
    # after the first tile the max moves in some tile for some row (alpha < 1), and in some tile for no row
    assert any(st.moved for st in later) and any(not st.moved for st in later)
    assert any(0 < a < 1 for st in later for a in st.alpha)
    # a tile where one row's max moves and another's does not
    assert any(0 < len(st.moved) < p.rows for st in later)
    assert p.max_error < 1e-12


@pytest.fixture(scope="module")
def rendered_online_softmax(rendered):
    return rendered["OnlineSoftmaxScene"]


def test_online_softmax_scene_renders_what_kernels_attention_computes(rendered_online_softmax):
    import av
    import numpy as np

    from animations.plan import example_scores
    from animations.scenes import OnlineSoftmaxScene as S
    from kernels.attention import online_softmax_steps

    r = rendered_online_softmax
    with av.open(str(r.path)) as f:
        v = f.streams.video[0]
        assert (v.width, v.height) == (TINY["pixel_width"], TINY["pixel_height"])
        seconds = sum(1 for _ in f.decode(v)) / TINY["frame_rate"]
    assert 15 <= seconds <= 40, f"OnlineSoftmaxScene lasts {seconds:.1f} s"
    scene = r.scene
    scores, values = example_scores(S.SEED, S.ROWS, S.KEYS, S.HEAD_DIM)
    assert scene.drawn_scores == scores.tolist() and scene.drawn_values == values.tolist()
    steps = online_softmax_steps(scores, values, S.TILE)
    assert [(d["start"], d["stop"]) for d in scene.drawn_steps] == [
        (st["start"], min(st["start"] + S.TILE, S.KEYS)) for st in steps]
    for d, st in zip(scene.drawn_steps, steps):
        assert d["m"] == st["m"].tolist() and d["alpha"] == st["alpha"].tolist()
        assert d["l"] == st["l"].tolist() and d["acc"] == st["acc"].tolist()
    # each row's ring sits on a key holding its running max
    for rings, d in zip(scene.drawn_rings, scene.drawn_steps):
        assert [scores[row, j] for row, j in enumerate(rings)] == d["m"]
    out = steps[-1]["acc"] / steps[-1]["l"][:, None]
    assert scene.drawn_out == out.tolist()
    assert np.allclose(scene.drawn_reference, _softmax_at_once(scores, values), rtol=0, atol=1e-15)
    assert scene.drawn_error < 1e-12


def test_stream_k_scene_drew_the_schedule(rendered):
    from animations.scenes import StreamKScene as S
    from kernels.schedule import pieces_makespan, schedule_pieces

    scene = rendered["StreamKScene"].scene
    for kind, _ in S.KINDS:
        pieces = schedule_pieces(kind, S.NUM_TILES, S.NUM_SMS, S.K_ITERS)
        drawn = scene.drawn_spans[kind]
        # every program's pieces, in order and back to back, exactly as the schedule gives them
        for p, prog in enumerate(pieces):
            mine = [d for d in drawn if d[0] == p]
            assert [(t, kb, ke) for _, _, _, t, kb, ke in mine] == prog
            assert all(a[2] == b[1] for a, b in zip(mine, mine[1:])) and (not mine or mine[0][1] == 0)
        assert scene.drawn_finish[kind] == pieces_makespan(pieces, S.K_ITERS)
        # one "+" per tile computed in pieces, where its last piece ends
        split = {t for prog in pieces for t, kb, ke in prog if (kb, ke) != (0, S.K_ITERS)}
        assert {t for t, _, _ in scene.drawn_adds[kind]} == split
        for t, p, when in scene.drawn_adds[kind]:
            assert when == max(d[2] for d in drawn if d[3] == t)
    # the lesson: splitting by K ends sooner than whole tiles
    assert scene.drawn_finish["stream-K"] < scene.drawn_finish["data-parallel"]
    assert scene.drawn_finish["split tail"] < scene.drawn_finish["data-parallel"]
