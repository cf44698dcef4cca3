"""The grader: solutions score full marks, untouched exercises zero, and wrong or cheating answers fail.

Wrong answers are made from the solution notebooks with one piece swapped. Most are graded in this
process through ``grader.checks.grade`` (the cells are written to a module in a tmp dir and imported:
Triton needs kernel source in a file); the rest go through ``python -m grader`` on tmp notebooks, each in
its own Jupyter kernel, as a learner's notebook would.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from grader import checks
from grader.guard import Refused, Sandbox, Timeout, is_denied, time_limit
from grader.registry import EXERCISES, SELF_CHECK_TAG, SOLUTION_ONLY_TAG

ROOT = Path(__file__).resolve().parent.parent
CH01 = ROOT / "solutions" / "ch01_naive_matmul.ipynb"
CH02 = ROOT / "solutions" / "ch02_tiled_matmul.ipynb"
CH03 = ROOT / "solutions" / "ch03_persistent_matmul.ipynb"
CH04 = ROOT / "solutions" / "ch04_tma_matmul.ipynb"
CH05 = ROOT / "solutions" / "ch05_pingpong_protocol.ipynb"


def variant(src: Path, swaps: dict) -> nbformat.NotebookNode:
    """The notebook ``src`` with, in the cell with id ``cell_id``, each ``old`` replaced by ``new``."""
    nb = nbformat.read(str(src), as_version=4)
    for cell_id, pairs in swaps.items():
        cell = next(c for c in nb.cells if c.get("id") == cell_id)
        for old, new in pairs:
            assert old in cell.source, f"{old!r} is not in cell {cell_id}: the solution changed"
            cell.source = cell.source.replace(old, new)
    return nb


def as_module(nb, path: Path):
    """Import a notebook's definitions (no self-checks, no demo runs) as a module from a file."""
    skip = {SELF_CHECK_TAG, SOLUTION_ONLY_TAG}
    code = [c.source for c in nb.cells if c.cell_type == "code"
            and not skip & set(c.metadata.get("tags", [])) and not c.get("id", "").endswith("try-code")]
    path.write_text("\n\n".join(code) + "\n")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


_count = iter(range(10**6))


def grade_variant(src, swaps, name, tmp_path, seed=1234):
    module = as_module(variant(src, swaps), tmp_path / f"answer_{name}_{next(_count)}.py")
    return checks.grade(name, getattr(module, name), seed=seed)


