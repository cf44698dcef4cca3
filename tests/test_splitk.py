"""Split-K (kernels.splitk) and kernels.matmul (kernels.dispatch): the plans cover every K step and
tile exactly once, the kernels match float64 at ragged sizes, every dtype, every split and every layout
(odd strides, transposed views, slices, an out with strides), give the same bits on every run, and
refuse bad arguments with a clear error. The rule of kernels.dispatch.plan is checked at the H200's
size (132 SMs) against the choices its docstring states."""
import itertools

import pytest
import torch

import kernels
from kernels import ON_GPU
from kernels import dispatch as D
from kernels import splitk as SK
from kernels import testing
from kernels.tiled import TileConfig

CFG = TileConfig(16, 16, 16, 2, 4, 2) if not ON_GPU else TileConfig(64, 64, 64, 8, 4, 3)
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _inputs(M, N, K, dtype, seed=0):
    return testing.randn(M, K, dtype=dtype, seed=seed), testing.randn(K, N, dtype=dtype, seed=seed + 1)


@pytest.mark.parametrize("K,block_k,split_k", list(itertools.product((1, 16, 17, 100, 4096), (16, 64), (1, 2, 3, 7, 64))))
def test_split_plan_covers_every_k_step_once_with_no_empty_split(K, block_k, split_k):
    per, splits = SK.split_plan(K, block_k, split_k)
    steps = -(-K // block_k)
    ranges = [(s * per, min(s * per + per, steps)) for s in range(splits)]
    assert all(lo < hi for lo, hi in ranges), "no split may be empty"
    assert [k for lo, hi in ranges for k in range(lo, hi)] == list(range(steps))
    assert 1 <= splits <= split_k


@pytest.mark.parametrize("tiles,sms", [(1, 4), (4, 4), (5, 4), (9, 4), (144, 132), (272, 132), (264, 132)])
def test_tail_plan_splits_only_the_last_partial_wave(tiles, sms):
    dp, shared = SK.tail_plan(tiles, sms)
    assert dp + shared == tiles
    assert dp % sms == 0
    assert shared == (tiles if tiles <= sms else tiles % sms)
    assert SK.tail_plan(tiles, sms, split_k=3) == (0, tiles)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K,split_k", [(33, 40, 100, 3), (16, 64, 128, 4), (40, 48, 96, 1), (5, 24, 200, 64),
                                           (70, 56, 64, None), (50, 50, 48, None)])
