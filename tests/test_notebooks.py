"""House rules for every notebook: committed without outputs, import `kernels` first, media exist."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for d in ("chapters", "solutions", "exercises") for p in (ROOT / d).glob("*.ipynb"))


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    for chapter in ("00_gpu_in_one_page.ipynb", "01_three_loop_matmul.ipynb", "02_tiled_matmul.ipynb"):
        assert chapter in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_rules(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for c in code:
        assert not c.outputs, f"outputs committed in: {c.source[:60]!r}"
        assert c.execution_count is None
        assert "TRITON_INTERPRET" not in c.source, "let the kernels package decide the world"
    first = code[0].source
    assert re.search(r"^import kernels\b", first, re.M), "the first code cell must `import kernels`"
    for c in nb.cells:
        for src in re.findall(r'<video[^>]*src="([^"]+)"', c.source):
            assert (path.parent / src).is_file(), f"missing media {src}"
