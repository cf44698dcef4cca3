"""The chapter 08 exercises (``online_softmax_update``, ``attention_forward``): the solutions score full marks,
the untouched exercises zero, and wrong answers (the solution with one piece swapped, or a file in
``tests/answers/`` whose name starts with ``a08`` or ``c08``) get the verdict and the message they must get:
library calls (the course's ``kernels.attention``, PyTorch's fused attention, a product on the host) are
refused, and so are kernels that write the score matrix to memory (anywhere but O's and lse's elements), hold a
whole row of keys at once (more than the block_n asked for), read each key twice (two passes instead of the
online softmax), or hide host work in the kernel object's ``run``; and the profile hook or a low-level thread
cannot blind the watch on the plain-PyTorch update.

Everything is graded in this process (``grader.checks.grade``) except one run of ``python -m grader`` over
the solution notebook, as a learner's notebook is graded."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

import kernels
from grader import checks
from grader.registry import EXERCISES
from test_grader import as_module  # a notebook's definitions, imported from a file

ROOT = Path(__file__).resolve().parent.parent
CH08 = ROOT / "solutions" / "ch08_attention.ipynb"
ANSWERS = ROOT / "tests" / "answers"
NAMES = ("online_softmax_update", "attention_forward")
_count = iter(range(10**6))


def variant(swaps: dict):
    nb = nbformat.read(str(CH08), as_version=4)
    for cell_id, pairs in swaps.items():
        cell = next(c for c in nb.cells if c.get("id") == cell_id)
        for old, new in pairs:
            assert old in cell.source, f"{old!r} is not in cell {cell_id}: the solution changed"
            cell.source = cell.source.replace(old, new)
    return nb


def grade_variant(swaps, name, tmp_path, seed=1234):
    module = as_module(variant(swaps), tmp_path / f"att_answer_{name}_{next(_count)}.py")
    return checks.grade(name, getattr(module, name), seed=seed)


def grade_file(stem, name, seed=1234):
    spec = importlib.util.spec_from_file_location(f"att_answer_{stem}", ANSWERS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return checks.grade(name, getattr(module, name), seed=seed)


def has(message, words):
    return any(w in message for w in ((words,) if isinstance(words, str) else words))


# ------------------------------------------------------------------------------------------------
# solutions and stubs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [4321, 99])
@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(name, seed, tmp_path):
    r = grade_variant({}, name, tmp_path, seed=seed)
    assert r.passed and r.points == EXERCISES[name].points, r.report()
    assert all(s.status in ("pass", "skip") for s in r.subchecks)
    assert r.seconds < EXERCISES[name].time_limit_cpu / 3, r.report()


@pytest.mark.parametrize("name", NAMES)
def test_untouched_exercise_is_not_implemented(name, tmp_path):
    nb = nbformat.read(str(ROOT / "exercises" / CH08.name), as_version=4)
    module = as_module(nb, tmp_path / f"att_stub_{name}_{next(_count)}.py")
    r = checks.grade(name, getattr(module, name), seed=7)
    assert r.status == "not_implemented" and r.points == 0, r.report()


def test_the_solution_scores_full_marks_headless():
    """``python -m grader`` on the solution notebook, in a Jupyter kernel of its own."""
    proc = subprocess.run([sys.executable, "-m", "grader", str(CH08), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    results = {r["name"]: r for nb in report["notebooks"] for r in nb["exercises"]}
    assert set(results) == set(NAMES)
    assert all(r["status"] == "pass" for r in results.values()), results
    assert all(not nb["cell_issues"] for nb in report["notebooks"])


def test_the_exercise_keeps_the_given_parts():
    nb = nbformat.read(str(ROOT / "exercises" / CH08.name), as_version=4)
    cells = {c.get("id"): c.source for c in nb.cells}
    kernel = cells["ch08-kernel"]
    # given: program ids, offsets, the Q tile, the state and the loop bounds; to write: the body and the epilogue
    assert "q = tl.load(q_ptr + head" in kernel and "end = tl.minimum((pid_m + 1) * BLOCK_M, S)" in kernel
    assert "for n0 in range(0, end, BLOCK_N):" in kernel and kernel.count("# YOUR CODE HERE") == 2
    assert "tl.dot(" not in kernel and "tl.math.exp2" not in kernel and "tl.store(" not in kernel
    assert "attention_fwd_kernel[grid](" in cells["ch08-wrapper"]
    assert "torch.exp" not in cells["ch08-online"] and "# YOUR CODE HERE" in cells["ch08-online"]


# ------------------------------------------------------------------------------------------------
# wrong answers: the solution with one piece swapped
# ------------------------------------------------------------------------------------------------
ONLINE = "ch08-online"
KERNEL = "ch08-kernel"
WRONG = {
    "online_acc_not_rescaled": ("online_softmax_update", {ONLINE: [("acc * alpha[:, None] + p @ values",
                                                                    "acc + p @ values")]},
                                "fail", "acc was not rescaled"),
    "online_l_not_rescaled": ("online_softmax_update", {ONLINE: [("l * alpha + p.sum(dim=1)", "l + p.sum(dim=1)")]},
                              "fail", "l was not rescaled"),
    "online_nan_on_masked_rows": ("online_softmax_update",
                                  {ONLINE: [("shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)",
                                             "shift = m_new")]}, "fail", "-inf - (-inf)"),
    "online_not_shifted": ("online_softmax_update",
                           {ONLINE: [("shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)",
                                      "shift = torch.zeros_like(m_new)")]}, "fail", "expected"),
    "online_in_place": ("online_softmax_update",
                        {ONLINE: [("return m_new, l * alpha + p.sum(dim=1), acc * alpha[:, None] + p @ values",
                                   "return m_new, l.mul_(alpha).add_(p.sum(dim=1)), acc.mul_(alpha[:, None]).add_(p @ values)")]},
                        "fail", "changed its input"),
    "online_max_of_tile_only": ("online_softmax_update",
                                {ONLINE: [("m_new = torch.maximum(m, scores.max(dim=1).values)",
                                           "m_new = scores.max(dim=1).values")]}, "fail", "running maximum"),
    "no_causal_mask": ("attention_forward", {KERNEL: [("keep = keep & (offs_n[None, :] <= offs_m[:, None])",
                                                       "keep = keep")]}, "fail", "without the causal mask on"),
    "keys_past_s_counted": ("attention_forward", {KERNEL: [("keep = offs_n[None, :] < S", "keep = offs_n[None, :] >= 0")]},
                            "fail", "keys past S counted"),
    "acc_not_rescaled": ("attention_forward", {KERNEL: [("acc = acc * alpha[:, None] + ", "acc = acc + ")]},
                         "fail", "acc never rescaled"),
    "l_not_rescaled": ("attention_forward", {KERNEL: [("l_i = l_i * alpha + tl.sum(p, 1)", "l_i = l_i + tl.sum(p, 1)")]},
                       "fail", "l never rescaled"),
    "exp_for_exp2": ("attention_forward", {KERNEL: [("p = tl.math.exp2(", "p = tl.exp("),
                                                    ("alpha = tl.math.exp2(", "alpha = tl.exp(")]},
                     "fail", "log2(e) counted twice"),
    "no_max_subtracted": ("attention_forward", {KERNEL: [("p = tl.math.exp2(s - m_new[:, None])", "p = tl.math.exp2(s)"),
                                                         ("alpha = tl.math.exp2(m_i - m_new)",
                                                          "alpha = tl.full((BLOCK_M,), 1.0, dtype=tl.float32)")]},
                          "fail", ("NaN or inf", "were not shifted")),
    "lse_base_2": ("attention_forward", {KERNEL: [(" * 0.6931471805599453", "")]}, "fail", "in base 2"),
    "lse_without_max": ("attention_forward", {KERNEL: [("(m_i + tl.math.log2(l_i)) * 0.6931471805599453",
                                                        "tl.math.log2(l_i) * 0.6931471805599453")]},
                        "fail", "log(l) alone"),
    "lse_not_stored": ("attention_forward", {KERNEL: [("    tl.store(lse_ptr", "    if False:\n        tl.store(lse_ptr")]},
                       "fail", "never stored"),
    "o_rows_unmasked": ("attention_forward", {KERNEL: [("o.to(o_ptr.dtype.element_ty),\n             mask=offs_m[:, None] < S)",
                                                        "o.to(o_ptr.dtype.element_ty))")]},
                        "fail", ("stored 2 times", "wrote outside")),
    "kv_loads_unmasked": ("attention_forward", {KERNEL: [("k = tl.load(k_ptr + kv, mask=offs_n[:, None] < S, other=0.0)",
                                                          "k = tl.load(k_ptr + kv)")]},
                          "fail", ("read outside k", "another head")),
    "causal_mask_off_by_one": ("attention_forward", {KERNEL: [("keep = keep & (offs_n[None, :] <= offs_m[:, None])",
                                                              "keep = keep & (offs_n[None, :] < offs_m[:, None])")]},
                               "fail", "query i sees keys j <= i"),
    "causal_loads_every_tile": ("attention_forward", {KERNEL: [("end = tl.minimum((pid_m + 1) * BLOCK_M, S)", "end = S")]},
                                "fail", "wholly above the diagonal"),
    "one_tile_of_keys": ("attention_forward", {KERNEL: [("for n0 in range(0, end, BLOCK_N):", "for n0 in range(0, BLOCK_N, BLOCK_N):")]},
                         "fail", "first BLOCK_N keys only"),
    # every score off by one factor: the hint names the scale (not the masks, with S = 9 not a multiple of BLOCK_N)
    "scale_sqrt_d_plus_1": ("attention_forward", {"ch08-wrapper": [("LOG2E / math.sqrt(D)", "LOG2E / math.sqrt(D + 1)")]},
                            "fail", "every score multiplied by"),
}
# judged from the interpreter's trace (a GPU's compiled kernel runs the stores and loads the same way, unseen)
INTERPRETER_ONLY = {"o_rows_unmasked", "kv_loads_unmasked", "causal_loads_every_tile"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_answers_fail(case, tmp_path):
    if kernels.ON_GPU and case in INTERPRETER_ONLY:
        pytest.skip("judged in the interpreter")
    name, swaps, status, words = WRONG[case]
    r = grade_variant(swaps, name, tmp_path)
    assert r.status == status and r.points == 0, r.report()
    assert has(r.message, words), r.report()
    if case == "scale_sqrt_d_plus_1":  # the first case has D = 16: as if 1/sqrt(17), and masking not blamed
        assert "1/sqrt(17)" in r.message and "masked" not in r.message, r.report()


# ------------------------------------------------------------------------------------------------
# answers in tests/answers/
# ------------------------------------------------------------------------------------------------
ANSWER_FILES = {
    "a08o_library": ("online_softmax_update", {"refused"}, "calling kernels.attention.online_softmax_update"),
    "c08o_thread_library": ("online_softmax_update", {"refused"}, "a thread"),
    # the grader's profile hook switched off (and put back after: a copy of the course's code that the swap of
    # its functions' code does not reach), or a thread started below threading
    "c08o_setprofile_library": ("online_softmax_update", {"refused"}, "sys.setprofile"),
    "c08o_setprofile_restored": ("online_softmax_update", {"refused"}, "sys.setprofile"),
    "c08o_lowlevel_thread": ("online_softmax_update", {"refused"}, "a thread (_thread.start_new_thread)"),
    # keeps the tiles it was given and redoes the whole softmax: wrong for a state it never saw
    "c08o_remembers_rows": ("online_softmax_update", {"fail"}, "a state from earlier tiles"),
    "a08a_sdpa": ("attention_forward", {"refused"}, "scaled_dot_product_attention"),
    "a08a_course": ("attention_forward", {"refused"}, "kernels.attention.attention"),
    "a08a_host_scores": ("attention_forward", {"refused"}, "torch's `bmm`"),
    "a08a_score_matrix": ("attention_forward", {"refused"}, "stored into memory other than O and lse"),
    "a08a_whole_row": ("attention_forward", {"refused"}, "rows of k in one tl.load, more than BLOCK_N"),
    # the limit on a tile of keys is the block_n the grader asks for (or the wrapper's default), not what the
    # kernel calls BLOCK_N: a whole-row constant named BLOCK_N, a wrapper that sets BLOCK_N to S
    "c08a_whole_row_renamed": ("attention_forward", {"refused"}, "rows of k in one tl.load, more than BLOCK_N = 16"),
    "c08a_whole_row_wrapper_block": ("attention_forward", {"refused"}, "rows of k in one tl.load, more than BLOCK_N"),
    # the score matrix in lse's own allocation, past the lse returned: only O's and lse's elements count
    "c08a_scores_in_lse_storage": ("attention_forward", {"refused"}, "outside the lse your function returns"),
    # a first pass for the row maximum, a second for the sums: each row of K read twice
    "c08a_two_pass": ("attention_forward", {"refused"}, ("2 times", "online softmax")),
    # host work in the kernel object's run (kernel.run = ..., a subclass's run): refused; the replay goes
    # through Triton's own run, so host work done before a launch of a clean kernel object does not follow
    "c08a_run_override": ("attention_forward", {"refused"}, "has its own `run`"),
    "c08a_run_override_copy": ("attention_forward", {"refused"}, "did not follow"),
    "c08a_run_subclass": ("attention_forward", {"refused"}, "a class of your own"),
    "c08a_class_run_replaced": ("attention_forward", {"refused"}, ".run was replaced"),
    # the grader's own functions replaced from inside the answer (sys.modules["grader.checks"]): refused, and
    # the grader put back for the next answer
    "c08a_patch_grader": ("attention_forward", {"refused"}, "changed the grader itself"),
    "c08o_patch_grader": ("online_softmax_update", {"refused"}, "changed the grader itself"),
    # host work hidden where the replay runs it again: a torch.Tensor subclass as a kernel argument, a method of
    # Triton's interpreter builder replaced at import, NumPy named in the kernel's body under a name its module
    # does not define (the interpreter adds its own `np` when it runs the kernel)
    "c08a_tensor_subclass": ("attention_forward", {"refused"}, "a subclass of torch.Tensor"),
    "c08a_builder_patch": ("attention_forward", {"refused"}, "InterpreterBuilder.create_make_range is not Triton's own"),
    "c08a_injected_np": ("attention_forward", {"refused"}, "`np` is not defined in the kernel's module"),
    # O and lse written on the host, then a kernel that loads and stores nothing is launched on them
    "c08a_kernel_loads_nothing": ("attention_forward", {"refused"}, "no tl.load, tl.store"),
    # a whole row of scores held in registers, built by a tl.dot with a one-hot matrix
    "c08a_row_in_registers": ("attention_forward", {"refused"}, "whole row of scores"),
    # bugs that only larger problems show: B*H = 8, keys past 64, the causal mask for S > 64
    "c08a_bug_bh4": ("attention_forward", {"fail"}, ("stored 2 times", "another head", "expected")),
    "c08a_bug_64keys": ("attention_forward", {"fail"}, "expected"),
    "c08a_bug_causal_big": ("attention_forward", {"fail"}, ("wholly above the diagonal", "expected")),
    # the two passes with a load of q whose lanes are all masked off (it reads nothing: no second tile of
    # queries); a whole row of scores scattered into registers by broadcasts, with no wide tl.dot
    "c08a_two_pass_ghost_load": ("attention_forward", {"refused"}, ("2 times", "online softmax")),
    "c08a_row_by_broadcast": ("attention_forward", {"refused"}, ("longer than any tile", "whole row")),
    # softmaxes that are not online: float64 with no maximum subtracted; a shift fixed by the first tile
    "c08a_float64_no_max": ("attention_forward", {"fail"}, ""),
    "c08a_first_tile_shift": ("attention_forward", {"fail"}, ""),
    # scores without tl.dot (broadcast, multiply, sum) scattered into a whole row; two passes over the keys by
    # programs that take two tiles of queries, one of them a single row borrowed; the grader's hooks on Triton's
    # builder swapped for Triton's own around the launch
    "c08a_row_without_dot": ("attention_forward", {"refused"}, ("longer than any tile", "whole row")),
    "c08a_two_pass_paired_tiles": ("attention_forward", {"refused"}, ("2 times", "online softmax")),
    "c08a_unhook_builder": ("attention_forward", {"refused"}, "is not the grader's hook around your launch"),
    # correct: O's tile flattened for its store; a persistent kernel whose programs span several heads
    "c08a_flat_store": ("attention_forward", {"pass"}, ""),
    "c08a_persistent_across_heads": ("attention_forward", {"pass"}, ""),
    # correct: a persistent-style kernel taking two tiles of queries per program reads each key once per tile
    "c08a_persistent_two_tiles": ("attention_forward", {"pass"}, ""),
}
ANSWERS_INTERPRETER_ONLY = {"a08a_score_matrix", "a08a_whole_row", "c08a_whole_row_renamed",
                            "c08a_whole_row_wrapper_block", "c08a_scores_in_lse_storage", "c08a_two_pass",
                            "c08a_run_override", "c08a_builder_patch", "c08a_injected_np",
                            "c08a_kernel_loads_nothing", "c08a_row_in_registers", "c08a_two_pass_ghost_load",
                            "c08a_row_by_broadcast", "c08a_row_without_dot", "c08a_two_pass_paired_tiles",
                            "c08a_unhook_builder"}  # the last reads q, k, v through ctypes: host memory only


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("stem", sorted(ANSWER_FILES))
def test_answer_files_get_their_verdict(stem):
    if kernels.ON_GPU and stem in ANSWERS_INTERPRETER_ONLY:
        pytest.skip("judged in the interpreter")
    name, statuses, words = ANSWER_FILES[stem]
    r = grade_file(stem, name)
    assert r.status in statuses, r.report()
    assert has(r.message, words), r.report()
    assert (r.points == r.max_points) == (r.status == "pass")


def test_o_must_come_from_the_inputs_through_the_kernel(tmp_path):
    """A wrapper that returns a copy of what the kernel wrote (made after the launch) is refused."""
    swaps = {"ch08-wrapper": [("    return o, lse", "    return o.clone(), lse")]}
    r = grade_variant(swaps, "attention_forward", tmp_path)
    assert r.status == "refused" and "never passed to a Triton kernel" in r.message, r.report()


def test_a_copy_of_q_made_before_the_launch_is_refused(tmp_path):
    swaps = {"ch08-wrapper": [("    attention_fwd_kernel[grid](q, k, v,", "    q = q.clone()\n    attention_fwd_kernel[grid](q, k, v,")]}
    r = grade_variant(swaps, "attention_forward", tmp_path)
    assert r.status == "refused" and "q itself was never passed to your kernel" in r.message, r.report()


def _f32(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype, device=kernels.DEVICE)


BAD_INPUT = {
    "online_softmax_update": [
        ((_f32(3, dtype=torch.float64), _f32(3, dtype=torch.float64), _f32(3, 4, dtype=torch.float64),
          _f32(3, 5, dtype=torch.float64), _f32(6, 4, dtype=torch.float64)), {}, ValueError, "must agree"),
        ((_f32(2, dtype=torch.float64), _f32(3, dtype=torch.float64), _f32(3, 4, dtype=torch.float64),
          _f32(3, 5, dtype=torch.float64), _f32(5, 4, dtype=torch.float64)), {}, ValueError, "m and l must be (3,)"),
        ((None, None, None, None, None), {}, TypeError, "m must be a torch.Tensor"),
    ],
    "attention_forward": [
        ((_f32(1, 1, 8, 16, dtype=torch.bfloat16),) * 3, {}, TypeError, "float32 or float16"),
        ((_f32(1, 8, 16),) * 3, {}, ValueError, "contiguous (B, H, S, D)"),
        ((_f32(1, 1, 8, 16), _f32(1, 1, 9, 16), _f32(1, 1, 8, 16)), {}, ValueError, "share a shape"),
        ((_f32(1, 1, 8, 24),) * 3, {}, ValueError, "head dim 24"),
        ((_f32(1, 1, 16, 8).transpose(2, 3),) * 3, {}, ValueError, "contiguous"),
        ((_f32(1, 1, 8, 16),) * 3, {"block_n": 8}, ValueError, "block_n=8"),
    ],
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    where = tmp_path_factory.mktemp("att_wrappers")
    return {kind: as_module(nbformat.read(str(ROOT / kind / CH08.name), as_version=4),
                            where / f"att_wrapper_{kind}.py") for kind in ("solutions", "exercises")}


@pytest.mark.parametrize("kind", ["solutions", "exercises"])
@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_given_checks_refuse_bad_input_in_one_line(modules, kind, name):
    fn = getattr(modules[kind], name)
    for args, kwargs, exc, words in BAD_INPUT[name]:
        with pytest.raises(exc) as info:
            fn(*args, **kwargs)
        text = str(info.value)
        assert words in text and "\n" not in text and text.startswith(f"{name}: "), text
