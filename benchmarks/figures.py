"""Draw the recorded results as PNG figures for the README (no GPU needed).

    python -m benchmarks.figures            # writes docs/figures/*.png from results/<gpu>/*.json

Each figure has one panel per GPU that holds the record (newest first), so the H200's and the H100's
measurements sit side by side.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kernels  # noqa: E402,F401
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kernels import bench, plots  # noqa: E402

FIGURES = {
    "ch01_naive": lambda doc, ax: (plots.plot_versus_library(doc, ax=ax, label="naive Triton"), ax.set_yscale("log")),
    "ch02_tiled": lambda doc, ax: plots.plot_versus_library(doc, ax=ax, label="tiled (ours)", graph=True),
    "ch02_sweep": lambda doc, ax: plots.plot_sweep(doc, ax=ax),
    "ch02_order": lambda doc, ax: plots.plot_order(doc, ax=ax),
    "ch05_pingpong": lambda doc, ax: plots.plot_kernels_by_shape(
        doc, ["tma tuned, host descriptors", "tma tuned", "tma tuned + warp_specialize (cooperative)",
              "pingpong tuned (gluon)"], ax=ax),
    "ch03_persistent": lambda doc, ax: plots.plot_persistent(doc, "128x256x64 w8 s3", ax=ax),
}
SIZES = {"ch02_sweep": (8, 7), "ch05_pingpong": (10, 4)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.figures")
    p.add_argument("--out", default=str(bench.REPO / "docs" / "figures"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in FIGURES.items():
        gpus = list(reversed(bench.recorded_gpus(name)))  # newest first
        w, h = SIZES.get(name, (8, 4))
        fig, axes = plt.subplots(1, len(gpus), figsize=(w * len(gpus), h), layout="constrained", squeeze=False)
        for ax, gpu in zip(axes[0], gpus):
            doc = bench.load(name, gpu)
            draw(doc, ax)
            ax.set_title(f"{doc['environment']['gpu']}, {doc['environment']['date']}\n{ax.get_title()}", fontsize=9)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
