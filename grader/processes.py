"""Find and end every process a graded notebook started, including those that left its process tree.

A notebook's kernel is started with ``TTC_GRADER_RUN=<token>`` in its environment; every process it
starts inherits it, also one started in a new session (``os.setsid``, ``start_new_session=True``) or
double-forked away. ``sweep(token)`` stops, then kills, every process whose environment carries the
token, and all their descendants. A process started with a scrubbed environment is found another way:
``python -m grader`` makes itself a *child subreaper* (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``), so
orphans of the kernel are re-parented to the grader instead of to init, and ``sweep`` with
``orphans_of_mine=True`` ends the grader's children it did not start itself. Outside Linux (no
``/proc``) both are no-ops, and only the kernel itself is shut down.

Only Linux's ``/proc`` is read; nothing here is a security boundary (see the README).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections import defaultdict

TOKEN_ENV = "TTC_GRADER_RUN"
PR_SET_CHILD_SUBREAPER = 36
_PROC = "/proc"
_state = {"subreaper": False}


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux >= 3.4); False where unavailable."""
    if _state["subreaper"]:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        ok = False
    _state["subreaper"] = ok
    return ok


def is_subreaper() -> bool:
    return _state["subreaper"]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of ``pid``, or None if it is gone or unreadable."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()  # the command name may hold spaces and ')'
    try:
        return int(fields[1]), fields[0]
    except (IndexError, ValueError):
        return None


def process_table() -> dict[int, tuple[int, str]]:
    """``{pid: (ppid, state)}`` of every process this user can see; empty without /proc."""
    table = {}
    try:
        names = os.listdir(_PROC)
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            info = _stat(int(name))
            if info is not None:
                table[int(name)] = info
    return table


def _carries(pid: int, entry: bytes) -> bool:
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except OSError:
        return False


def children(pid: int, table=None) -> set[int]:
    table = process_table() if table is None else table
    return {p for p, (ppid, _) in table.items() if ppid == pid}


def _ancestors(pid: int, table) -> set[int]:
    seen = set()
    while pid in table and pid not in seen:
        seen.add(pid)
        pid = table[pid][0]
    return seen


def find(token: str | None, roots=(), table=None) -> set[int]:
    """Live processes carrying ``TTC_GRADER_RUN=token``, the ``roots``, and all their descendants;
    never this process or one of its ancestors."""
    table = process_table() if table is None else table
    entry = f"{TOKEN_ENV}={token}".encode() if token else None
    marked = {p for p, (_, st) in table.items() if st != "Z" and entry and _carries(p, entry)}
    marked |= {p for p in roots if p in table}
    kids = defaultdict(list)
    for p, (ppid, _) in table.items():
        kids[ppid].append(p)
    found, stack = set(), list(marked)
    while stack:
        p = stack.pop()
        if p not in found:
            found.add(p)
            stack += kids[p]
    found -= _ancestors(os.getpid(), table)
    return {p for p in found if table[p][1] != "Z"}


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap(pids, wait: float = 2.0) -> None:
    """Collect the exit status of those ``pids`` that are this process's children (orphans re-parented
    to a subreaper become zombies otherwise). Waits at most ``wait`` seconds in all."""
    deadline = time.monotonic() + wait
    pending = set(pids)
    while pending:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child, or already collected
                pending.discard(pid)
                continue
            if done:
                pending.discard(pid)
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def sweep(token: str | None, exclude=(), orphans_of_mine: bool = False) -> list[int]:
    """End the processes ``find`` sees for ``token`` (and, with ``orphans_of_mine`` on a subreaper,
    this process's children not in ``exclude``): stop them all first, so none can start another
    meanwhile, then kill them, and reap the ones that are our children. Returns the pids ended."""
    exclude = set(exclude)
    me = os.getpid()
    stopped: set[int] = set()
    for _ in range(100):
        table = process_table()
        roots = set()
        if orphans_of_mine and is_subreaper():
            roots = children(me, table) - exclude
            reap({p for p in roots if table[p][1] == "Z"}, wait=0)  # orphans that already ended
        found = find(token, roots, table) - stopped - exclude
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        stopped |= found
    for pid in stopped:
        _signal(pid, signal.SIGKILL)
    reap(stopped)
    return sorted(stopped)
