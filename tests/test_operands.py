"""The operand contract every course matmul checks (kernels.operands), in whichever world this runs.

Bad operands get one clear error from every wrapper; an ``out`` that shares memory with an input gets
the right product (through a temporary); operands spanning 2**31 elements or more get 64-bit offsets.
The 2**31 cases are cheap on the CPU as views whose rows are 2**30 elements apart: ``empty_strided``
reserves the span, but only the pages a kernel touches are ever allocated.
"""
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kernels
from kernels import operands as O
from kernels import pingpong as pp
from kernels import testing as T
from kernels.naive import naive_matmul
from kernels.persistent import matmul_persistent
from kernels.tiled import TileConfig, matmul, matmul_tiled
from kernels.tma import matmul_tma, matmul_tma_tuned

ROOT = Path(__file__).resolve().parent.parent
DEV = kernels.DEVICE
SMALL = TileConfig(16, 16, 16, 1, 4, 1) if not kernels.ON_GPU else None  # None: each wrapper's default
HOPPER = pp.available()[0]


def _small(fn):
    """The wrapper with small tiles in the interpreter (fewer Python-level programs)."""
    if fn in (matmul_tiled, matmul_persistent, matmul_tma):
        return lambda a, b, out=None: fn(a, b, SMALL, out=out)
    return fn


WRAPPERS = [naive_matmul, matmul_tiled, matmul, matmul_persistent, matmul_tma, matmul_tma_tuned, pp.matmul_pingpong]
POINTER_WRAPPERS = [naive_matmul, matmul_tiled, matmul, matmul_persistent]  # any strides
TMA_WRAPPERS = [matmul_tma, matmul_tma_tuned] + ([pp.matmul_pingpong] if HOPPER else [])
ids = lambda f: f.__name__  # noqa: E731


# --------------------------------------------------------------------------------------------------
# spans and overlap: plain Python, checked against brute force
# --------------------------------------------------------------------------------------------------
def _offsets(shape, strides, offset=0):
    return [offset + i * strides[0] + j * strides[1] for i in range(shape[0]) for j in range(shape[1])]


def test_element_span_and_int64_decision():
    assert O.element_span(torch.empty(3, 5)) == 15
    assert O.element_span(torch.empty(5, 3).t()) == 15
    assert O.element_span(torch.empty(4, 10)[:, 2:5]) == 3 * 10 + 3
    assert O.element_span(torch.empty(0, 4)) == 0
    assert O.element_span(torch.empty(1, 1).expand(7, 9)) == 1
    assert not O.needs_int64(torch.empty(100, 100), torch.empty(1, 1).expand(2**31, 1))
    edge = torch.empty_strided((2, 1), (2**31 - 2, 1))  # span 2**31 - 1: the last offset is 2**31 - 2
    assert O.element_span(edge) == 2**31 - 1 and not O.needs_int64(edge)
    over = torch.empty_strided((3, 1), (2**30, 1))  # span 2**31 + 1
    assert O.element_span(over) == 2**31 + 1 and O.needs_int64(torch.empty(2, 2), over)


def test_internal_overlap_is_exact_for_2d_views():
    buf = torch.empty(200)
    for n0, n1, s0, s1 in itertools.product(range(1, 5), range(1, 5), range(0, 7), range(0, 7)):
        t = buf.as_strided((n0, n1), (s0, s1))
        offs = _offsets((n0, n1), (s0, s1))
        assert O.has_internal_overlap(t) == (len(set(offs)) < len(offs)), (n0, n1, s0, s1)
    assert O.has_internal_overlap(torch.empty(1, 4).expand(3, 4))
    assert not O.has_internal_overlap(torch.empty(4, 6).t()[1:3, ::2])


