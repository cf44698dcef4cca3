"""The install paths the README gives agree with each other: conda's environment.yml asks for the same
packages, with the same version bounds, as pyproject.toml (the course's runtime and dev dependencies),
and the README's commands name files and targets that exist."""
import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda's package name -> the name pip and pyproject.toml use
CONDA_ONLY = {"python", "pip"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_norm(r.name): r.specifier for r in map(Requirement, reqs)}, project["requires-python"]


def _conda() -> tuple[dict, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found, python = {}, None
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: section
            for line in dep["pip"]:
                if line.startswith("-e"):
                    assert line.split()[-1] == ".", f"environment.yml installs {line!r}, not the course itself"
                    continue
                r = Requirement(line)
                found[_norm(r.name)] = r.specifier
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep.split("#")[0].strip())
        name, spec = m.group(1), m.group(2).replace(" ", "")
        if name == "python":
            python = spec.lstrip("=")
            continue
        if name in CONDA_ONLY:
            continue
        found[_norm(CONDA_NAMES.get(name, name))] = SpecifierSet(spec)
    return found, python


def test_conda_environment_matches_pyproject():
    want, requires_python = _pyproject()
    got, python = _conda()
    assert set(got) == set(want), (f"only in environment.yml: {sorted(set(got) - set(want))}; "
                                   f"only in pyproject.toml: {sorted(set(want) - set(got))}")
    for name, spec in want.items():
        assert got[name] == spec, f"{name}: environment.yml asks {got[name] or 'any'}, pyproject.toml {spec or 'any'}"
    assert python and python in SpecifierSet(requires_python), \
        f"environment.yml's python {python} is outside pyproject.toml's requires-python {requires_python}"


def test_the_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    make = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", make, re.M))
    blocks = "\n".join(re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme, re.S))
    named = set(re.findall(r"`make ([a-z][a-z-]*)", readme)) | set(re.findall(r"^\s*make ([a-z][a-z-]*)", blocks, re.M))
    assert {"lab", "test"} <= named, "the README's two commands are make lab and make test"
    for target in named:
        assert target in targets, f"the README says `make {target}`, which the Makefile does not define"
    # every `python -m module` the README gives is a module of the course (or of its dependencies)
    import importlib.util

    for module in set(re.findall(r"python -m ([A-Za-z_][\w.]*)", readme)):
        assert importlib.util.find_spec(module) is not None, f"the README runs `python -m {module}`, which does not exist"
    for path in ("environment.yml", ".ci/run", "scripts/cold_triton_cache.sh"):
        assert path in readme, f"the README no longer names {path}"
        assert (ROOT / path).exists(), f"the README names {path}, which is missing"
