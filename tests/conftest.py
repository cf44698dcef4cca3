import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402  (decides the world before anything imports triton)

print(kernels.describe_world(), file=sys.stderr)


def pytest_report_header(config):
    return kernels.describe_world()


def _my_work_state():
    """Every file of the learner's my-work/ with its size and modification time (None: no folder)."""
    ws = ROOT / "my-work"
    if not ws.exists():
        return None
    return {str(p.relative_to(ws)): (p.stat().st_size, p.stat().st_mtime_ns) for p in ws.rglob("*") if p.is_file()}


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _learners_work_is_left_alone():
    """The suite must never write to my-work/ (the learner's copies and grade history): checked after
    every test session, whatever ran."""
    before = _my_work_state()
    yield
    after = _my_work_state()
    assert after == before, ("the tests changed the learner's my-work/: "
                             f"{sorted(set((after or {}).items()) ^ set((before or {}).items()))[:5]}")