def test_may_share_memory_never_misses_and_is_exact_for_rows_equally_apart():
    rng = np.random.default_rng(5)
    buf = torch.empty(400)
    exact_seen = 0
    for _ in range(3000):
        views = []
        for _ in range(2):
            shape = tuple(int(x) for x in rng.integers(1, 6, 2))
            if rng.random() < 0.6:  # a block of a row-major (or column-major) 16-wide grid
                strides = (16, 1) if rng.random() < 0.5 else (1, 16)
            else:
                strides = tuple(int(x) for x in rng.integers(0, 9, 2))  # 0: expanded views too
            offset = int(rng.integers(0, 120))
            views.append((buf.as_strided(shape, strides, offset), _offsets(shape, strides, offset)))
        (x, ox), (y, oy) = views
        truth = bool(set(ox) & set(oy))
        got = O.may_share_memory(x, y)
        assert got or not truth, "a real overlap was missed"
        same_grid = x.stride() == y.stride() and x.stride() in ((16, 1), (1, 16))
        if same_grid:
            exact_seen += 1
            assert got == truth, (x.shape, x.stride(), x.storage_offset(), y.shape, y.storage_offset())
    assert exact_seen > 100
    assert not O.may_share_memory(torch.empty(3, 3), torch.empty(3, 3))
    side = torch.empty(4, 10)
    assert not O.may_share_memory(side[:, :5], side[:, 5:])  # side by side in one buffer
    assert O.may_share_memory(side[:, :6], side[:, 5:])
    row = side[0, :4]
    assert O.may_share_memory(row.expand(3, 4), row[None, 1:3].expand(2, 2))  # stride 0 on both sides
    assert not O.may_share_memory(row[:2].expand(3, 2), side[0:1, 2:4])
    assert not O.may_share_memory(side[0:1, 5:], side[1:, :5])  # one row beside a block
    assert O.may_share_memory(side[0:1, 5:], side[:, 9:]) and not O.may_share_memory(side[0:1, :9], side[:, 9:])


# --------------------------------------------------------------------------------------------------
# bad operands: the same clear error from every wrapper
# --------------------------------------------------------------------------------------------------
def _ok(dtype=torch.float16):
    return T.randn(16, 16, dtype=dtype), T.randn(16, 16, dtype=dtype)


