"""Progress across the course (grader.progress, `make grade` with no notebook, `make progress`): which
notebooks count as worked on, the kept grades and their table, the exit status, and that a broken
record is kept aside, never lost."""
import datetime
import json
import os
import shutil

import pytest

from grader import progress, runner, workspace
from grader.report import Result, SubCheck
from grader.runner import NotebookReport

TEMPLATES = progress.TEMPLATES


def _workspace(tmp_path, names=("ch01_naive_matmul.ipynb", "ch02_tiled_matmul.ipynb")):
    ws = tmp_path / "my-work"
    ws.mkdir()
    for n in names:
        shutil.copy(TEMPLATES / n, ws / n)
    return ws


def _edit(nb_path, text="x = 1  # my answer"):
    nb = json.loads(nb_path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = text
    nb_path.write_text(json.dumps(nb))


def _report(path, name, points, top, subchecks=()):
    return NotebookReport(path=str(path), seed=7, exercises=[
        Result(name, "pass" if points == top else "fail", points, top, "" if points == top else "wrong",
               list(subchecks))])


def test_only_notebooks_you_changed_count_as_attempted(tmp_path):
    ws = _workspace(tmp_path)
    assert progress.attempted(ws) == []
    # outputs and metadata do not count; a changed code cell does
    nb = json.loads((ws / "ch01_naive_matmul.ipynb").read_text())
    nb["metadata"]["touched"] = True
    (ws / "ch01_naive_matmul.ipynb").write_text(json.dumps(nb))
    assert progress.attempted(ws) == []
    _edit(ws / "ch02_tiled_matmul.ipynb")
    # not exercises: a scratch notebook, a JupyterLab duplicate, a folder named like a notebook
    (ws / "mine.ipynb").write_text("not a notebook")
    (ws / "ch02_tiled_matmul-Copy1.ipynb").write_text((ws / "ch02_tiled_matmul.ipynb").read_text())
    (ws / "old.ipynb").mkdir()
    assert [p.name for p in progress.attempted(ws)] == ["ch02_tiled_matmul.ipynb"]
    (ws / "ch03_persistent_matmul.ipynb").write_text("{broken")  # an exercise that is not a notebook: graded
    assert [p.name for p in progress.attempted(ws)] == ["ch02_tiled_matmul.ipynb", "ch03_persistent_matmul.ipynb"]


def test_a_malformed_or_unwritable_record_does_not_stop_grading(tmp_path, capsys):
    store = tmp_path / ".grades.json"
    for bad in ('{"exercises": {"pingpong_consumer": []}}', '{"exercises": {"x": [{"when": "x"}]}}',
                '{"exercises": {"x": [1]}}', '[1]', '{"exercises": {"x": [{"when": "t", "points": true, '
                '"max_points": 5, "first_failure": ""}]}}'):
        store.write_text(bad)
        assert progress.load(store) == {"version": progress.VERSION, "exercises": {}}, bad
        assert not store.exists() and list(tmp_path.glob(".grades.json.unreadable-*"))  # kept aside
        for p in tmp_path.glob(".grades.json.unreadable-*"):
            p.unlink()
    store.write_text("[1]")
    assert progress.load(store, keep_aside=False)["exercises"] == {} and store.read_text() == "[1]"  # only reads
    store.unlink()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        data = progress.record([_report(ro / "ch01_naive_matmul.ipynb", "naive_matmul", 10, 10)], ro / ".grades.json")
        assert data["exercises"]["naive_matmul"][0]["points"] == 10
        if not os.access(ro, os.W_OK):  # root may write anyway
            assert "could not keep these grades" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_grades_are_kept_and_tabled(tmp_path):
    store = tmp_path / progress.FILE_NAME
    t0 = datetime.datetime(2026, 12, 1, 9, 30)
    bad = SubCheck("float16, long K", "fail", "relative error 3e-2 > 1e-2")
    progress.record([_report("my-work/ch01.ipynb", "naive_matmul", 2, 10, [SubCheck("small", "pass"), bad])],
                    store, t0)
    data = progress.record([_report("my-work/ch01.ipynb", "naive_matmul", 10, 10)], store,
                           t0 + datetime.timedelta(hours=1))
    attempts = data["exercises"]["naive_matmul"]
    assert [a["points"] for a in attempts] == [2, 10]
    assert attempts[0]["first_failure"] == "float16, long K: relative error 3e-2 > 1e-2"
    lines = progress.table(data, ["naive_matmul"]).splitlines()
    assert lines[1].split()[:4] == ["naive_matmul", "10/10", "10/10", "2"] and "2026-12-01 10:30" in lines[1]
    assert progress.all_passed(data, ["naive_matmul"]) and not progress.all_passed(data, ["tiled_matmul"])
    for i in range(progress.KEEP + 5):
        data = progress.record([_report("my-work/ch01.ipynb", "naive_matmul", i % 3, 10)], store)
    assert len(data["exercises"]["naive_matmul"]) == progress.KEEP
    assert json.loads(store.read_text()) == data


def test_a_broken_record_is_kept_aside(tmp_path):
    store = tmp_path / progress.FILE_NAME
    store.write_text("{ not json")
    data = progress.record([_report("my-work/ch01.ipynb", "naive_matmul", 10, 10)], store)
    assert list(data["exercises"]) == ["naive_matmul"]
    aside = list(tmp_path.glob(progress.FILE_NAME + ".unreadable-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{ not json"


def test_grade_with_no_notebook(tmp_path, capsys):
    ws = _workspace(tmp_path)
    # nothing worked on: nothing graded, said so, status 0
    assert runner.main(["--workspace", str(ws)]) == runner.EXIT_FULL_MARKS
    assert "not worked on any exercise yet" in capsys.readouterr().out
    # the table alone: kept grades, status 3 while the last attempt of one lacks full marks
    progress.record([_report(ws / "ch01_naive_matmul.ipynb", "naive_matmul", 4, 10)], progress.store_path(ws))
    assert runner.main(["--progress", "--workspace", str(ws)]) == runner.EXIT_NOT_FULL_MARKS
    out = capsys.readouterr().out
    assert "naive_matmul" in out and "4/10" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        runner.main(["--workspace", str(empty)])
    assert e.value.code == 2 and "make workspace" in capsys.readouterr().err


def test_grade_grades_what_you_worked_on_and_keeps_it(tmp_path, capsys):
    """End to end: of two notebooks in my-work/, the one worked on (here: the solution) is graded in its
    own kernel, its grade kept, and the table printed; the untouched one is not graded."""
    ws = _workspace(tmp_path)
    shutil.copy(workspace.ROOT / "solutions" / "ch01_naive_matmul.ipynb", ws / "ch01_naive_matmul.ipynb")
    assert runner.main(["--workspace", str(ws), "--seed", "5"]) == runner.EXIT_FULL_MARKS
    out = capsys.readouterr().out
    assert "ch02_tiled_matmul" not in out.split("== your progress")[0]
    kept = json.loads(progress.store_path(ws).read_text())["exercises"]
    assert set(kept) == {"naive_matmul"} and kept["naive_matmul"][-1]["points"] == kept["naive_matmul"][-1]["max_points"]
    assert "naive_matmul" in out.split("== your progress")[1]


def test_grades_are_printed_even_when_keeping_them_fails(tmp_path, monkeypatch, capsys):
    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(progress, "_write", full_disk)
    data = progress.record([_report(tmp_path / "ch01_naive_matmul.ipynb", "naive_matmul", 4, 10)], tmp_path / ".g.json")
    assert data["exercises"]["naive_matmul"][-1]["points"] == 4
    assert "could not keep these grades" in capsys.readouterr().err


def test_a_copy_of_an_earlier_template_is_not_work(tmp_path):
    """After the course updates a template (git pull), the learner's untouched copy of the old one still
    counts as untouched: every committed version of the template is compared."""
    import subprocess

    repo = tmp_path / "course"
    (repo / "exercises").mkdir(parents=True)
    ws = repo / "my-work"
    ws.mkdir()
    src = TEMPLATES / "ch01_naive_matmul.ipynb"
    old = json.loads(src.read_text())
    (repo / "exercises" / src.name).write_text(json.dumps(old))
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "v1")
    (ws / src.name).write_text(json.dumps(old))  # the learner's copy, untouched
    new = json.loads(json.dumps(old))
    code = next(c for c in new["cells"] if c["cell_type"] == "code")
    code["source"] = "# a comment the course added\n" + "".join(code["source"])
    (repo / "exercises" / src.name).write_text(json.dumps(new))
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam", "v2")
    assert progress.attempted(ws, repo / "exercises") == []
    _edit(ws / src.name)
    assert [p.name for p in progress.attempted(ws, repo / "exercises")] == [src.name]
