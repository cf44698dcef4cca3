"""Answers that tried to get marks without doing the work, right answers written in unusual ways, and
common mistakes (``tests/answers/``), each graded in this process with the verdict and message it
must get."""
import importlib.util
import sys
from pathlib import Path

import pytest

import kernels
from grader import checks

HERE = Path(__file__).resolve().parent / "answers"
sys.path.insert(0, str(HERE))  # clone_util

# file: (exercise, statuses, a phrase the message must hold; None: where the world decides)
CASES = {
    # the product made where the grader does not look, then copied in by a kernel launched with a grid
    # function: the replay launches with the grid as resolved, so the product is not made again
    "a01_gridcb_modes_off": ("naive_matmul", {"refused"}, "C did not follow"),
    "a01_prerun": ("naive_matmul", {"refused"}, "pre-run hook"),
    "a01_pybody": ("naive_matmul", {"refused"}, "calling the Python function `refresh` inside the @triton.jit"),
    # the course's kernels and helpers under another module or name
    "a01_clone": ("naive_matmul", {"refused"}, "course's own kernel"),
    "a02_clone": ("tiled_matmul", {"refused"}, "kernels.tiled.matmul_tile"),
    "a04_clone": ("tma_matmul", {"refused"}, "course's own kernel"),
    "a02g_replace": ("grouped_tile", {"refused"}, "the course's own answer"),
    "c02g_setprofile_copy": ("grouped_tile", {"refused"}, "sys.setprofile"),  # the call watch switched off
    "a05_replace": ("pingpong_consumer", {"refused"}, "the course's own answer"),
    # out= ignored: C's strides never tested
    "a02_ignore_out": ("tiled_matmul", {"fail"}, "returned another tensor"),
    # the tile read from what ran, not from argument names
    "a02_oneprog_dummy": ("tiled_matmul", {"fail"}, "each program computes one BLOCK_M x BLOCK_N tile"),
    "a03_prog0": ("persistent_matmul", {"fail"}, "tile ids"),
    "a03_rowmajor": ("persistent_matmul", {"fail"}, "grouped order"),
    "a04_ptrstore": ("tma_matmul", {"refused"}, "stored through pointers"),
    # right answers
    "r03_b64_clamp": ("persistent_matmul", {"pass"}, ""),
    "r01_print2": ("naive_matmul", {"pass"}, ""),
    "r01_assertnan": ("naive_matmul", {"pass"}, ""),
    # messages that name the real cause
    "r02_autotune": ("tiled_matmul", {"error"}, "triton.autotune times every configuration on a GPU"),
    "r02_blockptr": ("tiled_matmul", {"error"}, "Block pointers have been removed"),
    "m_tileidx_ch04": ("tma_matmul", {"error", "fail"}, "not tile numbers"),
}
INTERPRETER_ONLY = {"a01_pybody", "a02_oneprog_dummy", "a03_prog0", "a03_rowmajor", "r02_autotune",
                    "r02_blockptr",  # the interpreter's trace, or Triton 3.9's interpreter messages
                    "m_tileidx_ch04"}  # compiled, tile numbers as offsets end in an illegal instruction
# compiled, a copy of a course kernel under another module does not compile (Triton's JIT needs the
# module it was written in): not a pass either way
GPU_VERDICTS = {"a01_clone": ({"refused", "error"}, ""), "a04_clone": ({"refused", "error"}, "")}


def load(name):
    spec = importlib.util.spec_from_file_location(f"answer_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_answer_gets_its_verdict(name):
    if kernels.ON_GPU and name in INTERPRETER_ONLY:
        pytest.skip("judged from the interpreter's trace of the programs")
    exercise, statuses, phrase = CASES[name]
    if kernels.ON_GPU and name in GPU_VERDICTS:
        statuses, phrase = GPU_VERDICTS[name]
    r = checks.grade(exercise, getattr(load(name), exercise), seed=1234)
    assert r.status in statuses, r.report()
    assert phrase in r.message, r.report()
    assert (r.points == r.max_points) == (r.status == "pass")


def test_a_notebook_named_for_exercises_is_graded_on_all_of_them():
    """Metadata that leaves an exercise out does not drop it: ch02's notebook holds two."""
    from grader.runner import exercises_in

    nb = {"metadata": {"ttc": {"exercises": ["grouped_tile"]}}, "cells": []}
    assert exercises_in(nb, Path("my-work/ch02_tiled_matmul.ipynb")) == ["grouped_tile", "tiled_matmul"]
    nb["metadata"]["ttc"]["exercises"] = ["tiled_matmul"] * 10
    assert exercises_in(nb, Path("my-work/ch02_tiled_matmul.ipynb")) == ["tiled_matmul", "grouped_tile"]
    assert exercises_in(nb, Path("my-work/other.ipynb")) == ["tiled_matmul"]
