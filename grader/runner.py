"""``python -m grader NOTEBOOK ...``: run each notebook headless in a Jupyter kernel of its own, then
grade every exercise it holds by calling the learner's function in that kernel.

The runner itself never imports torch or the learner's code; everything the learner wrote runs in the
kernel process. Limits:

* each code cell has ``--cell-timeout`` seconds; past it the kernel is interrupted and the next cell runs;
* each exercise's check has a soft limit (the registry's, or ``--timeout``), enforced inside the
  kernel with SIGALRM, and a hard limit ``HARD_MARGIN`` seconds later, enforced here: the kernel is
  interrupted and, if it does not come back within ``GRACE`` seconds, killed;
* a kernel that died or was killed is replaced by a fresh one, which re-runs the notebook's cells that
  ran before, so the remaining exercises are still graded.

Self-check cells (tag ``self-check``) and solution-only cells are not run: the grader runs the checks
itself, once, with its own seed.
"""
from __future__ import annotations

import json
import os
import queue
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .registry import EXERCISES, HEADLESS_ENV, SELF_CHECK_TAG, SOLUTION_ONLY_TAG
from .report import Result, new_seed

ROOT = Path(__file__).resolve().parent.parent
HARD_MARGIN = 15.0  # seconds past the soft limit before the runner interrupts the kernel (--hard-margin)
GRACE = 10.0  # seconds an interrupted kernel has to come back before it is killed (--grace)
STARTUP_TIMEOUT = 120.0
SKIP_TAGS = {SELF_CHECK_TAG, SOLUTION_ONLY_TAG}


@dataclass
class Exec:
    status: str  # ok, error, timeout, dead
    stdout: str = ""
    error: str = ""


class Kernel:
    """One Jupyter kernel process and a blocking client, with time limits on every execution."""

    def __init__(self, kernel_name: str, cwd: Path):
        from jupyter_client.manager import KernelManager

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env[HEADLESS_ENV] = "1"
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(cwd=str(cwd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        except RuntimeError:
            self.shutdown()
            raise

    def run(self, code: str, timeout: float) -> Exec:
        msg_id = self.kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        return self._collect(msg_id, time.monotonic() + timeout)

    def _collect(self, msg_id, deadline) -> Exec:
        out, err = [], ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Exec("timeout", "".join(out), err)
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 0.5))
            except queue.Empty:
                if not self.km.is_alive():
                    return Exec("dead", "".join(out), err)
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content.get("text", ""))
            elif kind == "error":
                err = f"{content.get('ename')}: {content.get('evalue')}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return Exec("error" if err else "ok", "".join(out), err)

    def interrupt(self, grace: float) -> bool:
        """Interrupt the running cell; True if the kernel is idle again within ``grace`` seconds."""
        if not self.km.is_alive():
            return False
        try:
            self.km.interrupt_kernel()
        except Exception:
            return False
        # The interrupted request's idle status may have been consumed or not: ask a tiny probe.
        probe = self.kc.execute("pass", store_history=False)
        return self._collect(probe, time.monotonic() + grace).status in ("ok", "error")

    def shutdown(self):
        try:
            self.kc.stop_channels()
        finally:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass


@dataclass
class NotebookReport:
    path: str
    seed: int
    exercises: list = field(default_factory=list)  # Result
    cell_issues: list = field(default_factory=list)  # str
    cells_run: int = 0
    cells_skipped: int = 0
    seconds: float = 0.0
    kernel_failed: bool = False

    @property
    def score(self):
        return sum(r.points for r in self.exercises)

    @property
    def max_points(self):
        return sum(r.max_points for r in self.exercises)

    def to_dict(self):
        return {
            "path": self.path, "seed": self.seed, "score": self.score, "max_points": self.max_points,
            "cells_run": self.cells_run, "cells_skipped": self.cells_skipped, "seconds": round(self.seconds, 2),
            "kernel_failed": self.kernel_failed, "cell_issues": self.cell_issues,
            "exercises": [r.to_dict() for r in self.exercises],
        }

    def text(self) -> str:
        lines = [f"== {self.path} (seed {self.seed})",
                 f"   ran {self.cells_run} code cells ({self.cells_skipped} self-check/solution-only cells "
                 f"skipped) and graded in {self.seconds:.1f} s"]
        lines += [f"   note: {issue}" for issue in self.cell_issues]
        if not self.exercises:
            lines.append("   this notebook holds no exercise the grader knows")
        lines += [r.report(indent="   ") for r in self.exercises]
        lines.append(f"   score: {self.score}/{self.max_points}")
        return "\n".join(lines)