BAD = [
    ("numpy a", lambda: (np.ones((16, 16), np.float32), _ok()[1], None), TypeError,
     r"a must be a torch.Tensor, got numpy.ndarray; convert it with torch.as_tensor\(a, dtype=torch.float32\)"
     r"\.to\(kernels.DEVICE\)"),
    ("list b", lambda: (_ok()[0], [[1.0] * 16] * 16, None), TypeError, "b must be a torch.Tensor, got list"),
    ("float64", lambda: (*_ok(torch.float64), None), TypeError,
     "a has dtype torch.float64: float64 is not computed by these kernels"),
    ("int64", lambda: (torch.ones(16, 16, dtype=torch.int64, device=DEV),) * 2 + (None,), TypeError,
     "a has dtype torch.int64: torch.int64 holds integers"),
    ("bool", lambda: (torch.ones(16, 16, dtype=torch.bool, device=DEV),) * 2 + (None,), TypeError, "booleans"),
    ("mixed dtypes", lambda: (_ok()[0], _ok(torch.bfloat16)[1], None), TypeError,
     "a is torch.float16 but b is torch.bfloat16; cast one"),
    ("1-D", lambda: (T.randn(16, dtype=torch.float16), _ok()[1], None), ValueError, "a must be 2-D"),
    ("empty", lambda: (T.randn(0, 16, dtype=torch.float16), _ok()[1], None), ValueError, "a is empty"),
    ("meta", lambda: (torch.ones(16, 16, dtype=torch.float16, device="meta"), _ok()[1], None), ValueError,
     r"a is on meta, but this process runs kernels on .*move it with \.to\(kernels.DEVICE\)"),
    ("inner dims", lambda: (_ok()[0], T.randn(8, 16, dtype=torch.float16), None), ValueError, "inner dimensions"),
    ("out numpy", lambda: (*_ok(), np.zeros((16, 16), np.float16)), TypeError, "out must be a torch.Tensor"),
    ("out float64", lambda: (*_ok(), torch.zeros(16, 16, dtype=torch.float64, device=DEV)), TypeError,
     "out has dtype torch.float64"),
    ("out dtype", lambda: (*_ok(), torch.zeros(16, 16, device=DEV)), TypeError,
     r"out has dtype torch.float32, expected torch.float16"),
    ("out shape", lambda: (*_ok(), torch.zeros(16, 24, dtype=torch.float16, device=DEV)), ValueError,
     r"out has shape \(16, 24\), expected \(16, 16\)"),
    ("out 3-D", lambda: (*_ok(), torch.zeros(1, 16, 16, dtype=torch.float16, device=DEV)), ValueError,
     "out must be 2-D"),
    ("out meta", lambda: (*_ok(), torch.zeros(16, 16, dtype=torch.float16, device="meta")), ValueError,
     "out is on meta"),
    ("out expanded", lambda: (*_ok(), torch.zeros(1, 16, dtype=torch.float16, device=DEV).expand(16, 16)),
     ValueError, r"elements of out share memory \(shape \(16, 16\), strides \(0, 1\)"),
    ("negated view", lambda: (_neg_a(), T.randn(16, 16), None), ValueError,
     r"a is a view with a pending negation \(a.is_neg\(\) is True\).*call a.resolve_neg\(\) first"),
    ("_neg_view b", lambda: (T.randn(16, 16), torch._neg_view(T.randn(16, 16)), None), ValueError,
     r"b is a view with a pending negation.*call b.resolve_neg\(\) first"),
    ("out negated", lambda: (*_ok(), torch._neg_view(torch.zeros(16, 16, dtype=torch.float16, device=DEV))),
     ValueError, r"out is a view with a pending negation.*out.resolve_neg\(\)"),
    ("sparse coo", lambda: (_ok()[0].to_sparse(), _ok()[1], None), ValueError,
     r"a must be a dense \(strided\) tensor, got torch.sparse_coo; use a.to_dense\(\)"),
    ("sparse csr", lambda: (_ok()[0], _ok()[1].to_sparse_csr(), None), ValueError,
     r"b must be a dense \(strided\) tensor, got torch.sparse_csr; use b.to_dense\(\)"),
    ("nested", lambda: (torch.nested.nested_tensor([T.randn(16, 16)] * 2, layout=torch.jagged), _ok()[1], None),
     ValueError, r"a must be a dense \(strided\) tensor, got a nested tensor"),
    ("out sparse", lambda: (*_ok(), torch.zeros(16, 16, dtype=torch.float16, device=DEV).to_sparse()),
     ValueError, "out must be a dense .strided. tensor, got torch.sparse_coo"),
    ("complex64", lambda: (torch.ones(16, 16, dtype=torch.complex64, device=DEV),) * 2 + (None,), TypeError,
     r"a has dtype torch.complex64: torch.complex64 holds complex numbers, and these kernels multiply real "
     r"matrices"),
]


def _neg_a():
    """float32 with the negative bit set: the imaginary part of a conjugated complex tensor."""
    z = torch.complex(T.randn(16, 16), T.randn(16, 16, seed=7))
    a = z.conj().imag
    assert a.dtype == torch.float32 and a.is_neg()
    return a


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("fn", WRAPPERS, ids=ids)
@pytest.mark.parametrize("case", BAD, ids=lambda c: c[0])
def test_bad_operands_raise_one_clear_error(fn, case):
    _, make, exc, words = case
    a, b, out = make()
    with pytest.raises(exc, match=words) as info:
        fn(a, b, out=out)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(fn.__name__ + ": ")


def test_a_negated_view_is_refused_and_resolving_it_gives_the_right_product():
    """Without the check every kernel returned -(A @ B): a view with the negative bit reads as -x in
    torch, but its memory holds x, which is what a kernel loads."""
    a, b = _neg_a(), T.randn(16, 8)
    with pytest.raises(ValueError, match="resolve_neg"):
        matmul_tiled(a, b, SMALL)
    fixed = a.resolve_neg()
    assert not fixed.is_neg() and torch.equal(fixed, a)
    ref = (a.double() @ b.double()).float()
    for fn in POINTER_WRAPPERS + [matmul_tma]:
        out = _small(fn)(fixed, b)
        # fp32 goes through the tensor cores as tf32 on a GPU: the dtype's tolerance, not 1e-4
        assert T.rel_error(out, ref) <= T.tolerance(torch.float32), fn.__name__
        assert T.rel_error(out, -ref) > 1, fn.__name__


