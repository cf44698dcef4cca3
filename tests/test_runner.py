"""The headless runner's own rules (``python -m grader``): exit statuses, each exercise graded once, cells
that exit or are interrupted, a time budget per notebook, and no process outliving the grading.

Chapter 05's exercise is plain Python (no Triton), so these notebooks grade in seconds."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from grader import processes, runner
from grader.registry import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
CH05 = ROOT / "solutions" / "ch05_pingpong_protocol.ipynb"
CH05_STUB = ROOT / "exercises" / "ch05_pingpong_protocol.ipynb"
POINTS = EXERCISES["pingpong_consumer"].points


def grader(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def as_json(proc):
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout)


def with_cells(src: Path, dest: Path, *sources, exercises=None) -> Path:
    """``src`` with ``sources`` as new code cells after its first code cell (the one importing kernels)."""
    nb = nbformat.read(str(src), as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    for k, code in enumerate(sources):
        nb.cells.insert(first + 1 + k, nbformat.v4.new_code_cell(code))
    if exercises is not None:
        nb.metadata["ttc"]["exercises"] = exercises
    nbformat.write(nb, str(dest))
    return dest


def alive(pid: int) -> bool:
    """True while ``pid`` is a process that has not ended (a zombie has ended)."""
    info = processes._stat(pid)
    return info is not None and info[1] not in ("Z", "X")


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@linux_only
def test_one_run_grades_once_reports_exiting_cells_and_ends_every_process(tmp_path):
    sleep, sh = shutil.which("sleep"), shutil.which("sh")
    pids = tmp_path / "pids"
    nb = with_cells(
        CH05, tmp_path / "ch05_busy.ipynb",
        # a process in a new session: it keeps the kernel's environment
        f"import subprocess\np = subprocess.Popen([{sleep!r}, '1000'], start_new_session=True)\n"
        f"open({str(pids)!r}, 'a').write(f'{{p.pid}}\\n')",
        # a double fork with a scrubbed environment: only the subreaper sees it
        f"import subprocess\nsubprocess.run([{sh!r}, '-c', '{sleep} 1000 >/dev/null 2>&1 & echo $! >> {pids}'],"
        " env={}, start_new_session=True, check=True)",
        "import sys\nsys.exit(3)",
        "raise KeyboardInterrupt",
        "exit()",
        "x_after_exit = 1",
        exercises=["pingpong_consumer"] * 10 + ["no_such_exercise"],
    )
    proc = grader(nb, "--json")
    report = as_json(proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["exit_status"] == 0
    (book,) = report["notebooks"]
    assert [r["name"] for r in book["exercises"]] == ["pingpong_consumer"]  # graded once, not ten times
    assert book["score"] == book["max_points"] == report["score"] == POINTS
    notes = "\n".join(book["cell_issues"])
    assert "lists 'pingpong_consumer' 10 times; it is graded once" in notes
    assert "'no_such_exercise', which is not an exercise the grader knows" in notes
    assert "called sys.exit() or raised SystemExit (SystemExit: 3)" in notes
    assert "was interrupted (it raised KeyboardInterrupt)" in notes
    assert "called exit() or quit(), which stops the Jupyter kernel" in notes
    assert "the grader could not run" not in notes
    assert len(book["cell_issues"]) == 5, book["cell_issues"]
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) >= 2  # (after exit() the restarted kernel re-ran the two cells: 4)
    time.sleep(0.2)
    assert not [pid for pid in started if alive(pid)], "a process the notebook started outlived the grading"


def test_exit_status_says_whether_every_exercise_has_full_marks(tmp_path):
    # untouched exercise: graded, zero points -> 3; a notebook with no exercise -> 3 as well
    proc = grader(CH05_STUB, "--json")
    assert proc.returncode == 3, proc.stderr[-3000:]
    report = as_json(proc)
    assert report["score"] == 0 and report["exit_status"] == 3
    assert report["notebooks"][0]["exercises"][0]["status"] == "not_implemented"
    text = grader(CH05_STUB)
    assert text.returncode == 3 and "exit status 3" in text.stdout
    # bad command lines -> 2
    assert grader(tmp_path / "nope.ipynb").returncode == 2
    (tmp_path / "notes.txt").write_text("x")
    assert grader(tmp_path / "notes.txt").returncode == 2
    assert grader(CH05_STUB, "--notebook-timeout", "0").returncode == 2
    (tmp_path / "empty-workspace").mkdir()  # not the learner's my-work/, whose grades the run would keep
    assert grader("--workspace", tmp_path / "empty-workspace").returncode == 2


def test_exit_status_rules():
    def book(*points, failed=False):
        r = runner.NotebookReport("x.ipynb", 1, kernel_failed=failed)
        r.exercises = [runner.Result("e", "pass" if p == 5 else "fail", p, 5) for p in points]
        return r

    assert runner.exit_status([book(5), book(5, 5)]) == 0
    assert runner.exit_status([book(5), book(0)]) == 3
    assert runner.exit_status([book(5), book()]) == 3  # nothing graded in one notebook
    assert runner.exit_status([book(5), book(0, failed=True)]) == 1


def test_main_returns_1_when_no_kernel_starts(monkeypatch, capsys):
    class NoKernel:
        def __init__(self, *a, **k):
            raise RuntimeError("no kernel here")

    monkeypatch.setattr(runner, "Kernel", NoKernel)
    monkeypatch.setattr(processes, "become_subreaper", lambda: False)  # leave pytest's process as it is
    assert runner.main([str(CH05), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["notebooks"][0]["kernel_failed"] and report["score"] == 0


def test_the_notebook_budget_skips_the_rest_and_scores_zero(tmp_path):
    nb = with_cells(CH05, tmp_path / "ch05_slow.ipynb", "import time\ntime.sleep(60)", "import time\ntime.sleep(60)")
    began = time.monotonic()
    proc = grader(nb, "--json", "--notebook-timeout", 6)
    took = time.monotonic() - began
    assert proc.returncode == 3, proc.stderr[-3000:]
    (book,) = as_json(proc)["notebooks"]
    assert took < 50, took
    assert book["out_of_time"] and book["budget_seconds"] == 6
    (result,) = book["exercises"]
    assert result["status"] == "timeout" and result["points"] == 0
    assert "time budget (6 s)" in result["message"]
    assert any("time budget (6 s, --notebook-timeout) ran out while cell" in n for n in book["cell_issues"])


def test_default_budget_covers_the_cells_and_every_exercise():
    names = ["tiled_matmul", "grouped_tile"]
    hard = [max(EXERCISES[n].time_limit_cpu, EXERCISES[n].time_limit_gpu) + runner.HARD_MARGIN for n in names]
    assert runner.default_budget(names, None) == runner.CELLS_BUDGET + sum(hard)
    assert runner.default_budget(names, 3, hard_margin=2) == runner.CELLS_BUDGET + 10


def test_exercises_in_dedupes_in_order():
    nb = {"metadata": {"ttc": {"exercises": ["grouped_tile", "tiled_matmul", "grouped_tile", "bogus"] * 3}}}
    assert runner.exercises_in(nb, Path("whatever.ipynb")) == ["grouped_tile", "tiled_matmul"]
    assert runner.exercises_in(None, Path("ch02_tiled_matmul.ipynb")) == ["tiled_matmul", "grouped_tile"]


@linux_only
def test_sweep_ends_token_carriers_in_other_sessions_and_their_children():
    token = "test-" + os.urandom(6).hex()
    env = {**os.environ, processes.TOKEN_ENV: token}
    sh, sleep = shutil.which("sh"), shutil.which("sleep")
    parent = subprocess.Popen([sh, "-c", f"{sleep} 1000 & {sleep} 1000; wait"], env=env, start_new_session=True)
    bystander = subprocess.Popen([sleep, "1000"])  # no token: must survive
    try:
        deadline = time.monotonic() + 10
        while len(processes.find(token)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = processes.find(token)
        assert parent.pid in found and len(found) == 3
        ended = processes.sweep(token)
        assert set(ended) == found
        assert not alive(parent.pid)  # killed, and reaped by sweep (it was our child)
        assert not processes.find(token)
        assert bystander.poll() is None
    finally:
        for p in (parent, bystander):
            p.kill()
            p.wait()


def test_a_raising_cell_is_named_as_the_learner_sees_it():
    err = runner.Exec("error", error="SyntaxError: expected ':' (2152412868.py, line 14)", ename="SyntaxError")
    note = runner._cell_error(3, "\n# my answer\ndef naive_matmul(a, b)\n    pass", err)
    assert note == "code cell 4 (`# my answer`) raised SyntaxError: expected ':' (line 14 of that cell)"
    exit_ = runner.Exec("error", error="SystemExit: 3", ename="SystemExit")
    assert runner._cell_error(0, "import sys\nsys.exit(3)", exit_).startswith("code cell 1 (`import sys`) called sys.exit()")
    long = runner._cell_name(9, "x = " + "1 + " * 40)
    assert long.startswith("code cell 10 (`x = 1 + ") and long.endswith("…`)")
