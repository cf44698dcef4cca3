"""Exercise notebooks are generated from the solutions, never edited by hand: the drift test, the
generator's rules, and the state the notebooks are committed in."""
import ast
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import generate
from grader.generate import MarkerError, strip_solutions
from grader.generate import main as generate_main
from grader.registry import EXERCISES, SELF_CHECK_TAG, SOLUTION_ONLY_TAG

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISE_NBS = sorted((ROOT / "exercises").glob("*.ipynb"))


def test_committed_exercises_are_up_to_date():
    """In a git checkout, what solutions/ generate must be the committed exercises/ (or the files on disk,
    for a regenerated, not yet committed exercises/): a learner's edits to exercises/ do not fail this.
    Outside git, the files on disk are compared."""
    proc = subprocess.run([sys.executable, "-m", "grader.generate", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + "\nrun `python -m grader.generate` and commit exercises/"


def _git(repo, *args):
    config = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", "-C", str(repo), *config, *args], capture_output=True, text=True, timeout=60,
                          check=True)


def _fill_in(path: Path, code: str = "    return 42") -> None:
    """Replace the first stub's `raise`/`pass` line in an exercise notebook, as a learner would."""
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "# YOUR CODE HERE" in c.source)
    lines = cell.source.split("\n")
    i = lines.index(next(x for x in lines if x.strip() == "# YOUR CODE HERE"))
    lines[i + 1] = code
    cell.source = "\n".join(lines)
    nbformat.write(nb, str(path))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_check_compares_with_the_committed_version_in_git(tmp_path, capsys):
    def check():
        code = generate_main(["--check", "--solutions", str(sol), "--exercises", str(ex)])
        return code, capsys.readouterr().err

    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", sol, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert generate_main(["--solutions", str(sol), "--exercises", str(ex)]) == 0
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "course")
    assert generate.committed_versions(ex).keys() == {p.name for p in SOLUTIONS}
    assert check()[0] == 0

    name = SOLUTIONS[-1].name
    _fill_in(ex / name)  # a learner's answer, never committed: still up to date
    (ex / "my_notes.ipynb").write_text((ex / name).read_text())  # a learner's own notebook: not the course's
    code, err = check()
    assert code == 0 and f"{name} differs from its committed version" in err

    nb = nbformat.read(str(sol / name), as_version=4)  # the course changes, exercises/ not regenerated
    nb.cells[0].source += "\n\nOne more sentence."
    nbformat.write(nb, str(sol / name))
    code, err = check()
    assert code == 1 and f"{name} differs from what" in err

    (ex / name).unlink()  # regenerated (the learner's edit is gone here), not yet committed: up to date
    assert generate_main(["--solutions", str(sol), "--exercises", str(ex)]) == 0
    assert check()[0] == 0

    _git(tmp_path, "add", "exercises/my_notes.ipynb")  # committed without a solution: a problem again
    _git(tmp_path, "commit", "-qm", "stray")
    code, err = check()
    assert code == 1 and "my_notes.ipynb has no solution notebook" in err


def test_outside_git_the_files_on_disk_are_compared(tmp_path):
    assert generate.committed_versions(tmp_path) is None
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", sol, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert generate_main(["--solutions", str(sol), "--exercises", str(ex)]) == 0
    _fill_in(ex / SOLUTIONS[0].name)
    assert generate_main(["--check", "--solutions", str(sol), "--exercises", str(ex)]) == 1


