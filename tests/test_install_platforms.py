"""Install paths the README gives besides the default. ``SYSTEM_SITE=1`` (a GPU machine's own torch), read
from ``make -n``. The macOS / Windows paragraph, checked as far as a Linux machine without Docker can: the
container image it names has a Python the course supports, the port it publishes is the one JupyterLab
serves, and the `make lab LAB_ARGS=...` it gives reaches JupyterLab's command line (read from `make -n`,
which prints the commands without running them). Running the container itself needs Docker."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _paragraph() -> str:
    m = re.search(r"\*\*macOS / Windows\.\*\*(.*?)\n\n", README, re.S)
    assert m, "the README has no **macOS / Windows.** paragraph"
    return " ".join(m.group(1).split())


def test_the_container_image_has_a_supported_python():
    text = _paragraph()
    m = re.search(r"`docker run [^`]*?python:(\d+\.\d+)[^`]*`", text)
    assert m, f"no `docker run ... python:X.Y` in the paragraph: {text}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert m.group(1) in SpecifierSet(requires), f"python:{m.group(1)} is outside requires-python {requires}"
    port = re.search(r"-p (\d+):(\d+)", m.group(0))
    assert port and port.group(2) == "8888", "the container must publish JupyterLab's port 8888"
    assert "apt-get install -y make git" in text, "the paragraph no longer installs make and git in the container"
    assert "WSL2" in text


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make (the README's first requirement)")
def test_make_lab_passes_the_containers_arguments_to_jupyterlab():
    args = re.search(r'make lab LAB_ARGS="([^"]+)"', _paragraph())
    assert args, "the paragraph no longer gives `make lab LAB_ARGS=\"...\"`"
    out = subprocess.run(["make", "-n", "lab", f"LAB_ARGS={args.group(1)}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lab = [line for line in out.stdout.splitlines() if "jupyter lab" in line]
    assert lab, f"`make -n lab` shows no `jupyter lab` command:\n{out.stdout}"
    for flag in args.group(1).split():
        assert flag in lab[-1].split(), f"{flag} does not reach JupyterLab: {lab[-1]}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make (the README's first requirement)")
def test_system_site_keeps_the_machines_torch(tmp_path):
    """`make lab SYSTEM_SITE=1` (a CUDA machine's own torch): the venv is made with
    --system-site-packages and torch is installed only when the venv cannot import one (read from
    `make -n` in a copy of the Makefile whose venv does not exist yet)."""
    assert "SYSTEM_SITE=1" in README
    out = subprocess.run(["make", "-n", "setup", "SYSTEM_SITE=1", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    venv_line = [line for line in out.stdout.splitlines() if " -m venv " in line]
    assert venv_line and "--system-site-packages" in venv_line[0].split(), out.stdout
    torch_line = [line for line in out.stdout.splitlines() if "pip install" in line and "torch" in line]
    assert torch_line and 'import torch' in torch_line[0] and "||" in torch_line[0], \
        f"torch must be installed only when the venv has none:\n{out.stdout}"
    plain = subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60).stdout
    assert "--system-site-packages" not in plain, "without SYSTEM_SITE the venv must not see system packages"
