"""nbval starts each notebook's kernel in this folder; let it import the course's packages
(`kernels`, `grader`) from the repository root even where the course is not pip-installed."""
import os
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
