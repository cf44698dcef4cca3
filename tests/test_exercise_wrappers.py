"""The given wrappers of the ch01-ch04 exercises (solutions and the generated exercises alike) refuse bad
input with one line from ``kernels.operands.prepare_matmul``, before the learner's kernel runs."""
import importlib.util
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import kernels
from kernels import testing as T

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {"naive_matmul": "ch01_naive_matmul", "tiled_matmul": "ch02_tiled_matmul",
             "persistent_matmul": "ch03_persistent_matmul", "tma_matmul": "ch04_tma_matmul"}
KERNELS = {"naive_matmul": "naive_matmul_kernel", "tiled_matmul": "tiled_matmul_kernel",
           "persistent_matmul": "persistent_matmul_kernel", "tma_matmul": "tma_matmul_kernel"}
SKIP_TAGS = {"self-check", "solution-only"}


def _load(path: Path, where: Path):
    """The notebook's definitions (no demo runs, no self-checks) as a module, from a file: Triton
    needs kernel source it can read."""
    nb = nbformat.read(str(path), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code" and not SKIP_TAGS & set(c.metadata.get("tags", []))
            and not c.get("id", "").endswith("try-code")]
    name = f"wrapper_{path.parent.name}_{path.stem}"
    file = where / f"{name}.py"
    file.write_text("\n\n".join(code) + "\n")
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    where = tmp_path_factory.mktemp("wrappers")
    return {(kind, fn): _load(ROOT / kind / f"{nb}.ipynb", where)
            for kind in ("solutions", "exercises") for fn, nb in NOTEBOOKS.items()}


def _inputs(dtype=torch.float16):
    return T.randn(16, 16, dtype=dtype), T.randn(16, 16, dtype=dtype)


SQUARE = T.randn(16, 16, dtype=torch.float16)
CASES = {
    "int64": (lambda: ((torch.ones(16, 16, dtype=torch.int64, device=kernels.DEVICE),) * 2, {}), TypeError,
              "a has dtype torch.int64"),
    "numpy": (lambda: ((np.ones((16, 16), np.float32), _inputs()[1]), {}), TypeError,
              r"a must be a torch.Tensor, got numpy.ndarray; convert it with torch.as_tensor"),
    "float64": (lambda: (_inputs(torch.float64), {}), TypeError, "float64 is not computed by these kernels"),
    "mixed dtypes": (lambda: ((_inputs()[0], _inputs(torch.float32)[1]), {}), TypeError,
                     "a is torch.float16 but b is torch.float32"),
    "mixed devices": (lambda: ((_inputs()[0], torch.ones(16, 16, dtype=torch.float16, device="meta")), {}),
                      ValueError, "b is on meta"),
    "out overlaps a": (lambda: ((SQUARE, _inputs()[1]), {"out": SQUARE}), ValueError,
                       "out shares memory with a: the kernel would overwrite a"),
    "out shape": (lambda: (_inputs(), {"out": torch.empty(16, 8, dtype=torch.float16, device=kernels.DEVICE)}),
                  ValueError, r"out has shape \(16, 8\), expected \(16, 16\)"),
}


@pytest.mark.parametrize("kind", ["solutions", "exercises"])
@pytest.mark.parametrize("fn", sorted(NOTEBOOKS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_given_wrappers_refuse_bad_input_in_one_line(modules, kind, fn, case):
    make, exc, words = CASES[case]
    args, kwargs = make()
    with pytest.raises(exc, match=words) as info:
        getattr(modules[(kind, fn)], fn)(*args, **kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{fn}: ")


BLOCKS = {  # (how to set the blocks, the error)
    "naive_matmul": [({"block_k": 24}, "block_k=24 is not a power of two")],
    "tiled_matmul": [({"block_m": 48}, "block_m=48 is not a power of two"),
                     ({"block_k": 8}, "block_k=8 is below 16: the course's tl.dot tiles are at least 16")],
    "persistent_matmul": [((32, 32, 24), "block_k=24 is not a power of two"),
                          ((32, 8, 32), "block_n=8 is below 16")],
    "tma_matmul": [((32, 48, 32), "block_n=48 is not a power of two"), ((16, 32, 8), "block_k=8 is below 16")],
}


@pytest.mark.parametrize("fn", sorted(NOTEBOOKS))
def test_given_wrappers_refuse_bad_block_sizes(modules, fn, monkeypatch):
    module = modules[("exercises", fn)]
    for setting, words in BLOCKS[fn]:
        kwargs = {}
        if isinstance(setting, dict):
            kwargs = setting
        else:  # chapters 03-04 take their blocks from the module's BLOCKS
            monkeypatch.setattr(module, "BLOCKS", setting)
        with pytest.raises(ValueError, match=words) as info:
            getattr(module, fn)(*_inputs(), **kwargs)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("fn", sorted(NOTEBOOKS))
def test_given_wrappers_name_a_kernel_made_for_the_other_world(modules, fn, monkeypatch):
    """A kernel cell run before ``import kernels`` (triton imported first) makes a kernel of the other
    world; the wrapper says so instead of Triton's "Cannot call @triton.jit'd outside of the scope of a
    kernel" / "0 active drivers"."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    module = modules[("solutions", fn)]
    kernel = getattr(module, KERNELS[fn])
    other = InterpretedFunction(kernel.fn) if kernels.ON_GPU else JITFunction(kernel.fn)
    monkeypatch.setattr(module, KERNELS[fn], other)
    with pytest.raises(RuntimeError, match=rf"^{fn}: `{KERNELS[fn]}` was decorated with @triton.jit before "
                                           r"`import kernels` ran.*run `import kernels` first$"):
        getattr(module, fn)(*_inputs())


@pytest.mark.parametrize("fn", sorted(NOTEBOOKS))
def test_solution_wrappers_still_compute(modules, fn):
    a, b = T.randn(20, 24, dtype=torch.float16), T.randn(24, 40, dtype=torch.float16)
    T.assert_close_matmul(getattr(modules[("solutions", fn)], fn)(a, b), a, b, label=fn)
