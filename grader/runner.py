"""``python -m grader NOTEBOOK ...``: run each notebook headless in a Jupyter kernel of its own, then
grade every exercise it holds by calling the learner's function in that kernel.

The runner itself never imports torch or the learner's code; everything the learner wrote runs in the
kernel process. Limits:

* each code cell has ``--cell-timeout`` seconds; past it the kernel is interrupted and the next cell runs;
* each exercise's check has a soft limit (the registry's, or ``--timeout``), enforced inside the
  kernel with SIGALRM, and a hard limit ``HARD_MARGIN`` seconds later, enforced here: the kernel is
  interrupted and, if it does not come back within ``GRACE`` seconds, killed;
* each notebook has a time budget for everything (``--notebook-timeout``; by default ``CELLS_BUDGET``
  seconds for its cells plus each exercise's hard limit): when it runs out, the remaining cells are
  not run and the remaining exercises score zero, with a note saying so;
* a kernel that died or was killed is replaced by a fresh one, which re-runs the notebook's cells that
  ran before (leaving out a cell that stops the kernel again), so the remaining exercises are still
  graded; a cell that raises ``SystemExit`` or ``KeyboardInterrupt`` is noted and grading goes on, and
  one that calls ``exit()`` (which stops a Jupyter kernel) is noted and left out of the kernel's
  replay;
* every process the notebook started is ended when its kernel is shut down, also one started in a new
  session (``grader.processes``).

Each exercise is graded once, even when a notebook's metadata lists it several times.

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

from . import processes, progress
from .registry import EXERCISES, HEADLESS_ENV, SELF_CHECK_TAG, SOLUTION_ONLY_TAG
from .report import Result, new_seed

ROOT = Path(__file__).resolve().parent.parent
HARD_MARGIN = 15.0  # seconds past the soft limit before the runner interrupts the kernel (--hard-margin)
GRACE = 10.0  # seconds an interrupted kernel has to come back before it is killed (--grace)
CELL_TIMEOUT = 300.0  # seconds per code cell (--cell-timeout)
CELLS_BUDGET = 600.0  # seconds a notebook's cells get in the default --notebook-timeout
STARTUP_TIMEOUT = 120.0
SKIP_TAGS = {SELF_CHECK_TAG, SOLUTION_ONLY_TAG}

# exit statuses of `python -m grader` (main's docstring and the README say what they mean)
EXIT_FULL_MARKS, EXIT_KERNEL_FAILED, EXIT_USAGE, EXIT_NOT_FULL_MARKS = 0, 1, 2, 3


@dataclass
class Exec:
    status: str  # ok, error, timeout, dead, exit (the code called exit(): the kernel stops itself)
    stdout: str = ""
    error: str = ""
    ename: str = ""


class Kernel:
    """One Jupyter kernel process and a blocking client, with time limits on every execution. Every
    process it starts carries ``TTC_GRADER_RUN=<token>``, and ``shutdown`` ends them all."""

    def __init__(self, kernel_name: str, cwd: Path):
        from jupyter_client.manager import KernelManager

        self.token = secrets.token_hex(12)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env[HEADLESS_ENV] = "1"
        env[processes.TOKEN_ENV] = self.token
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        self.km = KernelManager(kernel_name=kernel_name)
        self.kc = None
        try:
            self.km.start_kernel(cwd=str(cwd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
        except Exception:
            self.shutdown()
            raise

    @property
    def pid(self) -> int | None:
        return getattr(getattr(self.km, "provisioner", None), "pid", None)

    def run(self, code: str, timeout: float) -> Exec:
        msg_id = self.kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        return self._collect(msg_id, time.monotonic() + max(timeout, 0.0))

    def _collect(self, msg_id, deadline) -> Exec:
        out, err, ename = [], "", ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Exec("timeout", "".join(out), err, ename)
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 0.5))
            except queue.Empty:
                if not self.km.is_alive():
                    return Exec("dead", "".join(out), err, ename)
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content.get("text", ""))
            elif kind == "error":
                ename = content.get("ename") or ""
                err = f"{ename}: {content.get('evalue')}"
            elif kind == "status" and content.get("execution_state") == "idle":
                status = "exit" if self._asked_to_exit(msg_id) else ("error" if err else "ok")
                return Exec(status, "".join(out), err, ename)

    def _asked_to_exit(self, msg_id, wait: float = 5.0) -> bool:
        """Whether the execution's reply carries IPython's ``ask_exit`` payload (``exit()``/``quit()``
        without ``keep_kernel``): the kernel then stops itself right after replying."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = self.kc.get_shell_msg(timeout=min(left, 0.5))
            except queue.Empty:
                if not self.km.is_alive():
                    return False
                continue
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            return any(p.get("source") == "ask_exit" and not p.get("keepkernel")
                       for p in reply.get("content", {}).get("payload") or [])
        return False

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
        """Stop the kernel, then end every process it started (see ``grader.processes``)."""
        try:
            if self.kc is not None:
                self.kc.stop_channels()
        finally:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass
            processes.sweep(self.token)


