"""Chapter 03's stream-K and split-K exercises: the solutions score full marks, the untouched exercises
zero, and wrong answers (the solution with one piece swapped) get the verdict and the message they must
get: a schedule with gaps, overlaps, empty pieces or other run boundaries; a reduction in another order
or precision, over the wrong splits, without its masks, through the wrong strides, reading W twice or
launched on the wrong grid; answers that call PyTorch or the course's own code.

Everything is graded in this process (``grader.checks.grade``); ``tests/test_grader.py`` grades the
notebook headless with the others."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kernels

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbformat  # noqa: E402
from test_grader import CH03, ROOT, as_module, grade_variant  # noqa: E402

from grader import checks  # noqa: E402
from grader.registry import EXERCISES  # noqa: E402

NAMES = ("stream_k_pieces", "splitk_reduce")
_count = iter(range(10**6))


def has(message, words):
    return any(w in message for w in ((words,) if isinstance(words, str) else words))


# ------------------------------------------------------------------------------------------------
# solutions and stubs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(name, tmp_path):
    r = grade_variant(CH03, {}, name, tmp_path, seed=4321)
    assert r.passed and r.points == EXERCISES[name].points, r.report()
    assert all(s.status in ("pass", "skip") for s in r.subchecks)
    if name == "splitk_reduce":  # bf16 needs a GPU: without one those lines say SKIP, never ok
        bf16 = [s for s in r.subchecks if "bfloat16" in s.label]
        assert bf16 and all(s.status == ("pass" if checks.ON_GPU else "skip") for s in bf16), r.report()


@pytest.mark.parametrize("name", NAMES)
def test_untouched_exercise_is_not_implemented(name, tmp_path):
    nb = nbformat.read(str(ROOT / "exercises" / CH03.name), as_version=4)
    module = as_module(nb, tmp_path / f"split_stub_{name}_{next(_count)}.py")
    r = checks.grade(name, getattr(module, name), seed=7)
    assert r.status == "not_implemented" and r.points == 0, r.report()


def test_the_exercises_are_registered_for_chapter_03():
    for name, points in (("stream_k_pieces", 5), ("splitk_reduce", 10)):
        ex = EXERCISES[name]
        assert (ex.notebook, ex.points, ex.check) == ("ch03_persistent_matmul", points, f"check_{name}")
    nb = nbformat.read(str(CH03), as_version=4)
    assert nb.metadata["ttc"]["exercises"] == ["persistent_matmul", "stream_k_pieces", "splitk_reduce"]
    cells = {c.get("id"): c.source for c in nbformat.read(str(ROOT / "exercises" / CH03.name), as_version=4).cells}
    assert cells["ch03-streamk"].rstrip().endswith('raise NotImplementedError("stream_k_pieces: replace this line '
                                                   'with your code")')
    kernel = cells["ch03-reduce-kernel"]  # the block's rows and columns are given, the rest is the learner's
    assert "rows = tl.program_id(0) * BLOCK_M" in kernel and kernel.rstrip().endswith("# YOUR CODE HERE\n    pass")
    assert "tl.load" not in kernel and "tl.store" not in kernel
    assert "splitk_reduce_kernel[grid](" in cells["ch03-reduce-wrapper"]  # the wrapper is given


# ------------------------------------------------------------------------------------------------
# stream_k_pieces: wrong schedules
# ------------------------------------------------------------------------------------------------
SK = "ch03-streamk"
RUN = "    start = program * total // num_programs\n    end = (program + 1) * total // num_programs\n"
LOOP = ("    while it < end:\n        tile = it // k_iters\n"
        "        k_end = min(end - tile * k_iters, k_iters)  # the run ends in this tile, or the tile ends first\n"
        "        pieces.append((tile, it - tile * k_iters, k_end))\n        it = tile * k_iters + k_end\n")
WRONG_STREAM_K = {
    # every other run stops one iteration early
    "gap": ([(RUN, "    start = program * total // num_programs\n"
                   "    end = (program + 1) * total // num_programs - program % 2\n")],
            "fail", "is computed by no program"),
    # each run starts one iteration early: the previous program's last iteration again
    "overlap": ([(RUN, RUN.replace("start = program * total // num_programs",
                                   "start = max(0, program * total // num_programs - 1)"))],
                "fail", "is computed by programs"),
    # total // num_programs each, the last program takes the rest: every iteration once, other boundaries
    "boundaries": ([(RUN, "    start = program * (total // num_programs)\n"
                          "    end = total if program == num_programs - 1 else start + total // num_programs\n")],
                   "fail", "p * total // num_programs"),
    # one piece for every tile from the run's first to the tile after its end: (tile, 0, 0) when the run
    # ends on a tile's edge
    "empty_piece": ([(LOOP, "    for tile in range(start // k_iters, min(end // k_iters + 1, sk_tiles)):\n"
                            "        pieces.append((tile, max(start - tile * k_iters, 0), "
                            "min(end - tile * k_iters, k_iters)))\n")],
                    "fail", "empty piece"),
    # a piece per K step: the right iterations, cut too fine
    "one_piece_per_step": ([("        k_end = min(end - tile * k_iters, k_iters)",
                             "        k_end = min(end - tile * k_iters, k_iters, it - tile * k_iters + 1)")],
                           "fail", "one piece per tile"),
    "tile_out_of_range": ([("        pieces.append((tile, it - tile * k_iters, k_end))",
                            "        pieces.append((tile + 1, it - tile * k_iters, k_end))")],
                          "fail", "the shared tiles are numbered 0"),
    "an_iterator": ([("    return pieces\n", "    return iter(pieces)\n")], "fail", "expected a list of"),
    "library_chunks": ([(RUN, "    from kernels.schedule import stream_k_chunks as pieces_of\n"
                              "    return pieces_of(program, num_programs, sk_tiles, k_iters)\n")],
                       "refused", "kernels.schedule.stream_k_chunks"),
    "library_range": ([(RUN, "    from kernels import schedule\n"
                             "    start, end = schedule.stream_k_range(program, num_programs, total)\n")],
                      "refused", "kernels.schedule.stream_k_range"),
    # a run that starts where the previous call's ended: right only when asked in program order
    "depends_on_call_order": ([(RUN, "    global _END\n"
                                     "    start = 0 if program == 0 else globals().get('_END', 0)\n"
                                     "    end = (program + 1) * total // num_programs\n"
                                     "    _END = end\n")],
                              "fail", ("when asked again", "is computed by")),
    "strings_for_ints": ([("        pieces.append((tile, it - tile * k_iters, k_end))",
                           "        pieces.append((str(tile), it - tile * k_iters, k_end))")],
                         "fail", "expected a list of"),
}


@pytest.mark.parametrize("case", sorted(WRONG_STREAM_K))
def test_wrong_stream_k_schedules_fail(case, tmp_path):
    swaps, status, words = WRONG_STREAM_K[case]
    r = grade_variant(CH03, {SK: swaps}, "stream_k_pieces", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert has(r.message, words), r.report()


def test_the_stream_k_check_covers_the_chapter_shape_and_valid_launches_only():
    seen = []

    def spy(program, num_programs, sk_tiles, k_iters):
        seen.append((num_programs, sk_tiles, k_iters))
        total = sk_tiles * k_iters
        start, end = program * total // num_programs, (program + 1) * total // num_programs
        out, it = [], start
        while it < end:
            tile = it // k_iters
            k_end = min(end - tile * k_iters, k_iters)
            out.append((tile, it % k_iters, k_end))
            it = tile * k_iters + k_end
        return out

    r = checks.grade("stream_k_pieces", spy, seed=11)
    assert r.passed, r.report()
    assert (132, 144, 64) in seen and (1, 1, 1) in seen
    assert all(1 <= p <= t * k for p, t, k in seen), "num_programs never exceeds the iterations"


# ------------------------------------------------------------------------------------------------
# splitk_reduce: wrong kernels and wrappers
# ------------------------------------------------------------------------------------------------
RK = "ch03-reduce-kernel"
RW = "ch03-reduce-wrapper"
R_LOOP = ("    for s in range(splits):  # s = 0, 1, ...: the one order, so every run gives the same bits\n"
          "        acc += tl.load(w_ptr + s * M * N + block, mask=mask, other=0.0)\n")
R_LOAD = "tl.load(w_ptr + s * M * N + block, mask=mask, other=0.0)"
R_STORE = "acc.to(c_ptr.dtype.element_ty),\n             mask=mask)"
R_LAUNCH = "    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))\n"
ORDER = "the same bits on every run"
WRONG_REDUCE = {
    # another order, another precision: close values, other bits
    "reverse_order": ({RK: [("w_ptr + s * M * N + block", "w_ptr + (splits - 1 - s) * M * N + block")]},
                      "fail", ("the reverse",)),
    "in_pairs": ({RK: [(R_LOOP, "    for s in range(0, splits - 1, 2):\n"
                                "        acc += " + R_LOAD + " + " + R_LOAD.replace("s * M", "(s + 1) * M") + "\n"
                                "    if splits % 2 == 1:\n"
                                "        acc += " + R_LOAD.replace("s * M", "(splits - 1) * M") + "\n")]},
                 "fail", ("in pairs",)),
    "float64_accumulator": ({RK: [("dtype=tl.float32)", "dtype=tl.float64)")]}, "fail", ("float64",)),
    "float16_accumulator": ({RK: [("dtype=tl.float32)", "dtype=c_ptr.dtype.element_ty)"),
                                  (R_LOAD, R_LOAD + ".to(c_ptr.dtype.element_ty)")]}, "fail", ("float16",)),
    # the wrong splits
    "range_one_short": ({RK: [("for s in range(splits):", "for s in range(splits - 1):")]}, "fail",
                        "is never added"),
    "range_from_one": ({RK: [("for s in range(splits):", "for s in range(1, splits):")]}, "fail", "W[0] is never added"),
    # one split too far: in the interpreter the read past W is caught; compiled, it reads what surrounds W
    "range_one_long": ({RK: [("for s in range(splits):", "for s in range(splits + 1):")]}, "fail",
                       ("read outside W", "reads past the end of W")),
    "replaces_instead_of_adding": ({RK: [("acc += tl.load", "acc = tl.load")]}, "fail", "instead of adding"),
    # masks and strides
    "no_store_mask": ({RK: [(R_STORE, "acc.to(c_ptr.dtype.element_ty))")]}, "fail", "wrote outside C"),
    "no_load_mask": ({RK: [("block, mask=mask, other=0.0)", "block)")]}, "fail", "read outside W"),
    "c_assumed_contiguous": ({RK: [("rows[:, None] * stride_cm + cols[None, :] * stride_cn",
                                    "rows[:, None] * N + cols[None, :]")]}, "fail",
                             "stride_cm and stride_cn"),
    # the work: each element of W once, one program per block
    "reads_w_twice": ({RK: [("acc += " + R_LOAD, "acc += " + R_LOAD + " * 0.5 + " + R_LOAD + " * 0.5")]},
                      "fail", "was read 2 times"),
    "one_program_per_element": ({RW: [("REDUCE_BLOCKS = kernels.pick(cpu=(16, 16), gpu=(64, 64))",
                                       "REDUCE_BLOCKS = (1, 1)")]}, "fail", "one program per element"),
    "a_single_program": ({RW: [(R_LAUNCH, "    grid = (1, 1)\n")]}, "fail", "needs a grid of"),
    # the block sizes renamed: the grid cannot be judged without them, so the answer is refused
    "renamed_block_sizes": ({RK: [("BLOCK_M: tl.constexpr", "BM: tl.constexpr"),
                                  ("BLOCK_N: tl.constexpr", "BN: tl.constexpr"),
                                  ("BLOCK_M", "BM"), ("BLOCK_N", "BN")],
                             RW: [("BLOCK_M=block_m", "BM=block_m"), ("BLOCK_N=block_n", "BN=block_n")]},
                            "fail", "BLOCK_M and BLOCK_N"),
}
# judged from the interpreter's trace of the programs (compiled, a read past W's end or a second read of
# an element is not seen, and the unmasked loads of a ragged block read elements of W that exist)
INTERPRETER_ONLY = {"no_load_mask", "reads_w_twice"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", sorted(WRONG_REDUCE))
def test_wrong_reductions_fail(case, tmp_path):
    if checks.ON_GPU and case in INTERPRETER_ONLY:
        pytest.skip("judged from the interpreter's trace")
    swaps, status, words = WRONG_REDUCE[case]
    r = grade_variant(CH03, swaps, "splitk_reduce", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert has(r.message, words), r.report()
    if case in ("reverse_order", "in_pairs"):  # the message says why the order matters
        assert ORDER in r.message and "not associative" in r.message, r.report()


CHEATS = {
    "torch_sum": ({RW: [(R_LAUNCH, "    return w.sum(0).to(out.dtype)\n" + R_LAUNCH)]}, "`sum`"),
    "torch_add_loop": ({RW: [(R_LAUNCH, "    for s in range(splits):\n        out += w[s]\n    return out\n" + R_LAUNCH)]},
                       "`add"),
    "course_reduce": ({RW: [(R_LAUNCH, "    import kernels.splitk as course\n"
                                       "    course.reduce(w, out, M, N, None, 0, 1, splits)\n    return out\n" + R_LAUNCH)]},
                      "kernels.splitk.reduce"),
    "course_matmul": ({RW: [(R_LAUNCH, "    from kernels.splitk import matmul_splitk\n"
                                       "    matmul_splitk(out, out)\n" + R_LAUNCH)]}, "kernels.splitk.matmul_splitk"),
    "no_kernel": ({RW: [(R_LAUNCH, "    return out\n" + R_LAUNCH)]}, "no Triton kernel was launched"),
    "copies_w0_after_the_kernel": ({RW: [("BLOCK_M=block_m, BLOCK_N=block_n)\n    return out",
                                          "BLOCK_M=block_m, BLOCK_N=block_n)\n    out.copy_(w[0])\n    return out")]},
                                   "changed after"),
}


@pytest.mark.parametrize("case", sorted(CHEATS))
def test_reductions_that_do_not_add_in_their_kernel_are_refused(case, tmp_path):
    swaps, words = CHEATS[case]
    r = grade_variant(CH03, swaps, "splitk_reduce", tmp_path)
    assert r.status == "refused" and r.points == 0, r.report()
    assert words in r.message, r.report()


def test_the_reference_is_the_sequential_float32_sum():
    """The grader's reference adds in float32, s = 0, 1, ..., and the other orders it names really differ."""
    w = np.array([[[1.0]], [[2.0**-24]], [[2.0**-24]]], dtype=np.float32)  # 1 + u/2 + u/2: ties to even twice
    assert checks._reduce_reference(w, torch.float32).item() == 1.0
    assert checks._sequential(w, [2, 1, 0]).item() == 1.0 + 2.0**-23  # the small ones first: they count
    gen = torch.Generator().manual_seed(0)
    w = checks._partials(gen, 7, 30, 30, False).numpy()
    ref = checks._reduce_reference(w, torch.float32)
    for what, values in checks._reduce_variants(w, torch.float32)[:3]:  # the three other orders
        assert not torch.equal(values, ref), what


