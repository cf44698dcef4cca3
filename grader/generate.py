"""Make ``exercises/*.ipynb`` from ``solutions/*.ipynb``; ``--check`` fails if they have drifted.

    python -m grader.generate            # (re)write exercises/
    python -m grader.generate --check    # exit 1 if exercises/ is not what solutions/ generate

``exercises/`` holds the course's templates; learners work on copies in ``my-work/``
(``python -m grader.workspace``), which this command never touches. It writes only ``exercises/``, and
never loses an edited file there: before replacing an exercise notebook that differs from what it
generates and does not look like a generated template (it has outputs, cells the course did not write,
or a ``# YOUR CODE HERE`` stub whose stub line was replaced or removed) and is not the version committed
in git, it keeps the old file beside it as ``<name>.ipynb.bak-<date>-<time>`` (git-ignored) and says so.

``--check`` in a git checkout passes for a notebook when the version committed at ``HEAD`` *or* the file
on disk is what ``solutions/`` generate: edits to ``exercises/`` that were never committed (a learner's
answers) do not make it fail, and neither does a regenerated, not yet committed ``exercises/``. Outside
git (or when git cannot read the repository) it compares the files on disk.

In a solution notebook:

* the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (both included) become a stub at
  the indentation of the BEGIN line: ``# YOUR CODE HERE`` and ``raise NotImplementedError(...)``, or,
  inside a ``@triton.jit`` function (where ``raise`` does not compile), ``# YOUR CODE HERE`` and
  ``pass``: that kernel then writes nothing and the output keeps its NaN, which the check reports as
  not implemented;
* a line ending in ``# solution-only`` is dropped;
* a cell tagged ``solution-only`` is dropped (e.g. the asserts that make CI fail on a wrong solution);
* outputs and execution counts are cleared.

The output is deterministic (nbformat's own serialisation), so ``--check`` compares text.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from .registry import SOLUTION_ONLY_TAG

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
SOLUTION_ONLY_LINE = re.compile(r"#\s*solution-only\s*$")
STUB = "# YOUR CODE HERE"


class MarkerError(ValueError):
    pass


def _functions(source: str):
    """(first line, last line, name, is a @triton.jit kernel) of every function in ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            jit = any("jit" in ast.unparse(d) for d in node.decorator_list)
            found.append((node.lineno, node.end_lineno, node.name, jit))
    return found


def strip_solutions(source: str, where: str = "cell") -> str:
    """The exercise version of one code cell's source."""
    lines = source.split("\n")
    functions = _functions(source)
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        begin = BEGIN.match(line)
        if begin:
            end = next((j for j in range(i + 1, len(lines)) if END.match(lines[j]) or BEGIN.match(lines[j])), None)
            if end is None or BEGIN.match(lines[end]):
                raise MarkerError(f"{where}: '### BEGIN SOLUTION' on line {i + 1} has no matching '### END SOLUTION'")
            inside = [f for f in functions if f[0] <= i + 1 <= f[1]]
            name, jit = (max(inside)[2], max(inside)[3]) if inside else ("this exercise", False)
            indent = begin.group(1)
            out.append(indent + STUB)
            if jit:
                out.append(indent + "pass")
            else:
                out.append(indent + f'raise NotImplementedError("{name}: replace this line with your code")')
            i = end + 1
            continue
        if END.match(line):
            raise MarkerError(f"{where}: '### END SOLUTION' on line {i + 1} without a BEGIN")
        if not SOLUTION_ONLY_LINE.search(line):
            out.append(line)
        i += 1
    return "\n".join(out)


def exercise_notebook(solution: nbformat.NotebookNode, where: str = "notebook") -> nbformat.NotebookNode:
    nb = copy.deepcopy(solution)
    cells = []
    for index, cell in enumerate(nb.cells):
        if SOLUTION_ONLY_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{where}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
        elif BEGIN.search(cell.source) or END.search(cell.source):
            raise MarkerError(f"{where}, cell {index}: solution markers are only supported in code cells")
        cells.append(cell)
    nb.cells = cells
    return nb


def render(solution_path: Path) -> str:
    solution = nbformat.read(str(solution_path), as_version=4)
    return nbformat.writes(exercise_notebook(solution, solution_path.name)) + "\n"


STUB_LINE = re.compile(r"^\s*(pass|raise NotImplementedError\(.*\))\s*$")