def test_complex_dtype_advice():
    z = torch.ones(2, 2, dtype=torch.complex128)
    assert O._dtype_advice(z, "b").startswith("b has dtype torch.complex128: torch.complex128 holds complex numbers")
    assert "integers" not in O._dtype_advice(z, "b")


def test_cuda_device_problem_names_both_devices_and_the_fix():
    cuda = lambda i=None: torch.device("cuda", i) if i is not None else torch.device("cuda")  # noqa: E731
    assert O.cuda_device_problem("a", cuda(0), 0) is None
    assert O.cuda_device_problem("a", cuda(), 1) is None  # no index: the current device
    assert O.cuda_device_problem("a", torch.device("cpu"), 0) is None
    msg = O.cuda_device_problem("b", cuda(1), 0)
    assert msg == ("b is on cuda:1, but the current CUDA device is cuda:0, where Triton launches; run the call "
                   "under `with torch.cuda.device(b.device):` (or torch.cuda.set_device(1)) with every operand "
                   "on cuda:1")


@pytest.mark.skipif(not kernels.ON_GPU or torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("fn", WRAPPERS, ids=ids)
def test_operands_on_another_gpu_than_the_current_one(fn):
    a = T.randn(64, 64, dtype=torch.float16).to("cuda:1")
    b = T.randn(64, 64, dtype=torch.float16).to("cuda:1")
    with torch.cuda.device(0):
        with pytest.raises(ValueError, match=r"a is on cuda:1, but the current CUDA device is cuda:0"):
            fn(a, b)
    if fn is pp.matmul_pingpong and not HOPPER:
        return
    with torch.cuda.device(1):
        out = fn(a, b)
        torch.cuda.synchronize()
    assert out.device == a.device
    T.assert_close_matmul(out, a, b, label=f"{fn.__name__} on cuda:1")


# --------------------------------------------------------------------------------------------------
# out sharing memory with an input: the right product, through a temporary
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", POINTER_WRAPPERS, ids=ids)
def test_out_aliasing_an_input_gives_the_product_of_the_inputs_as_they_were(fn):
    a = torch.tensor([[1.0, 2.0]], device=DEV)
    res = fn(a, torch.ones(2, 2, device=DEV), out=a)
    assert res.data_ptr() == a.data_ptr()
    assert a.tolist() == [[3.0, 3.0]]
    for which in ("a", "b"):
        a, b = T.randn(1, 33), T.randn(33, 33)
        ref = T.matmul_reference(a, b)
        out = a if which == "a" else b[:1]
        assert _small(fn)(a, b, out=out) is out
        assert T.rel_error(out, ref) <= T.tolerance(torch.float32), which


@pytest.mark.parametrize("fn", TMA_WRAPPERS, ids=ids)
def test_out_aliasing_an_input_tma(fn):
    a, b = T.randn(1, 64, dtype=torch.float16), T.randn(64, 64, dtype=torch.float16)
    ref = T.matmul_reference(a, b)
    fn(a, b, out=a)
    assert T.rel_error(a, ref) <= T.tolerance(torch.float16)


def test_out_overlapping_part_of_an_input_and_blocks_side_by_side():
    buf = T.randn(40, 48)
    a, b = buf[:33, :20], T.randn(20, 17)
    out = buf[5:38, 10:27]  # covers columns 10..19 of a's rows 5..32
    ref = T.matmul_reference(a, b)
    outside = buf.clone()
    matmul_tiled(a, b, SMALL, out=out)
    assert T.rel_error(out, ref) <= T.tolerance(torch.float32)
    mask = torch.ones_like(buf, dtype=torch.bool)
    mask[5:38, 10:27] = False
    assert torch.equal(buf[mask], outside[mask]), "wrote outside out"
    # side by side in one buffer: no overlap, so the kernel writes out directly (no temporary)
    a, out = buf[:, :20], buf[:, 20:37]
    call = O.check_matmul("test", a, b, out)
    assert call.c is out and not call.int64
    ref = T.matmul_reference(a, b)
    matmul_tiled(a, b, SMALL, out=out)
    assert T.rel_error(out, ref) <= T.tolerance(torch.float32)


# --------------------------------------------------------------------------------------------------
# 64-bit offsets where an operand spans 2**31 elements
# --------------------------------------------------------------------------------------------------
def _far_rows(rows, cols, dtype=torch.float32):
    """A (rows, cols) view whose rows are 2**30 elements apart, holding random values."""
    t = torch.empty_strided((rows, cols), (2**30, 1), dtype=dtype, device=DEV)
    t.copy_(T.randn(rows, cols, dtype=dtype))
    return t


@pytest.mark.parametrize("fn", POINTER_WRAPPERS, ids=ids)
@pytest.mark.parametrize("where", ["out", "a", "b"])
def test_operands_spanning_2_31_elements_take_64_bit_offsets(fn, where):
    a, b = T.randn(3, 5), T.randn(5, 4)
    out = T.poisoned_empty((3, 4), torch.float32)
    if where == "out":
        out = torch.empty_strided((3, 4), (2**30, 1), device=DEV)
        T.poison(out)
    elif where == "a":
        a = _far_rows(3, 5)
    else:
        b = _far_rows(4, 5).t()  # (5, 4), columns 2**30 elements apart
    assert O.check_matmul("test", a, b, out).int64
    fn(a, b, out=out)
    T.assert_close_matmul(out, a, b, label=f"{fn.__name__}, {where} spanning 2**31")


def test_ordinary_operands_keep_32_bit_offsets():
    a, b = T.randn(300, 200), T.randn(200, 100)
    assert not O.check_matmul("test", a, b).int64
    assert not O.check_matmul("test", a.t().contiguous().t(), b[:, ::2], torch.empty(300, 50, device=DEV)).int64


@pytest.mark.skipif(kernels.ON_GPU, reason="shows the interpreter crashing without 64-bit offsets")
def test_the_32_bit_kernel_would_fail_on_that_layout():
    """Why the test above matters: the same launch with 32-bit offsets writes far outside C (here the
    interpreter dies of it), so a wrapper that forgot INT64 would not pass it."""
    code = ("import kernels, torch\n"
            "from kernels.naive import naive_matmul_kernel\n"
            "out = torch.empty_strided((3, 1), (2**30, 1)); out.fill_(0)\n"
            "a, b = torch.ones(3, 1), torch.ones(1, 1)\n"
            "naive_matmul_kernel[(3, 1)](a, b, out, 3, 1, 1, 1, 1, 1, 1, 2**30, 1, BLOCK_K=1, INT64=False)\n"
            "assert out.flatten().tolist() == [1.0, 1.0, 1.0], out\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0


# --------------------------------------------------------------------------------------------------
# launch grids
# --------------------------------------------------------------------------------------------------
def test_naive_grid_limit_is_on_axis_y_for_columns():
    a = T.randn(2, 1)
    with pytest.raises(ValueError, match=r"naive_matmul: the launch grid \(2, 65536\) has 65536 programs along y; "
                                         r"CUDA allows at most 65535 along y \(rows of C go on x, columns on y"):
        naive_matmul(a, T.randn(1, 65536))
    tall = torch.empty(1, 1, device=DEV).expand(2**31, 1)  # stride 0: no memory behind it
    with pytest.raises(ValueError, match="2147483648 programs along x; CUDA allows at most 2147483647 along x"):
        naive_matmul(tall, T.randn(1, 1))
    with pytest.raises(ValueError, match="programs along x"):
        matmul_tiled(torch.empty(1, 1, device=DEV).expand(2**40, 1), T.randn(1, 1))
    with pytest.raises(ValueError, match="programs along x"):
        matmul_persistent(*_ok(torch.float32), num_programs=2**31)
    with pytest.raises(ValueError, match="num_programs"):
        matmul_persistent(*_ok(torch.float32), num_programs=True)


def test_check_grid_names_the_axis():
    O.check_grid("f", (2**31 - 1, 65535, 65535))
    for grid, axis in [((2**31, 1), "x"), ((1, 65536), "y"), ((1, 1, 65536), "z")]:
        with pytest.raises(ValueError, match=f"along {axis}; CUDA allows"):
            O.check_grid("f", grid)


# --------------------------------------------------------------------------------------------------
# the exercise wrappers' helper
# --------------------------------------------------------------------------------------------------
def test_prepare_matmul():
    a, b = T.randn(5, 7), T.randn(7, 3)
    M, N, K, out = O.prepare_matmul("ex", a, b, blocks={"block_k": 32})
    assert (M, N, K) == (5, 3, 7) and out.shape == (5, 3) and out.dtype == a.dtype and torch.isnan(out).all()
    given = torch.empty(5, 3, device=DEV)
    assert O.prepare_matmul("ex", a, b, given)[3] is given
    with pytest.raises(ValueError, match="ex: out shares memory with a: the kernel would overwrite a"):
        O.prepare_matmul("ex", a[:, :3], T.randn(3, 3), out=a[:, :3])
    with pytest.raises(ValueError, match="out shares memory with a and b"):
        sq = T.randn(4, 4)
        O.prepare_matmul("ex", sq, sq, out=sq)
    with pytest.raises(ValueError, match="ex: block_k=24 is not a power of two"):
        O.prepare_matmul("ex", a, b, blocks={"block_k": 24})
    with pytest.raises(ValueError, match="block_n=8 is below 16: the course's tl.dot"):
        O.prepare_matmul("ex", a, b, blocks={"block_m": 32, "block_n": 8}, min_block=16)
    with pytest.raises(ValueError, match="must be an int"):
        O.prepare_matmul("ex", a, b, blocks={"block_k": 32.0})
    with pytest.raises(ValueError, match="above 1048576"):
        O.prepare_matmul("ex", a, b, blocks={"block_k": 2**21})
    with pytest.raises(TypeError, match="ex: a has dtype torch.int64"):
        O.prepare_matmul("ex", torch.ones(2, 2, dtype=torch.int64), b)
    far = torch.empty_strided((3, 7), (2**30, 1), device=DEV)
    with pytest.raises(ValueError, match="ex: out spans 2147483655 elements; the exercise kernels compute 32-bit"):
        O.prepare_matmul("ex", T.randn(3, 7), T.randn(7, 7), out=far)
    with pytest.raises(ValueError, match="ex: out spans 3221225472 elements"):  # C itself would be too big
        O.prepare_matmul("ex", torch.empty(1, 1, device=DEV).expand(3 * 2**15, 1), T.randn(1, 2**15))


# --------------------------------------------------------------------------------------------------
# kernels decorated for the other world
# --------------------------------------------------------------------------------------------------
def _plain_kernel(x_ptr):
    pass


def test_world_mismatch():
    import triton
    from triton.runtime.jit import JITFunction

    here = triton.jit(_plain_kernel)  # made now, for this world
    assert kernels.world_mismatch(here) is None
    assert kernels.world_mismatch(triton.autotune([triton.Config({})], key=[])(here)) is None
    assert kernels.world_mismatch(_plain_kernel) is None and kernels.world_mismatch(None) is None
    if kernels.ON_GPU:
        from triton.runtime.interpreter import InterpretedFunction

        other, made_for = InterpretedFunction(_plain_kernel), "Triton's interpreter"
    else:
        other, made_for = JITFunction(_plain_kernel), "compiled GPU code"
    for wrapped in (other, triton.heuristics({"X": lambda args: 1})(other)):
        msg = kernels.world_mismatch(wrapped)
        assert msg.startswith("`_plain_kernel` was decorated with @triton.jit before `import kernels` ran")
        assert made_for in msg and msg.endswith("restart the Python kernel and run `import kernels` first")
    with pytest.raises(RuntimeError, match="ex: `_plain_kernel` was decorated with @triton.jit before"):
        O.prepare_matmul("ex", *_ok(), kernel=other)


@pytest.mark.skipif(kernels.ON_GPU, reason="imports triton in the compiled setting, then kernels in the interpreter")
def test_importing_triton_before_kernels_says_what_to_do(tmp_path):
    """The learner's mistake as it happens: triton imported (compiled setting) and a kernel decorated
    before ``import kernels``. Switching Triton to the interpreter then is not enough (its own helpers,
    tl.zeros among them, were built for compiled code), so ``import kernels`` stops with what to do."""
    src = tmp_path / "learner.py"
    src.write_text("import triton\n\n@triton.jit\ndef my_kernel(x_ptr):\n    pass\n\n"
                   "try:\n    import kernels\nexcept RuntimeError as exc:\n    print(exc)\n")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TRITON_INTERPRET", "TTC_WORLD")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(src)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("`triton` was imported before `kernels`, so Triton set itself up for compiled "
                                  "GPU code, but this process runs kernels in the interpreter"), proc.stdout
    assert "Restart the Python kernel" in proc.stdout and "run `import kernels` before" in proc.stdout


# --------------------------------------------------------------------------------------------------
# Triton 3.6's interpreter and numpy 2.4
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world,triton,numpy,broken", [
    ("interpreter", "3.6.0", "2.4.0", True),
    ("interpreter", "3.6.0", "2.4.6", True),
    ("interpreter", "3.5.1", "2.4.0rc1", True),
    ("interpreter", "3.6.0", "2.3.5", False),
    ("interpreter", "3.7.0", "2.4.6", False),
    ("interpreter", "3.9.0", "2.4.6", False),
    ("interpreter", "3.6.0+git1a2b3c", "2.5.0", True),
    ("gpu", "3.6.0", "2.4.6", False),
])
def test_interpreter_numpy_problem(world, triton, numpy, broken):
    msg = kernels.interpreter_numpy_problem(world, triton, numpy)
    assert (msg is not None) == broken
    if broken:
        assert f"Triton {triton}'s interpreter cannot run with numpy {numpy}" in msg
        assert 'pip install "numpy<2.4" (or a Triton >= 3.7)' in msg


