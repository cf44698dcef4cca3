"""Stream-K: the schedule (kernels.schedule) shares every iteration out exactly once and names each
tile's contributors in order; the kernel (kernels.streamk) matches float64 at ragged sizes and every
dtype, gives the same bits on every run, leaves its counters at zero, and refuses bad arguments."""
import itertools

import pytest
import torch

import kernels  # noqa: F401  (decides the world first)
from kernels import schedule as S
from kernels import streamk as SK
from kernels import testing
from kernels.tiled import TileConfig

CFG = TileConfig(16, 16, 16, 2, 4, 2)


@pytest.mark.parametrize("tiles,k_iters,programs", list(itertools.product((1, 2, 5, 7), (1, 3, 8), (1, 2, 4, 9, 20))))
def test_every_shared_iteration_is_computed_once_and_each_tile_knows_its_contributors(tiles, k_iters, programs):
    total = tiles * k_iters
    P = S.stream_k_programs(programs, total)
    seen = {}
    for p in range(P):
        start, end = S.stream_k_range(p, P, total)
        assert start < end, "no program's run may be empty"
        pieces = S.stream_k_chunks(p, P, tiles, k_iters)
        assert sum(ke - kb for _, kb, ke in pieces) == end - start
        for i, (t, kb, ke) in enumerate(pieces):
            assert 0 <= kb < ke <= k_iters
            for k in range(kb, ke):
                assert (t, k) not in seen
                seen[(t, k)] = (p, 0 if i == 0 else 1)
    assert set(seen) == {(t, k) for t in range(tiles) for k in range(k_iters)}
    for t in range(tiles):
        want = sorted({seen[(t, k)] for k in range(k_iters)})
        assert S.stream_k_contributors(t, P, tiles, k_iters) == want
        assert len({p for p, _ in want}) == len(want), "a program holds one piece of a tile"


def test_stream_k_split_shares_the_tail_and_one_wave():
    assert S.stream_k_split(264, 132) == 0  # whole waves: chapter 03's kernel
    assert S.stream_k_split(144, 132) == 144  # fewer than two waves: all shared
    assert S.stream_k_split(300, 132) == 36 + 132
    assert S.stream_k_split(5, 132) == 5
    with pytest.raises(ValueError):
        S.stream_k_split(10, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("M,N,K,programs,sk", [(48, 40, 80, 4, None), (48, 40, 80, 4, 0), (48, 40, 80, 4, 9),
                                               (33, 17, 50, 3, 6), (16, 16, 16, 4, None), (64, 64, 160, 5, None),
                                               (20, 70, 37, 7, 10)])
def test_matches_float64_and_repeats_bit_for_bit(dtype, M, N, K, programs, sk):
    a = testing.randn(M, K, seed=1).to(dtype)
    b = testing.randn(K, N, seed=2).to(dtype)
    c = SK.matmul_streamk(a, b, CFG, num_programs=programs, sk_tiles=sk)
    testing.assert_close_matmul(c, a, b, label="matmul_streamk")
    assert torch.equal(c, SK.matmul_streamk(a, b, CFG, num_programs=programs, sk_tiles=sk))


def test_the_counters_are_back_at_zero_for_the_next_launch(monkeypatch):
    made = []
    real = SK.workspace

    def spy(*args, **kw):
        ws, cnt = real(*args, **kw)
        made.append(cnt)
        return ws, cnt

    monkeypatch.setattr(SK, "workspace", spy)
    a, b = testing.randn(48, 80, seed=3), testing.randn(80, 40, seed=4)
    SK.matmul_streamk(a, b, CFG, num_programs=4, sk_tiles=9)
    assert made and int(made[0].abs().sum()) == 0


def test_bad_arguments_are_refused():
    a, b = testing.randn(32, 32, seed=5), testing.randn(32, 32, seed=6)
    for sk in (-1, 5, True, 1.5):
        with pytest.raises(ValueError, match="sk_tiles"):
            SK.matmul_streamk(a, b, CFG, num_programs=2, sk_tiles=sk)
    with pytest.raises(ValueError, match="num_programs"):
        SK.matmul_streamk(a, b, CFG, num_programs=0)
    with pytest.raises((TypeError, ValueError)):
        SK.matmul_streamk(a, b[:16], CFG)
