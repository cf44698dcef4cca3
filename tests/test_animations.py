"""The animations: drawn from kernels.schedule, and they render.

The plan tests are pure Python and instant. The render tests draw each scene once at a tiny size and
frame rate (the layout is the real one) and check the video and what the scene recorded it drew.
"""
import subprocess
import sys
from pathlib import Path

import pytest

from animations import SCENE_NAMES
from animations.plan import fmt_bytes, kloop_plan, wave_plan
from kernels.schedule import cdiv, tile_order, wave_footprints

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
    assert "KLoopScene" in proc.stderr and "TileOrderScene" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_unknown_quality_fails(tmp_path):
    from animations.render import main

    with pytest.raises(SystemExit) as exc:
        main(["--quality", "ultra", "--out", str(tmp_path)])
    assert exc.value.code != 0


def test_default_output_is_chapters_media():
    from animations.render import DEFAULT_OUT

    assert DEFAULT_OUT == ROOT / "chapters" / "media"
