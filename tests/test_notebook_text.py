"""What the learner reads: no traces of how the course was made, and figures that show in any backend.

The notebooks of chapters/, solutions/ and exercises/ speak to a learner. Words from the course's own
making (task trackers, review bars, working notes, files the learner does not have) must not leak into
them. Phrases are matched rather than single words, so that "the producer issues TMA loads" or
"`mbarrier.wait(bar, phase)`" are fine.
"""
import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for d in ("chapters", "solutions", "exercises") for p in (ROOT / d).glob("*.ipynb"))

COURSE_MAKING = [
    (re.compile(r"\b(?:the|this|open|same)\s+issue\b", re.I), "a task-tracker issue"),
    (re.compile(r"\bissue\s*#\s*\d+|\bissue tracker\b|\bpull request\b|\bticket\b", re.I), "a task tracker"),
    (re.compile(r"\b(?:the|this|that|our)\s+bar\b(?!\s*(?:chart|plot|graph|height|colou?r)s?\b)", re.I),
     "a review bar"),
    (re.compile(r"\bPEERS\.md\b|\bMEASURED\.md\b", re.I), "a working note the learner does not have"),
    (re.compile(r"\bshared/[\w./-]*\.(?:md|json|log|txt|py|ipynb)\b"), "a shared/ path the learner does not have"),
    (re.compile(r"(?<!Jupyter )(?<!Python )(?<!kernel )(?<!terminal )\bsessions?\b", re.I), "a working session"),
    (re.compile(r"\b(?:TODO|FIXME|XXX)\b"), "a to-do marker"),
    (re.compile(r"\b(?:reviewers?|the brief)\b", re.I), "the course's review"),
]


def _cells(path):
    nb = nbformat.read(path, as_version=4)
    return list(enumerate(nb.cells))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_course_making_words(path):
    found = []
    for i, cell in _cells(path):
        for rx, what in COURSE_MAKING:
            for m in rx.finditer(cell.source):
                a, b = max(0, m.start() - 40), m.end() + 40
                found.append(f"cell {i} ({cell.cell_type}): {what}: {cell.source[a:b]!r}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("text", [
    "This is the issue this chapter answers.", "Both reach the bar.", "see `shared/PEERS.md`",
    "numbers from MEASURED.md", "in the last session we", "TODO: explain", "a reviewer asked",
])
def test_the_patterns_catch(text):
    assert any(rx.search(text) for rx, _ in COURSE_MAKING), text


@pytest.mark.parametrize("text", [
    "the producer issues the TMA loads", "one thread issues the copy", "`mbarrier.wait(bar, phase)`",
    "The green bars are the same kernel", "the bar chart below", "shared memory / L1", "a Jupyter session",
    "an instruction the SM has to issue", "32 threads that issue one instruction together",
])
def test_the_patterns_spare(text):
    assert not any(rx.search(text) for rx, _ in COURSE_MAKING), text


# ------------------------------------------------------------------------ figures in any backend
def _show_with_arguments(source: str) -> list[str]:
    """Calls of ``plt.show``/``pyplot.show`` with a positional argument. ``plt.show(fig)`` works only
    by accident in the inline backend (its first parameter is ``close``) and raises TypeError in
    others (Agg, ipympl); show a figure with ``display(fig)`` or by leaving ``fig`` last in the cell."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.findall(r"\b(?:plt|pyplot)\.show\(\s*[^)\s][^)]*\)", code)
    bad = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "show"
                and isinstance(node.func.value, (ast.Name, ast.Attribute))
                and ast.unparse(node.func.value) in ("plt", "pyplot", "matplotlib.pyplot") and node.args):
            bad.append(ast.unparse(node))
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_plt_show_with_a_figure(path):
    bad = [f"cell {i}: {call}" for i, cell in _cells(path) if cell.cell_type == "code"
           for call in _show_with_arguments(cell.source)]
    assert not bad, "plt.show(fig) fails outside the inline backend; use display(fig):\n" + "\n".join(bad)


def test_the_show_check_catches():
    assert _show_with_arguments("fig, ax = plt.subplots()\nplt.show(fig)") == ["plt.show(fig)"]
    assert _show_with_arguments("%matplotlib inline\nplt.show()\nplt.show(block=False)") == []
