"""Make ``exercises/*.ipynb`` from ``solutions/*.ipynb``; ``--check`` fails if they have drifted.

    python -m grader.generate            # (re)write exercises/
    python -m grader.generate --check    # exit 1 if exercises/ is not what solutions/ generate

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
import sys
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if exercises/ is out of date")
    p.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    p.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = p.parse_args(argv)
    sources = sorted(args.solutions.glob("*.ipynb"))
    if not sources:
        p.error(f"no solution notebooks in {args.solutions}")
    problems = []
    for src in sources:
        dest = args.exercises / src.name
        try:
            text = render(src)
        except (MarkerError, nbformat.ValidationError) as exc:
            problems.append(str(exc))
            continue
        if args.check:
            if not dest.exists():
                problems.append(f"{dest} is missing (generated from {src})")
            elif dest.read_text(encoding="utf-8") != text:
                problems.append(f"{dest} differs from what {src} generates")
        elif not dest.exists() or dest.read_text(encoding="utf-8") != text:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
            print(f"wrote {os.path.relpath(dest)}")
    names = {s.name for s in sources}
    for extra in sorted(args.exercises.glob("*.ipynb")):
        if extra.name not in names:
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
