"""The learner's files are never overwritten by a course command: working copies in my-work/, chapters
that point there, and the course commands (make lab, make test from a cold Triton cache)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import workspace

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "exercises").glob("*.ipynb"))


def test_templates_are_copied_once_and_never_overwritten(tmp_path):
    templates, work = tmp_path / "exercises", tmp_path / "my-work"
    templates.mkdir()
    for t in TEMPLATES[:2]:
        shutil.copy(t, templates / t.name)
    copied, kept = workspace.copy_missing(templates, work)
    assert [p.name for p in copied] == [t.name for t in TEMPLATES[:2]] and kept == []
    assert (work / TEMPLATES[0].name).read_bytes() == TEMPLATES[0].read_bytes()

    mine = work / TEMPLATES[0].name
    mine.write_text("my answers")  # the learner's work
    (templates / TEMPLATES[0].name).write_text("a newer template")  # the course changes
    shutil.copy(TEMPLATES[2], templates / TEMPLATES[2].name)  # and gains an exercise
    copied, kept = workspace.copy_missing(templates, work)
    assert [p.name for p in copied] == [TEMPLATES[2].name]
    assert sorted(p.name for p in kept) == sorted(t.name for t in TEMPLATES[:2])
    assert mine.read_text() == "my answers"

    mine.unlink()  # to start over: delete the copy, run it again
    workspace.copy_missing(templates, work)
    assert mine.read_text() == "a newer template"


def test_workspace_command(tmp_path):
    def run():
        return subprocess.run([sys.executable, "-m", "grader.workspace", "--workspace", str(tmp_path / "w")],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    first = run()
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "w").glob("*.ipynb")) == [t.name for t in TEMPLATES]
    assert f"{len(TEMPLATES)} exercise(s) copied, 0 of yours left as they are" in first.stdout
    again = run()
    assert f"0 exercise(s) copied, {len(TEMPLATES)} of yours left as they are" in again.stdout


def test_my_work_is_ignored_by_git_and_not_collected():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "/my-work/" in ignore and "/exercises/*.bak-*" in ignore
    make = (ROOT / "Makefile").read_text()
    assert "my-work" not in re.search(r"^test:.*\n\t(.*)$", make, re.M).group(1)


CHAPTERS = sorted((ROOT / "chapters").glob("0[1-9]_*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapters_point_to_the_working_copies(path):
    text = "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "markdown")
    assert not re.search(r"exercises/ch\d\d_", text), "point learners to my-work/, not to the templates"
    names = {t.name for t in TEMPLATES}
    for name in re.findall(r"my-work/(ch\d\d_\w+\.ipynb)", text):
        assert name in names, f"no exercise template for my-work/{name}"
    if path.name[:2] in {t.name[2:4] for t in TEMPLATES}:  # a chapter with an exercise says where it is
        assert f"my-work/ch{path.name[:2]}_" in text


def test_cold_triton_cache_script(tmp_path):
    script = ROOT / "scripts" / "cold_triton_cache.sh"
    probe = 'echo "$TRITON_CACHE_DIR" > seen; ls -A "$TRITON_CACHE_DIR" | wc -l > count; exit 7'
    env = {k: v for k, v in os.environ.items() if k != "TRITON_CACHE_DIR"}
    proc = subprocess.run(["bash", str(script), "bash", "-c", probe], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr  # the command's status comes through
    cache = Path((tmp_path / "seen").read_text().strip())
    assert cache.name.startswith("ttc-triton-cache.") and (tmp_path / "count").read_text().strip() == "0"
    assert not cache.exists(), "the private cache is removed afterwards"

    mine = tmp_path / "mine"
    proc = subprocess.run(["bash", str(script), "bash", "-c", probe], cwd=tmp_path,
                          env={**env, "TRITON_CACHE_DIR": str(mine)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7 and (tmp_path / "seen").read_text().strip() == str(mine)


def test_make_test_and_ci_start_from_a_cold_cache():
    make = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n\t(.*)$", make, re.M).group(1)
    assert recipe.startswith("bash scripts/cold_triton_cache.sh ") and "pytest" in recipe
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert commands.index("unset TRITON_CACHE_DIR") < commands.index("make test")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_serves_the_repository_and_fills_my_work():
    proc = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    lines = proc.stdout.splitlines()
    assert any("-m grader.workspace" in line for line in lines), proc.stdout
    lab = next(line for line in lines if " lab " in line and "jupyter" in line)
    assert f'--ServerApp.root_dir="{ROOT}"' in lab and lab.rstrip().endswith("chapters/00_gpu_in_one_page.ipynb")
