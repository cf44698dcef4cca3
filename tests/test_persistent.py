"""Chapter 03's persistent matmul and its schedule (interpreter on CPU, compiled on a GPU)."""
import numpy as np
import pytest
import torch

from kernels import testing as T
from kernels.persistent import INTERPRETER_SMS, matmul_persistent, sm_count
from kernels.schedule import persistent_tiles, waves
from kernels.tiled import TileConfig


@pytest.mark.parametrize("num_tiles,num_programs", [(1, 1), (1, 4), (7, 3), (132, 132), (133, 132),
                                                    (512, 132), (5, 8)])
def test_every_tile_exactly_once_across_programs(num_tiles, num_programs):
    got = [t for p in range(num_programs) for t in persistent_tiles(p, num_programs, num_tiles)]
    assert sorted(got) == list(range(num_tiles))
    loads = [len(persistent_tiles(p, num_programs, num_tiles)) for p in range(num_programs)]
    assert max(loads) - min(loads) <= 1  # the round-robin split is as even as it can be


def test_waves():
    assert waves(132, 132) == (1, 1.0)
    assert waves(133, 132) == (2, 1 / 132)
    assert waves(512, 132) == (4, (512 - 396) / 132)
    assert waves(0, 132) == (0, 0.0)
    with pytest.raises(ValueError):
        waves(10, 0)
    with pytest.raises(ValueError):
        persistent_tiles(3, 3, 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_persistent_random_ragged(dtype):
    rng = np.random.default_rng(7)
    for M, N, K in [(1, 1, 1), (64, 64, 64)] + T.ragged_shapes(rng, 3):
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        out = T.poisoned_empty((M, N), dtype)
        matmul_persistent(a, b, out=out)
        T.assert_close_matmul(out, a, b, label=f"persistent {M}x{N}x{K}")


@pytest.mark.parametrize("num_programs", [1, 2, 3, 5, 64])
def test_any_number_of_programs_covers_all_tiles(num_programs):
    a, b = T.randn(100, 70), T.randn(70, 90)  # 4x3 = 12 tiles of 32x32 in the interpreter config
    cfg = TileConfig(32, 32, 32, 2, 4, 1)
    out = T.poisoned_empty((100, 90), torch.float32)
    matmul_persistent(a, b, cfg, num_programs=num_programs, out=out)
    T.assert_close_matmul(out, a, b)


def test_default_programs_and_bad_input():
    assert sm_count() >= 1
    if not torch.cuda.is_available():
        assert sm_count() == INTERPRETER_SMS
    with pytest.raises(ValueError, match="num_programs"):
        matmul_persistent(T.randn(8, 8), T.randn(8, 8), num_programs=0)
    with pytest.raises(ValueError, match="inner dimensions"):
        matmul_persistent(T.randn(8, 8), T.randn(9, 8))


def test_simulated_launches():
    from kernels.schedule import makespan, simulate_launch, utilisation

    for persistent in (False, True):
        spans = simulate_launch(10, 4, tile_time=1.0, block_overhead=0.1, persistent=persistent)
        assert sorted(s.tile for s in spans) == list(range(10))
        for sm in range(4):  # no SM runs two tiles at once
            mine = sorted((s.start, s.end) for s in spans if s.sm == sm)
            assert all(a[1] <= b[0] + 1e-12 for a, b in zip(mine, mine[1:]))
    naive = simulate_launch(10, 4, 1.0, 0.1)
    pers = simulate_launch(10, 4, 1.0, 0.1, persistent=True)
    assert makespan(naive) == pytest.approx(3 * 1.1)  # 3 waves, each paying the overhead
    assert makespan(pers) == pytest.approx(0.1 + 3.0)  # the overhead once, then 3 tiles back to back
    assert utilisation(pers, 4) == pytest.approx(10 / (4 * 3.1))
    # 5 tiles on 4 SMs: a second wave with one tile, whichever way they are launched
    assert makespan(simulate_launch(5, 4, 1.0, 0.0)) == pytest.approx(2.0)
    # uneven tiles: the naive launch balances (a free SM takes the next tile), round-robin does not
    d = [3.0, 1.0, 1.0, 1.0]
    assert makespan(simulate_launch(4, 2, durations=d, block_overhead=0)) == pytest.approx(3.0)
    assert makespan(simulate_launch(4, 2, durations=d, block_overhead=0, persistent=True)) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        simulate_launch(3, 0)