@dataclass
class NotebookReport:
    path: str
    seed: int
    exercises: list = field(default_factory=list)  # Result
    cell_issues: list = field(default_factory=list)  # str
    cells_run: int = 0
    cells_skipped: int = 0
    seconds: float = 0.0
    budget: float = 0.0
    kernel_failed: bool = False
    out_of_time: bool = False

    @property
    def score(self):
        return sum(r.points for r in self.exercises)

    @property
    def max_points(self):
        return sum(r.max_points for r in self.exercises)

    @property
    def full_marks(self) -> bool:
        return bool(self.exercises) and all(r.points == r.max_points for r in self.exercises)

    def to_dict(self):
        return {
            "path": self.path, "seed": self.seed, "score": self.score, "max_points": self.max_points,
            "cells_run": self.cells_run, "cells_skipped": self.cells_skipped, "seconds": round(self.seconds, 2),
            "budget_seconds": round(self.budget, 2), "out_of_time": self.out_of_time,
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


def listed_exercises(nb, path: Path) -> list[str]:
    """The exercise names a notebook asks for, in order, repeats and unknown names included: its
    metadata's list and the registry's entries for its file name, else the registry's entries alone,
    else every known exercise its cells call ``grader.check`` on."""
    listed = nb.get("metadata", {}).get("ttc", {}).get("exercises") if nb else None
    by_name = [n for n, e in EXERCISES.items() if e.notebook == path.stem]
    if listed and isinstance(listed, list):
        # a notebook named like a course exercise notebook is graded on all of that notebook's
        # exercises, whatever its metadata lists (an exercise left out of the list still counts)
        return [n for n in listed if isinstance(n, str)] + by_name
    if by_name or not nb:
        return by_name
    text = "\n".join(c.get("source", "") for c in nb.get("cells", []) if c.get("cell_type") == "code")
    return [n for n in EXERCISES if re.search(rf"""grader\.check\(\s*["']{n}["']""", text)]


def exercises_in(nb, path: Path) -> list[str]:
    """The exercises the grader grades in a notebook: ``listed_exercises`` that it knows, each once,
    in the order first listed."""
    return list(dict.fromkeys(n for n in listed_exercises(nb, path) if n in EXERCISES))


def hard_limit(name: str, timeout: float | None, hard_margin: float) -> float:
    """Seconds the runner waits for an exercise's verdict before it interrupts the kernel."""
    soft = timeout if timeout is not None else max(EXERCISES[name].time_limit_cpu, EXERCISES[name].time_limit_gpu)
    return soft + hard_margin


def default_budget(names, timeout: float | None, hard_margin: float = HARD_MARGIN) -> float:
    """The default ``--notebook-timeout``: ``CELLS_BUDGET`` for the cells plus each exercise's hard limit."""
    return CELLS_BUDGET + sum(hard_limit(n, timeout, hard_margin) for n in names)


def _zero(name, status, message, seed) -> Result:
    return Result(name, status, 0, EXERCISES[name].points, message, seed=seed)


def _cell_name(pos: int, source: str) -> str:
    """A code cell as a learner finds it in JupyterLab: its place among the code cells and its first line."""
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return f"code cell {pos + 1} (`{first[:50]}{'…' if len(first) > 50 else ''}`)"


def _error_text(error: str) -> str:
    """IPython names a cell's code after a temporary file ("(2152412868.py, line 14)"): say the cell's line."""
    return re.sub(r"\(\d+\.py, line (\d+)\)", r"(line \1 of that cell)", error)


def _cell_error(pos: int, source: str, result: Exec) -> str:
    """A learner-facing note for a cell that raised."""
    cell = _cell_name(pos, source)
    if result.ename == "SystemExit":
        return (f"{cell} called sys.exit() or raised SystemExit ({result.error}); "
                "the grader went on with the next cell")
    if result.ename == "KeyboardInterrupt":
        return f"{cell} was interrupted (it raised KeyboardInterrupt); the grader went on with the next cell"
    return f"{cell} raised {_error_text(result.error)}"


def grade_notebook(path: Path, seed: int, cell_timeout: float = CELL_TIMEOUT, timeout: float | None = None,
                   log=lambda s: None, hard_margin: float = HARD_MARGIN, grace: float = GRACE,
                   notebook_timeout: float | None = None) -> NotebookReport:
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
    listed = listed_exercises(nb, path)
    names = exercises_in(nb, path)
    meta = nb.get("metadata", {}).get("ttc", {}).get("exercises")
    meta = [n for n in meta if isinstance(n, str)] if isinstance(meta, list) else []
    for name in names:
        if meta.count(name) > 1:
            report.cell_issues.append(f"the notebook's metadata lists {name!r} {meta.count(name)} times; "
                                      "it is graded once")
        elif meta and name not in meta:
            report.cell_issues.append(f"the notebook's metadata does not list {name!r}, but a notebook of this "
                                      "name holds it: it is graded too")
    for name in dict.fromkeys(n for n in listed if n not in EXERCISES):
        report.cell_issues.append(f"the notebook's metadata lists {name!r}, which is not an exercise the grader knows")
    budget = notebook_timeout if notebook_timeout is not None else default_budget(names, timeout, hard_margin)
    report.budget = budget
    deadline = started + budget

    def left() -> float:
        return deadline - time.monotonic()

    kernel_name = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    cells = []
    code_pos = {}  # notebook index -> place among the code cells (what a learner counts in JupyterLab)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        code_pos[i] = len(code_pos)
        if SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            report.cells_skipped += 1
        else:
            cells.append((i, cell.source))

    # ran: (index, source) of the cells that ran, replayed into a fresh kernel after a restart
    state = {"kernel": None, "ran": []}
    ours = set(processes.children(os.getpid())) if processes.is_subreaper() else set()

    def start_kernel():
        if state["kernel"] is not None:
            state["kernel"].shutdown()
            state["kernel"] = None
        try:
            state["kernel"] = Kernel(kernel_name, path.parent)
        except Exception:
            state["kernel"] = Kernel("python3", path.parent)

    def fresh_kernel():
        """A new kernel with the cells that ran replayed; a replayed cell that stops or hangs the kernel
        again is left out (noted) and the replay starts over without it."""
        while True:
            start_kernel()
            for index, source in list(state["ran"]):
                result = state["kernel"].run(source, min(cell_timeout, left()))
                if result.status in ("ok", "error"):
                    continue
                if left() <= 0:
                    return  # the budget ran out: the caller sees it
                state["ran"].remove((index, source))
                what = {"exit": "called exit() again", "dead": "crashed the kernel again",
                        "timeout": "ran past the cell time limit"}[result.status]
                report.cell_issues.append(f"cell {index} {what} when re-run after a kernel restart; "
                                          "it was left out of the restarted kernel")
                break
            else:
                return

    def recover(result: Exec) -> None:
        """After a timeout, a death or an exit(), leave a working kernel behind."""
        if result.status == "timeout" and state["kernel"].interrupt(grace):
            return
        log("   (restarting the kernel)")
        fresh_kernel()

    def out_of_time(what: str) -> None:
        report.out_of_time = True
        report.cell_issues.append(f"the notebook's time budget ({budget:g} s, --notebook-timeout) ran out {what}")

    try:
        start_kernel()
    except Exception as exc:  # no kernel, no grading: say so (and exit non-zero: nothing was graded)
        report.kernel_failed = True
        report.cell_issues.append(f"could not start a Jupyter kernel ({kernel_name!r}): {type(exc).__name__}: {exc}")
        report.exercises = [_zero(n, "error", "not graded: no Jupyter kernel could be started", seed) for n in names]
        _end(report, started, ours)
        return report
    try:
        for pos, (index, source) in enumerate(cells):
            if left() <= 0:
                out_of_time(f"before cell {index}: it and the {len(cells) - pos - 1} code cell(s) after it "
                            "were not run")
                break
            limit = min(cell_timeout, left())
            result = state["kernel"].run(source, limit)
            report.cells_run += 1
            if result.status in ("ok", "error"):
                state["ran"].append((index, source))
                if result.status == "error":
                    report.cell_issues.append(_cell_error(code_pos[index], source, result))
                continue
            if result.status == "timeout" and limit < cell_timeout:
                out_of_time(f"while cell {index} ran: it and the {len(cells) - pos - 1} code cell(s) after it "
                            "were skipped")
                break
            what = {"timeout": f"ran past the cell time limit ({cell_timeout:g} s); it was stopped and skipped",
                    "dead": "crashed the kernel; skipped (the kernel was restarted without it). In Triton's "
                            "interpreter an unmasked store can write past a tensor and crash this or a later cell: "
                            "check the masks of the kernels it runs",
                    "exit": "called exit() or quit(), which stops the Jupyter kernel; skipped (the kernel was "
                            "restarted without it)"}[result.status]
            report.cell_issues.append(f"cell {index} {what}")
            recover(result)

        for name in names:
            if report.out_of_time or left() <= 0:
                if not report.out_of_time:
                    out_of_time("before all exercises were graded")
                report.exercises.append(_zero(name, "timeout", "not graded: the notebook's time budget "
                                              f"({budget:g} s) ran out first (--notebook-timeout)", seed))
                continue
            marker = f"@@TTC-RESULT-{secrets.token_hex(8)}@@"
            hard = hard_limit(name, timeout, hard_margin)
            by_budget = left() < hard
            hard = min(hard, left())
            code = (f"import grader.checks as _ttc_checks\n"
                    f"_ttc_checks.headless({name!r}, globals().get({name!r}), {seed}, {timeout!r}, {marker!r})")
            log(f"   grading {name} ...")
            began = time.monotonic()
            result = state["kernel"].run(code, hard)
            found = [line for line in result.stdout.splitlines() if line.startswith(marker)]
            if found:
                report.exercises.append(Result.from_dict(json.loads(found[-1][len(marker):])))
                if result.status == "exit":  # the answer called exit(): its verdict stands, the kernel is gone
                    report.cell_issues.append(f"{name}: the answer called exit() or quit(), which stops the "
                                              "Jupyter kernel; the kernel was restarted")
                    recover(result)
                continue
            if result.status == "timeout" and by_budget:
                out_of_time(f"while {name} was graded")
                report.exercises.append(_zero(name, "timeout", "not graded: the notebook's time budget "
                                              f"({budget:g} s) ran out while it was graded (--notebook-timeout)",
                                              seed))
            elif result.status == "timeout":
                report.exercises.append(_zero(name, "timeout", f"timed out: no verdict within {hard:g} s "
                                              "(the answer hangs and ignores interrupts?)", seed))
                recover(result)
            elif result.status == "dead":
                report.exercises.append(_zero(name, "crashed", "the answer crashed the Python kernel "
                                              "(a segfault, os._exit, out of memory?). In Triton's interpreter a "
                                              "store without a mask, in this answer or in any kernel an earlier cell "
                                              "ran, can write past its tensor and crash later code: check every "
                                              "kernel's masks first", seed))
                recover(result)
            elif result.status == "exit":
                report.exercises.append(_zero(name, "crashed", "the answer called exit() or quit(), which stops "
                                              "the Jupyter kernel", seed))
                recover(result)
            elif result.ename == "SystemExit":
                report.exercises.append(_zero(name, "error", f"the answer called sys.exit() or raised SystemExit "
                                              f"while it was graded ({result.error})", seed))
            elif result.ename == "KeyboardInterrupt":
                report.exercises.append(_zero(name, "error", "the answer was interrupted (KeyboardInterrupt) "
                                              "while it was graded", seed))
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
        _end(report, started, ours)
    return report


def _end(report: NotebookReport, started: float, ours: set) -> None:
    """End what the notebook left running, including orphans re-parented to this (subreaper) process."""
    processes.sweep(None, exclude=ours, orphans_of_mine=True)
    report.seconds = time.monotonic() - started


def exit_status(reports) -> int:
    if any(r.kernel_failed for r in reports):
        return EXIT_KERNEL_FAILED
    return EXIT_FULL_MARKS if all(r.full_marks for r in reports) else EXIT_NOT_FULL_MARKS


def main(argv=None) -> int:
    """Grade notebooks; returns the exit status:

    * 0: every exercise in every notebook was graded and has full marks;
    * 3: graded, but some exercise did not get full marks (or a notebook holds no exercise the grader
      knows);
    * 1: a Jupyter kernel could not be started or failed, so something was not graded;
    * 2: a bad command line (no such notebook, not a ``.ipynb``, an unknown option);
    * 130: interrupted (Ctrl-C).

    ``--json`` does not change the status. ``make grade`` fails (Make's own status 2) whenever this is
    not 0.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m grader",
                                description="Run notebooks headless and grade the exercises in them.",
                                epilog="Exit status: 0 full marks on every exercise; 3 some exercise without "
                                       "full marks; 1 a Jupyter kernel failed; 2 bad command line.")
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="notebooks to grade (.ipynb); none: every notebook of my-work/ you worked on")
    p.add_argument("--progress", action="store_true",
                   help="print the grades kept in my-work/.grades.json and grade nothing")
    p.add_argument("--workspace", type=Path, default=progress.WORKSPACE, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON report instead of text")
    p.add_argument("--seed", type=int, default=None, help="reuse the random shapes of an earlier run")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds each exercise's check may take (default: the exercise's own limit)")
    p.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds each notebook cell may take")
    p.add_argument("--notebook-timeout", type=float, default=None,
                   help=f"seconds for a whole notebook, cells and checks (default: {CELLS_BUDGET:g} plus each "
                        "exercise's limit and hard margin); past it the rest scores zero")
    p.add_argument("--hard-margin", type=float, default=HARD_MARGIN,
                   help="seconds past an exercise's limit before the kernel is interrupted from outside")
    p.add_argument("--grace", type=float, default=GRACE,
                   help="seconds an interrupted kernel has to answer before it is killed and restarted")
    args = p.parse_args(argv)
    store = progress.store_path(args.workspace)
    if args.progress:
        if args.notebooks:
            p.error("--progress grades nothing: give it no notebook")
        data = progress.load(store, keep_aside=False)  # --progress only reads
        print(progress.table(data, list(EXERCISES)))
        return EXIT_FULL_MARKS if progress.all_passed(data, data["exercises"]) else EXIT_NOT_FULL_MARKS
    if not args.notebooks:
        if not any(Path(args.workspace).glob("*.ipynb")):
            p.error(f"nothing to grade: {args.workspace} holds no notebook; run 'make workspace' (or 'make lab') "
                    "first, or name the notebooks to grade")
        args.notebooks = progress.attempted(args.workspace)
        if not args.notebooks:
            print(f"you have not worked on any exercise yet: every notebook in {args.workspace} is as its "
                  "template in exercises/. Open one in JupyterLab (make lab), then grade it.")
            return EXIT_FULL_MARKS
    for nb in args.notebooks:
        if not nb.is_file():
            p.error(f"no such notebook: {nb}")
        if nb.suffix != ".ipynb":
            p.error(f"not a notebook (.ipynb): {nb}")
    for option in ("timeout", "cell_timeout", "notebook_timeout", "hard_margin", "grace"):
        value = getattr(args, option)
        if value is not None and not value > 0 and not (option in ("hard_margin", "grace") and value == 0):
            p.error(f"--{option.replace('_', '-')} must be a positive number of seconds")
    seed = args.seed if args.seed is not None else new_seed()
    processes.become_subreaper()  # so that processes a notebook detaches are still ours to end

    def log(line):
        if not args.json:
            print(line, flush=True)

    log(f"grading {len(args.notebooks)} notebook(s); seed {seed} (pass --seed {seed} to draw the same shapes)")
    reports = []
    try:
        for nb in args.notebooks:
            log(f"-- running {nb} ...")
            reports.append(grade_notebook(nb, seed, args.cell_timeout, args.timeout, log,
                                          args.hard_margin, args.grace, args.notebook_timeout))
            log(reports[-1].text())
    except KeyboardInterrupt:
        print("\ngrading interrupted", file=sys.stderr)
        return 130
    score = sum(r.score for r in reports)
    top = sum(r.max_points for r in reports)
    status = exit_status(reports)
    workspace = Path(args.workspace).resolve()
    kept = [r for r in reports if Path(r.path).resolve().parent == workspace]
    data = progress.record(kept, store) if kept else None
    if args.json:
        json.dump({"seed": seed, "score": score, "max_points": top, "exit_status": status,
                   "notebooks": [r.to_dict() for r in reports]}, sys.stdout, indent=1)
        print()
    else:
        print(f"== total: {score}/{top}")
        if status == EXIT_NOT_FULL_MARKS:
            print("(exit status 3: not every exercise has full marks yet)")
        if data is not None:
            print(f"\n== your progress (kept in {store}):")
            print(progress.table(data, list(EXERCISES)))
    return status
