"""Time Triton's own persistent-matmul tutorial kernels beside the course's, in one process.

The tutorial is not part of this repository. Take ``python/tutorials/09-persistent-matmul.py`` from the
Triton source of the version you have installed (for Triton 3.6: the ``release/3.6.x`` branch) and run

    python -m benchmarks.peer_tutorial09 --tutorial path/to/09-persistent-matmul.py

Every kernel is called the same way, allocating its output like ``torch.matmul`` does, and timed with
``do_bench`` and CUDA-graph replay beside ``torch.matmul`` on the same bf16 inputs. The tutorial's TMA
kernels take B transposed, ``(N, K)``; that copy is made once, outside the timing. Results go to
``results/<gpu>/peer_tutorial09.json`` with the path and a hash of the tutorial file that ran. (The
records were made with the file at triton-lang/triton commit 18a9f33eb, sha256 26b19072955d...)
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels  # noqa: E402  (must come before triton)
import torch  # noqa: E402

from kernels import pingpong as pp  # noqa: E402
from kernels.tma import matmul_tma_tuned  # noqa: E402

from ._peers import load_tutorial, run_peer  # noqa: E402

SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048), (64, 8192, 8192), (1024, 1024, 1024)]


def candidates(t09):
    """(name, fn(a, b, bT) -> C) for the tutorial's kernels and the course's."""
    out = [
        ("tutorial 09: descriptor persistent", lambda a, b, bT: t09.matmul_descriptor_persistent(a, bT, False)),
        ("tutorial 09: descriptor persistent + warp_specialize",
         lambda a, b, bT: t09.matmul_descriptor_persistent(a, bT, True)),
        ("tutorial 09: TMA persistent (host descriptors)", lambda a, b, bT: t09.matmul_tma_persistent(a, bT, False)),
        ("tutorial 09: persistent, pointer loads", lambda a, b, bT: t09.matmul_persistent(a, b)),
        ("course ch04: TMA tuned", lambda a, b, bT: matmul_tma_tuned(a, b)),
        ("course ch04: TMA tuned, host descriptors", lambda a, b, bT: matmul_tma_tuned(a, b, host_descriptors=True)),
        ("course ch05: TMA + warp_specialize (cooperative) tuned",
         lambda a, b, bT: matmul_tma_tuned(a, b, warp_specialize=True)),
    ]
    if pp.available()[0]:
        out.append(("course ch05: ping-pong (gluon) tuned", lambda a, b, bT: pp.matmul_pingpong_tuned(a, b)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.peer_tutorial09", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tutorial", required=True, help="path to Triton's python/tutorials/09-persistent-matmul.py")
    p.add_argument("--shapes", nargs="*", default=None, help="MxNxK shapes (default: the five of the course)")
    p.add_argument("--dry-run", action="store_true", help="measure but do not write results/")
    args = p.parse_args(argv)
    if not kernels.ON_GPU:
        p.error("needs a CUDA GPU")
    t09 = load_tutorial(args.tutorial)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes] if args.shapes else SHAPES
    run_peer("peer_tutorial09", candidates(t09), shapes, torch.bfloat16, args.tutorial,
             "Triton's tutorial 09 kernels beside the course's, vs torch.matmul, bf16",
             "python -m benchmarks.peer_tutorial09 --tutorial PATH", dry_run=args.dry_run)


if __name__ == "__main__":
    main()
