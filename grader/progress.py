"""Your progress across the course: the grades ``python -m grader`` gives your notebooks in ``my-work/``.

Every grade of a notebook in ``my-work/`` is kept in ``my-work/.grades.json`` (git ignores the folder;
the course never commits it), the last ``KEEP`` attempts of each exercise. ``python -m grader`` with no
notebook (``make grade``) grades every notebook of ``my-work/`` you have worked on (any code cell
changed from its template in ``exercises/``), keeps the grades, and prints one line per exercise:
its last score, its best, how many attempts, when the last one was, and what failed first.

    python -m grader                      # grade what you worked on, then the table
    python -m grader --progress           # the table alone, nothing graded
"""
from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from .workspace import TEMPLATES, WORKSPACE

FILE_NAME = ".grades.json"
KEEP = 20  # attempts kept per exercise
VERSION = 1


def store_path(workspace: Path = WORKSPACE) -> Path:
    return Path(workspace) / FILE_NAME


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
            for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def _earlier_versions(template: Path) -> list[list[str]]:
    """The code cells of every committed version of a template (git history of the course checkout), so
    that a copy made before the course was updated still counts as untouched; ``[]`` without git."""
    import subprocess

    template = Path(template).resolve()
    try:
        root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=template.parent, capture_output=True,
                                   text=True, check=True, timeout=30).stdout.strip())
        rel = template.relative_to(root).as_posix()
        revs = subprocess.run(["git", "log", "--format=%H", "--", rel], cwd=root, capture_output=True, text=True,
                              check=True, timeout=30).stdout.split()
        out = []
        for rev in revs[:50]:
            text = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=root, capture_output=True, text=True,
                                  timeout=30).stdout
            if text:
                nb = json.loads(text)
                out.append(["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
                            for c in nb.get("cells", []) if c.get("cell_type") == "code"])
        return out
    except (OSError, ValueError, subprocess.SubprocessError):
        return []


def attempted(workspace: Path = WORKSPACE, templates: Path = TEMPLATES) -> list[Path]:
    """The notebooks of ``workspace`` you have worked on: those whose code cells differ from the template
    of the same name in ``templates``, as it is now and in every earlier committed version (a copy made
    before the course was updated is not your work). A notebook that cannot be read counts as worked on:
    the grader will say what is wrong with it. Notebooks with no template of their name (a scratch
    ``Untitled.ipynb``, a ``-Copy1``) are not exercises and are left out. Sorted by name."""
    out = []
    for nb in sorted(Path(workspace).glob("*.ipynb")):
        if not nb.is_file():  # a folder or a dangling link named *.ipynb
            continue
        template = Path(templates) / nb.name
        if not template.is_file():
            continue
        try:
            mine = _code_cells(nb)
            same = mine == _code_cells(template) or mine in _earlier_versions(template)
        except (OSError, ValueError):
            same = False
        if not same:
            out.append(nb)
    return out


def first_failure(result) -> str:
    """What failed first in a graded exercise (``grader.report.Result``), in one line; ``""`` if it passed."""
    if result.points == result.max_points and result.max_points:
        return ""
    for sub in result.subchecks:
        if sub.status not in ("pass", "skip"):
            text = f"{sub.label}: {sub.message}" if sub.message else sub.label
            return " ".join(text.split())
    return " ".join((result.message or result.status).split())


def load(path: Path, keep_aside: bool = True) -> dict:
    """The kept grades (``{"version", "exercises": {name: [attempt, ...]}}``); an empty record when the
    file does not exist. A file that is not a record of this kind (not JSON, or attempts without the
    fields the table needs) is kept aside as ``<name>.unreadable-<time>`` (never deleted; left in place
    where the folder is read-only, or with ``keep_aside=False``, which only reads) and a new record
    started."""
    path = Path(path)
    empty = {"version": VERSION, "exercises": {}}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not _is_record(data):
            raise ValueError("not a grade record")
        return data
    except (OSError, ValueError):
        if not keep_aside:
            return empty
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            path.replace(path.with_name(f"{path.name}.unreadable-{stamp}"))
        except OSError:  # a read-only folder: leave it, start afresh in memory
            pass
        return empty


ATTEMPT_FIELDS = {"when": str, "points": (int, float), "max_points": (int, float), "first_failure": str}


def _is_record(data) -> bool:
    """Whether ``data`` is a grade record this version can read: every attempt a dict with the fields the
    table needs, of the right types."""
    if not (isinstance(data, dict) and isinstance(data.get("exercises"), dict)):
        return False
    for attempts in data["exercises"].values():
        if not isinstance(attempts, list) or not attempts:
            return False
        for a in attempts:
            if not isinstance(a, dict) or any(not isinstance(a.get(k), t) or isinstance(a.get(k), bool)
                                              for k, t in ATTEMPT_FIELDS.items()):
                return False
    return True


def _write(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically: a crash leaves the old record or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record(reports, path: Path, when: datetime.datetime | None = None) -> dict:
    """Add each exercise graded in ``reports`` (``grader.runner.NotebookReport``) to the record at
    ``path``, keeping the last ``KEEP`` attempts of each; return the record."""
    when = (when or datetime.datetime.now()).isoformat(timespec="seconds")
    data = load(path)
    for report in reports:
        for r in report.exercises:
            attempts = data["exercises"].setdefault(r.name, [])
            attempts.append({"when": when, "notebook": Path(report.path).name, "points": r.points,
                             "max_points": r.max_points, "status": r.status, "seed": report.seed,
                             "first_failure": first_failure(r)[:300]})
            del attempts[:-KEEP]
    try:
        _write(Path(path), data)
    except OSError as exc:  # a read-only or full disk: the grades were given, only keeping them failed
        print(f"note: could not keep these grades in {path} ({type(exc).__name__}: {exc}); they are "
              "printed here but not added to your history", file=sys.stderr)
    return data


def table(data: dict, order=None) -> str:
    """One line per exercise of a record: last score, best, attempts, when the last was, what failed
    first in it. ``order``: exercise names in the course's order (others follow, sorted)."""
    ex = data.get("exercises", {})
    if not ex:
        return "no grades kept yet: work on an exercise in my-work/, then `make grade`"
    names = [n for n in (order or []) if n in ex] + sorted(n for n in ex if n not in (order or []))
    rows = [("exercise", "last", "best", "tries", "last attempt", "what failed first")]
    for n in names:
        last = ex[n][-1]
        best = max(ex[n], key=lambda a: (a["points"], a["when"]))
        rows.append((n, f"{last['points']}/{last['max_points']}", f"{best['points']}/{best['max_points']}",
                     str(len(ex[n])), last["when"].replace("T", " ")[:16],
                     (last["first_failure"][:70] + ("..." if len(last["first_failure"]) > 70 else ""))
                     or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows)


def all_passed(data: dict, names) -> bool:
    """Whether the last attempt of each exercise in ``names`` has full marks."""
    ex = data.get("exercises", {})
    return all(n in ex and ex[n][-1]["max_points"] and ex[n][-1]["points"] == ex[n][-1]["max_points"]
               for n in names)