def test_generate_keeps_an_edited_exercise_before_replacing_it(tmp_path, capsys):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", sol, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert generate_main(["--solutions", str(sol), "--exercises", str(ex)]) == 0
    capsys.readouterr()
    filled, untouched = ex / SOLUTIONS[0].name, ex / SOLUTIONS[1].name
    _fill_in(filled, "    return 'my answer'")
    answer = filled.read_text()
    for path in (sol / filled.name, sol / untouched.name):  # the course changes both
        nb = nbformat.read(str(path), as_version=4)
        nb.cells[0].source += "\n\nOne more sentence."
        nbformat.write(nb, str(path))

    assert generate_main(["--solutions", str(sol), "--exercises", str(ex)]) == 0
    out = capsys.readouterr()
    (kept,) = ex.glob(f"{filled.name}.bak-*")
    assert kept.read_text() == answer, "the learner's answer is kept, byte for byte"
    assert f"{filled.name} looks edited (a `# YOUR CODE HERE` stub was filled in): kept it as" in out.err
    assert "my-work/" in out.err
    assert filled.read_text() == generate.render(sol / filled.name)  # and the template is current
    assert not list(ex.glob(f"{untouched.name}.bak-*")), "an untouched template is just replaced"
    assert generate_main(["--check", "--solutions", str(sol), "--exercises", str(ex)]) == 0  # .bak is no notebook
    assert generate_main(["--solutions", str(sol), "--exercises", str(ex)]) == 0  # in sync: nothing to keep
    assert len(list(ex.glob("*.bak-*"))) == 1


def test_what_counts_as_edited():
    text = (ROOT / "exercises" / SOLUTIONS[0].name).read_text()
    assert generate.looks_edited(text, text) is None
    nb = nbformat.reads(text, as_version=4)

    ran = copy.deepcopy(nb)
    next(c for c in ran.cells if c.cell_type == "code").execution_count = 1
    assert "outputs" in generate.looks_edited(nbformat.writes(ran), text)

    added = copy.deepcopy(nb)
    added.cells.append(nbformat.v4.new_code_cell("x = 1"))
    assert "cells the course did not write" in generate.looks_edited(nbformat.writes(added), text)

    removed = copy.deepcopy(nb)
    for c in removed.cells:
        c.source = re.sub(r"\n\s*# YOUR CODE HERE\n[^\n]*", "\n    return 1", c.source)
    assert "stub was removed" in generate.looks_edited(nbformat.writes(removed), text)
    assert "not a notebook" in generate.looks_edited("{", text)


def test_check_detects_drift(tmp_path, capsys):
    def generate(*args):
        code = generate_main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", sol, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    assert generate("--solutions", sol, "--exercises", ex).returncode == 0
    assert sorted(p.name for p in ex.glob("*.ipynb")) == [p.name for p in SOLUTIONS]
    assert generate("--check", "--solutions", sol, "--exercises", ex).returncode == 0

    edited = sol / SOLUTIONS[0].name
    nb = nbformat.read(str(edited), as_version=4)
    nb.cells[0].source += "\n\nOne more sentence."
    nbformat.write(nb, str(edited))
    proc = generate("--check", "--solutions", sol, "--exercises", ex)
    assert proc.returncode == 1 and f"{SOLUTIONS[0].name} differs" in proc.stderr

    assert generate("--solutions", sol, "--exercises", ex).returncode == 0  # regenerate: in sync again
    assert generate("--check", "--solutions", sol, "--exercises", ex).returncode == 0
    (ex / SOLUTIONS[-1].name).unlink()
    proc = generate("--check", "--solutions", sol, "--exercises", ex)
    assert proc.returncode == 1 and "is missing" in proc.stderr
    assert generate("--solutions", sol, "--exercises", ex).returncode == 0
    shutil.copy(ex / SOLUTIONS[0].name, ex / "ch99_stale.ipynb")
    proc = generate("--check", "--solutions", sol, "--exercises", ex)
    assert proc.returncode == 1 and "ch99_stale.ipynb has no solution notebook" in proc.stderr


def test_every_solution_has_an_exercise_and_each_exercise_is_graded():
    assert [p.name for p in SOLUTIONS] == [p.name for p in EXERCISE_NBS]
    listed = []
    for path in SOLUTIONS:
        nb = nbformat.read(str(path), as_version=4)
        names = nb.metadata["ttc"]["exercises"]
        listed += names
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for name in names:
            assert EXERCISES[name].notebook == path.stem
            checks = [c for c in nb.cells if c.cell_type == "code" and f'grader.check("{name}", {name})' in c.source]
            assert len(checks) == 1 and SELF_CHECK_TAG in checks[0].metadata.get("tags", [])
            assert len(checks[0].source.splitlines()) == 1, "the self-check is a one-line cell"
            assert f'grader.last("{name}").passed' in code, "the solution must assert its own check"
    assert sorted(listed) == sorted(EXERCISES)