def test_this_setup_is_not_the_broken_combination():
    from importlib import metadata

    assert kernels.interpreter_numpy_problem(kernels.WORLD, metadata.version("triton"),
                                             metadata.version("numpy")) is None


# --------------------------------------------------------------------------------------------------
# GPU only: the logits of an LM head, 32769 x 65536 (2**31 + 65536 elements in C)
# --------------------------------------------------------------------------------------------------
LM_M, LM_N, LM_K = 32769, 65536, 16


@pytest.fixture(scope="module")
def lm_head():
    a = T.randn(LM_M, LM_K, dtype=torch.bfloat16, seed=1)
    b = T.randn(LM_K, LM_N, dtype=torch.bfloat16, seed=2)
    return a, b


@pytest.mark.skipif(not kernels.ON_GPU, reason="C has 2**31 + 65536 elements (4.3 GB): a GPU test")
@pytest.mark.parametrize("fn", [matmul_tiled, matmul_persistent, matmul, matmul_tma], ids=ids)
def test_lm_head_logits_need_64_bit_offsets(fn, lm_head):
    a, b = lm_head
    out = T.poisoned_empty((LM_M, LM_N), torch.bfloat16)
    fn(a, b, out=out)
    torch.cuda.synchronize()
    assert not T.unwritten(out).any(), "some logits were never written"
    gen = torch.Generator().manual_seed(3)
    rows = [0, 1, LM_M // 2, LM_M - 2, LM_M - 1] + torch.randint(0, LM_M, (11,), generator=gen).tolist()
    T.assert_close_matmul(out[rows], a[rows], b, label=f"{fn.__name__}: rows {rows[:5]}...")
    c0 = int(torch.randint(0, LM_N - 64, (1,), generator=gen))
    cols = [0, LM_N - 1] + list(range(c0, c0 + 64))
    T.assert_close_matmul(out[:, cols], a, b[:, cols], label=f"{fn.__name__}: columns {c0}..{c0 + 63}")
    del out
    torch.cuda.empty_cache()


@pytest.mark.skipif(not kernels.ON_GPU, reason="the grid check is also tested on the CPU; this is the real shape")
def test_lm_head_naive_refuses_the_grid(lm_head):
    a, b = lm_head
    with pytest.raises(ValueError, match="65536 programs along y; CUDA allows at most 65535"):
        naive_matmul(a, b)


def test_import_time_check_refuses_the_broken_pair(monkeypatch):
    import numpy
    import triton

    monkeypatch.setattr(triton, "__version__", "3.6.0")
    monkeypatch.setattr(numpy, "__version__", "2.4.1")
    monkeypatch.setattr(kernels, "WORLD", "interpreter")
    with pytest.raises(RuntimeError, match=r"Triton 3.6.0's interpreter cannot run with numpy 2.4.1.*numpy<2.4"):
        kernels._check_interpreter_numpy()
    monkeypatch.setattr(kernels, "WORLD", "gpu")
    kernels._check_interpreter_numpy()  # compiled kernels do not care


COMPILE_BOTH_PATHS = '''
import os, sys
import torch
torch.cuda.is_available = lambda: True  # compile as the GPU world does (no GPU is needed to compile)
import kernels
assert kernels.WORLD == "gpu"
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from kernels import naive, persistent, tiled

strides = {"stride_am": "i32", "stride_ak": "constexpr", "stride_bk": "i32", "stride_bn": "constexpr",
           "stride_cm": "i32", "stride_cn": "constexpr"}  # unit strides: constexprs, as Triton specializes them
sig = {"a_ptr": "*bf16", "b_ptr": "*bf16", "c_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32", **strides}
ones = {"stride_ak": 1, "stride_bn": 1, "stride_cn": 1}
tile = {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8, "GROUPED": True, "EVEN_K": False,
        "UPCAST": False}
for int64 in (False, True):
    for name, fn, extra, consts in [
            ("naive", naive.naive_matmul_kernel, {}, {"BLOCK_K": 64}),
            ("tiled", tiled.tiled_matmul_kernel, {}, tile),
            ("persistent", persistent.persistent_matmul_kernel, {"num_programs": "i32"}, tile)]:
        consts = {**ones, **consts, "INT64": int64}
        signature = {**sig, **extra, **{k: "constexpr" for k in consts if k not in sig}}
        k = triton.compile(ASTSource(fn, signature, consts), target=GPUTarget("cuda", 90, 32),
                           options={"num_warps": 4})
        print(name, int64, k.asm["ptx"].count("mul.lo.s64"))
'''


@pytest.mark.skipif(kernels.ON_GPU, reason="on a GPU the LM-head tests run both paths for real")
def test_both_offset_widths_compile_for_hopper(tmp_path):
    """The 64-bit variants cannot run in the interpreter at 2**31 sizes on every machine, but they
    compile for sm_90 anywhere (Triton's compiler and ptxas need no GPU): they multiply in 64 bits,
    and the ordinary variants keep 32-bit offsets."""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TRITON_INTERPRET", "TTC_WORLD")}
    env.update(PYTHONPATH=str(ROOT), TRITON_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", COMPILE_BOTH_PATHS], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line]
    counts = {(name, flag == "True"): int(n) for name, flag, n in rows}
    assert len(counts) == 6, proc.stdout
    for name in ("naive", "tiled", "persistent"):
        assert counts[(name, False)] == 0, f"{name}: the ordinary kernel computes 64-bit offsets"
        assert counts[(name, True)] > 0, f"{name}: the INT64 kernel has no 64-bit multiply"
