import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels  # noqa: E402  (must come before triton)
from kernels import bench  # noqa: E402

CHAPTERS = {"00": "benchmarks.ch00", "01": "benchmarks.ch01", "02": "benchmarks.ch02", "03": "benchmarks.ch03",
            "04": "benchmarks.ch04", "05": "benchmarks.ch05",
            "06": "benchmarks.ch06", "07": "benchmarks.ch07", "08": "benchmarks.ch08"}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("chapters", nargs="*", default=sorted(CHAPTERS), help="chapter numbers, e.g. 01 02")
    p.add_argument("--quick", action="store_true", help="fewer sizes (what a notebook runs)")
    p.add_argument("--dry-run", action="store_true", help="measure but do not write results/")
    p.add_argument("--only", nargs="*", default=None, metavar="NAME",
                   help="measure only these documents, e.g. --only ch05_schedules ch05_code")
    args = p.parse_args(argv)
    if not kernels.ON_GPU:
        p.error("benchmarks need a CUDA GPU; this machine runs Triton's interpreter "
                "(the recorded numbers are in results/)")
    print(kernels.describe_world(), flush=True)
    for ch in args.chapters:
        if ch not in CHAPTERS:
            p.error(f"unknown chapter {ch!r}; known: {', '.join(sorted(CHAPTERS))}")
        mod = importlib.import_module(CHAPTERS[ch])
        t0 = time.time()
        for name, (measure, meta) in mod.run_all(quick=args.quick).items():
            if args.only is not None and name not in args.only:
                continue
            records = measure()
            if not args.dry_run:
                path = bench.save(records, name, script=f"python -m benchmarks {ch}", meta=meta)
                print(f"wrote {path.relative_to(bench.REPO)} ({len(records)} records)")
            print(mod.summary(name, records), flush=True)
        print(f"chapter {ch}: {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
