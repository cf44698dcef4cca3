"""The README's headline table, generated from the records of every GPU (no GPU needed).

    python -m benchmarks.tables            # print the table (markdown)
    python -m benchmarks.tables --write    # rewrite the table between its markers in README.md

Each cell is the kernel's speed as a fraction of cuBLAS (``torch.matmul``, bf16) measured in the same
run, CUDA-graph replay (GPU time), for each recorded GPU, newest first. ``tests/test_tables.py`` fails
when README.md's table differs from what the records give.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernels import bench  # noqa: E402

SHAPES = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192), (64, 8192, 8192)]
BIG = "128x256x64 w8 s3"

# (label, record name, filter on the record's fields)
ROWS = [
    ("01 naive (one program per element), bf16", "ch01_naive", {"kernel": "naive", "dtype": "bf16"}),
    ("02 tiled, autotuned", "ch02_tiled", {"kernel": "tiled (autotuned)"}),
    ("03 persistent, pointer loads, 128×256×64", "ch03_persistent", {"kernel": "persistent", "config": BIG}),
    ("04 persistent TMA, device descriptors, autotuned", "ch04_tma", {"kernel": "tma tuned"}),
    ("04 persistent TMA, host descriptors (flattened loop among the candidates), autotuned", "ch04_tma",
     {"kernel": "tma tuned, host descriptors"}),
    ("05 TMA + `warp_specialize` (Triton's cooperative), autotuned", "ch05_pingpong",
     {"kernel": "tma tuned + warp_specialize (cooperative)"}),
    ("05 ping-pong, hand-written in Gluon, autotuned", "ch05_pingpong", {"kernel": "pingpong tuned (gluon)"}),
    ("05 cooperative, hand-written in Gluon, 128×256×64", "ch05_schedules",
     {"schedule": "cooperative", "config": "128x256x64 g8 s3"}),
]
BEGIN, END = "<!-- headline table: python -m benchmarks.tables --write -->", "<!-- end of headline table -->"


def _cell(name, where, shape, gpus):
    """One table cell: the CUDA-graph ratio on each GPU; "–" where the GPU has no such record, "fails"
    where the record says the kernel failed."""
    vals = []
    for gpu in gpus:
        try:
            doc = bench.load(name, gpu)
        except FileNotFoundError:
            vals.append("–")
            continue
        hits = [r for r in doc["records"] if all(r.get(k) == v for k, v in where.items())
                and (r.get("M"), r.get("N"), r.get("K")) == shape]
        ok = [r for r in hits if r.get("ratio_graph") is not None]
        if ok:
            v = ok[0]["ratio_graph"]
            vals.append(f"{v:.4f}" if v < 0.01 else f"{v:.2f}")
        else:
            vals.append("fails" if any("error" in r for r in hits) else "–")
    return " / ".join(vals)


def _describe(gpu):
    for path in sorted((bench.RESULTS / gpu).glob("*.json")):
        env = bench.environment_of(path)
        if env:
            return f"{gpu.upper()}: {env['gpu']}, torch {env.get('torch')}, triton {env.get('triton')}, {env.get('date')}"
    return gpu.upper()


def table() -> str:
    gpus = bench.gpus()
    names = " / ".join(g.upper() for g in gpus)
    head = "| kernel | " + " | ".join(("64×8192×8192" if m == 64 else f"{m}³") for m, _, _ in SHAPES) + " |"
    lines = [f"Fraction of cuBLAS's speed, CUDA-graph replay; each cell reads {names} (records in "
             f"`results/<gpu>/`; – = not recorded on that GPU):", "", head, "|---" * (len(SHAPES) + 1) + "|"]
    for label, name, where in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(name, where, s, gpus) for s in SHAPES) + " |")
    lines += ["", "; ".join(_describe(g) for g in gpus) + "."]
    return "\n".join(lines)


def write(readme: Path = bench.REPO / "README.md") -> bool:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: the markers {BEGIN!r} ... {END!r} are missing")
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:a] + "\n" + table() + "\n" + text[b:]
    changed = new != text
    readme.write_text(new)
    return changed


def readme_table(readme: Path = bench.REPO / "README.md") -> str:
    text = readme.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    args = p.parse_args(argv)
    if args.write:
        print("README.md", "updated" if write() else "already up to date")
    else:
        print(table())


if __name__ == "__main__":
    main()
