"""What a check returns: a ``Result`` per exercise, made of ``SubCheck`` lines, and how it is printed.

This module imports nothing heavy: the headless runner (``python -m grader``) uses it without torch.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


def new_seed() -> int:
    """A fresh seed for the random shapes, from the clock (printed, so a run can be repeated)."""
    return int(time.time() * 1000) % 1_000_000_007

# status -> what the report prints. Only "pass" scores points; "skip" is for a sub-check that
# cannot run here (e.g. bf16 on a GPU, with no GPU) and never counts as a pass.
LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "refused": "REFUSED",
    "not_implemented": "NOT IMPLEMENTED",
    "error": "ERROR",
    "timeout": "TIMEOUT",
    "crashed": "CRASHED",
    "missing": "MISSING",
    "skip": "SKIP",
}


@dataclass
class SubCheck:
    label: str
    status: str  # "pass", "fail" or "skip" (or the exercise's failing status)
    message: str = ""

    def line(self) -> str:
        tag = {"pass": "ok", "skip": "SKIP"}.get(self.status, "FAIL")
        return f"[{tag:>4}] {self.label}" + (f": {self.message}" if self.message else "")


@dataclass
class Result:
    name: str
    status: str
    points: int = 0
    max_points: int = 0
    message: str = ""
    subchecks: list = field(default_factory=list)
    seed: int | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status.upper())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        d = dict(d)
        d["subchecks"] = [SubCheck(**s) for s in d.get("subchecks", [])]
        return cls(**d)

    def report(self, indent: str = "") -> str:
        """The lines a learner reads: verdict, then each sub-check, then why it failed."""
        seed = f", seed {self.seed}" if self.seed is not None else ""
        head = f"{indent}{self.name}: {self.label} ({self.points}/{self.max_points} points{seed}, {self.seconds:.1f} s)"
        lines = [head]
        lines += [f"{indent}  {s.line()}" for s in self.subchecks]
        if self.message and not any(s.status == "fail" for s in self.subchecks):
            lines.append(f"{indent}  {self.message}")
        if self.seed is not None and self.status in ("fail", "error"):
            lines.append(f"{indent}  (the same shapes again: grader.check({self.name!r}, ..., seed={self.seed}))")
        return "\n".join(lines)

    def __repr__(self) -> str:  # what a notebook shows for `grader.check(...)` as a cell's last line
        return f"<grader result {self.name}: {self.label}, {self.points}/{self.max_points} points>"