def committed_versions(directory: Path) -> dict[str, str] | None:
    """``{name: text}`` of the ``*.ipynb`` committed at git ``HEAD`` in ``directory``; None when git is
    absent, ``directory`` is not in a git checkout, or git cannot read it (then callers use the disk)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, timeout=60)

    try:
        listing = git("ls-tree", "--name-only", "HEAD", "./")
        if listing.returncode != 0:
            return None
        found = {}
        for name in listing.stdout.decode().splitlines():
            if name.endswith(".ipynb") and "/" not in name:
                blob = git("show", f"HEAD:./{name}")
                if blob.returncode != 0:
                    return None
                found[name] = blob.stdout.decode("utf-8")
        return found
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None


def looks_edited(existing: str, generated: str) -> str | None:
    """Why the exercise notebook ``existing`` looks like someone's work rather than a template this
    generator wrote (from this or an earlier version of the solutions); None if it looks generated."""
    try:
        nb = nbformat.reads(existing, as_version=4)
    except Exception:
        return "it is not a notebook this generator wrote"
    new = nbformat.reads(generated, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if any(c.get("outputs") or c.get("execution_count") is not None for c in code):
        return "it has outputs: it was run"
    known = {c.get("id") for c in new.cells}
    if any(c.get("id") not in known for c in nb.cells):
        return "it has cells the course did not write"
    stubs = 0
    for cell in code:
        lines = cell.source.split("\n")
        for i, line in enumerate(lines):
            if line.strip() == STUB:
                stubs += 1
                if i + 1 >= len(lines) or not STUB_LINE.match(lines[i + 1]):
                    return f"a `{STUB}` stub was filled in"
    if stubs < sum(c.source.count(STUB) for c in new.cells if c.cell_type == "code"):
        return f"a `{STUB}` stub was removed"
    return None


def backup(path: Path) -> Path:
    """Copy ``path`` to a new ``<path>.bak-<date>-<time>[-n]`` that no file has yet; return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        dest = path.with_name(f"{path.name}.bak-{stamp}" + (f"-{n}" if n else ""))
        try:
            with open(dest, "xb") as out:
                out.write(path.read_bytes())
            return dest
        except FileExistsError:
            continue
    raise FileExistsError(f"no free backup name for {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.generate", description=__doc__.split("\n\n")[0],
                                epilog="Never touches my-work/; keeps an edited exercises/ file as "
                                       "<name>.ipynb.bak-<date>-<time> before replacing it.")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if exercises/ (as committed in git, or on disk) is out of date")
    p.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    p.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = p.parse_args(argv)
    sources = sorted(args.solutions.glob("*.ipynb"))
    if not sources:
        p.error(f"no solution notebooks in {args.solutions}")
    committed = committed_versions(args.exercises) if args.exercises.is_dir() else None
    problems = []
    for src in sources:
        dest = args.exercises / src.name
        try:
            text = render(src)
        except (MarkerError, nbformat.ValidationError) as exc:
            problems.append(str(exc))
            continue
        on_disk = dest.read_text(encoding="utf-8") if dest.exists() else None
        in_git = committed.get(src.name) if committed is not None else None
        if args.check:
            if on_disk == text:
                continue
            if in_git == text:  # the committed template is up to date; the file on disk was edited
                print(f"note: {os.path.relpath(dest)} differs from its committed version (edited?); "
                      "the committed one is up to date", file=sys.stderr)
                continue
            if on_disk is None and in_git is None:
                problems.append(f"{dest} is missing (generated from {src})")
            elif on_disk is None:
                problems.append(f"{dest} is missing, and its committed version differs from what {src} generates")
            else:
                problems.append(f"{dest} differs from what {src} generates")
            continue
        if on_disk == text:
            continue
        if on_disk is not None and on_disk != in_git:
            why = looks_edited(on_disk, text)
            if why:
                kept = backup(dest)
                print(f"{os.path.relpath(dest)} looks edited ({why}): kept it as {os.path.relpath(kept)}. "
                      "Work on your copies in my-work/ (`python -m grader.workspace`), which this command "
                      "never touches.", file=sys.stderr)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        print(f"wrote {os.path.relpath(dest)}")
    names = {s.name for s in sources}
    for extra in sorted(args.exercises.glob("*.ipynb")):
        # in git, only committed notebooks count: a learner's own notebook in exercises/ is not the course's
        if extra.name not in names and (committed is None or extra.name in committed):
            problems.append(f"{extra} has no solution notebook in {args.solutions}")
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        if args.check:
            print("exercises/ is out of date: run `python -m grader.generate`", file=sys.stderr)
        return 1
    if args.check:
        print(f"{os.path.relpath(args.exercises)} is up to date ({len(sources)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