@pytest.mark.parametrize("path", SOLUTIONS + EXERCISE_NBS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_have_no_outputs_and_import_kernels_first(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"outputs in {path.name}: {cell.source[:50]!r}"
        ast.parse(cell.source)
    assert code[0].source.startswith("import kernels")
    assert "describe_world()" in code[0].source
    assert not any("import triton" in c.source for c in code[:1])


@pytest.mark.parametrize("path", EXERCISE_NBS, ids=lambda p: p.name)
def test_exercises_hold_no_solutions(path):
    nb = nbformat.read(str(path), as_version=4)
    solution = nbformat.read(str(ROOT / "solutions" / path.name), as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert not any(SOLUTION_ONLY_TAG in c.metadata.get("tags", []) for c in nb.cells)
    assert text.count("# YOUR CODE HERE") == sum(c.source.count("### BEGIN SOLUTION") for c in solution.cells)
    for cell in solution.cells:  # no line of an answer survives
        for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
            for line in region.splitlines():
                if len(line.strip()) > 12:
                    assert line not in text, line


def test_stub_rules():
    kernel = ("@triton.jit\ndef k(x_ptr, N):\n    i = tl.program_id(0)\n    ### BEGIN SOLUTION\n"
              "    tl.store(x_ptr + i, 1.0)\n    ### END SOLUTION\n")
    assert strip_solutions(kernel) == ("@triton.jit\ndef k(x_ptr, N):\n    i = tl.program_id(0)\n"
                                       "    # YOUR CODE HERE\n    pass\n")
    plain = ("def f(x):\n    if x:\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n"
             "    return 0  # solution-only\n    return None\n")
    assert strip_solutions(plain) == ("def f(x):\n    if x:\n        # YOUR CODE HERE\n"
                                      '        raise NotImplementedError("f: replace this line with your code")\n'
                                      "    return None\n")
    nested = "def outer():\n    @triton.jit\n    def inner(p):\n        ### BEGIN SOLUTION\n        x = 1\n        ### END SOLUTION\n"
    assert "        pass" in strip_solutions(nested)
    with pytest.raises(MarkerError, match="no matching"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(MarkerError, match="without a BEGIN"):
        strip_solutions("x = 1\n### END SOLUTION\n")
    with pytest.raises(MarkerError, match="no matching"):
        strip_solutions("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n")


def test_persistent_exercise_keeps_the_given_parts_and_drops_the_loop():
    nb = nbformat.read(str(ROOT / "exercises" / "ch03_persistent_matmul.ipynb"), as_version=4)
    cells = {c.get("id"): c.source for c in nb.cells}
    kernel = cells["ch03-kernel"]
    assert "num_tiles = grid_m * grid_n" in kernel and kernel.rstrip().endswith("# YOUR CODE HERE\n    pass")
    assert "for tile_id" not in kernel and "matmul_tile(" not in kernel
    # the wrapper and the helpers are given: the learner writes only the loop
    assert "persistent_matmul_kernel[(num_programs,)](" in cells["ch03-wrapper"]
    assert "grouped_tile_jit = device_fn(grouped_tile)" in cells["ch03-helpers"]
    assert "from kernels.tiled import matmul_tile" in cells["ch03-imports"]


def test_tma_exercise_keeps_the_given_parts_and_drops_the_tma_code():
    nb = nbformat.read(str(ROOT / "exercises" / "ch04_tma_matmul.ipynb"), as_version=4)
    cells = {c.get("id"): c.source for c in nb.cells}
    kernel = cells["ch04-kernel"]
    # given: the persistent loop and the grouped order; to write: descriptors, K loop, store
    assert "for tile_id in range(tl.program_id(0), num_tiles, tl.num_programs(0)):" in kernel
    assert "grouped_tile_jit(tile_id, grid_m, grid_n, GROUP_M)" in kernel
    assert kernel.count("# YOUR CODE HERE") == 2
    assert "make_tensor_descriptor" not in kernel and ".load(" not in kernel and ".store(" not in kernel
    wrapper = cells["ch04-wrapper"]
    assert "tma_matmul_kernel[(num_programs,)](" in wrapper and "_ensure_allocator()" in wrapper
    assert "% 16" in wrapper  # the 16-byte rule is checked before the launch