# ------------------------------------------------------------------------------------------------
# splitk_reduce's given wrapper: one line for a bad input, before the kernel runs
# ------------------------------------------------------------------------------------------------
def _w(*shape, dtype=torch.float32):
    return torch.ones(*shape, dtype=dtype, device=kernels.DEVICE)


WRAPPER_ERRORS = {
    "float16 w": (lambda: (_w(2, 3, 4, dtype=torch.float16), None), TypeError, "w must be a float32"),
    "numpy w": (lambda: (np.ones((2, 3, 4), np.float32), None), TypeError, "w must be a float32"),
    "2-D w": (lambda: (_w(3, 4), None), ValueError, "3-D tensor (splits, M, N)"),
    "empty w": (lambda: (_w(0, 3, 4), None), ValueError, "non-empty"),
    "strided w": (lambda: (_w(2, 4, 3).transpose(1, 2), None), ValueError, "w must be contiguous"),
    "out of the wrong shape": (lambda: (_w(2, 3, 4), _w(4, 3)), ValueError, "expected (3, 4)"),
    "int out": (lambda: (_w(2, 3, 4), _w(3, 4, dtype=torch.int32)), TypeError, "out has dtype torch.int32"),
    "out inside w": (lambda: (lambda w: (w, w[1]))(_w(2, 3, 4)), ValueError, "shares memory with w"),
    "out that overlaps itself": (lambda: (_w(2, 3, 4), _w(1, 4).expand(3, 4)), ValueError, "share memory"),
}


