"""Time Triton's matmul tutorial (03) beside the course's tiled kernel (chapter 02), in one process.

The tutorial is not part of this repository. Take ``python/tutorials/03-matrix-multiplication.py`` from
the Triton source (the records were made with triton-lang/triton commit 18a9f33eb, the file tutorial 09
was taken from too) and run

    python -m benchmarks.peer_tutorial03 --tutorial path/to/03-matrix-multiplication.py

Only the tutorial's definitions run (its kernel, autotune list and ``matmul`` wrapper), not its own test
and benchmark. Its wrapper always writes float16, so the comparison is in float16: the tutorial's
``matmul`` (its own autotuning), the course's ``kernels.tiled.matmul`` (autotuned) and ``torch.matmul``
on the same inputs, each output allocated by the call, as ``torch.matmul`` does. Results go to
``results/<gpu>/peer_tutorial03.json`` with the path and a hash of the tutorial file.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels  # noqa: E402  (must come before triton)
import torch  # noqa: E402

from kernels.tiled import matmul  # noqa: E402

from ._peers import load_tutorial, run_peer  # noqa: E402

SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048), (64, 8192, 8192), (1024, 1024, 1024)]


def candidates(t03):
    return [
        ("tutorial 03: tiled matmul", lambda a, b, bT: t03.matmul(a, b)),
        ("course ch02: tiled (autotuned)", lambda a, b, bT: matmul(a, b)),
    ]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.peer_tutorial03", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tutorial", required=True, help="path to Triton's python/tutorials/03-matrix-multiplication.py")
    p.add_argument("--dry-run", action="store_true", help="measure but do not write results/")
    args = p.parse_args(argv)
    if not kernels.ON_GPU:
        p.error("needs a CUDA GPU")
    t03 = load_tutorial(args.tutorial, definitions_only=True)
    run_peer("peer_tutorial03", candidates(t03), SHAPES, torch.float16, args.tutorial,
             "Triton's tutorial 03 matmul beside the course's tiled kernel, vs torch.matmul, fp16",
             "python -m benchmarks.peer_tutorial03 --tutorial PATH", dry_run=args.dry_run, repeats=3)


if __name__ == "__main__":
    main()