def test_splitk_matches_float64(M, N, K, split_k, dtype):
    es = torch.empty((), dtype=dtype).element_size()
    K, N = -(-K // (16 // es)) * (16 // es), -(-N // (16 // es)) * (16 // es)  # TMA-readable rows
    a, b = _inputs(M, N, K, dtype)
    out = testing.poisoned_empty((M, N), dtype)
    SK.matmul_splitk(a, b, CFG, split_k=split_k, out=out)
    testing.assert_close_matmul(out, a, b, label=f"split-K {split_k}")


@pytest.mark.parametrize("last_adds", [True, False])
def test_splitk_tail_split_is_used_and_exact_where_the_last_wave_is_partial(last_adds):
    # 3 x 3 = 9 tiles of 16 x 16 on 4 "SMs": 8 whole, the ninth split 4 ways
    a, b = _inputs(48, 48, 64, torch.float32)
    c = testing.poisoned_empty((48, 48), torch.float32)
    dp, shared, splits = SK.launch(a, b, c, TileConfig(16, 16, 16, 2, 4, 2), None, sms=4, last_adds=last_adds)
    assert (dp, shared, splits) == (8, 1, 4)
    testing.assert_close_matmul(c, a, b, label="tail split")


@pytest.mark.parametrize("last_adds", [True, False])
@pytest.mark.parametrize("split_k", [2, 3, 8])
def test_splitk_is_deterministic_and_both_ways_of_adding_agree(split_k, last_adds):
    a, b = _inputs(40, 48, 256, torch.float32, seed=3)
    first = testing.poisoned_empty((40, 48), torch.float32)
    SK.launch(a, b, first, CFG, split_k, last_adds=last_adds)
    testing.assert_close_matmul(first, a, b, label=f"split {split_k}")
    for adds in (last_adds, not last_adds, last_adds):
        again = testing.poisoned_empty((40, 48), torch.float32)
        SK.launch(a, b, again, CFG, split_k, last_adds=adds)
        assert torch.equal(again, first), "the same bits, whoever adds"


def test_splitk_refuses_bad_arguments():
    a, b = _inputs(16, 16, 32, torch.float32)
    for bad in (0, 65, 2.0, True, "4"):
        with pytest.raises(ValueError, match="split_k must be None or an int"):
            SK.matmul_splitk(a, b, CFG, split_k=bad)
    odd = testing.randn(16, 33, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="not a layout TMA can read"):
        SK.matmul_splitk(odd, testing.randn(33, 16, dtype=torch.bfloat16), CFG)
    with pytest.raises(ValueError, match="not a layout TMA can read"):
        SK.matmul_splitk(testing.randn(32, 16).T, b, CFG)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        SK.matmul_splitk(a, testing.randn(8, 16), CFG)


# ------------------------------------------------------------------ kernels.matmul
H200 = 132


@pytest.mark.parametrize("M,N,K,kernel,tile,split,rows", [
    (1, 4096, 4096, "splitk", (16, 64, 256), 1, None),
    (16, 8192, 8192, "splitk", (16, 64, 256), 1, None),
    (64, 4096, 4096, "splitk", (64, 64, 128), 1, None),
    (128, 8192, 8192, "persistent", (64, 128, 64), None, None),
    (512, 4096, 4096, "persistent", (128, 128, 64), None, None),
    (1024, 1024, 1024, "persistent", (64, 128, 64), None, None),
    (1152, 4096, 4096, "persistent", (128, 256, 64), None, 1024),  # 8 of 9 row blocks, then 128 rows
    (2176, 4096, 4096, "persistent", (128, 256, 64), None, 2048),
    (1200, 4096, 4096, "splitk", (128, 256, 64), None, None),  # 176 rows left: too many, split the tail
    (385, 28672, 8192, "splitk", (128, 256, 64), None, None),  # 3 rows of tiles fill only 85 % of 3 waves
    (4096, 4096, 4096, "persistent", (128, 256, 64), None, None),
    (3000, 5000, 1700, "persistent", (128, 256, 64), None, None),
    (16384, 16384, 16384, "persistent", (128, 256, 64), None, None),
])
def test_plan_follows_the_stated_rule_on_an_h200(M, N, K, kernel, tile, split, rows):
    p = D.plan(M, N, K, torch.bfloat16, sms=H200, on_gpu=True)
    got = (p.kernel, (p.config.block_m, p.config.block_n, p.config.block_k), p.split_k, p.rows)
    assert got == (kernel, tile, split, rows), p
    assert p.why
    if rows:  # whole waves of tiles, and the rest a small-M plan
        bm, grid_n = p.config.block_m, -(-N // p.config.block_n)
        waves = (-(-M // bm) * grid_n) // H200
        assert rows % bm == 0 and (rows // bm) * grid_n <= waves * H200 < (rows // bm + 1) * grid_n and M - rows <= 128
        assert 10 * (rows // bm) * grid_n >= 9 * waves * H200  # the first rows nearly fill their waves
        assert D.plan(M - rows, N, K, torch.bfloat16, sms=H200, on_gpu=True).rows is None


def test_a_plan_with_rows_runs_two_products_of_the_right_rows(monkeypatch):
    """A plan with ``rows`` launches one kernel on the first ``rows`` rows and a second on the rest
    (watched by wrapping the launches), and together they compute every row."""
    from kernels import tma

    M, N, K = 77, 40, 48
    a, b = _inputs(M, N, K, torch.float16, seed=3)
    seen = []
    for mod in (tma, SK):
        real = mod.launch
        monkeypatch.setattr(mod, "launch", lambda a_, b_, c_, *args, _real=real, **kw: (
            seen.append((a_.shape[0], c_.shape[0], c_.data_ptr())), _real(a_, b_, c_, *args, **kw))[1])
    cfg = D.plan(M, N, K, torch.float16).config
    for rows in (32, 64):
        seen.clear()
        c = torch.full((M, N), float("nan"), dtype=torch.float16, device=a.device)
        D._run(D.Plan("persistent", cfg, None, "by hand", rows=rows), a, b, c)
        assert [s[:2] for s in seen] == [(rows, rows), (M - rows, M - rows)], seen
        assert seen[1][2] == c[rows:].data_ptr()  # the second product writes the rows after the cut
        testing.assert_close_matmul(c, a, b, label=f"first {rows} rows, then the rest")
    seen.clear()  # a cut at or past the last row is no cut
    D._run(D.Plan("persistent", cfg, None, "by hand", rows=M + 5), a, b, c)
    assert [s[:2] for s in seen] == [(M, M)]
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="rows must be None or a positive int"):
            D.Plan("persistent", cfg, None, "x", rows=bad)


def test_kernels_matmul_takes_the_cut_by_rows_in_the_interpreter():
    """In the interpreter (4 SMs, 32x64 tiles) 150 x 64 is 5 tiles: one full wave and one more tile, so
    the rule computes 128 rows, then 22 rows as a second product."""
    M, N, K = 150, 64, 48
    p = D.plan(M, N, K, torch.float32)
    if ON_GPU:
        pytest.skip("the interpreter's rule")
    assert p.rows == 128 and D.plan(M - p.rows, N, K, torch.float32).rows is None, p
    for dtype in DTYPES:
        a, b = _inputs(M, N, K, dtype, seed=11)
        testing.assert_close_matmul(kernels.matmul(a, b), a, b, label=f"{dtype} cut at 128 rows")


def test_reduce_keeps_the_loads_in_flight_within_the_register_cap(monkeypatch):
    """``reduce`` halves the rows a program adds until ``rows x BLOCK_N x splits <= 128 x 128`` (4 warps,
    128 float32 a thread) and the grid gives every SM two programs."""
    got = []

    class Fake:
        def __getitem__(self, grid):
            return lambda *args, **kw: got.append((grid, kw["ROWS"], kw["SPLITS"]))

    monkeypatch.setattr(SK, "splitk_reduce_kernel", Fake())
    for splits, shared, want in [(11, 12, 4), (64, 12, 1), (2, 400, 32), (3, 1, 1)]:
        got.clear()
        SK.reduce(None, torch.empty(1, 1), 1, 1, TileConfig(128, 256, 64, 8, 8, 3), 0, shared, splits, 132)
        (grid, rows, s), = got
        assert (rows, s) == (want, splits) and grid == (shared, 128 // rows), got
        assert rows * 256 * splits <= 128 * 128 or rows == 1


def test_plan_for_float32_fits_shared_memory():
    from kernels.tiled import pipeline_shared_memory, SHARED_MEMORY_LIMIT

    for M, N, K in [(1, 4096, 4096), (64, 4096, 4096), (128, 8192, 8192), (1152, 4096, 4096), (4096, 4096, 4096)]:
        p = D.plan(M, N, K, torch.float32, sms=H200, on_gpu=True)
        c = p.config
        epilogue = c.block_m * c.block_n * 4 if p.kernel == "persistent" else 0
        assert pipeline_shared_memory(c, torch.float32) + epilogue <= SHARED_MEMORY_LIMIT, p


def _layouts(M, N, K, dtype):
    a, b = _inputs(M, N, K, dtype, seed=7)
    yield "contiguous", a, b
    yield "transposed views", a.T.contiguous().T, b.T.contiguous().T
    big_a = testing.randn(M + 3, K + 5, dtype=dtype, seed=9)
    big_b = testing.randn(K + 2, N + 7, dtype=dtype, seed=10)
    yield "slices", big_a[1:M + 1, 3:K + 3], big_b[2:, 5:N + 5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(1, 37, 50), (9, 40, 33), (20, 70, 64), (100, 90, 41), (130, 200, 64), (70, 33, 17)])
def test_matmul_any_shape_layout_and_dtype_matches_float64(M, N, K, dtype):
    for label, a, b in _layouts(M, N, K, dtype):
        c = kernels.matmul(a, b)
        assert c.shape == (M, N) and c.dtype == dtype and c.is_contiguous()
        testing.assert_close_matmul(c, a, b, label=f"kernels.matmul {label}")


def test_matmul_writes_a_strided_out_and_through_overlap():
    a, b = _inputs(40, 24, 32, torch.float32)
    out = testing.poisoned_empty((24, 40), torch.float32).T  # column-major out
    r = kernels.matmul(a, b, out=out)
    assert r is out
    testing.assert_close_matmul(out, a, b, label="column-major out")
    sq = testing.randn(32, 32, seed=4)
    want = sq.double() @ sq.double()
    kernels.matmul(sq, sq, out=sq)  # out is the input: computed through a temporary
    assert torch.allclose(sq.double(), want, rtol=1e-2, atol=1e-2 * want.abs().max().item())


def test_matmul_errors_are_clear():
    a = testing.randn(8, 16)
    with pytest.raises(ValueError, match="kernels.matmul: inner dimensions differ"):
        kernels.matmul(a, testing.randn(8, 16))
    with pytest.raises(TypeError, match="kernels.matmul: a is torch.float32 but b is torch.float16"):
        kernels.matmul(a, testing.randn(16, 8, dtype=torch.float16))
    with pytest.raises(ValueError, match="kernels.matmul: a must be 2-D"):
        kernels.matmul(testing.randn(2, 8, 16), testing.randn(16, 8))
    with pytest.raises(ValueError, match="kernels.matmul: out has shape"):
        kernels.matmul(a, testing.randn(16, 8), out=testing.randn(8, 9))


# ------------------------------------------------------------------ the schedules, as pictured
@pytest.mark.parametrize("kind", ["data-parallel", "split tail", "stream-K"])
@pytest.mark.parametrize("tiles,programs,k_iters", [(9, 4, 4), (144, 132, 64), (272, 132, 64), (5, 4, 3), (3, 4, 5),
                                                    (8, 4, 2), (1, 1, 1)])
def test_schedule_pieces_cover_every_iteration_once(kind, tiles, programs, k_iters):
    from kernels import schedule as S

    pieces = S.schedule_pieces(kind, tiles, programs, k_iters)
    assert len(pieces) == programs
    seen = set()
    for prog in pieces:
        for t, kb, ke in prog:
            assert 0 <= t < tiles and 0 <= kb < ke <= k_iters
            for k in range(kb, ke):
                assert (t, k) not in seen
                seen.add((t, k))
    assert len(seen) == tiles * k_iters


def test_makespans_of_the_1152_shape_match_the_kernels_plan():
    from kernels import schedule as S

    # 144 tiles of 64 K steps on 132 SMs: whole tiles take two tiles' time; splitting the last wave 11 ways
    # (kernels.splitk's plan) or stream-K take a tile and a bit
    assert S.pieces_makespan(S.schedule_pieces("data-parallel", 144, 132, 64), 64) == 128
    assert S.pieces_makespan(S.schedule_pieces("split tail", 144, 132, 64), 64) == 64 + 6
    assert S.pieces_makespan(S.schedule_pieces("stream-K", 144, 132, 64), 64) == 70
    assert SK.tail_plan(144, 132) == (132, 12)
    assert SK.split_plan(4096, 64, 132 // 12) == (6, 11)
    with pytest.raises(ValueError, match="kind must be"):
        S.schedule_pieces("round robin", 4, 2, 2)


def test_split_schedule_picture_draws():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kernels import plots

    axes = plots.plot_split_schedules(9, 4, 4)
    assert [ax.get_title() for ax in axes] == ["data-parallel: 12 K steps", "split tail: 9 K steps", "stream-K: 9 K steps"]
    plt.close("all")


@pytest.mark.skipif(not ON_GPU, reason="compiles the rule's tiles at GPU sizes")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(1, 4096, 4096), (64, 2048, 2048), (128, 8192, 1024), (1152, 4096, 512),
                                   (2176, 4096, 256), (1024, 1024, 1024), (4096, 1024, 256), (1000, 999, 777)])
def test_matmul_plans_compile_and_match_on_a_gpu(M, N, K, dtype):
    a, b = _inputs(M, N, K, dtype, seed=5)
    testing.assert_close_matmul(kernels.matmul(a, b), a, b, label=f"{dtype} {D.plan(M, N, K, dtype)}")


def test_plan_float32_large_tiles_are_chapter_04s_and_plan_refuses_bad_arguments():
    p = D.plan(4096, 4096, 4096, torch.float32, sms=H200, on_gpu=True)
    assert (p.config.block_m, p.config.block_n, p.config.block_k) == (128, 128, 32)
    for bad in (dict(M=0), dict(M=-3), dict(N=2.5), dict(K="8"), dict(sms=-1), dict(sms=0.5)):
        args = dict(M=16, N=16, K=16, sms=4)
        args.update(bad)
        with pytest.raises(ValueError, match="plan: "):
            D.plan(args["M"], args["N"], args["K"], torch.float32, sms=args["sms"])
    with pytest.raises(TypeError, match="plan: dtype"):
        D.plan(16, 16, 16, "bfloat16", sms=4)
    assert "full wave and" in D.plan(1152, 4096, 4096, torch.bfloat16, sms=H200, on_gpu=True).why
    assert "last wave split by K" in D.plan(1200, 4096, 4096, torch.bfloat16, sms=H200, on_gpu=True).why


def test_schedule_edges():
    from kernels import schedule as S

    with pytest.raises(ValueError, match="num_programs must be >= 1"):
        S.split_tail(5, 0)
    with pytest.raises(ValueError, match="need num_programs >= 1"):
        S.schedule_pieces("split tail", 5, 0, 3)
    # 133 tiles on 132 programs: one shared tile, cut into at most MAX_SPLIT_K pieces as the kernel does
    pieces = S.schedule_pieces("split tail", 133, 132, 128)
    assert sum(1 for prog in pieces for t, kb, ke in prog if t == 132) == S.MAX_SPLIT_K
    assert SK.tail_plan(133, 132) == (132, 1) and SK.split_plan(128 * 64, 64, SK.MAX_SPLIT_K) == (2, 64)


def test_splitk_argument_edges():
    import numpy as np

    a, b = _inputs(32, 32, 64, torch.float32)
    testing.assert_close_matmul(SK.matmul_splitk(a, b, CFG, split_k=np.int64(2)), a, b, label="numpy split_k")
    with pytest.raises(ValueError, match="C tile staged for the TMA store"):
        SK.matmul_splitk(a, b, TileConfig(256, 256, 16, 8, 8, 1), split_k=1)


def test_expanded_operands_are_copied_not_read_with_a_zero_stride():
    row = testing.randn(1, 32, seed=3)
    a = row.expand(24, 32)
    assert not D.tma_ready(a)
    b = testing.randn(32, 16, seed=4)
    testing.assert_close_matmul(kernels.matmul(a, b), a, b, label="expanded a")
