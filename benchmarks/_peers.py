"""Shared by the peer benchmarks: load one of Triton's tutorials, and time its kernels beside the
course's, in one process, on the same inputs, against the library (``torch.matmul``)."""
import ast
import hashlib
import importlib.util
import types
from pathlib import Path

import torch

from kernels import bench
from kernels import testing as T

from ._common import error_text


def load_tutorial(path, definitions_only=False):
    """Import a tutorial file as a module. ``definitions_only=True`` runs only its top-level imports,
    function and class definitions (not one decorated with ``perf_report``, the tutorial's own
    benchmark) and upper-case constants (``DEVICE = ...``), not the module-level test and benchmark that
    some tutorials (03) run when imported. It is a filter made for Triton's tutorials, not a sandbox:
    a constant's expression, default arguments and class bodies still run, and definitions nested in a
    top-level ``if`` or ``try`` are left out. Run only tutorial files you trust."""
    path = Path(path)
    if not definitions_only:
        spec = importlib.util.spec_from_file_location(f"triton_tutorial_{path.stem[:2]}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    tree = ast.parse(path.read_text(), filename=str(path))
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)

    def benchmark_only(n):  # e.g. @triton.testing.perf_report(configs): the tutorial's own benchmark
        return any("perf_report" in ast.dump(d) for d in getattr(n, "decorator_list", []))

    body = [n for n in tree.body if (isinstance(n, keep) and not benchmark_only(n)) or (
        isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in n.targets)
        and not any(isinstance(x, ast.Call) and getattr(x.func, "attr", "") in ("run", "manual_seed")
                    for x in ast.walk(n)))]
    mod = types.ModuleType(f"triton_tutorial_{path.stem[:2]}")
    mod.__file__ = str(path)
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), mod.__dict__)
    return mod


def run_peer(name, candidates, shapes, dtype, tutorial_path, what, script, dry_run=False, repeats=1):
    """Check and time every ``(label, fn(a, b, bT) -> C)`` candidate on each ``(M, N, K)`` beside
    ``torch.matmul``; save ``results/<gpu>/<name>.json`` after every shape (a run cut short keeps what it
    measured). Returns the records."""
    src = Path(tutorial_path).read_bytes()
    meta = {"what": what, "tutorial": str(tutorial_path), "tutorial_sha256": hashlib.sha256(src).hexdigest()}
    recs = []
    for M, N, K in shapes:
        a = T.randn(M, K, dtype=dtype, seed=0)
        b = T.randn(K, N, dtype=dtype, seed=1)
        bT = b.T.contiguous()
        ref = T.matmul_reference(a, b)
        for label, fn in candidates:
            try:
                err = T.rel_error(fn(a, b, bT).to(dtype), ref)
                rec = bench.compare(label, lambda: fn(a, b, bT), lambda: torch.matmul(a, b),
                                    flops=bench.matmul_flops(M, N, K), M=M, N=N, K=K,
                                    dtype=bench.DTYPE_NAMES[dtype], rel_error=err, repeats=repeats)
            except Exception as exc:
                rec = dict(kernel=label, M=M, N=N, K=K, error=error_text(exc))
            recs.append(rec)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items()
                   if k in ("kernel", "M", "N", "K", "ratio", "ratio_graph", "tflops", "rel_error", "error")},
                  flush=True)
        if not dry_run:
            path = bench.save(recs, name, script=script, meta=meta)
            print("wrote", path, flush=True)
    return recs
