"""``python -m grader.workspace``: your working copies of the exercises, in ``my-work/``.

``exercises/`` holds the course's templates (generated from ``solutions/``, committed, replaced when the
course is updated). You work on copies of them in ``my-work/``, which git ignores and no course command
ever overwrites: this command (also run by ``make lab``) copies each template that ``my-work/`` does not
have yet, and leaves every file already there exactly as it is. To start an exercise over, rename or
delete your copy and run it again.

    python -m grader.workspace                 # copy the missing templates into my-work/
    make grade NB=my-work/ch01_naive_matmul.ipynb
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "exercises"
WORKSPACE = ROOT / "my-work"


def copy_missing(templates: Path = TEMPLATES, workspace: Path = WORKSPACE) -> tuple[list[Path], list[Path]]:
    """Copy every ``templates/*.ipynb`` that ``workspace`` lacks; never replace an existing file.

    Returns (copied, kept): the new working copies, and the working copies that were already there."""
    copied, kept = [], []
    workspace.mkdir(parents=True, exist_ok=True)
    for template in sorted(templates.glob("*.ipynb")):
        dest = workspace / template.name
        try:
            # "x": create, and fail if the file exists, atomically (no check-then-write race)
            with open(dest, "xb") as out, open(template, "rb") as src:
                shutil.copyfileobj(src, out)
        except FileExistsError:
            kept.append(dest)
            continue
        copied.append(dest)
    return copied, kept


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.workspace", description=__doc__.split("\n\n")[0])
    p.add_argument("--templates", type=Path, default=TEMPLATES, help="where the exercise templates are")
    p.add_argument("--workspace", type=Path, default=WORKSPACE, help="where your working copies go")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when nothing was copied")
    args = p.parse_args(argv)
    if not any(args.templates.glob("*.ipynb")):
        p.error(f"no exercise notebooks in {args.templates}")
    copied, kept = copy_missing(args.templates, args.workspace)
    where = os.path.relpath(args.workspace)
    for path in copied:
        print(f"new working copy: {os.path.relpath(path)}")
    if copied or not args.quiet:
        print(f"{where}/: {len(copied)} exercise(s) copied, {len(kept)} of yours left as they are "
              f"(work there; grade with `make grade NB={where}/<notebook>.ipynb`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