@pytest.mark.parametrize("kind", ["solutions", "exercises"])
@pytest.mark.parametrize("case", sorted(WRAPPER_ERRORS))
def test_the_reduce_wrapper_refuses_bad_input(case, kind, tmp_path):
    nb = nbformat.read(str(ROOT / kind / CH03.name), as_version=4)
    module = as_module(nb, tmp_path / f"split_wrapper_{kind}_{next(_count)}.py")
    make, error, words = WRAPPER_ERRORS[case]
    w, out = make()
    with pytest.raises(error, match=re.escape(words)):
        module.splitk_reduce(w, out=out)


def test_a_missing_last_column_in_a_column_major_c_also_names_the_strides():
    """A store that ignores C's strides can leave whole columns unwritten: the message points at the
    column mask and, where C is not row-major, at stride_cm and stride_cn too."""
    case = checks._RCase("ragged", 3, 6, 5, layout="col")
    case.strides = {"C": (1, 6)}
    nan = torch.zeros(6, 5, dtype=torch.bool)
    nan[:, 4] = True
    msg = checks._reduce_unwritten_message(nan, case)
    assert "last column (n = 4) is missing" in msg and "stride_cm and stride_cn" in msg, msg
    row = checks._RCase("ragged", 3, 6, 5)
    row.strides = {"C": (5, 1)}
    assert "stride" not in checks._reduce_unwritten_message(nan, row)