def run_grader(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc


def graded(proc):
    assert proc.returncode in (0, 3), proc.stderr[-3000:]  # 0: full marks, 3: graded, not full marks
    report = json.loads(proc.stdout)
    return report, {(Path(nb["path"]).stem, r["name"]): r for nb in report["notebooks"] for r in nb["exercises"]}


# ------------------------------------------------------------------------------------------------
# the headless path: python -m grader
# ------------------------------------------------------------------------------------------------
def test_solutions_score_full_marks_headless():
    report, results = graded(run_grader(CH01, CH02, CH03, CH04, CH05, "--json"))
    assert set(results) == {("ch01_naive_matmul", "naive_matmul"), ("ch02_tiled_matmul", "tiled_matmul"),
                            ("ch02_tiled_matmul", "grouped_tile"), ("ch03_persistent_matmul", "persistent_matmul"),
                            ("ch03_persistent_matmul", "stream_k_pieces"), ("ch03_persistent_matmul", "splitk_reduce"),
                            ("ch04_tma_matmul", "tma_matmul"), ("ch05_pingpong_protocol", "pingpong_consumer")}
    for r in results.values():
        assert r["status"] == "pass", r
    assert report["score"] == report["max_points"] == sum(EXERCISES[n].points for _, n in results)
    assert all(not nb["cell_issues"] for nb in report["notebooks"])
    # the bf16 sub-checks need a GPU: without one they say SKIP, never ok
    if not checks.ON_GPU:
        for name in ("naive_matmul", "tiled_matmul", "persistent_matmul", "tma_matmul", "splitk_reduce"):
            bf16 = [s for r in results.values() if r["name"] == name for s in r["subchecks"] if "bfloat16" in s["label"]]
            assert bf16 and all(s["status"] == "skip" for s in bf16)


def test_untouched_exercises_score_zero_without_crashing():
    proc = run_grader(*(ROOT / "exercises" / nb.name for nb in (CH01, CH02, CH03, CH04, CH05)), "--json")
    report, results = graded(proc)
    assert report["score"] == 0 and report["max_points"] > 0
    assert {r["status"] for r in results.values()} == {"not_implemented"}
    assert all(not nb["cell_issues"] for nb in report["notebooks"])


def test_text_report_and_misuse(tmp_path):
    proc = run_grader(tmp_path / "nope.ipynb")
    assert proc.returncode != 0 and "no such notebook" in proc.stderr
    empty = tmp_path / "empty-workspace"  # never the learner's my-work/: grading there would add to their history
    empty.mkdir()
    assert run_grader("--workspace", empty).returncode != 0


CHEAT_WRAPPERS = {
    "torch_matmul": [("    naive_matmul_kernel[(M, N)](", "    return torch.matmul(a, b)\n    naive_matmul_kernel[(M, N)](")],
    "at_operator": [("    naive_matmul_kernel[(M, N)](", "    return a @ b\n    naive_matmul_kernel[(M, N)](")],
    # launch a (trivial) Triton kernel, so "a kernel ran" holds, then return PyTorch's product
    "kernel_then_at": [("def naive_matmul(", "@triton.jit\ndef _touch(x_ptr):\n    pass\n\n\ndef naive_matmul("),
                       ("    naive_matmul_kernel[(M, N)](", "    _touch[(1,)](out)\n    return a @ b\n    naive_matmul_kernel[(M, N)](")],
}


def test_answers_that_call_pytorch_score_zero_headless(tmp_path):
    paths = []
    for label, swaps in CHEAT_WRAPPERS.items():
        path = tmp_path / f"ch01_{label}.ipynb"
        nbformat.write(variant(CH01, {"ch01-wrapper": swaps}), str(path))
        paths.append(path)
    report, results = graded(run_grader(*paths, "--json"))
    assert report["score"] == 0
    for path in paths:
        r = results[(path.stem, "naive_matmul")]
        assert r["status"] == "refused", r
        assert "torch's `mm`" in r["message"] and "matmul" in r["message"], r["message"]


def test_hanging_and_crashing_answers_score_zero_and_the_rest_is_graded(tmp_path):
    doc = '    """C = a @ b with one Triton program per BLOCK_M x BLOCK_N tile of C."""'
    answers = {
        "loops": "    while True:\n        pass",
        # swallows KeyboardInterrupt and the in-kernel alarm: only killing the kernel stops it
        "stubborn": "    import time\n    while True:\n        try:\n            time.sleep(0.1)\n"
                    "        except BaseException:\n            pass",
        "crashes": "    import os\n    os._exit(3)",
    }
    paths = []
    for label, body in answers.items():
        path = tmp_path / f"ch02_{label}.ipynb"
        nbformat.write(variant(CH02, {"ch02-wrapper": [(doc, body)]}), str(path))
        paths.append(path)
    proc = run_grader(*paths, "--json", "--timeout", 3, "--cell-timeout", 4, "--hard-margin", 3, "--grace", 2)
    report, results = graded(proc)
    expected = {"loops": "timeout", "stubborn": "timeout", "crashes": "crashed"}
    for path in paths:
        label = path.stem.split("_", 1)[1]
        assert results[(path.stem, "tiled_matmul")]["status"] == expected[label]
        assert results[(path.stem, "tiled_matmul")]["points"] == 0
        assert results[(path.stem, "grouped_tile")]["status"] == "pass", label  # graded all the same
        notes = next(nb for nb in report["notebooks"] if Path(nb["path"]) == path)["cell_issues"]
        assert len(notes) == 1 and ("time limit" in notes[0] or "crashed" in notes[0])  # the demo cell
    assert report["score"] == 3 * EXERCISES["grouped_tile"].points


# ------------------------------------------------------------------------------------------------
# wrong answers, graded in this process
# ------------------------------------------------------------------------------------------------
def test_solution_variants_pass_in_process(tmp_path):
    for src, name in ((CH01, "naive_matmul"), (CH02, "tiled_matmul"), (CH02, "grouped_tile"),
                      (CH03, "persistent_matmul"), (CH04, "tma_matmul"), (CH05, "pingpong_consumer")):
        r = grade_variant(src, {}, name, tmp_path)
        assert r.passed and r.points == EXERCISES[name].points, r.report()


WRONG_NAIVE = {
    "k_mask_short": ([("inside = ks < K", "inside = ks < K - 1")], "fail", "wrong values"),
    # reads A[m, K]: in the interpreter every access is checked against the views the kernel was given
    "k_mask_long": ([("inside = ks < K", "inside = ks <= K")], "fail", ("read outside A", "wrong values")),
    "last_row_unwritten": ([("tl.store(c_ptr + m * stride_cm + n * stride_cn, total.to(c_ptr.dtype.element_ty))",
                             "tl.store(c_ptr + m * stride_cm + n * stride_cn, total.to(c_ptr.dtype.element_ty), "
                             "mask=m < M - 1)")], "fail", "last row"),
    "contiguous_only": ([("row_a = a_ptr + m * stride_am", "row_a = a_ptr + m * K")], "fail",
                        ("if A were contiguous", "wrong values")),
}


@pytest.mark.parametrize("case", sorted(WRONG_NAIVE))
def test_wrong_naive_kernels_fail(case, tmp_path):
    swaps, status, words = WRONG_NAIVE[case]
    r = grade_variant(CH01, {"ch01-kernel": swaps}, "naive_matmul", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert any(w in r.message for w in ((words,) if isinstance(words, str) else words)), r.report()


WRONG_TILED = {
    # the loads go past the edge first (row M of A, column N of B): the access itself is refused
    # (compiled, the reads land in guard rows and the stores past the edge are what shows)
    "rows_le_M": ([("row_ok = rows < M", "row_ok = rows <= M")], "fail", ("read outside A: at row", "wrote outside C: at row")),
    "cols_le_N": ([("col_ok = cols < N", "col_ok = cols <= N")], "fail", ("read outside B", "wrote outside C")),
    "store_rows_le_M": ([("tl.store(c_tile, acc.to(c_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])",
                          "tl.store(c_tile, acc.to(c_ptr.dtype.element_ty), mask=(rows[:, None] <= M) & col_ok[None, :])")],
                        "fail", "wrote outside C: at row"),
    "last_row_unwritten": ([("row_ok = rows < M", "row_ok = rows < M - 1")], "fail", "the whole last row"),
    "last_col_unwritten": ([("col_ok = cols < N", "col_ok = cols < N - 1")], "fail", "the whole last column"),
    "k_mask_short": ([("k_ok = ks < K", "k_ok = ks < K - 1")], "fail", "wrong values"),
    "no_k_mask": ([("k_ok = ks < K", "k_ok = ks >= 0")], "fail", ("read outside A", "wrong values")),
    "forgets_accumulate": ([("acc = tl.dot(a, b, acc)", "acc = tl.dot(a, b)")], "fail", "wrong values"),
    # NaN the kernel computes is told apart from NaN it never wrote (the poison has its own bits)
    "zeroes_its_inputs": ([("    c_tile = c_ptr", "    tl.store(a_ptr + rows[:, None] * stride_am, 0.0, mask=row_ok[:, None])\n"
                                                    "    c_tile = c_ptr")], "fail", ("stored into A", "changed the input A")),
    "computes_nan": ([("tl.store(c_tile, acc.to(", "tl.store(c_tile, (acc * 0.0 / 0.0).to(")], "fail",
                     "NaN or inf although the kernel wrote them"),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy, inside the interpreter, on the NaN/overflow cases
@pytest.mark.parametrize("case", sorted(WRONG_TILED))
def test_wrong_tiled_kernels_fail(case, tmp_path):
    swaps, status, words = WRONG_TILED[case]
    r = grade_variant(CH02, {"ch02-kernel": swaps}, "tiled_matmul", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert any(w in r.message for w in ((words,) if isinstance(words, str) else words)), r.report()


LAUNCH = "    naive_matmul_kernel[(M, N)]("
CHEATS = {
    "torch.matmul": ([(LAUNCH, "    return torch.matmul(a, b)\n" + LAUNCH)], "`mm`"),
    "@": ([(LAUNCH, "    return a @ b\n" + LAUNCH)], "`mm`"),
    "a.mm(b)": ([(LAUNCH, "    return a.mm(b)\n" + LAUNCH)], "`mm`"),
    "einsum": ([(LAUNCH, "    return torch.einsum('mk,kn->mn', a, b)\n" + LAUNCH)], "mm"),
    "broadcast_sum": ([(LAUNCH, "    return (a[:, :, None] * b[None, :, :]).sum(1)\n" + LAUNCH)], "`mul`"),
    "numpy": ([(LAUNCH, "    return torch.from_numpy(a.numpy() @ b.numpy())\n" + LAUNCH)], "numpy"),
    "python_loops": ([(LAUNCH, "    return torch.tensor([[sum(float(a[i, k]) * float(b[k, j]) for k in range(K)) "
                               "for j in range(N)] for i in range(M)], dtype=a.dtype)\n" + LAUNCH)], ".item()"),
    "copy_after_kernel": ([("    return out", "    out.copy_(a @ b)\n    return out")], "`mm`"),
    "falls_back_after_refusal": ([(LAUNCH, "    try:\n        return a @ b\n    except Exception:\n        pass\n"
                                   + LAUNCH)], "`mm`"),
    "library_kernel": ([(LAUNCH, "    from kernels.naive import naive_matmul as lib\n"
                                 "    return lib(a, b, out=out)\n" + LAUNCH)], "course's own"),
    "no_kernel_at_all": ([(LAUNCH, "    return out\n" + LAUNCH)], "no Triton kernel was launched"),
    "trivial_kernel_then_at": ([("def naive_matmul(", "@triton.jit\ndef _touch(x_ptr):\n    pass\n\n\ndef naive_matmul("),
                                (LAUNCH, "    _touch[(1,)](out)\n    return a @ b\n" + LAUNCH)], "`mm`"),
    # a kernel's output, then overwritten in place by code that is not a kernel
    "kernel_then_overwrite": ([("    return out", "    out.fill_(0.5)\n    return out")], "changed after"),
    "returns_a_new_tensor": ([("    return out", "    return out.clone()")], "never passed to a Triton kernel"),
}


@pytest.mark.parametrize("case", sorted(CHEATS))
def test_answers_that_do_not_compute_with_their_kernel_are_refused(case, tmp_path):
    swaps, words = CHEATS[case]
    r = grade_variant(CH01, {"ch01-wrapper": swaps}, "naive_matmul", tmp_path)
    assert r.status == "refused" and r.points == 0, r.report()
    assert words in r.message, r.report()


def test_tiled_cheat_is_refused_too(tmp_path):
    launch = "    tiled_matmul_kernel[grid]("
    r = grade_variant(CH02, {"ch02-wrapper": [(launch, "    return torch.mm(a, b)\n" + launch)]},
                      "tiled_matmul", tmp_path)
    assert r.status == "refused" and "`mm`" in r.message


P_LOOP = "    for tile_id in range(tl.program_id(0), num_tiles, num_programs):\n"
P_LAUNCH = "    persistent_matmul_kernel[(num_programs,)]("
P_FIRST_TILE_ONLY = "    for tile_id in range(tl.program_id(0), tl.program_id(0) + 1):\n"
P_LIBRARY = "    from kernels.persistent import matmul_persistent\n    return matmul_persistent(a, b, out=out)\n"
WRONG_PERSISTENT = {
    # chapter 02's schedule: one program per tile, each computing only its own tile
    "one_program_per_tile": ({"ch03-kernel": [(P_LOOP, P_FIRST_TILE_ONLY)],
                              "ch03-wrapper": [(P_LAUNCH, "    persistent_matmul_kernel[(num_tiles,)](")]},
                             "refused", "one program per tile is chapter 02's kernel"),
    # the right grid, but each program stops after its first tile
    "no_stride": ({"ch03-kernel": [(P_LOOP, P_FIRST_TILE_ONLY)]}, "fail", "stop after its first tile"),
    "no_loop": ({"ch03-kernel": [(P_LOOP, "    tile_id = tl.program_id(0)\n    if tile_id < num_tiles:\n")]},
                "fail", "never written"),
    "torch_matmul": ({"ch03-wrapper": [(P_LAUNCH, "    return torch.matmul(a, b)\n" + P_LAUNCH)]}, "refused", "`mm`"),
    "library_kernel": ({"ch03-wrapper": [(P_LAUNCH, P_LIBRARY + P_LAUNCH)]}, "refused", "course's own"),
    # its own kernel runs (with the right grid), then the course's overwrites C
    "own_kernel_then_library": ({"ch03-wrapper": [("    return out", P_LIBRARY)]}, "refused",
                                "launched the course's own kernel"),
    "no_num_programs": ({"ch03-wrapper": [("out=None, num_programs=None):", "out=None):\n    num_programs = None")]},
                        "fail", "num_programs="),
}


@pytest.mark.parametrize("case", sorted(WRONG_PERSISTENT))
def test_wrong_persistent_answers_fail(case, tmp_path):
    swaps, status, words = WRONG_PERSISTENT[case]
    r = grade_variant(CH03, swaps, "persistent_matmul", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert words in r.message, r.report()


def test_persistent_grid_is_read_from_a_grid_function_too(tmp_path):
    # kernel[lambda meta: ...]: the recorder keeps what the function returned
    swaps = {"ch03-wrapper": [(P_LAUNCH, "    persistent_matmul_kernel[lambda meta: (num_programs,)](")]}
    assert grade_variant(CH03, swaps, "persistent_matmul", tmp_path).passed
    swaps = {"ch03-wrapper": [(P_LAUNCH, "    persistent_matmul_kernel[lambda meta: (num_programs + 1,)](")]}
    r = grade_variant(CH03, swaps, "persistent_matmul", tmp_path)
    assert r.status == "refused" and "programs" in r.message, r.report()


T_DESCS = """    a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[stride_am, 1],
                                       block_shape=[BLOCK_M, BLOCK_K])
    b_desc = tl.make_tensor_descriptor(b_ptr, shape=[K, N], strides=[stride_bk, 1],
                                       block_shape=[BLOCK_K, BLOCK_N])
    c_desc = tl.make_tensor_descriptor(c_ptr, shape=[M, N], strides=[stride_cm, 1],
                                       block_shape=[BLOCK_M, BLOCK_N])
"""
T_K_LOOP = """        for ks in range(k_steps):
            a = a_desc.load([row0, ks * BLOCK_K])  # zero-filled past the edges of A
            b = b_desc.load([ks * BLOCK_K, col0])
"""
# chapter 02's way: pointers and masks
T_POINTER_LOOP = """        rows = row0 + tl.arange(0, BLOCK_M)
        cols = col0 + tl.arange(0, BLOCK_N)
        for ks in range(k_steps):
            kk = ks * BLOCK_K + tl.arange(0, BLOCK_K)
            a = tl.load(a_ptr + rows[:, None] * stride_am + kk[None, :],
                        mask=(rows[:, None] < M) & (kk[None, :] < K), other=0.0)
            b = tl.load(b_ptr + kk[:, None] * stride_bk + cols[None, :],
                        mask=(kk[:, None] < K) & (cols[None, :] < N), other=0.0)
"""
T_STORE = "        c_desc.store([row0, col0], acc.to(c_desc.dtype))"
T_POINTER_STORE = ("        tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :], acc.to(c_ptr.dtype.element_ty),\n"
                   "                 mask=(rows[:, None] < M) & (cols[None, :] < N))")
T_LAUNCH = "    tma_matmul_kernel[(num_programs,)]("
WRONG_TMA = {
    # a correct matmul, without TMA: pointer loads and stores with masks
    "pointer_loads": ({"ch04-kernel": [(T_DESCS, ""), (T_K_LOOP, T_POINTER_LOOP), (T_STORE, T_POINTER_STORE)]},
                      "refused", "loaded through pointers"),
    # descriptors made (and used for the store), but the tiles are loaded through pointers
    "descriptors_unused": ({"ch04-kernel": [(T_K_LOOP, T_POINTER_LOOP)]}, "refused",
                           "this exercise is about TMA"),
    "torch_matmul": ({"ch04-wrapper": [(T_LAUNCH, "    return torch.matmul(a, b)\n" + T_LAUNCH)]}, "refused", "`mm`"),
    "library_kernel": ({"ch04-wrapper": [(T_LAUNCH, "    from kernels.tma import matmul_tma\n"
                                                    "    return matmul_tma(a, b, out=out)\n" + T_LAUNCH)]},
                       "refused", "course's own"),
    # the last, partial K step is left out (and with K < BLOCK_K, every step)
    "no_partial_k_step": ({"ch04-kernel": [("for ks in range(k_steps):", "for ks in range(K // BLOCK_K):")]},
                          "fail", "wrong values"),
    # every tile of a row of tiles stored over the first one
    "store_at_column_0": ({"ch04-kernel": [("c_desc.store([row0, col0]", "c_desc.store([row0, 0]")]},
                          "fail", "c_desc.store([row0, col0], ...)"),
    "store_transposed": ({"ch04-kernel": [("c_desc.store([row0, col0]", "c_desc.store([col0, row0]")]},
                         "fail", "never written"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TMA))
def test_wrong_tma_answers_fail(case, tmp_path):
    swaps, status, words = WRONG_TMA[case]
    r = grade_variant(CH04, swaps, "tma_matmul", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert words in r.message, r.report()


def test_tma_source_check_sees_helpers(tmp_path):
    # the descriptors and loads may live in a @triton.jit helper the kernel calls
    helper = ("@triton.jit\ndef load_tiles(a_desc, b_desc, row0, col0, ks, BLOCK_K: tl.constexpr):\n"
              "    return a_desc.load([row0, ks * BLOCK_K]), b_desc.load([ks * BLOCK_K, col0])\n\n\n")
    swaps = {"ch04-kernel": [("@triton.jit\ndef tma_matmul_kernel(", helper + "@triton.jit\ndef tma_matmul_kernel("),
                             (T_K_LOOP, "        for ks in range(k_steps):\n"
                                        "            a, b = load_tiles(a_desc, b_desc, row0, col0, ks, BLOCK_K)\n")]}
    r = grade_variant(CH04, swaps, "tma_matmul", tmp_path)
    assert r.passed, r.report()


GROUPED = '    tiles_per_group = group_m * grid_n'
WRONG_GROUPED = {
    "row_major": ("    return pid // grid_n, pid % grid_n\n", "fail", "in grouped order"),
    "no_short_group": ("    return (pid // (group_m * grid_n)) * group_m + pid % group_m, (pid % (group_m * grid_n)) // group_m\n",
                       "fail", "outside the"),
    "collides": ("    return pid % grid_m, 0\n", "fail", "computed by programs"),
    "library": ("    from kernels.schedule import grouped_tile as lib\n    return lib(pid, grid_m, grid_n, group_m)\n",
                "refused", "kernels.schedule.grouped_tile"),
    "not_a_pair": ("    return pid\n", "fail", "pair of ints"),
    "raises": ("    return 1 // 0\n", "error", "ZeroDivisionError"),
    "not_implemented": ("    raise NotImplementedError\n", "not_implemented", "not implemented"),
}


@pytest.mark.parametrize("case", sorted(WRONG_GROUPED))
def test_wrong_grouped_tile_fails(case, tmp_path):
    body, status, words = WRONG_GROUPED[case]
    r = grade_variant(CH02, {"ch02-grouped": [(GROUPED, body + GROUPED)]}, "grouped_tile", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert words in r.message, r.report()


def test_errors_and_timeouts_are_results_not_exceptions(tmp_path):
    r = grade_variant(CH01, {"ch01-wrapper": [(LAUNCH, "    raise ValueError('oops')\n" + LAUNCH)]},
                      "naive_matmul", tmp_path)
    assert r.status == "error" and "ValueError: oops" in r.message and "line" in r.message
    r = grade_variant(CH01, {"ch01-kernel": [("    m = tl.program_id(0)", "    m = tl.program_id(0) + undefined")]},
                      "naive_matmul", tmp_path)
    # a name the kernel's module does not define is refused before the launch: Triton's interpreter would fill
    # it in from its own globals (np, math, ...) when it runs the kernel
    assert r.status == "refused" and "`undefined` is not defined in the kernel's module" in r.message, r.report()
    module = as_module(variant(CH02, {}), tmp_path / "answer_timeout.py")
    loop = lambda *a: [None for _ in iter(int, 1)]  # noqa: E731  (loops forever)
    r = checks.grade("grouped_tile", loop, limit=1)
    assert r.status == "timeout" and r.points == 0
    assert checks.grade("grouped_tile", None).status == "missing"
    assert checks.grade("no_such_exercise", module.grouped_tile).status == "error"


def test_check_prints_and_remembers(capsys, tmp_path):
    module = as_module(variant(CH02, {}), tmp_path / "answer_print.py")
    result = checks.check("grouped_tile", module.grouped_tile, seed=7)
    out = capsys.readouterr().out
    assert "grouped_tile: PASS" in out and "seed 7" in out
    assert checks.last("grouped_tile") is result and result.passed
    failing = checks.check("grouped_tile", lambda pid, gm, gn, g: (0, 0), seed=7)
    assert "FAIL" in capsys.readouterr().out and not failing.passed


def test_same_seed_same_shapes_new_seed_new_shapes(tmp_path):
    module = as_module(variant(CH02, {}), tmp_path / "answer_seed.py")
    labels = lambda r: [s.label for s in r.subchecks]  # noqa: E731
    a = checks.grade("tiled_matmul", module.tiled_matmul, seed=11)
    b = checks.grade("tiled_matmul", module.tiled_matmul, seed=11)
    c = checks.grade("tiled_matmul", module.tiled_matmul, seed=12)
    assert labels(a) == labels(b) != labels(c)


# ------------------------------------------------------------------------------------------------
# the guard itself
# ------------------------------------------------------------------------------------------------
def test_allow_list_refuses_compute_and_allows_allocation():
    for op in ("mm", "bmm", "addmm", "matmul", "dot", "mv", "einsum", "linear", "mul", "mul_", "add_", "sum",
               "cumsum", "_local_scalar_dense", "convolution", "_scaled_mm", "scatter_add", "_foreach_mul_",
               "index_add", "floor_divide", "_embedding_bag", "_fft_r2c", "linalg_solve", "isnan", "eq",
               "where", "index_select", "gather", "_cdist_forward", "maximum"):
        assert is_denied(op), op
    for op in ("empty", "empty_strided", "full", "fill_", "zero_", "copy_", "_to_copy", "clone", "view",
               "as_strided", "set_", "new_empty", "select", "slice", "t", "transpose", "permute", "detach",
               "resize_", "lift_fresh", "arange", "expand", "unsqueeze", "squeeze", "alias", "_unsafe_view"):
        assert not is_denied(op), op


def test_sandbox_refuses_and_restores():
    a = torch.randn(3, 3)
    numpy_before = torch.Tensor.numpy
    with Sandbox() as box:
        c = torch.full((3, 3), float("nan"))
        c.copy_(a.t())
        with pytest.raises(Refused):
            a @ a
        with pytest.raises(Refused):
            a.numpy()
    assert len(box.refusals) == 2 and not box.launches
    assert torch.Tensor.numpy is numpy_before and (a @ a).shape == (3, 3)  # everything is back
    with pytest.raises(Timeout):
        with time_limit(0.2):
            while True:
                pass


def _bare_kernel(x_ptr):  # source for the kernel objects below (never launched)
    pass


def test_kernel_objects_with_python_of_their_own_are_refused():
    """``guard.kernel_object_problem``: the replay launches through Triton's class-level run, so Python hidden in
    the kernel object (``kernel.run = ...``), in a subclass of the answer's own, or put in place of a method of
    Triton's class is refused; Triton's own subclasses (Gluon's) are not."""
    import triton
    from triton.experimental.gluon._runtime import GluonJITFunction

    from grader.guard import kernel_object_problem

    kernel = triton.jit(_bare_kernel)
    assert kernel_object_problem(kernel) is None
    assert kernel_object_problem(GluonJITFunction(_bare_kernel)) is None
    kernel.run = lambda *args, **kwargs: None
    assert "has its own `run`" in kernel_object_problem(kernel)

    class Mine(type(triton.jit(_bare_kernel))):
        def run(self, *args, grid, warmup, **kwargs):
            return None

    assert "a class of your own" in kernel_object_problem(Mine(_bare_kernel))
    cls = type(triton.jit(_bare_kernel))
    original = cls.__dict__["rewrite" if "rewrite" in cls.__dict__ else "run"]
    name = original.__name__
    try:
        setattr(cls, name, lambda self, *args, **kwargs: None)
        assert f"{cls.__name__}.{name} was replaced" in kernel_object_problem(triton.jit(_bare_kernel))
    finally:
        setattr(cls, name, original)
    assert kernel_object_problem(triton.jit(_bare_kernel)) is None


def test_sandbox_refuses_low_level_threads_and_its_hooks_replaced():
    import _thread

    with Sandbox() as box:
        with pytest.raises(Refused):
            _thread.start_new_thread(print, ())
    assert len(box.refusals) == 1 and "_thread.start_new_thread" in box.refusals[0]
    with Sandbox() as box:
        torch.Tensor.numpy = lambda self: None  # over the sandbox's refusal
    assert "Tensor.numpy was replaced" in box.refusals[0]
    assert "numpy" not in torch.Tensor.__dict__ and torch.zeros(2).numpy().shape == (2,)  # everything is back


PP_TURN = '        yield ("wait", "turn", consumer, (n & 1) ^ (1 - consumer))\n'
PP_READY = '            yield ("wait", "ready", s, (g // stages) & 1)\n'
PP_MMA = '            yield ("mma", s, tile, k)\n'
PP_EMPTY = '            yield ("arrive", "empty", s)\n'
PP_PASS = '        yield ("arrive", "turn", 1 - consumer)\n'
PP_STORE = '        yield ("store", tile)\n'
WRONG_PINGPONG = {
    "no_turn_wait": ([(PP_TURN, "")], "fail", ("holds nothing yet", "in the middle of")),
    "turn_parity_flipped": ([(PP_TURN, PP_TURN.replace("(n & 1) ^ (1 - consumer)", "(n & 1) ^ consumer"))],
                            "fail", "deadlock"),
    "ready_parity_flipped": ([(PP_READY, PP_READY.replace("(g // stages) & 1", "((g // stages) & 1) ^ 1"))],
                             "fail", "ready["),
    "release_before_mma": ([(PP_MMA + PP_EMPTY, PP_EMPTY + PP_MMA)], "fail", ""),
    "never_releases": ([(PP_EMPTY, "")], "fail", "deadlock"),
    "wrong_ring_step": ([("            g = j * k_steps + k\n", "            g = n * k_steps + k\n")], "fail", ""),
    "store_before_turn": ([(PP_PASS + PP_STORE, PP_STORE + PP_PASS)], "fail", "before passing the turn"),
    "stores_twice": ([(PP_STORE, PP_STORE + PP_STORE)], "fail", "a second time"),
    "not_a_generator": ([("def pingpong_consumer(consumer, program, num_programs, num_tiles, k_steps, stages):\n",
                          "def pingpong_consumer(consumer, program, num_programs, num_tiles, k_steps, stages):\n"
                          "    return list(_steps(consumer, program, num_programs, num_tiles, k_steps, stages))\n\n\n"
                          "def _steps(consumer, program, num_programs, num_tiles, k_steps, stages):\n")],
                        "fail", "not a generator"),
    "library": ([("    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    yield from protocol.reference_consumer("
                  "consumer, program, num_programs, num_tiles, k_steps, stages)\n    return\n")],
                "refused", "reference_consumer"),
    "raises": ([("    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    1 // 0\n")], "error", "ZeroDivisionError"),
    "not_implemented": ([("    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    raise NotImplementedError\n")],
                        "not_implemented", "not implemented"),
}


@pytest.mark.parametrize("case", sorted(WRONG_PINGPONG))
def test_wrong_pingpong_consumers_fail(case, tmp_path):
    swaps, status, words = WRONG_PINGPONG[case]
    r = grade_variant(CH05, {"ch05-consumer": swaps}, "pingpong_consumer", tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert any(w in r.message for w in ((words,) if isinstance(words, str) else words)), r.report()