def exercises_in(nb, path: Path) -> list[str]:
    """The exercises a notebook holds: its metadata's list, else the registry's entry for its name,
    else every known exercise its cells call ``grader.check`` on."""
    listed = nb.get("metadata", {}).get("ttc", {}).get("exercises") if nb else None
    if listed:
        return [n for n in listed if n in EXERCISES]
    by_name = [n for n, e in EXERCISES.items() if e.notebook == path.stem]
    if by_name or not nb:
        return by_name
    text = "\n".join(c.get("source", "") for c in nb.get("cells", []) if c.get("cell_type") == "code")
    return [n for n in EXERCISES if re.search(rf"""grader\.check\(\s*["']{n}["']""", text)]


def _zero(name, status, message, seed) -> Result:
    return Result(name, status, 0, EXERCISES[name].points, message, seed=seed)


def grade_notebook(path: Path, seed: int, cell_timeout: float = 300.0, timeout: float | None = None,
                   log=lambda s: None, hard_margin: float = HARD_MARGIN, grace: float = GRACE) -> NotebookReport:
    import nbformat

    started = time.monotonic()
    report = NotebookReport(str(path), seed)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:
        report.cell_issues.append(f"could not read the notebook: {type(exc).__name__}: {exc}")
        report.exercises = [_zero(n, "error", "the notebook could not be read", seed)
                            for n in exercises_in(None, path)]
        return report
    names = exercises_in(nb, path)
    kernel_name = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            report.cells_skipped += 1
        else:
            cells.append((i, cell.source))

    state = {"kernel": None, "ran": []}  # ran: sources that ran, replayed into a fresh kernel

    def fresh_kernel():
        if state["kernel"] is not None:
            state["kernel"].shutdown()
        try:
            state["kernel"] = Kernel(kernel_name, path.parent)
        except Exception:
            state["kernel"] = Kernel("python3", path.parent)
        for source in state["ran"]:
            state["kernel"].run(source, cell_timeout)

    def recover(result: Exec) -> None:
        """After a timeout or a death, leave a working kernel behind."""
        if result.status == "timeout" and state["kernel"].interrupt(grace):
            return
        log("   (restarting the kernel)")
        fresh_kernel()

    try:
        fresh_kernel()
    except Exception as exc:  # no kernel, no grading: say so (and exit non-zero: nothing was graded)
        report.kernel_failed = True
        report.cell_issues.append(f"could not start a Jupyter kernel ({kernel_name!r}): {type(exc).__name__}: {exc}")
        report.exercises = [_zero(n, "error", "not graded: no Jupyter kernel could be started", seed) for n in names]
        return report
    try:
        for index, source in cells:
            result = state["kernel"].run(source, cell_timeout)
            report.cells_run += 1
            if result.status in ("ok", "error"):
                state["ran"].append(source)
                if result.status == "error":
                    report.cell_issues.append(f"cell {index} raised {result.error}")
                continue
            what = (f"ran past the cell time limit ({cell_timeout:g} s)" if result.status == "timeout"
                    else "crashed the kernel")
            report.cell_issues.append(f"cell {index} {what}; skipped")
            recover(result)

        for name in names:
            marker = f"@@TTC-RESULT-{secrets.token_hex(8)}@@"
            hard = (timeout if timeout is not None
                    else max(EXERCISES[name].time_limit_cpu, EXERCISES[name].time_limit_gpu)) + hard_margin
            code = (f"import grader.checks as _ttc_checks\n"
                    f"_ttc_checks.headless({name!r}, globals().get({name!r}), {seed}, {timeout!r}, {marker!r})")
            log(f"   grading {name} ...")
            began = time.monotonic()
            result = state["kernel"].run(code, hard)
            found = [line for line in result.stdout.splitlines() if line.startswith(marker)]
            if found:
                report.exercises.append(Result.from_dict(json.loads(found[-1][len(marker):])))
                continue
            if result.status == "timeout":
                report.exercises.append(_zero(name, "timeout", f"timed out: no verdict within {hard:g} s "
                                              "(the answer hangs and ignores interrupts?)", seed))
                recover(result)
            elif result.status == "dead":
                report.exercises.append(_zero(name, "crashed", "the answer crashed the Python kernel "
                                              "(a segfault, os._exit, out of memory?)", seed))
                recover(result)
            else:
                report.exercises.append(_zero(name, "error", f"the grader could not run in the notebook's "
                                              f"kernel: {result.error or 'no result'}", seed))
            report.exercises[-1].seconds = time.monotonic() - began
    except Exception as exc:  # the kernel machinery itself failed (e.g. a restart): report, do not crash
        report.kernel_failed = True
        report.cell_issues.append(f"grading stopped: {type(exc).__name__}: {exc}")
        done = {r.name for r in report.exercises}
        report.exercises += [_zero(n, "error", "not graded: the Jupyter kernel failed", seed)
                             for n in names if n not in done]
    finally:
        if state["kernel"] is not None:
            state["kernel"].shutdown()
    report.seconds = time.monotonic() - started
    return report


