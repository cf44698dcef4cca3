"""One matmul, three times, for Nsight Compute to read (GPU only; not a chapter record).

    ncu --clock-control none --kernel-name regex:'splitk|nvjet|tma' --metrics gpu__time_duration.sum,\
dram__bytes_read.sum,lts__t_sector_hit_rate.pct,launch__registers_per_thread \
        python benchmarks/ncu_matmul.py LABEL M N K

LABEL: ``cublas`` (``torch.mm``), ``ours`` (``kernels.matmul``), ``splitk_s4`` / ``splitk_s6``
(``kernels.splitk`` with 64x64x128 tiles in 4 or 6 stages, no split), ``split_tail`` (128x256x64 tiles,
the last wave split by K, the reduction kernel adding). Inputs are random bf16; the last line printed
is the relative error of the result against float64. Nsight Compute flushes L2 before each kernel by
default, so every kernel reads its operands from memory. The log
``results/logs/h200_2026-12-02_splitk_reduce.json`` was made this way.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels  # noqa: E402  (decides the world first)
import torch  # noqa: E402

from kernels import splitk  # noqa: E402
from kernels.tiled import TileConfig  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4:
        raise SystemExit(__doc__)
    label, (M, N, K) = argv[0], (int(x) for x in argv[1:])
    if not kernels.ON_GPU:
        raise SystemExit("needs a CUDA GPU (it is for Nsight Compute)")
    torch.manual_seed(0)
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
    fns = {
        "cublas": lambda: torch.mm(a, b, out=c),
        "ours": lambda: kernels.matmul(a, b, out=c),
        "splitk_s4": lambda: splitk.launch(a, b, c, TileConfig(64, 64, 128, 8, 4, 4), 1),
        "splitk_s6": lambda: splitk.launch(a, b, c, TileConfig(64, 64, 128, 8, 4, 6), 1),
        "split_tail": lambda: splitk.launch(a, b, c, TileConfig(128, 256, 64, 8, 8, 3), None, last_adds=False),
    }
    if label not in fns:
        raise SystemExit(f"unknown LABEL {label!r}; one of {', '.join(fns)}")
    for _ in range(3):
        fns[label]()
    torch.cuda.synchronize()
    ref = a.double() @ b.double()
    print(label, M, N, K, "relative error", ((c.double() - ref).abs().max() / ref.abs().max()).item())


if __name__ == "__main__":
    main()
