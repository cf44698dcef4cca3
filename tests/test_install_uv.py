"""The README's path for uv users, run for real: ``uv venv --seed``, ``uv pip install torch==<pin>``, then
``uv pip install -e ".[dev]"`` into a fresh virtual environment in a temporary folder, and the course
used from it (a kernel in Triton's interpreter, the grader, JupyterLab, the website builder).

uv itself is installed with pip into the temporary folder (the course does not depend on it). uv does
not read pip's configuration, so the package indexes and wheel folders pip is configured with on this
machine (``pip config list``: ``index-url``, ``extra-index-url``, ``find-links``) are handed to uv, with
pip's rule of taking the best version from any index, as a learner behind the same mirror would. Takes about 30 s with warm caches; its caches live in the
temporary folder, so nothing outside it is written."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TORCH_PIN = re.search(r"^TORCH\s*\?=\s*(torch==\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)


def _pip_sources() -> list[str]:
    """uv flags for the indexes and wheel folders pip is configured with (only those that exist)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    flags = []
    for line in out.splitlines():
        m = re.match(r"[^.]*\.(index-url|extra-index-url|find-links)='(.*)'", line.strip())
        if not m:
            continue
        for loc in m.group(2).split():
            if loc.startswith("file://") and not Path(loc[len("file://"):]).exists():
                continue  # pip warns and ignores these; uv would fail
            if not loc.startswith(("file://", "http")) and not Path(loc).exists():
                continue
            flags += [f"--{m.group(1)}", loc]
    # pip picks the best version across all its indexes; uv, by default, only from the first that has
    # the package: ask for pip's behaviour
    return flags + (["--index-strategy", "unsafe-best-match"] if any("index-url" in f for f in flags) else [])


def test_the_readme_gives_the_uv_commands_this_test_runs():
    for cmd in ("uv venv --seed", f'uv pip install {TORCH_PIN}', 'uv pip install -e ".[dev]"'):
        assert cmd in README, f"the README's uv paragraph no longer says `{cmd}`"


@pytest.mark.timeout(900)
def test_a_fresh_uv_environment_runs_the_course(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "TRITON_INTERPRET",
                                                            "TTC_WORLD")}
    env.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")

    def run(*cmd, cwd=ROOT, extra_env=None):
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, env={**env, **(extra_env or {})}, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        return p.stdout

    tool = tmp_path / "uv-tool"
    run(sys.executable, "-m", "pip", "install", "-q", "--target", tool, "uv")
    uv = run(sys.executable, "-c", "from uv import find_uv_bin; print(find_uv_bin())",
             extra_env={"PYTHONPATH": str(tool)}).strip()
    venv, sources = tmp_path / "venv", _pip_sources()
    # the README's three commands (uv venv makes .venv in the current folder; here a folder of its own)
    run(uv, "venv", "-q", "--seed", "--python", sys.executable, venv)
    run(uv, "pip", "install", "-q", "--python", venv, *sources, TORCH_PIN)
    run(uv, "pip", "install", "-q", "--python", venv, *sources, "-e", ".[dev]")
    py = venv / "bin" / "python"
    out = run(py, "-c", "import kernels, torch; from kernels import basics; "
                        "x, y = torch.randn(3000), torch.randn(3000); "
                        "assert torch.equal(basics.add(x, y), x + y); print(kernels.describe_world())",
              cwd=tmp_path)
    assert out.strip(), "kernels.describe_world() printed nothing"
    run(py, "-m", "grader", "--help", cwd=tmp_path)
    run(venv / "bin" / "jupyter", "lab", "--version", cwd=tmp_path)
    run(venv / "bin" / "jupyter-book", "--version", cwd=tmp_path)
    run(py, "-m", "pip", "--version", cwd=tmp_path)  # --seed: the Makefile's targets install with pip