def main(argv=None) -> int:
    """Exit status: 0 when every notebook was graded (whatever the score), 2 for a bad command line,
    1 when no Jupyter kernel could be started."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m grader",
                                description="Run notebooks headless and grade the exercises in them.")
    p.add_argument("notebooks", nargs="+", type=Path, help="notebooks to grade (.ipynb)")
    p.add_argument("--json", action="store_true", help="print one JSON report instead of text")
    p.add_argument("--seed", type=int, default=None, help="reuse the random shapes of an earlier run")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds each exercise's check may take (default: the exercise's own limit)")
    p.add_argument("--cell-timeout", type=float, default=300.0, help="seconds each notebook cell may take")
    p.add_argument("--hard-margin", type=float, default=HARD_MARGIN,
                   help="seconds past an exercise's limit before the kernel is interrupted from outside")
    p.add_argument("--grace", type=float, default=GRACE,
                   help="seconds an interrupted kernel has to answer before it is killed and restarted")
    args = p.parse_args(argv)
    for nb in args.notebooks:
        if not nb.is_file():
            p.error(f"no such notebook: {nb}")
        if nb.suffix != ".ipynb":
            p.error(f"not a notebook (.ipynb): {nb}")
    seed = args.seed if args.seed is not None else new_seed()

    def log(line):
        if not args.json:
            print(line, flush=True)

    log(f"grading {len(args.notebooks)} notebook(s); seed {seed} (pass --seed {seed} to draw the same shapes)")
    reports = []
    for nb in args.notebooks:
        log(f"-- running {nb} ...")
        reports.append(grade_notebook(nb, seed, args.cell_timeout, args.timeout, log,
                                      args.hard_margin, args.grace))
        log(reports[-1].text())
    score = sum(r.score for r in reports)
    top = sum(r.max_points for r in reports)
    if args.json:
        json.dump({"seed": seed, "score": score, "max_points": top,
                   "notebooks": [r.to_dict() for r in reports]}, sys.stdout, indent=1)
        print()
    else:
        print(f"== total: {score}/{top}")
    return 1 if any(r.kernel_failed for r in reports) else 0
