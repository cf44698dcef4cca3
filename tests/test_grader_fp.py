"""The FP8 and FP4 exercises (chapters 06 and 07): the solutions score full marks, the untouched exercises
zero, and wrong answers (the solution with one piece swapped, or a file in ``tests/answers/`` whose name
starts with ``a06``/``a07``, ``m06``, ``r07`` or ``c06``/``c07``) get the verdict and the message they must
get. Plus the sandbox's parts these exercises added: host-side casts to and from 8-bit and 4-bit floats,
PyTorch's float4/float8 dtypes in plain-PyTorch answers, calls into the course's reference code, the
dtypes of ``tl.dot``'s operands, and the strict reading of a kernel's source (``guard.python_calls``).

Everything is graded in this process (``grader.checks.grade``) except one run of ``python -m grader`` over
the two solution notebooks, as a learner's notebook is graded."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import kernels
from grader import checks
from grader.guard import DtypeGuard, Refused, Sandbox, low_precision_cast, watch_files
from grader.registry import EXERCISES
from test_grader import as_module  # a notebook's definitions, imported from a file

ROOT = Path(__file__).resolve().parent.parent
CH06 = ROOT / "solutions" / "ch06_fp8_quantize.ipynb"
CH07 = ROOT / "solutions" / "ch07_fp4_pack.ipynb"
ANSWERS = ROOT / "tests" / "answers"
FP_EXERCISES = {"quantize_e4m3": CH06, "scaled_matmul_e4m3": CH06, "pack_e2m1": CH07, "unpack_e2m1": CH07,
                "dequantize_mxfp4": CH07}
_count = iter(range(10**6))


def variant(src: Path, swaps: dict):
    nb = nbformat.read(str(src), as_version=4)
    for cell_id, pairs in swaps.items():
        cell = next(c for c in nb.cells if c.get("id") == cell_id)
        for old, new in pairs:
            assert old in cell.source, f"{old!r} is not in cell {cell_id}: the solution changed"
            cell.source = cell.source.replace(old, new)
    return nb


def grade_variant(src, swaps, name, tmp_path, seed=1234):
    module = as_module(variant(src, swaps), tmp_path / f"fp_answer_{name}_{next(_count)}.py")
    return checks.grade(name, getattr(module, name), seed=seed)


def grade_file(stem, name, seed=1234):
    spec = importlib.util.spec_from_file_location(f"fp_answer_{stem}", ANSWERS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return checks.grade(name, getattr(module, name), seed=seed)


def has(message, words):
    return any(w in message for w in ((words,) if isinstance(words, str) else words))


# ------------------------------------------------------------------------------------------------
# solutions and stubs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FP_EXERCISES))
def test_solution_scores_full_marks(name, tmp_path):
    r = grade_variant(FP_EXERCISES[name], {}, name, tmp_path, seed=4321)
    assert r.passed and r.points == EXERCISES[name].points, r.report()
    assert all(s.status in ("pass", "skip") for s in r.subchecks)


@pytest.mark.parametrize("name", sorted(FP_EXERCISES))
def test_untouched_exercise_is_not_implemented(name, tmp_path):
    nb = nbformat.read(str(ROOT / "exercises" / FP_EXERCISES[name].name), as_version=4)
    module = as_module(nb, tmp_path / f"fp_stub_{name}_{next(_count)}.py")
    r = checks.grade(name, getattr(module, name), seed=7)
    assert r.status == "not_implemented" and r.points == 0, r.report()


def test_the_solutions_score_full_marks_headless():
    """``python -m grader`` on the two solution notebooks, each in a Jupyter kernel of its own."""
    proc = subprocess.run([sys.executable, "-m", "grader", str(CH06), str(CH07), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    results = {r["name"]: r for nb in report["notebooks"] for r in nb["exercises"]}
    assert set(results) == set(FP_EXERCISES)
    assert all(r["status"] == "pass" for r in results.values()), results
    assert all(not nb["cell_issues"] for nb in report["notebooks"])


# ------------------------------------------------------------------------------------------------
# quantize_e4m3: wrong kernels
# ------------------------------------------------------------------------------------------------
ROUND = "ch06-round"
QKERNEL = "ch06-kernel"
WRONG_QUANTIZE = {
    # the interpreter's own cast rounds ties up (a GPU's cast is right: interpreter only)
    "plain_cast": ({QKERNEL: [("q = round_e4m3(tl.abs(v))", "q = tl.abs(v)")]}, "fail",
                   ("rounds to the one with the even", "does not round as a GPU's does")),
    "ties_away": ({ROUND: [("r = (t + 8388608.0) - 8388608.0", "r = tl.floor(t + 0.5)")]}, "fail",
                  "rounds to the one with the even"),
    "no_subnormal_step": ({ROUND: [("tl.maximum((bits >> 23) - 127, -6)", "(bits >> 23) - 127")]}, "fail",
                          ("subnormals", "NaN")),
    "sign_lost": ({QKERNEL: [("q = tl.where(v < 0, -q, q)", "q = q")]}, "fail", "the sign is lost"),
    "zero_row_divides": ({QKERNEL: [("tl.where(row_amax > 0, row_amax / 448.0, 1.0)", "row_amax / 448.0")]}, "fail",
                         "all zeros"),
    "scale_inverted": ({QKERNEL: [("tl.store(s_ptr + row, scale)", "tl.store(s_ptr + row, 1.0 / scale)")]}, "fail",
                       "expected amax / 448"),
    "first_block_only": ({QKERNEL: [("    for n0 in range(0, N, BLOCK_N):\n        cols = n0 + tl.arange(0, BLOCK_N)\n"
                                     "        v =", "    for n0 in range(0, BLOCK_N, BLOCK_N):\n"
                                                   "        cols = n0 + tl.arange(0, BLOCK_N)\n        v =")]},
                         "fail", "never stored"),
    "no_store_mask": ({QKERNEL: [("q.to(tl.float8e4nv), mask=cols < N)", "q.to(tl.float8e4nv))")]}, "fail",
                      ("outside", "wrote")),
}
# the interpreter's cast and trace: a GPU's cast rounds to nearest even and saturates (it also rounds what a
# rounding without the subnormal step leaves off the grid), and unstored elements are told from the trace
INTERPRETER_ONLY = {"plain_cast", "no_subnormal_step", "no_store_mask", "first_block_only",
                    "float16_accumulator", "dequant_k_mask_long"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", sorted(WRONG_QUANTIZE))
def test_wrong_quantize_kernels_fail(case, tmp_path):
    if kernels.ON_GPU and case in INTERPRETER_ONLY:
        pytest.skip("judged in the interpreter")
    swaps, status, words = WRONG_QUANTIZE[case]
    r = grade_variant(CH06, swaps, "quantize_e4m3", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert has(r.message, words), r.report()


# ------------------------------------------------------------------------------------------------
# scaled_matmul_e4m3: wrong kernels
# ------------------------------------------------------------------------------------------------
MM = "ch06-mm-kernel"
WRONG_SCALED = {
    "per_tensor_a": ({MM: [("sa_ptr + rows * stride_sa", "sa_ptr + rows * 0")]}, "fail", "row-0 scale"),
    "per_tensor_b": ({MM: [("sb_ptr + cols * stride_sb", "sb_ptr + cols * 0")]}, "fail", "row-0 scale"),
    "no_scales": ({MM: [("c = acc * sa[:, None] * sb[None, :]", "c = acc")]}, "fail", "no scales at all"),
    "upcast_before_dot": ({MM: [("acc = tl.dot(a, b, acc)", "acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)")]},
                          "refused", "runs tl.dot on fp32 tiles"),
    "no_dot": ({MM: [("acc = tl.dot(a, b, acc)", "acc += tl.sum(a.to(tl.float32)[:, :, None] * "
                                                  "b.to(tl.float32)[None, :, :], axis=1)")]},
               "refused", "without tl.dot"),
    "float16_accumulator": ({MM: [("acc = tl.dot(a, b, acc)", "acc = tl.dot(a, b, acc.to(tl.float16)).to(tl.float32)")]},
                            "fail", ("positive values, long K", "NaN or inf")),
    "k_mask_short": ({MM: [("(ks[None, :] < K), other=0.0)", "(ks[None, :] < K - 1), other=0.0)")]}, "fail", "C["),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a float16 accumulator overflows, in numpy
@pytest.mark.parametrize("case", sorted(WRONG_SCALED))
def test_wrong_scaled_matmul_kernels_fail(case, tmp_path):
    if kernels.ON_GPU and case in INTERPRETER_ONLY:
        pytest.skip("judged in the interpreter")
    swaps, status, words = WRONG_SCALED[case]
    r = grade_variant(CH06, swaps, "scaled_matmul_e4m3", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert has(r.message, words), r.report()


# ------------------------------------------------------------------------------------------------
# chapter 07: wrong answers
# ------------------------------------------------------------------------------------------------
WRONG_FP4 = {
    "pack_orders_swapped": ("pack_e2m1", {"ch07-pack": [('if order == "low_first":', 'if order == "high_first":')]},
                            "fail", "nibbles are swapped"),
    "pack_second_unmasked_shift": ("pack_e2m1", {"ch07-pack": [("first | (second << 4)", "first | (second << 3)")]},
                                   "fail", "expected 0x"),
    "unpack_orders_swapped": ("unpack_e2m1", {"ch07-unpack": [('if order == "low_first" else', 'if order == "high_first" else')]},
                              "fail", "nibble"),
    "unpack_no_mask": ("unpack_e2m1", {"ch07-unpack": [("low, high = packed & 15, packed >> 4",
                                                        "low, high = packed, packed >> 4")]}, "fail", "mask with & 15"),
    "dequant_nibbles_swapped": ("dequantize_mxfp4", {"ch07-kernel": [("shift = 4 * (ks % 2)", "shift = 4 - 4 * (ks % 2)")]},
                                "fail", "other code of the byte"),
    "dequant_scale_per_32_bytes": ("dequantize_mxfp4", {"ch07-kernel": [("(ks // 32)[None, :]", "(ks // 64)[None, :]")]},
                                   "fail", "not per 32 bytes"),
    "dequant_no_scale": ("dequantize_mxfp4", {"ch07-kernel": [("w = e2m1_to_float(code) * scale", "w = e2m1_to_float(code)")]},
                         "fail", "scale 2**(e - 127) is missing"),
    "dequant_sign_lost": ("dequantize_mxfp4", {"ch07-e2m1": [("(code & 8) != 0", "(code & 16) != 0")]}, "fail",
                          "the sign is wrong"),
    "dequant_k_mask_long": ("dequantize_mxfp4", {"ch07-kernel": [("(ks[None, :] < K)", "(ks[None, :] < K + 32)")]},
                            "fail", ("outside", "wrote")),
    "dequant_subnormal_wrong": ("dequantize_mxfp4", {"ch07-e2m1": [("tl.where(e == 0, 0.5 * m, normal)", "normal")]},
                                "fail", "is not the value of code"),
}


@pytest.mark.parametrize("case", sorted(WRONG_FP4))
def test_wrong_fp4_answers_fail(case, tmp_path):
    if kernels.ON_GPU and case in INTERPRETER_ONLY:
        pytest.skip("judged in the interpreter")
    name, swaps, status, words = WRONG_FP4[case]
    r = grade_variant(CH07, swaps, name, tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert has(r.message, words), r.report()


# ------------------------------------------------------------------------------------------------
# answers in tests/answers/
# ------------------------------------------------------------------------------------------------
ANSWER_FILES = {
    "a06q_host_cast": ("quantize_e4m3", {"refused"}, "a cast on the host from torch.float32 to torch.float8_e4m3fn"),
    "a06q_library": ("quantize_e4m3", {"refused"}, ("course's own kernel", "quantize.py")),
    "a06q_course_round": ("quantize_e4m3", {"refused"}, "kernels.quantize.round_to_e4m3"),
    "m06q_per_tensor": ("quantize_e4m3", {"fail"}, "every row got the same scale"),
    "a06s_scaled_mm": ("scaled_matmul_e4m3", {"refused"}, "_scaled_mm"),
    "a06s_host_dequant": ("scaled_matmul_e4m3", {"refused"}, "from torch.float8_e4m3fn to torch.bfloat16"),
    "a07p_library": ("pack_e2m1", {"refused"}, "kernels.fp4.pack"),
    "a07p_float4": ("pack_e2m1", {"refused"}, "float4_e2m1fn_x2"),
    "a07u_library": ("unpack_e2m1", {"refused"}, "kernels.fp4.unpack"),
    "c07p_thread_library": ("pack_e2m1", {"refused"}, "a thread"),
    # the grader's profile hook (the watch on calls into kernels/fp4.py) switched off
    "c07p_setprofile_library": ("pack_e2m1", {"refused"}, "sys.setprofile"),
    "c07u_thread_float4": ("unpack_e2m1", {"refused"}, "a thread"),
    "c07u_w4a16_library": ("unpack_e2m1", {"refused"}, "it calls kernels.w4a16"),
    "a07d_library": ("dequantize_mxfp4", {"refused"}, "Tensor.numpy()"),
    "a07d_float4_cast": ("dequantize_mxfp4", {"refused"}, "from torch.float4_e2m1fn_x2 to torch.bfloat16"),
    "r07d_lookup_table": ("dequantize_mxfp4", {"pass"}, ""),
    # plain Python reached from inside a kernel (the interpreter would run it on the CPU)
    "c06q_getattr_pycall": ("quantize_e4m3", {"refused"}, "calling the result of `getattr(H, 'r')`"),
    "c06q_local_alias": ("quantize_e4m3", {"refused"}, "calling `f`, a variable of the kernel"),
    "c06q_namespace_alias": ("quantize_e4m3", {"refused"}, "using `H` (a SimpleNamespace)"),
    "c06q_module_alias": ("quantize_e4m3", {"refused"}, "using `helpers` (the module helpers)"),
    "c06q_pyfunc_argument": ("quantize_e4m3", {"refused"}, "calling `ROUND`, a parameter of the kernel"),
    "c06q_namespace_argument": ("quantize_e4m3", {"refused"}, "passing SimpleNamespace P= to the kernel _quantize"),
    "c06q_handle_data": ("quantize_e4m3", {"refused"}, "reading `t.handle`"),
    "c06s_pycall_dot": ("scaled_matmul_e4m3", {"refused"}, "using `_numpy_mm` (a Python function)"),
    # the course's reference called on the host, under another name
    "c06q_host_fp8_call": ("quantize_e4m3", {"refused"}, "calling kernels.fp8.quantize (in kernels/fp8.py)"),
    "c07d_host_fp4_call": ("dequantize_mxfp4", {"refused"}, "calling kernels.fp4.decode (in kernels/fp4.py)"),
    # tl.dot on the e4m3 tiles, its result unused
    "c06s_decoy_dot": ("scaled_matmul_e4m3", {"refused"}, "C did not double"),
    # one fixed block or tile, whatever the size
    "c06q_one_block": ("quantize_e4m3", {"fail"}, "never stored"),
    "c06s_one_tile": ("scaled_matmul_e4m3", {"fail"}, "never written"),
    # right answers written another way
    "c06q_bits_round": ("quantize_e4m3", {"pass"}, ""),
    "c06q_whole_row": ("quantize_e4m3", {"pass"}, ""),
    "c06s_blocks_64_32_128_trans": ("scaled_matmul_e4m3", {"pass"}, ""),
}
# judged from what the interpreter does: the doubled tl.dot of the replay, the trace's stores
ANSWERS_INTERPRETER_ONLY = {"c06s_decoy_dot", "c06q_one_block"}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("stem", sorted(ANSWER_FILES))
def test_answer_files_get_their_verdict(stem):
    if kernels.ON_GPU and stem in ANSWERS_INTERPRETER_ONLY:
        pytest.skip("judged in the interpreter")
    name, statuses, words = ANSWER_FILES[stem]
    r = grade_file(stem, name)
    assert r.status in statuses, r.report()
    assert has(r.message, words), r.report()
    assert (r.points == r.max_points) == (r.status == "pass")


def test_a_copy_of_x_made_before_the_launch_is_refused(tmp_path):
    swaps = {"ch06-wrapper": [("quantize_e4m3_kernel[(M,)](x, q,", "x = x.clone()\n    quantize_e4m3_kernel[(M,)](x, q,")]}
    r = grade_variant(CH06, swaps, "quantize_e4m3", tmp_path)
    assert r.status == "refused" and "x itself was never passed to your kernel" in r.message, r.report()


def test_out_is_written_in_place(tmp_path):
    swaps = {"ch07-wrapper": [("    return out", "    return out.clone()")]}
    r = grade_variant(CH07, swaps, "dequantize_mxfp4", tmp_path)
    assert r.status in ("refused", "fail") and r.points == 0, r.report()


# ------------------------------------------------------------------------------------------------
# the sandbox's parts for these exercises
# ------------------------------------------------------------------------------------------------
def test_low_precision_casts_are_named():
    x = torch.ones(2, 2)
    q = torch.zeros(2, 2, dtype=torch.float8_e4m3fn)
    assert low_precision_cast("_to_copy", (x,), {"dtype": torch.float8_e4m3fn}) == "torch.float32 to torch.float8_e4m3fn"
    assert low_precision_cast("copy_", (x, q), {}) == "torch.float8_e4m3fn to torch.float32"
    assert low_precision_cast("_to_copy", (x,), {"dtype": torch.bfloat16}) is None
    assert low_precision_cast("_to_copy", (q,), {}) is None  # a copy in its own dtype
    assert low_precision_cast("view", (q, torch.uint8), {}) is None  # bytes reinterpreted, not converted


def test_the_sandbox_refuses_host_casts_only_when_asked():
    x = torch.randn(3, 3, device=kernels.DEVICE)
    with Sandbox() as box:  # the matmul exercises: casts are fine
        x.to(torch.float8_e4m3fn)
    assert not box.refusals
    with Sandbox(low_precision_casts=False) as box:
        q = torch.full((3, 3), float("nan"), dtype=torch.float8_e4m3fn, device=kernels.DEVICE)  # allocation: fine
        q.view(torch.uint8).fill_(0x38)  # bytes: fine
        with pytest.raises(Refused):
            x.to(torch.float8_e4m3fn)
        with pytest.raises(Refused):
            q.float()
        with pytest.raises(Refused):
            torch.empty(3, 3, device=kernels.DEVICE).copy_(q)
    assert len(box.refusals) == 3 and all("a cast on the host" in r for r in box.refusals)
    assert q.view(torch.uint8).eq(0x38).all()


def test_dtype_guard_and_watched_files():
    codes = torch.arange(16, dtype=torch.uint8)
    with DtypeGuard() as guard:
        packed = codes[0::2] | (codes[1::2] << 4)  # integer bit operations run
        with pytest.raises(Refused):
            packed.view(torch.float4_e2m1fn_x2)
    assert len(guard.refusals) == 1 and "float4_e2m1fn_x2" in guard.refusals[0]
    from kernels import fp4

    with watch_files([ROOT / "kernels" / "fp4.py"]) as calls:
        np.asarray(fp4.pack(np.zeros(4, np.uint8)))
        packed.clone()
    assert calls == ["kernels.fp4.pack"]


def test_the_trace_keeps_the_dot_operand_dtypes():
    if kernels.ON_GPU:
        pytest.skip("the interpreter's trace")
    import triton
    import triton.language as tl

    @triton.jit
    def dot(a_ptr, b_ptr, c_ptr, UP: tl.constexpr):
        i = tl.arange(0, 32)
        a = tl.load(a_ptr + i[:, None] * 32 + i[None, :])
        b = tl.load(b_ptr + i[:, None] * 32 + i[None, :])
        if UP:
            a, b = a.to(tl.float32), b.to(tl.float32)
        tl.store(c_ptr + i[:, None] * 32 + i[None, :], tl.dot(a, b))

    a = torch.ones(32, 32).to(torch.float8_e4m3fn)
    c = torch.empty(32, 32)
    for up, want in ((False, {("fp8e4nv", "fp8e4nv")}), (True, {("fp32", "fp32")})):
        with Sandbox(operands={"qa": a, "C": c}, read_only=("qa",)) as box:
            dot[(1,)](a, a, c, UP=up)
        (program,) = box.launches[0].trace.programs.values()
        assert program.dot_types == want


def test_stores_into_a_read_only_operand_are_faults():
    if kernels.ON_GPU:
        pytest.skip("the interpreter's trace")
    import triton
    import triton.language as tl

    @triton.jit
    def scribble(x_ptr):
        tl.store(x_ptr + tl.arange(0, 4), 0.0)

    x = torch.ones(2, 2)
    with Sandbox(operands={"x": x}, read_only=("x",)) as box:
        with pytest.raises(Exception):
            scribble[(1,)](x)
    assert box.faults and "x is an input, which the kernel only reads" in box.faults[0]


# ------------------------------------------------------------------------------------------------
# the given wrappers refuse bad input with one line, in the solutions and the exercises alike
# ------------------------------------------------------------------------------------------------
def _fp8(rows, cols):
    return torch.zeros(rows, cols, device=kernels.DEVICE).to(torch.float8_e4m3fn)


def _ones(*shape, dtype=torch.float32):
    return torch.ones(*shape, dtype=dtype, device=kernels.DEVICE)


def _u8(*shape):
    return torch.zeros(*shape, dtype=torch.uint8, device=kernels.DEVICE)


BAD_INPUT = {
    "quantize_e4m3": [
        ((np.ones((2, 2), np.float32),), {}, TypeError, "x must be a torch.Tensor"),
        ((_ones(2, 16, dtype=torch.float64),), {}, TypeError, "float32, float16 or bfloat16"),
        ((_ones(16),), {}, ValueError, "2-D"),
        ((_ones(16, 4).t(),), {}, ValueError, "contiguous rows"),
        ((torch.tensor([[1.0, float("nan")]], device=kernels.DEVICE),), {}, ValueError, "NaN or inf"),
        ((_ones(2, 16),), {"block_n": 100}, ValueError, "block_n"),
    ],
    "scaled_matmul_e4m3": [
        ((_ones(4, 32), _ones(4, 1), _fp8(5, 32), _ones(5, 1)), {}, TypeError, "qa must be float8_e4m3fn"),
        ((_fp8(4, 32), _ones(4, 1), _fp8(5, 48), _ones(5, 1)), {}, ValueError, "both need K columns"),
        ((_fp8(4, 32), _ones(1, 1), _fp8(5, 32), _ones(5, 1)), {}, ValueError, "sa (rows, 1)"),
        ((_fp8(4, 32), _ones(4, 1), _fp8(5, 32), _ones(5, 1)), {"out": _ones(4, 5)}, ValueError,
         "out must be a (4, 5) bfloat16 tensor"),
    ],
    "pack_e2m1": [
        ((_u8(3, 5),), {}, ValueError, "must be even"),
        ((torch.full((2, 4), 16, dtype=torch.uint8, device=kernels.DEVICE),), {}, ValueError, "0..15"),
        ((_ones(2, 4),), {}, TypeError, "uint8"),
        ((_u8(2, 4),), {"order": "middle"}, ValueError, "order must be"),
    ],
    "unpack_e2m1": [
        ((_ones(2, 4),), {}, TypeError, "uint8"),
        ((_u8(2, 4),), {"order": "middle"}, ValueError, "order must be"),
    ],
    "dequantize_mxfp4": [
        ((_ones(4, 16), _u8(4, 1)), {}, TypeError, "packed must be a uint8"),
        ((_u8(4, 24), _u8(4, 1)), {}, ValueError, "K a multiple of 32"),
        ((_u8(4, 16), _u8(4, 2)), {}, ValueError, "exponents of shape (4, 1)"),
        ((_u8(4, 16).t(), _u8(16, 1)), {}, ValueError, "contiguous rows"),
        ((_u8(4, 16), _u8(4, 1)), {"order": "middle"}, ValueError, "order must be"),
    ],
}


@pytest.fixture(scope="module")
def wrappers(tmp_path_factory):
    where = tmp_path_factory.mktemp("fp_wrappers")
    return {(kind, name): as_module(nbformat.read(str(ROOT / kind / src.name), as_version=4),
                                    where / f"fp_wrapper_{kind}_{src.stem}_{name}.py")
            for kind in ("solutions", "exercises") for name, src in FP_EXERCISES.items()}


@pytest.mark.parametrize("kind", ["solutions", "exercises"])
@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_given_wrappers_refuse_bad_input_in_one_line(wrappers, kind, name):
    fn = getattr(wrappers[(kind, name)], name)
    for args, kwargs, exc, words in BAD_INPUT[name]:
        with pytest.raises(exc) as info:
            fn(*args, **kwargs)
        text = str(info.value)
        assert words in text and "\n" not in text and text.startswith(f"{name}: "), text


def test_a_copy_read_while_x_is_passed_too_fails_the_replay(tmp_path):
    """x reaches a kernel (a trivial one), but q comes from a copy made before the launch: only the replay
    on new values of x tells."""
    swaps = {"ch06-wrapper": [
        ("BLOCK_N = kernels.pick", "@triton.jit\ndef _touch(p):\n    tl.load(p)\n\n\nBLOCK_N = kernels.pick"),
        ("quantize_e4m3_kernel[(M,)](x, q,", "x2 = torch.empty_strided(x.size(), x.stride(), dtype=x.dtype).copy_(x)\n"
                                             "    _touch[(1,)](x)\n    quantize_e4m3_kernel[(M,)](x2, q,")]}
    r = grade_variant(CH06, swaps, "quantize_e4m3", tmp_path)
    assert r.status == "refused" and "did not follow" in r.message, r.report()


# ------------------------------------------------------------------------------------------------
# the strict reading of a learner's kernel (guard.python_calls, guard.argument_problem)
# ------------------------------------------------------------------------------------------------
KERNEL_MODULE = '''
import types
import numpy as np
import torch
import triton
import triton.language as tl

G = 3
GC = tl.constexpr(4)
NS = types.SimpleNamespace(f=lambda v: v)


def pyf(v):
    return v


def pyf_semantic(v, _semantic=None):
    return v


WRAPPED = tl.core.builtin(pyf_semantic)  # a builtin-style wrapper, written in triton/language, around Python


@triton.jit
def helper(v):
    return v * 2


@triton.jit
def deep3(v):
    return pyf(v)


@triton.jit
def deep2(v):
    return deep3(v)


@triton.jit
def deep1(v):
    return deep2(v)


@triton.jit
def kernel(x_ptr, P):
    x = tl.load(x_ptr + tl.arange(0, 16))
    BODY
    tl.store(x_ptr + tl.arange(0, 16), y)
'''
# body -> words of the refusal (None: accepted)
KERNEL_BODIES = {
    "y = tl.extra.libdevice.rint(x) + tl.math.exp(x)": None,
    "y = helper(x).to(tl.float32) * G + GC": None,
    "y = tl.where(x > 0, x, -x)\n    for i in tl.static_range(2):\n        y = tl.maximum(y, i * 1.0)": None,
    "y = tl.sum(x[:, None] * x[None, :], axis=1) * min(2, 3) + abs(x)": None,
    "y = tl.load(x_ptr + tl.arange(0, 16)).to(tl.int32, bitcast=True).to(tl.float32, bitcast=True)": None,
    "y = tl.multiple_of(x, 16)\n    tl.static_print('x')\n    tl.static_assert(G == 3)": None,
    "y = x + triton.cdiv(G, 2) + triton.next_power_of_2(G)": None,
    "y = pyf(x)": "calling the Python function `pyf`",
    "y = WRAPPED(x, _semantic=1)": "calling the Python function `WRAPPED`",
    "y = NS.f(x)": "using `NS.f` (a SimpleNamespace)",
    "y = np.round(x)": "calling the Python function `np.round`",
    "f = helper\n    y = f(x)": "calling `f`, a variable of the kernel",
    "y = P(x)": "calling `P`, a parameter of the kernel",
    "y = getattr(tl, 'abs')(x)": "calling the result of `getattr(tl, 'abs')`",
    "y = [pyf][0](x)": "calling the result of `[pyf][0]`",
    "y = (lambda v: v)(x)": ("calling the result of", "a lambda"),
    "import numpy\n    y = x": "an import",
    "def g(v):\n        return v\n    y = x": "a function defined inside it",
    "y = x.__class__(x.handle, x.type)": ("reading `x.__class__`", "reading `x.handle`"),
    "d = x.handle.data\n    y = x": "reading `x.handle`",
    "y = exec('0') or x": "calling Python's `exec()`",
    "y = deep1(x)": "calling the Python function `pyf` inside the @triton.jit kernel deep3",
}


def _kernel_module(tmp_path, body):
    path = tmp_path / f"fp_strict_{next(_count)}.py"
    path.write_text(KERNEL_MODULE.replace("BODY", body))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("body", list(KERNEL_BODIES), ids=range(len(KERNEL_BODIES)))
def test_what_a_kernel_may_name_and_call(body, tmp_path):
    from grader.guard import python_calls

    found = python_calls(_kernel_module(tmp_path, body).kernel)
    words = KERNEL_BODIES[body]
    if words is None:
        assert found is None, found
    else:
        assert found is not None and has(found, words), found


def test_what_a_kernel_may_be_given(tmp_path):
    from grader.guard import argument_problem

    m = _kernel_module(tmp_path, "y = x")
    x = torch.zeros(16, device=kernels.DEVICE)
    assert argument_problem(m.kernel, (x, m.helper), {}) is None  # a @triton.jit function, checked like the kernel
    assert argument_problem(m.kernel, (x, 3), {"num_warps": 4, "P2": (1, 2.0, None)}) is None
    assert "passing function P= to the kernel kernel" in argument_problem(m.kernel, (x, m.pyf), {})
    assert "passing SimpleNamespace P=" in argument_problem(m.kernel, (x, m.NS), {})
    assert "`pyf` inside the @triton.jit kernel deep3" in argument_problem(m.kernel, (x, m.deep1), {})


def test_the_strict_check_accepts_every_kernel_of_the_course():
    """The rules refuse no Triton or Gluon a kernel of the course writes (the course's own launches are not
    checked: they are its code)."""
    import importlib
    import pkgutil

    from grader.guard import _inner_function, _is_jit, python_calls

    checked = 0
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"kernels.{info.name}")
        for name, value in vars(module).items():
            if _is_jit(value) and getattr(_inner_function(value), "__module__", "") == module.__name__:
                assert python_calls(value) is None, (module.__name__, name, python_calls(value))
                checked += 1
    assert checked >= 20


def test_a_grid_function_that_rebinds_what_the_kernel_calls_is_refused(tmp_path):
    """The grid function is the answer's Python, run between the launch's check and the kernel: what the
    kernel names is read again after it."""
    path = tmp_path / f"fp_grid_{next(_count)}.py"
    path.write_text('''
import triton
import triton.language as tl


@triton.jit
def step(v):
    return v


def python_step(v):
    return v


@triton.jit
def kernel(x_ptr):
    offs = tl.arange(0, 16)
    tl.store(x_ptr + offs, STEP(tl.load(x_ptr + offs)))


STEP = step


def grid(meta):
    global STEP
    STEP = python_step
    return (1,)
''')
    spec = importlib.util.spec_from_file_location(path.stem, path)
    m = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = m
    spec.loader.exec_module(m)
    x = torch.zeros(16, device=kernels.DEVICE)
    with Sandbox() as box:
        with pytest.raises(Refused):
            m.kernel[m.grid](x)
    assert box.refusals and "calling the Python function `STEP`" in box.refusals[0]


def test_calls_into_the_reference_code_are_refused_under_any_name_then_restored():
    from grader.guard import refuse_calls_into
    from kernels import fp4, fp8
    from kernels.fp8 import quantize as alias

    values = np.array([1.0625, 17.0, 460.0])
    before = alias(values)
    with Sandbox() as box:
        with refuse_calls_into([fp8, fp4], box):
            for call in (lambda: alias(values), lambda: fp8.E4M3.values(), lambda: fp4.pack(np.zeros(4, np.uint8))):
                with pytest.raises(Refused):
                    call()
            assert fp8.E4M3.max_finite == 448.0  # constants and properties stay readable
    assert len(box.refusals) == 3 and "calling kernels.fp8.quantize (in kernels/fp8.py)" in box.refusals[0]
    assert "kernels.fp8.FP8Format.values" in box.refusals[1] and "kernels.fp4.pack" in box.refusals[2]
    np.testing.assert_array_equal(alias(values), before)  # the code and its defaults are back
    np.testing.assert_array_equal(before, [1.0, 16.0, 448.0])
