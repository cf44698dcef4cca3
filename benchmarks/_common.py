import time

import torch

from kernels import bench
from kernels import testing as T


def tqdm(it, **kw):
    try:
        from tqdm.auto import tqdm as _tqdm
    except ImportError:  # tqdm is optional on the GPU machine
        return it
    return _tqdm(it, **kw)


def matmul_case(name, fn, M, N, K, dtype=torch.bfloat16, seed=0, check=True, graph=True, **fields):
    """Check ``fn`` on fresh random inputs (unless ``check=False``), then time it beside ``torch.matmul``."""
    a = T.randn(M, K, dtype=dtype, seed=seed)
    b = T.randn(K, N, dtype=dtype, seed=seed + 1)
    err = None
    if check:
        out = T.poisoned_empty((M, N), dtype)
        fn(a, b, out=out)
        err = T.assert_close_matmul(out, a, b, label=name)
    c = torch.empty((M, N), dtype=dtype, device=a.device)
    rec = bench.compare(
        name, lambda: fn(a, b, out=c), lambda: torch.matmul(a, b, out=c),
        graph=graph, flops=bench.matmul_flops(M, N, K), nbytes=bench.matmul_min_bytes(M, N, K, bench.DTYPE_BYTES[dtype]),
        M=M, N=N, K=K, dtype=bench.DTYPE_NAMES[dtype], rel_error=err, **fields,
    )
    return rec


def error_text(exc):
    """A failed case's exception as one short line for its record."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def table(records, cols):
    head = " | ".join(f"{c:>10}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in records:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:>10.3f}" if isinstance(v, float) else f"{str(v):>10}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def cpu_launch_us(fn, n=200):
    """CPU time of one call of ``fn`` in microseconds: the host clock over ``n`` calls, no synchronization
    between them (the GPU work queues up behind)."""
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    dt = time.perf_counter() - t
    torch.cuda.synchronize()
    return dt / n * 1e6
