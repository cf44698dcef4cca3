"""Grade the solution and exercise notebooks *in this process*, without Jupyter.

For machines that have torch and triton but no Jupyter (the course's H100 runner): the notebooks' code
cells (minus self-check and solution-only cells) run in a fresh namespace each, then every exercise's
check runs on the function they define, plus a cheating answer that must be refused.

    python -m grader.inprocess            # prints one line per verdict; exit 1 if one is unexpected
"""
from __future__ import annotations

import json
import linecache
import sys
from pathlib import Path

import kernels  # noqa: F401  (before triton)

from .checks import grade
from .registry import EXERCISES, SELF_CHECK_TAG, SOLUTION_ONLY_TAG

ROOT = Path(__file__).resolve().parent.parent


def notebook_namespace(path: Path) -> dict:
    ns: dict = {"__name__": "__main__"}
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if set(cell.get("metadata", {}).get("tags", [])) & {SELF_CHECK_TAG, SOLUTION_ONLY_TAG}:
            continue
        src = "".join(cell["source"])
        text = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))) + "\n"
        # Triton reads a kernel's source through inspect/linecache, as IPython arranges for cells
        fname = f"<{path.parent.name}/{path.name} cell {i}>"
        linecache.cache[fname] = (len(text), None, text.splitlines(True), fname)
        exec(compile(text, fname, "exec"), ns)  # noqa: S102 (our own notebooks)
    return ns


def cheat_matmul(a, b, **kw):
    import torch

    return torch.matmul(a, b)


def main() -> int:
    print(kernels.describe_world(), flush=True)
    unexpected = 0
    for kind, want_pass in (("solutions", True), ("exercises", False)):
        for ex in EXERCISES.values():
            ns = notebook_namespace(ROOT / kind / f"{ex.notebook}.ipynb")
            res = grade(ex.name, ns[ex.name], seed=1234)
            ok = res.passed == want_pass
            unexpected += not ok
            print(f"{'ok ' if ok else 'UNEXPECTED'} {kind}/{ex.name}: {res.status} {res.message[:160]}", flush=True)
    for name in ("naive_matmul", "tiled_matmul", "persistent_matmul"):
        res = grade(name, cheat_matmul, seed=99)
        ok = not res.passed
        unexpected += not ok
        print(f"{'ok ' if ok else 'UNEXPECTED'} torch.matmul as {name}: {res.status} {res.message[:160]}")
    print(f"{unexpected} unexpected verdicts")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
