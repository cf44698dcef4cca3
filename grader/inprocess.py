"""Grade the solution and exercise notebooks *in this process*, without Jupyter.

For machines that have torch and triton but no Jupyter (the course's H100 runner): the notebooks' code
cells (minus self-check and solution-only cells) run in a fresh namespace each, then every exercise's
check runs on the function they define, plus cheating answers that must be refused (PyTorch's
product; a product computed in another thread, or through an op no deny list named, then copied into C
by a kernel; a kernel reading a copy of A made before it ran).

    python -m grader.inprocess            # prints one line per verdict; exit 1 if one is unexpected
"""
from __future__ import annotations

import json
import linecache
import sys
from pathlib import Path

import kernels  # noqa: F401  (before triton)

from .checks import grade
from .registry import EXERCISES, SELF_CHECK_TAG, SOLUTION_ONLY_TAG

ROOT = Path(__file__).resolve().parent.parent


def notebook_namespace(path: Path) -> dict:
    ns: dict = {"__name__": "__main__"}
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if set(cell.get("metadata", {}).get("tags", [])) & {SELF_CHECK_TAG, SOLUTION_ONLY_TAG}:
            continue
        src = "".join(cell["source"])
        text = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))) + "\n"
        # Triton reads a kernel's source through inspect/linecache, as IPython arranges for cells
        fname = f"<{path.parent.name}/{path.name} cell {i}>"
        linecache.cache[fname] = (len(text), None, text.splitlines(True), fname)
        exec(compile(text, fname, "exec"), ns)  # noqa: S102 (our own notebooks)
    return ns


def cheat_matmul(a, b, **kw):
    import torch

    return torch.matmul(a, b)


# Cheats that launch kernels of their own; the grader must refuse each (see tests/test_grader_work.py).
import threading  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402


@triton.jit
def _copy_touching(src_ptr, dst_ptr, a_ptr, b_ptr, K, s_m, s_n, d_m, d_n, a_m, a_k, b_k, b_n,
                   BLOCK_K: tl.constexpr):
    """C[m, n] = tmp[m, n], after loading what a kernel computing C[m, n] would load."""
    m = tl.program_id(0)
    n = tl.program_id(1)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        tl.load(a_ptr + m * a_m + ks * a_k, mask=ks < K)
        tl.load(b_ptr + ks * b_k + n * b_n, mask=ks < K)
    tl.store(dst_ptr + m * d_m + n * d_n, tl.load(src_ptr + m * s_m + n * s_n))


@triton.jit
def _naive(a_ptr, b_ptr, c_ptr, K, s_am, s_ak, s_bk, s_bn, s_cm, s_cn, BLOCK_K: tl.constexpr):
    m = tl.program_id(0)
    n = tl.program_id(1)
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        acc += (tl.load(a_ptr + m * s_am + ks * s_ak, mask=ks < K, other=0.0).to(tl.float32)
                * tl.load(b_ptr + ks * s_bk + n * s_bn, mask=ks < K, other=0.0).to(tl.float32))
    tl.store(c_ptr + m * s_cm + n * s_cn, tl.sum(acc, axis=0).to(c_ptr.dtype.element_ty))


@triton.jit
def _touch(x_ptr):
    pass


def _out(a, b, out):
    return out if out is not None else torch.empty(a.shape[0], b.shape[1], dtype=a.dtype, device=a.device)


def _copy_into(tmp, out, a, b):
    M, K = a.shape
    _copy_touching[(M, b.shape[1])](tmp, out, a, b, K, tmp.stride(0), tmp.stride(1), out.stride(0), out.stride(1),
                                    a.stride(0), a.stride(1), b.stride(0), b.stride(1), BLOCK_K=32)
    return out


def cheat_thread_copy(a, b, out=None, **kw):
    """The product computed in another thread (the guard is per thread), copied in by a kernel."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(c=torch.mm(a.float(), b.float()).to(a.dtype)))
    worker.start()
    worker.join()
    return _copy_into(box["c"], _out(a, b, out), a, b)


def cheat_embedding_bag(a, b, out=None, **kw):
    """A matmul through an op no deny list named (embedding_bag with per-sample weights)."""
    M, K = a.shape
    rows = torch.arange(K, device=a.device).expand(M, K).reshape(-1)
    offsets = torch.arange(0, M * K, K, device=a.device)
    tmp = torch.nn.functional.embedding_bag(rows, b, offsets, mode="sum", per_sample_weights=a.reshape(-1))
    return _copy_into(tmp.to(a.dtype), _out(a, b, out), a, b)


def cheat_copy_of_a(a, b, out=None, **kw):
    """A reaches a kernel, but the product is computed from a copy of A made before the launch."""
    out = _out(a, b, out)
    _touch[(1,)](a)
    a2 = torch.empty_strided(a.size(), a.stride(), dtype=a.dtype, device=a.device).copy_(a)
    M, K = a.shape
    _naive[(M, b.shape[1])](a2, b, out, K, a2.stride(0), a2.stride(1), b.stride(0), b.stride(1),
                            out.stride(0), out.stride(1), BLOCK_K=32)
    return out


CHEATS = {"torch.matmul": cheat_matmul, "a thread's product, copied": cheat_thread_copy,
          "embedding_bag": cheat_embedding_bag, "a copy of A": cheat_copy_of_a}


def main() -> int:
    print(kernels.describe_world(), flush=True)
    unexpected = 0
    for kind, want_pass in (("solutions", True), ("exercises", False)):
        for ex in EXERCISES.values():
            ns = notebook_namespace(ROOT / kind / f"{ex.notebook}.ipynb")
            res = grade(ex.name, ns[ex.name], seed=1234)
            ok = res.passed == want_pass
            unexpected += not ok
            print(f"{'ok ' if ok else 'UNEXPECTED'} {kind}/{ex.name}: {res.status} {res.message[:160]}", flush=True)
    for label, cheat in CHEATS.items():
        for name in ("naive_matmul", "tiled_matmul", "persistent_matmul", "tma_matmul"):
            res = grade(name, cheat, seed=99)
            ok = not res.passed
            unexpected += not ok
            print(f"{'ok ' if ok else 'UNEXPECTED'} {label} as {name}: {res.status} {res.message[:160]}", flush=True)
    print(f"{unexpected} unexpected verdicts")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
