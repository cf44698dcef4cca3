"""The course's matmul kernels against a float64 reference, in whichever world this runs.

In the interpreter (CI, no GPU) sizes are small; on a GPU the same tests run compiled at larger sizes.
"""
import numpy as np
import pytest
import torch

import kernels
from kernels import testing as T
from kernels.naive import naive_matmul
from kernels.tiled import GPU_CONFIGS, INTERPRETER_CONFIG, TileConfig, matmul, matmul_tiled

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
NAIVE_MAX = kernels.pick(cpu=20, gpu=300)  # the naive kernel costs ~2 ms a program in the interpreter


def _run(fn, a, b, **kw):
    out = T.poisoned_empty((a.shape[0], b.shape[1]), a.dtype)
    res = fn(a, b, out=out, **kw)
    assert res.data_ptr() == out.data_ptr()
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_random_ragged(dtype):
    rng = np.random.default_rng(1)
    for M, N, K in [(1, 1, 1)] + T.ragged_shapes(rng, 2, hi=NAIVE_MAX):
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        T.assert_close_matmul(_run(naive_matmul, a, b), a, b, label=f"naive {M}x{N}x{K}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["grouped", "row"])
def test_tiled_random_ragged(dtype, order):
    rng = np.random.default_rng(2)
    shapes = [(1, 1, 1), (64, 64, 64)] + T.ragged_shapes(rng, 3)
    for M, N, K in shapes:
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        out = _run(lambda a, b, out: matmul_tiled(a, b, order=order, out=out), a, b)
        T.assert_close_matmul(out, a, b, label=f"tiled/{order} {M}x{N}x{K}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_autotuned_matmul(dtype):
    rng = np.random.default_rng(3)
    for M, N, K in T.ragged_shapes(rng, 2) + [kernels.pick((96, 64, 128), (1024, 1024, 1024))]:
        a, b = T.randn(M, K, dtype=dtype), T.randn(K, N, dtype=dtype)
        T.assert_close_matmul(_run(matmul, a, b), a, b, label=f"matmul {M}x{N}x{K}")


@pytest.mark.skipif(not kernels.ON_GPU, reason="every GPU tile config is compiled and checked on the GPU; "
                    "the interpreter checks INTERPRETER_CONFIG and the small configs below")
@pytest.mark.parametrize("cfg", GPU_CONFIGS, ids=lambda c: c.short())
def test_every_gpu_config(cfg):
    a, b = T.randn(300, 200, dtype=torch.bfloat16), T.randn(200, 333, dtype=torch.bfloat16)
    T.assert_close_matmul(_run(lambda a, b, out: matmul_tiled(a, b, cfg, out=out), a, b), a, b)


@pytest.mark.parametrize("cfg", [TileConfig(16, 32, 16, 1, 4, 1), TileConfig(64, 16, 32, 3, 4, 1),
                                 INTERPRETER_CONFIG], ids=lambda c: c.short())
def test_small_configs(cfg):
    a, b = T.randn(70, 45, dtype=torch.float16), T.randn(45, 39, dtype=torch.float16)
    T.assert_close_matmul(_run(lambda a, b, out: matmul_tiled(a, b, cfg, out=out), a, b), a, b)


def test_non_contiguous_inputs():
    base_a = T.randn(80, 50)
    base_b = T.randn(60, 70)
    a = base_a.t()  # (50, 80), column-major
    b = base_b[::2, ::3]  # (30, 24) with strides (140, 3)
    a = a[:, :30]
    for fn in (naive_matmul, matmul, matmul_tiled):
        out = _run(fn, a, b)
        T.assert_close_matmul(out, a, b, label=fn.__name__)


def test_output_view_is_written():
    a, b = T.randn(33, 20), T.randn(20, 17)
    big = T.poisoned_empty((33, 40), torch.float32)
    out = big[:, 5:22]
    matmul_tiled(a, b, out=out)
    T.assert_close_matmul(out, a, b)
    assert torch.isnan(big[:, :5]).all() and torch.isnan(big[:, 22:]).all(), "wrote outside out"


BAD_INPUTS = [
    ("mismatched", lambda: (T.randn(4, 5), T.randn(6, 7)), ValueError, "inner dimensions"),
    ("1-D", lambda: (T.randn(4), T.randn(4, 2)), ValueError, "2-D"),
    ("3-D", lambda: (T.randn(2, 4, 4), T.randn(4, 2)), ValueError, "2-D"),
    ("int", lambda: (torch.ones(4, 4, dtype=torch.int32, device=kernels.DEVICE),) * 2, TypeError, "dtype"),
    ("float64", lambda: (T.randn(4, 4, dtype=torch.float64),) * 2, TypeError, "dtype"),
    ("mixed dtypes", lambda: (T.randn(4, 4), T.randn(4, 4, dtype=torch.float16)), TypeError, "cast"),
    ("empty", lambda: (T.randn(0, 4), T.randn(4, 3)), ValueError, "empty"),
    ("not a tensor", lambda: (np.ones((2, 2)), T.randn(2, 2)), TypeError, "torch.Tensor"),
    ("wrong device", lambda: (torch.randn(4, 4, device="meta"), torch.randn(4, 4, device="meta")),
     ValueError, "on meta"),
]


@pytest.mark.parametrize("fn", [naive_matmul, matmul, matmul_tiled], ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c[0])
def test_bad_inputs_raise_clearly(fn, case):
    _, make, exc, words = case
    a, b = make()
    with pytest.raises(exc, match=words):
        fn(a, b)


def test_bad_out_and_config():
    a, b = T.randn(8, 8), T.randn(8, 8)
    with pytest.raises(ValueError, match="out has shape"):
        matmul_tiled(a, b, out=T.randn(8, 9))
    with pytest.raises(TypeError, match="out has dtype"):
        matmul_tiled(a, b, out=T.randn(8, 8, dtype=torch.float16))
    with pytest.raises(ValueError, match="power of two"):
        matmul_tiled(a, b, TileConfig(block_m=48))
    with pytest.raises(ValueError, match="order"):
        matmul_tiled(a, b, order="diagonal")
    with pytest.raises(ValueError, match="block_k"):
        naive_matmul(a, b, block_k=12)


@pytest.mark.skipif(kernels.ON_GPU, reason="documents a quirk of Triton's interpreter")
def test_interpreter_bf16_dot_quirk_is_worked_around():
    """Triton's interpreter computes ``tl.dot`` on bf16 operands wrongly (shared/MEASURED.md).

    The tiled kernel upcasts bf16 tiles to fp32 in the interpreter (UPCAST). This test shows the raw
    kernel without the workaround is wrong, so the day the interpreter is fixed this test fails and
    tells us to drop the workaround.
    """
    from kernels.tiled import tiled_matmul_kernel

    a, b = T.randn(32, 32, dtype=torch.bfloat16), T.randn(32, 32, dtype=torch.bfloat16)
    c = T.poisoned_empty((32, 32), torch.bfloat16)
    tiled_matmul_kernel[(1,)](a, b, c, 32, 32, 32, 32, 1, 32, 1, 32, 1, BLOCK_M=32, BLOCK_N=32,
                              BLOCK_K=32, GROUP_M=1, GROUPED=True, EVEN_K=True, UPCAST=False)
    raw = T.rel_error(c, T.matmul_reference(a, b))
    assert raw > 1.0, f"the interpreter's bf16 tl.dot now gives rel error {raw:.2e}: drop UPCAST"
    T.assert_close_matmul(matmul_tiled(a, b), a, b)


def test_vector_add_and_doctor():
    from kernels.basics import add, doctor

    for n in (1, 1000, 4097):
        x, y = T.randn(n), T.randn(n)
        assert torch.equal(add(x, y, block=256), x + y)
    with pytest.raises(ValueError):
        add(T.randn(3), T.randn(4))
    rows = doctor()
    # the GPU test machine runs kernels only: no notebooks or animations there
    optional = {"ipywidgets", "manim", "matplotlib"} if kernels.ON_GPU else set()
    bad = [r for r in rows if not r[1] and r[0] not in optional]
    assert not bad, bad


def test_doctor_treats_manim_as_optional_and_a_missing_ipywidgets_as_bad(monkeypatch):
    import importlib

    from kernels import basics

    real = importlib.import_module

    def fake(name, *a, **kw):
        if name in ("manim", "ipywidgets"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **kw)

    monkeypatch.setattr(basics.importlib, "import_module", fake)
    rows = {item: (ok, detail) for item, ok, detail in basics.doctor()}
    assert rows["manim"][0] and "re-render the animations" in rows["manim"][1]
    assert not rows["ipywidgets"][0] and "No module named" in rows["ipywidgets"][1]


# --------------------------------------------------------------------------------------------------
# TileConfig validation: every field, in both worlds, before anything is launched
# --------------------------------------------------------------------------------------------------
BAD_CONFIGS = [
    (TileConfig(block_m=32.0), "matmul_tiled: block_m must be an int, got 32.0"),
    (TileConfig(block_n="32"), "matmul_tiled: block_n must be an int, got '32'"),
    (TileConfig(block_k=True), "matmul_tiled: block_k must be an int, got True"),
    (TileConfig(block_m=2**21), "matmul_tiled: block_m=2097152 is above 1048576, Triton's largest tensor"),
    (TileConfig(block_m=2048, block_n=1024, block_k=16, num_stages=1),
     "matmul_tiled: a block_m x block_n tile of 2048 x 1024 has 2097152 elements, above 1048576"),
    (TileConfig(block_k=8), "matmul_tiled: block_k=8 is below 16"),
    (TileConfig(block_m=48), "matmul_tiled: block_m=48 is not a power of two"),
    (TileConfig(group_m=1.5), "matmul_tiled: group_m must be an int >= 1, got 1.5"),
    (TileConfig(group_m=True), "matmul_tiled: group_m must be an int >= 1, got True"),
    (TileConfig(group_m=0), "matmul_tiled: group_m must be an int >= 1, got 0"),
    (TileConfig(num_warps=3), "matmul_tiled: num_warps=3 must be a power of two from 1 to 32"),
    (TileConfig(num_warps=64), "matmul_tiled: num_warps=64 must be a power of two from 1 to 32"),
    (TileConfig(num_warps=4.0), "matmul_tiled: num_warps must be an int >= 1, got 4.0"),
    (TileConfig(num_stages=0), "matmul_tiled: num_stages must be an int >= 1, got 0"),
    (TileConfig(num_stages=2.5), "matmul_tiled: num_stages must be an int >= 1, got 2.5"),
    (TileConfig(512, 512, 64, 8, 4, 3),
     "matmul_tiled: config 512x512x64 w4 s3 needs 768 KiB of shared memory for torch.float32 "
     "(3 stages x (512x64 + 64x512) x 4 bytes), more than the 227 KiB a Hopper GPU gives one program"),
    (TileConfig(128, 256, 64, 8, 8, 3), "needs 288 KiB of shared memory for torch.float32"),  # the measured case
]


@pytest.mark.parametrize("cfg,words", BAD_CONFIGS, ids=lambda c: repr(c)[:60] if isinstance(c, TileConfig) else "")
def test_bad_configs_get_one_clear_error(cfg, words):
    import re

    a, b = T.randn(8, 8), T.randn(8, 8)
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        matmul_tiled(a, b, cfg)
    assert "\n" not in str(info.value)


def test_config_must_be_a_tileconfig():
    with pytest.raises(TypeError, match="matmul_tiled: config must be a kernels.tiled.TileConfig, got tuple"):
        matmul_tiled(T.randn(8, 8), T.randn(8, 8), (32, 32, 32, 4, 4, 1))


def test_shared_memory_depends_on_the_dtype():
    from kernels.tiled import _check_config, pipeline_shared_memory

    cfg = TileConfig(128, 256, 64, 8, 8, 3)
    assert pipeline_shared_memory(cfg, torch.float32) == 288 * 1024  # default_config's measured case
    assert pipeline_shared_memory(cfg, torch.bfloat16) == 144 * 1024
    assert _check_config(cfg, torch.bfloat16) == cfg
    with pytest.raises(ValueError, match="matmul_persistent: config 128x256x64 w8 s3 needs 288 KiB"):
        _check_config(cfg, torch.float32, "matmul_persistent")


def test_every_shipped_config_passes(monkeypatch):
    from kernels import tiled, tma
    from kernels.tiled import _check_config

    sixteen = [*GPU_CONFIGS, INTERPRETER_CONFIG, *(c for c, _, _ in tma.TUNED_CONFIGS + tma.TUNED_CONFIGS_WS)]
    for on_gpu in (False, True):
        monkeypatch.setattr(tiled, "ON_GPU", on_gpu)
        for dtype in DTYPES:  # what each wrapper uses by default, float32 included
            defaults = [tiled.default_config(dtype), tiled.default_config(dtype, big=True),
                        tma.default_config(dtype, on_gpu)]
            for cfg in defaults + (sixteen if dtype != torch.float32 else []):
                assert _check_config(cfg, dtype) == cfg, (cfg, dtype)


def test_numpy_integers_in_a_config_become_ints():
    from kernels.tiled import _check_config

    i = np.int64
    cfg = TileConfig(i(16), i(32), np.int32(16), i(2), i(4), i(1))
    checked = _check_config(cfg, torch.float32)
    assert checked == TileConfig(16, 32, 16, 2, 4, 1)
    assert all(type(v) is int for v in checked.as_dict().values())
    a, b = T.randn(40, 20), T.randn(20, 50)
    T.assert_close_matmul(_run(lambda a, b, out: matmul_tiled(a, b, cfg, out=out), a, b), a, b)


def test_numpy_block_k_and_num_programs():
    from kernels.persistent import matmul_persistent

    a, b = T.randn(5, 9), T.randn(9, 3)
    T.assert_close_matmul(_run(lambda a, b, out: naive_matmul(a, b, out=out, block_k=np.int64(4)), a, b), a, b)
    with pytest.raises(ValueError, match="naive_matmul: block_k must be an int, got 4.0"):
        naive_matmul(a, b, block_k=4.0)
    cfg = TileConfig(16, 16, 16, 1, 4, 1)
    out = _run(lambda a, b, out: matmul_persistent(a, b, cfg, num_programs=np.int64(2), out=out), a, b)
    T.assert_close_matmul(out, a, b)
    with pytest.raises(ValueError, match="num_programs must be a positive int, got 2.0"):
        matmul_persistent(a, b, cfg, num_programs=2.0)
