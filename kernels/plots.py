"""Plots of benchmark records (``results/*.json``), used by the notebooks and the README figures."""
from __future__ import annotations

from .bench import describe


def _title(ax, text, doc):
    import textwrap

    src = "measured just now" if doc.get("fresh") else "recorded"
    # wrapped, so that two panels side by side do not write over each other
    ax.set_title(f"{text}\n" + textwrap.fill(f"{src}: {describe(doc)}", 75), fontsize=9)


def plot_versus_library(doc, ax=None, label=None, x_of=None, graph=False):
    """TFLOP/s of a kernel and of the library (cuBLAS via torch.matmul), per shape, with the ratio.

    ``graph=True`` plots the CUDA-graph timings (GPU time only, no Python launch cost) where recorded.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 4))[1]
    recs = doc["records"]
    if graph:
        recs = [dict(r, tflops=r["graph_tflops"], baseline_tflops=r["baseline_graph_tflops"],
                     ratio=r["ratio_graph"]) for r in recs if "graph_tflops" in r]
    x_of = x_of or (lambda r: f"{r['M']}x{r['N']}\nx{r['K']}\n{r['dtype']}")  # three short lines: no overlap
    xs = list(range(len(recs)))
    w = 0.38
    ax.bar([x - w / 2 for x in xs], [r["tflops"] for r in recs], w, label=label or recs[0]["kernel"])
    ax.bar([x + w / 2 for x in xs], [r["baseline_tflops"] for r in recs], w, label=recs[0]["baseline"],
           color="gray")
    for x, r in zip(xs, recs):
        ax.text(x - w / 2, r["tflops"], f"{r['ratio']:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [x_of(r) for r in recs], fontsize=8)
    ax.set_ylabel("TFLOP/s")
    ax.legend(fontsize=8)
    how = "CUDA-graph replay, GPU time only" if graph else "do_bench, launched from Python"
    _title(ax, f"kernel vs library ({how};\nlabel: speed as a fraction of the library's)", doc)
    return ax


def plot_sweep(doc, ax=None):
    """The tile-size sweep as horizontal bars, fastest first, with the library's speed as a line."""
    import matplotlib.pyplot as plt

    recs = [r for r in doc["records"] if "tflops" in r]
    failed = [r for r in doc["records"] if "tflops" not in r]
    recs.sort(key=lambda r: r["tflops"])
    ax = ax or plt.subplots(figsize=(8, 0.3 * len(recs) + 1.5))[1]
    ax.barh([r["config"] for r in recs], [r["tflops"] for r in recs], color="C0")
    lib = sum(r["baseline_tflops"] for r in recs) / len(recs)
    ax.axvline(lib, color="gray", ls="--", label=f"{recs[0]['baseline']} ({lib:.0f} TFLOP/s)")
    for i, r in enumerate(recs):
        ax.text(r["tflops"], i, f" {r['ratio']:.2f}x", va="center", fontsize=8)
    ax.set_xlabel(f"TFLOP/s at {recs[0]['M']}x{recs[0]['N']}x{recs[0]['K']} {recs[0]['dtype']}")
    ax.legend(fontsize=8, loc="lower right")
    _title(ax, "tile shape (BMxBNxBK), warps (w) and pipeline stages (s)"
           + (f"; failed to run: {', '.join(r['config'] for r in failed)}" if failed else ""), doc)
    return ax


def plot_order(doc, ax=None):
    """Row-major vs grouped order, speed vs the library for each group size, one line per size."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    sizes = sorted({r["M"] for r in doc["records"]})
    for i, n in enumerate(sizes):
        rs = [r for r in doc["records"] if r["M"] == n]
        row = [r for r in rs if r["order"] == "row"]
        grp = sorted((r for r in rs if r["order"] == "grouped"), key=lambda r: r["group_m"])
        x = [r["group_m"] for r in grp]
        y = [r["tflops"] for r in grp]
        if all("repeats_tflops" in r for r in grp):  # min-max of the repeats as error bars
            lo = [r["tflops"] - min(r["repeats_tflops"]) for r in grp]
            hi = [max(r["repeats_tflops"]) - r["tflops"] for r in grp]
            ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", color=f"C{i}", capsize=3,
                        label=f"grouped, {n}^3 (median, min-max of repeats)")
        else:
            ax.plot(x, y, "o-", color=f"C{i}", label=f"grouped, {n}^3")
        if row:
            ax.axhline(row[0]["tflops"], color=f"C{i}", ls=":", label=f"row-major, {n}^3")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("group_m (rows of tiles per group)")
    ax.set_ylabel("TFLOP/s")
    ax.legend(fontsize=8)
    _title(ax, "tile order: row-major vs grouped", doc)
    return ax


def plot_persistent(doc, config=None, ax=None, graph=True):
    """Tiled vs persistent vs the library per shape, for one tile configuration."""
    import matplotlib.pyplot as plt

    recs = doc["records"]
    config = config or recs[0]["config"]
    recs = [r for r in recs if r["config"] == config]
    key = "graph_tflops" if graph else "tflops"
    base = "baseline_graph_tflops" if graph else "baseline_tflops"
    shapes = []
    for r in recs:
        s = (r["M"], r["N"], r["K"])
        if s not in shapes:
            shapes.append(s)
    ax = ax or plt.subplots(figsize=(11, 4))[1]
    w = 0.27
    for i, s in enumerate(shapes):
        rs = {r["kernel"]: r for r in recs if (r["M"], r["N"], r["K"]) == s}
        for j, (name, color) in enumerate((("tiled", "C0"), ("persistent", "C2"))):
            if name in rs:
                ax.bar(i + (j - 1) * w, rs[name][key], w, color=color, label=name if i == 0 else None)
        lib = next(iter(rs.values()))[base]
        ax.bar(i + w, lib, w, color="gray", label=recs[0]["baseline"] if i == 0 else None)
        t = next(iter(rs.values()))
        ax.text(i, 5, f"{t['tiles']} tiles\n{t['tiles'] / 132:.2f} waves", ha="center", fontsize=7, color="white")
    ax.set_xticks(range(len(shapes)), [f"{m}x{n}x{k}" for m, n, k in shapes], fontsize=7, rotation=20)
    ax.set_ylabel("TFLOP/s" + (" (CUDA graph)" if graph else ""))
    ax.legend(fontsize=8)
    _title(ax, f"persistent vs one program per tile, same tiles ({config})", doc)
    return ax


def plot_variants(doc, M, ax=None, graph=True):
    """Every kernel variant recorded at one shape (rows with ``M``), as horizontal bars, fastest on top,
    with the library's speed as a line; variants that failed to compile are listed in the title."""
    import matplotlib.pyplot as plt

    rows = [r for r in doc["records"] if r["M"] == M]
    ok = [r for r in rows if "tflops" in r]
    bad = [r for r in rows if "tflops" not in r]
    key = "graph_tflops" if graph and all("graph_tflops" in r for r in ok) else "tflops"
    base = "baseline_graph_tflops" if key == "graph_tflops" else "baseline_tflops"
    ok.sort(key=lambda r: r[key])

    def label(r):
        return f"{r['kernel']} {r.get('config', '')}".replace("(autotuned) autotuned", "(autotuned)")

    ax = ax or plt.subplots(figsize=(9, 0.35 * len(ok) + 1.6))[1]
    ax.barh([label(r) for r in ok], [r[key] for r in ok],
            color=["C2" if r.get("warp_specialize") else ("C0" if "tma" in r["kernel"] else "C7") for r in ok])
    lib = sum(r[base] for r in ok) / len(ok)
    ax.axvline(lib, color="gray", ls="--", label=f"{ok[0]['baseline']} ({lib:.0f} TFLOP/s)")
    for i, r in enumerate(ok):
        ax.text(r[key], i, f" {r[key] / r[base]:.2f}x", va="center", fontsize=8)
    r0 = ok[0]
    ax.set_xlabel(f"TFLOP/s at {r0['M']}x{r0['N']}x{r0['K']} {r0['dtype']}"
                  + (" (CUDA graph)" if key == "graph_tflops" else ""))
    ax.legend(fontsize=8, loc="lower right")
    _title(ax, "variants (green: warp-specialized)", doc)
    if bad:  # under the axes, one line each, wrapped: a long title would widen the whole figure
        import textwrap
        failed = "\n".join(textwrap.shorten(f"did not run: {label(r)}: {r['error'].split(',')[0]}", 110) for r in bad)
        ax.text(0, -0.12, failed, transform=ax.transAxes, va="top", fontsize=7, color="C3")
    return ax


def plot_kernels_by_shape(doc, kernels, ax=None, graph=True):
    """Speed as a fraction of the library's (1.0 = cuBLAS in the same run), one group of bars per
    shape and one bar per kernel name in ``kernels`` (records with that ``kernel`` field; the first
    record per shape is used). ``graph=True``: CUDA-graph timings (GPU time only)."""
    import matplotlib.pyplot as plt

    key = "ratio_graph" if graph else "ratio"
    shapes = []
    for r in doc["records"]:
        s = (r["M"], r["N"], r["K"])
        if s not in shapes:
            shapes.append(s)
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    w = 0.8 / len(kernels)
    for i, name in enumerate(kernels):
        vals = []
        for s in shapes:
            hit = [r for r in doc["records"] if r["kernel"] == name and (r["M"], r["N"], r["K"]) == s and key in r]
            vals.append(hit[0][key] if hit else float("nan"))
        xs = [j + (i - (len(kernels) - 1) / 2) * w for j in range(len(shapes))]
        ax.bar(xs, vals, w, label=name)
        for x, v in zip(xs, vals):
            if v == v:
                ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.axhline(1.0, color="gray", ls="--", lw=1)
    ax.set_xticks(range(len(shapes)), [f"{m}x{n}x{k}" for m, n, k in shapes], fontsize=8)
    ax.set_ylabel("x cuBLAS speed" + (" (CUDA graph)" if graph else " (do_bench)"))
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=7, loc="lower left")
    _title(ax, "each kernel as a fraction of cuBLAS, measured in the same run", doc)
    return ax


def plot_schedules(doc, ax=None):
    """The ``ch05_schedules`` record as bars: ping-pong and cooperative (both in Gluon, everything else
    equal), one bar per (schedule, config), one group per shape (CUDA-graph ratio to cuBLAS)."""
    labelled = dict(doc, records=[dict(r, kernel=f"{r['schedule']} {r['config']}") for r in doc["records"]])
    names = list(dict.fromkeys(r["kernel"] for r in labelled["records"]))
    return plot_kernels_by_shape(labelled, names, ax=ax)


def plot_fp8_values(ax=None, formats=("e4m3", "e5m2")):
    """Every positive finite value of each FP8 format on a log axis, one row per format: the values
    crowd together in each binade and the gaps double from one binade to the next, so the relative
    spacing stays constant (``2**-mantissa_bits``) until the subnormals at the bottom."""
    import matplotlib.pyplot as plt

    from . import fp8

    ax = ax or plt.subplots(figsize=(11, 2.2 + 0.6 * len(formats)))[1]
    for i, name in enumerate(formats):
        f = fp8.fmt(name)
        v = f.values()
        v = v[v > 0]
        normal = v >= f.min_normal
        ax.scatter(v[normal], [i] * int(normal.sum()), marker="|", s=120, color=f"C{i}",
                   label=f"{f.name}: {len(v)} positive values, max {f.max_finite:g}")
        ax.scatter(v[~normal], [i] * int((~normal).sum()), marker="|", s=120, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_yticks(range(len(formats)), [fp8.fmt(n).name for n in formats])
    ax.set_ylim(-0.7, len(formats) - 0.3)
    ax.set_xlabel("value (log2 scale); gray: subnormals")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("every positive FP8 value")
    return ax


def plot_fragment_order(block_n=64, block_k=256, num_warps=4, rows=16, cols=32, ax=None):
    """Who holds which weight in ``wgmma``'s register operand (``kernels.w4a16_fragments.fragment_bits``):
    the top-left ``rows x cols`` corner of a ``(block_n, block_k / 2)`` packed tile, each byte coloured by
    the lane that holds it and labelled with its register; bytes a thread loads together (its 16
    contiguous bytes in the prepacked layout) share a colour."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .w4a16_fragments import fragment_bits

    bits = fragment_bits(block_n, block_k // 2, num_warps)
    lane = np.zeros((block_n, block_k // 2), dtype=int)
    reg = np.zeros_like(lane)
    for e in range(1 << len(bits)):
        r = sum(((e >> i) & 1) << b for i, (a, b) in enumerate(bits) if a == 0)
        c = sum(((e >> i) & 1) << b for i, (a, b) in enumerate(bits) if a == 1)
        lane[r, c] = (e >> 4) & 31
        reg[r, c] = (e & 15) | ((e >> (9 + num_warps.bit_length() - 1)) << 4)
    ax = ax or plt.subplots(figsize=(10, 5))[1]
    from matplotlib.colors import ListedColormap

    lanes = ListedColormap(list(plt.get_cmap("tab20").colors) + list(plt.get_cmap("tab20b").colors)[:12])
    ax.imshow(lane[:rows, :cols], cmap=lanes, vmin=0, vmax=31, interpolation="nearest", aspect="auto")
    for r in range(rows):
        for c in range(cols):
            ax.text(c, r, str(reg[r, c]), ha="center", va="center", fontsize=6)
    ax.set_xlabel("byte along K (two codes each: column k and k + block_k/2)")
    ax.set_ylabel("row of W (output feature)")
    ax.set_title(f"colour: the lane holding the byte; number: its register (warp 0, {rows}x{cols} corner)", fontsize=9)
    return ax


def plot_fp4_block(values=None, seed=0, axes=None):
    """One block of 32 values quantized to MXFP4 (top) and to NVFP4 (bottom), on one value axis.

    Each value gets a row: a dot at its original value and a segment to the e2m1 grid point it rounds
    to (``kernels.fp4.quantize_block``). The grey vertical lines are the 16 e2m1 codes times the block's
    scale: for MXFP4 one power-of-two scale (e8m0) shared by all 32 values, for NVFP4 one e4m3 scale
    per 16 values (times a tensor scale, here computed from these 32 values alone). Red: a value beyond
    ``6 * scale``, saturated; orange: a nonzero value rounded to 0. ``values``: 32 finite numbers
    (default ``kernels.fp4.example_block(seed)``); ``axes``: two matplotlib axes, or None for a new figure.
    Returns the figure. Raises ValueError (from ``quantize_block``) for other input."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import LineCollection

    from . import fp4

    v = fp4.example_block(seed) if values is None else np.asarray(values, dtype=np.float64)
    if v.shape != (32,):
        raise ValueError(f"plot_fp4_block: values must be one block of 32 numbers, got shape {v.shape}")
    blocks = [fp4.quantize_block(v, f) for f in ("mxfp4", "nvfp4")]
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(10, 7.2), sharex=True, layout="constrained")
    else:
        fig = axes[0].figure
    lim = 1.08 * max(np.abs(v).max(), max(np.abs(b.grid).max() for b in blocks))
    for ax, b in zip(axes, blocks):
        rows = np.arange(v.size)
        grid_segs = []
        for k, g in enumerate(b.grid):
            y0, y1 = k * b.block - 0.5, (k + 1) * b.block - 0.5
            grid_segs += [[(x, y0), (x, y1)] for x in np.unique(g)]
            if k:
                ax.axhline(y0, color="k", lw=0.8)
        ax.add_collection(LineCollection(grid_segs, colors="0.6", linewidths=1.0, gid="grid"))
        ax.add_collection(LineCollection([[(a, r), (d, r)] for a, d, r in zip(v, b.dequantized, rows)],
                                         colors="C0", linewidths=1.5, gid="rounding"))
        scale_of = b.scales[b.block_of]
        saturated = np.abs(v) > fp4.MAX * scale_of * (1 + 1e-12)  # not a rounding error of the scale
        flushed = (v != 0) & (b.dequantized == 0)
        colors = np.where(saturated, "C3", np.where(flushed, "C1", "C0"))
        ax.scatter(v, rows, c=list(colors), s=18, zorder=3, gid="values")
        ax.scatter(b.dequantized, rows, marker="|", c="k", s=60, zorder=3, gid="landed")
        err = np.linalg.norm(b.dequantized - v) / np.linalg.norm(v) if v.any() else 0.0
        if b.format == "mxfp4":
            e = int(b.scale_bytes[0]) - fp4.E8M0_BIAS
            head = (f"MXFP4: 32 values share one e8m0 scale 2^{e} = {b.scales[0]:g} "
                    f"(byte 0x{int(b.scale_bytes[0]):02x}); amax {np.abs(v).max():.3g}")
        else:
            sc = ", ".join(f"{s:.4g}" for s in b.scales)
            head = (f"NVFP4: 2 blocks of 16 values, each with an e4m3 scale (times the tensor scale "
                    f"{b.tensor_scale:.3g}): {sc}")
        ax.set_title(f"{head}\nsaturated {int(saturated.sum())}, rounded to 0 {int(flushed.sum())}, "
                     f"relative error {err:.3f}, {fp4.bits_per_weight(b.block, 8):g} bits per value",
                     fontsize=9, loc="left")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(v.size - 0.5, -0.5)
        ax.set_ylabel("value index")
        if b.format == "mxfp4":  # label the codes' magnitudes once
            for m, x in zip(fp4.VALUES[:8], b.grid[0][:8]):
                ax.text(x, -0.9, f"{m:g}", ha="center", va="bottom", fontsize=7, color="0.4")
    axes[-1].set_xlabel("value (dot: original; tick: where it lands; grey: e2m1 grid x scale; "
                        "numbers on top: the e2m1 magnitudes)")
    return fig


FP8_CASES = (("row", "bf16"), ("tensor", "bf16"), ("tensor", "e4m3"), ("block", "bf16"))


def plot_fp8_gemm(doc, ax=None):
    """The FP8 GEMM per scaling recipe and output dtype, TFLOP/s per shape (CUDA-graph replay), beside
    ``torch._scaled_mm`` with the same recipe (hatched) and bf16 cuBLAS (gray line); each bar is labelled
    with its speed as a fraction of the library's (``results/<gpu>/ch06_fp8_gemm.json``)."""
    import matplotlib.pyplot as plt

    recs = doc["records"]
    shapes = sorted({(r["M"], r["N"], r["K"]) for r in recs}, key=lambda s: -s[0] * s[1] * s[2])
    ax = ax or plt.subplots(figsize=(10, 4))[1]
    w = 0.8 / len(FP8_CASES)
    for i, (recipe, od) in enumerate(FP8_CASES):
        for j, s in enumerate(shapes):
            r = next((r for r in recs if r.get("recipe") == recipe and r.get("out_dtype") == od
                      and (r["M"], r["N"], r["K"]) == s and "graph_tflops" in r), None)
            if r is None:
                continue
            x = j + (i - (len(FP8_CASES) - 1) / 2) * w
            ax.bar(x, r["graph_tflops"], w * 0.5, color=f"C{i}", label=f"ours: {recipe}, {od} out" if j == 0 else None)
            ax.bar(x + w * 0.45, r["baseline_graph_tflops"], w * 0.4, color=f"C{i}", alpha=0.35, hatch="//",
                   label=f"library: {recipe}" if j == 0 else None)
            ax.text(x, r["graph_tflops"], f"{r['ratio_graph']:.2f}x", ha="center", va="bottom", fontsize=7,
                    rotation=90)
    bf16 = [r for r in recs if r["kernel"] == "cublas_bf16" and "graph_tflops" in r]
    for j, s in enumerate(shapes):
        r = next((r for r in bf16 if (r["M"], r["N"], r["K"]) == s), None)
        if r:
            ax.hlines(r["graph_tflops"], j - 0.45, j + 0.45, colors="gray", linestyles="--",
                      label="cuBLAS bf16" if j == 0 else None)
    ax.set_xticks(range(len(shapes)), [f"{m}x{n}x{k}" for m, n, k in shapes], fontsize=8)
    ax.set_ylabel("TFLOP/s (CUDA graph)")
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    _title(ax, "FP8 e4m3 GEMM by scaling recipe; label: ours as a fraction of torch._scaled_mm, same recipe", doc)
    return ax


def plot_quantize_cost(doc, ax=None):
    """Per shape and recipe: the time of dynamic quantization of the activations (alone) stacked on the
    FP8 GEMM's (alone), and the two launched back to back (black tick, labelled with the speed-up),
    all divided by the bf16 GEMM's time on unquantized inputs (``results/<gpu>/ch06_quantize.json``)."""
    import matplotlib.pyplot as plt

    recs = doc["records"]
    ax = ax or plt.subplots(figsize=(11, 4.2))[1]
    shapes = list(dict.fromkeys((r["M"], r["N"], r["K"]) for r in recs))
    xs, labels = [], []
    for i, r in enumerate(recs):
        x = shapes.index((r["M"], r["N"], r["K"])) * 4 + [*dict.fromkeys(q["recipe"] for q in recs)].index(r["recipe"])
        g, q, t = (r[k] / r["bf16_graph_ms"] for k in ("gemm_graph_ms", "quantize_graph_ms", "total_graph_ms"))
        ax.bar(x, g, color="C0", label="FP8 GEMM" if i == 0 else None)
        ax.bar(x, q, bottom=g, color="C3", label="quantize the activations" if i == 0 else None)
        ax.hlines(t, x - 0.4, x + 0.4, colors="black", label="both, back to back" if i == 0 else None)
        ax.text(x, t, f"{r['speedup_over_bf16']:.2f}x", ha="center", va="bottom", fontsize=7)
        xs.append(x)
        labels.append(r["recipe"])
    for j, (m, n, k) in enumerate(shapes):
        ax.text(j * 4 + 1, -0.16, f"{m}x{n}x{k}", ha="center", va="top", fontsize=8, transform=ax.get_xaxis_transform())
    ax.axhline(1.0, color="gray", ls="--", label="bf16 GEMM (cuBLAS) = 1")
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("time / bf16 GEMM time")
    ax.legend(fontsize=7, loc="lower right")
    _title(ax, "quantize + FP8 GEMM against the bf16 GEMM (CUDA graph); label: speed-up over bf16", doc)
    return ax


def plot_w4a16_over_m(doc, ax=None):
    """Time per call (CUDA graph) of each decode kernel over M at one weight shape, log-log, with the
    time it would take to read that kernel's weight bytes at the GPU's memory bandwidth (its floor at
    small M); ``results/<gpu>/ch07_w4a16.json``."""
    import matplotlib.pyplot as plt

    from .roofline import datasheet

    recs = [r for r in doc["records"] if "graph_us" in r]
    ax = ax or plt.subplots(figsize=(8, 4.5))[1]
    gpu = doc.get("gpu_slug")
    bw = datasheet(gpu).bandwidth_tbs if gpu else None
    names = list(dict.fromkeys(r["kernel"] for r in recs))
    for i, name in enumerate(names):
        rs = sorted((r for r in recs if r["kernel"] == name), key=lambda r: r["M"])
        label = {"ours": "ours: W4A16 MXFP4, prepacked (Triton)", "ours, row order": "ours: W4A16 MXFP4, row order",
                 "cublas": "cuBLAS bf16",
                 "gemlite": "gemlite A16W4 MXFP4", "tinygemm": "torch tinygemm int4"}.get(name, name)
        ax.plot([r["M"] for r in rs], [r["graph_us"] for r in rs], "o-", color=f"C{i}", label=label, ms=3)
        if bw:
            ax.axhline(rs[0]["weight_bytes"] / bw / 1e6, color=f"C{i}", ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("M (tokens)")
    ax.set_ylabel("µs per call (CUDA graph)")
    r0 = recs[0]
    ax.legend(fontsize=8)
    _title(ax, f"y = x @ W.T, W {r0['N']}x{r0['K']}; dotted: the weight's bytes at the datasheet bandwidth", doc)
    return ax


def plot_w4a16_budget(log, w4_doc, floor_doc, M=1, ax=None):
    """Where a decode-sized W4A16 call's time goes, at ``M`` tokens: cuBLAS bf16 and the prepacked
    Triton kernel (``w4_doc``: ``results/<gpu>/ch07_w4a16.json``), the read-only floor (``floor_doc``:
    ``ch07_read_floor.json``), and the warp-specialized Gluon kernel with parts taken away (``log``:
    the ``summary`` of ``results/logs/h200_2026-12-02_w4a16_gluon.json``), as horizontal bars of µs per
    call, with the time a kernel 3x faster than cuBLAS would take."""
    import matplotlib.pyplot as plt

    def ws(conversion, sums):
        found = [r["us"] for r in log.get("summary", []) if r.get("kernel") == "warp-specialized" and r.get("M") == M
                 and r.get("conversion") == conversion and r.get("split_k_sums") == sums]
        if not found:
            raise ValueError(f"plot_w4a16_budget: the log has no warp-specialized line at M = {M} with conversion "
                             f"{conversion!r} and split-K sums {sums!r}")
        return found[0]

    def w4(kernel):
        found = [r["graph_us"] for r in w4_doc["records"] if r.get("kernel") == kernel and r.get("M") == M
                 and "graph_us" in r]
        if not found:
            raise ValueError(f"plot_w4a16_budget: the W4A16 record has no {kernel!r} time at M = {M}")
        return found[0]

    if not any("graph_us" in r for r in floor_doc.get("records", [])):
        raise ValueError("plot_w4a16_budget: the read-floor record holds no time")

    bars = [("cuBLAS bf16", w4("cublas"), "C1"), ("prepacked kernel (Triton)", w4("ours"), "C0"),
            ("warp-specialized (Gluon)", ws("full", "kept"), "C2"),
            ("  without the split-K sums", ws("full", "dropped"), "C2"),
            ("  without the conversion", ws("none", "kept"), "C2"),
            ("  without either: stream + tensor cores", ws("none", "dropped"), "C2"),
            ("read the bytes, nothing else", min(r["graph_us"] for r in floor_doc["records"]), "0.5")]
    ax = ax or plt.subplots(figsize=(9, 3.8))[1]
    y = range(len(bars))[::-1]
    ax.barh(list(y), [b[1] for b in bars], color=[b[2] for b in bars])
    for yi, (_, us, _) in zip(y, bars):
        ax.text(us + 0.3, yi, f"{us:.1f}", va="center", fontsize=8)
    ax.set_yticks(list(y), [b[0] for b in bars], fontsize=8)
    third = w4("cublas") / 3
    ax.axvline(third, color="k", ls="--", lw=0.8)
    ax.text(third, len(bars) - 0.45, " 3x cuBLAS", fontsize=8)
    env = log.get("environment", {})
    ax.set_xlabel(f"µs per call, M = {M}, CUDA graph, weights rotated (green: {env.get('gpu', '?')}, "
                  f"triton {env.get('triton', '?')}, {env.get('date', '?')})", fontsize=8)
    _title(ax, f"W4A16, N = K = {w4_doc['records'][0]['N']}: where the time goes", w4_doc)
    return ax


def timeline_summary(doc, kernel, M) -> dict:
    """What a recorded timeline (``results/<gpu>/ch03_timeline.json``) says for one kernel and shape:
    ``tiles``, ``sms`` used, ``finish_us`` (the last tile's end), ``first_start_spread_us`` (how far apart
    the first wave's tiles started), ``first_wave_us``/``tail_us`` (median tile time of the tiles that
    started at once and of the rest), ``gap_us`` (median time between one tile's end and the next
    tile's start on the same SM), ``busy`` (fraction of SM-time spent in tiles)."""
    import statistics

    rs = [r for r in doc["records"] if r.get("kernel") == kernel and r.get("M") == M]
    if not rs:
        raise ValueError(f"no {kernel!r} timeline at M = {M} in the record")
    bad = [r for r in rs if not r["end_us"] > r["start_us"] >= 0]
    if bad:
        raise ValueError(f"timeline_summary: {len(bad)} tile(s) of {kernel!r} at M = {M} do not end after they "
                         f"start (first: {bad[0]})")
    first = min(r["end_us"] for r in rs)  # before this, no SM has finished a tile: the first wave
    wave1 = [r for r in rs if r["start_us"] < first]
    rest = [r for r in rs if r["start_us"] >= first]
    by_sm = {}
    for r in sorted(rs, key=lambda r: r["start_us"]):
        by_sm.setdefault(r["sm"], []).append(r)
    gaps = [b["start_us"] - a["end_us"] for l in by_sm.values() for a, b in zip(l, l[1:])]
    finish = max(r["end_us"] for r in rs)
    sms = len(by_sm)
    return {"tiles": len(rs), "sms": sms, "finish_us": finish,
            "first_start_spread_us": max(r["start_us"] for r in wave1) - min(r["start_us"] for r in wave1),
            "first_wave_us": statistics.median(r["end_us"] - r["start_us"] for r in wave1),
            "tail_us": statistics.median(r["end_us"] - r["start_us"] for r in rest) if rest else None,
            "gap_us": statistics.median(gaps) if gaps else None,
            "busy": sum(r["end_us"] - r["start_us"] for r in rs) / (sms * finish)}


def plot_timeline(doc, M, axes=None):
    """Which SM ran which tile and when, measured inside the tiled and the persistent kernel
    (``results/<gpu>/ch03_timeline.json``, ``kernels.timeline``): one row per SM, one bar per tile,
    coloured by the order the SM took its tiles in; the dashed line is where the model of chapter 03
    (every tile as long as the first wave's median, no start cost) says the launch ends."""
    import matplotlib.pyplot as plt

    from .schedule import cdiv

    kernels_ = ["tiled", "persistent"]
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(13, 4.2), sharey=True, layout="constrained")[1]
    for ax, kernel in zip(axes, kernels_):
        s = timeline_summary(doc, kernel, M)  # checks the records first
        rs = sorted((r for r in doc["records"] if r["kernel"] == kernel and r["M"] == M), key=lambda r: r["start_us"])
        seen = {}
        for r in rs:
            n = seen[r["sm"]] = seen.get(r["sm"], -1) + 1
            ax.broken_barh([(r["start_us"], r["end_us"] - r["start_us"])], (r["sm"] - 0.45, 0.9),
                           facecolors=f"C{n % 10}", edgecolor="none")
        model = cdiv(s["tiles"], s["sms"]) * s["first_wave_us"]
        ax.axvline(model, color="k", ls="--", lw=0.8)
        ax.set_xlabel("µs since the first tile started")
        ax.set_title(f"{kernel}: {s['tiles']} tiles on {s['sms']} SMs, last ends at {s['finish_us']:.1f} µs, "
                     f"SMs busy {s['busy']:.0%}\n(dashed: equal tiles of {s['first_wave_us']:.1f} µs)", fontsize=9)
    axes[0].set_ylabel("SM (%smid)")
    r0 = next(r for r in doc["records"] if r["M"] == M)
    src = "measured just now" if doc.get("fresh") else "recorded"
    axes[0].figure.suptitle(f"C {M}x{r0['N']}, K {r0['K']}, {r0['config']}; colour: an SM's 1st, 2nd, ... tile\n"
                            f"{src}: {describe(doc)}", fontsize=9)
    return axes


def plot_launch(doc, ax=None):
    """A decode-sized call timed from Python three ways, beside its GPU time
    (``results/<gpu>/ch07_launch.json``)."""
    import matplotlib.pyplot as plt

    recs = doc["records"]
    ax = ax or plt.subplots(figsize=(8, 3.5))[1]
    labels = [f"{r['kernel']}, M={r['M']}" for r in recs]
    y = range(len(recs))
    ax.barh(y, [r["python_us"] for r in recs], color="C1", label="from Python (do_bench)")
    ax.barh(y, [r["gpu_us"] for r in recs], color="C0", height=0.4, label="GPU time (CUDA graph)")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xlabel("µs")
    ax.legend(fontsize=8)
    _title(ax, "what a call costs from Python, and what the GPU spends", doc)
    return ax


# ------------------------------------------------------------------------------------------ chapter 08
def plot_online_softmax(steps, scores, row=0, ax=None):
    """One row's scores key by key (dots, tiles shaded in turn) and the running maximum after each tile
    (a step line): ``steps`` from ``kernels.attention.online_softmax_steps(scores, values, tile)``."""
    import matplotlib.pyplot as plt
    import numpy as np

    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    s = np.asarray(scores)[row]
    ax.plot(range(len(s)), s, "o", color="C0", ms=4, label="scores of the row")
    for i, st in enumerate(steps):
        end = steps[i + 1]["start"] if i + 1 < len(steps) else len(s)
        if i % 2:
            ax.axvspan(st["start"] - 0.5, end - 0.5, color="0.92", lw=0)
        ax.hlines(st["m"][row], st["start"] - 0.5, end - 0.5, color="C3", lw=2,
                  label="running max m after the tile" if i == 0 else None)
        if i and st["alpha"][row] < 1:
            ax.annotate(f"α = {st['alpha'][row]:.2f}", (st["start"], st["m"][row]), textcoords="offset points",
                        xytext=(2, -12), fontsize=8, color="C3")
    ax.set_xlabel("key (tiles shaded in turn)")
    ax.set_ylabel("score")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("online softmax: the maximum only moves up; when it does, earlier sums are rescaled by α",
                 fontsize=9)
    return ax


def plot_causal_tiles(seq, block_m, block_n, ax=None):
    """Which (query tile, key tile) pairs the causal kernel loads whole, masks or skips
    (``kernels.attention.causal_tiles``)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    from .attention import causal_tiles

    grid = causal_tiles(seq, seq, block_m, block_n)
    rows, cols = grid.shape
    ax = ax or plt.subplots(figsize=(4.5, 4.5 * rows / max(cols, 1) + 0.6))[1]
    ax.imshow(grid, cmap=ListedColormap(["white", "C1", "C0"]), vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(np.arange(-0.5, cols), [])
    ax.set_yticks(np.arange(-0.5, rows), [])
    ax.grid(color="0.6", lw=0.5)
    ax.set_xlabel(f"key tiles ({block_n} keys)")
    ax.set_ylabel(f"query tiles ({block_m} rows)")
    n = {k: int((grid == k).sum()) for k in (0, 1, 2)}
    ax.set_title(f"S = {seq}: {n[2]} tiles whole (blue), {n[1]} masked (orange), {n[0]} skipped", fontsize=9)
    return ax


def plot_naive_memory(doc, axes=None):
    """Peak memory and time of three-line attention against the fused kernel as S grows
    (``results/<gpu>/ch08_naive_memory.json``)."""
    import matplotlib.pyplot as plt

    recs = [r for r in doc["records"] if "peak_extra_bytes" in r]
    axes = axes if axes is not None else plt.subplots(1, 2, figsize=(10, 3.5))[1]
    for name, color in (("naive (three lines)", "C3"), ("ours", "C0")):
        rs = [r for r in recs if r["kernel"] == name]
        axes[0].loglog([r["S"] for r in rs], [r["peak_extra_bytes"] / 1e9 for r in rs], "o-", color=color, label=name)
        axes[1].loglog([r["S"] for r in rs], [r["ms"] for r in rs], "o-", color=color, label=name)
    axes[0].set_ylabel("memory allocated by the call, GB")
    axes[1].set_ylabel("ms (do_bench median)")
    for ax, title in zip(axes, ("memory allocated by one call", "time")):
        ax.set_xlabel("sequence length S (16 heads, head dim 128, bf16)")
        ax.legend(fontsize=8)
        ax.set_title(title, fontsize=9)
    src = "measured just now" if doc.get("fresh") else "recorded"
    axes[0].figure.suptitle(f"three-line attention vs the fused kernel; {src}: {describe(doc)}", fontsize=9)
    return axes


def _attention_shape(r) -> tuple:
    return (r["B"], r["H"], r["H_kv"], r["S"], r["D"], r["causal"])


def _attention_shapes(recs) -> tuple[list, list]:
    """The shapes of ``ch08_attention`` records in their order, and their tick labels."""
    shapes = list(dict.fromkeys(_attention_shape(r) for r in recs))
    labels = [f"B{b} H{h}" + (f"/{hk}" if hk != h else "") + f"\nS{s} D{d}" + ("\ncausal" if c else "")
              for b, h, hk, s, d, c in shapes]
    return shapes, labels


def _at_shape(recs, kernel, shape, field) -> float:
    """``field`` of ``kernel``'s record at ``shape``, NaN where it has none."""
    return next((r[field] for r in recs if r["kernel"] == kernel and _attention_shape(r) == shape), float("nan"))


def plot_attention_ratio(doc, kernels_, ax=None):
    """Each kernel's speed as a multiple of cuDNN SDPA's (``ratio_graph``), per shape, from
    ``results/<gpu>/ch08_attention.json``; ``kernels_``: the ``kernel`` names to draw (a name the
    records do not hold raises ``ValueError``). A dashed line marks 1.0 (as fast as cuDNN)."""
    import matplotlib.pyplot as plt
    import numpy as np

    recs = [r for r in doc["records"] if "ratio_graph" in r]
    missing = [k for k in kernels_ if not any(r["kernel"] == k for r in recs)]
    if missing:
        raise ValueError(f"plot_attention_ratio: no timed records of {missing}; "
                         f"the records hold {sorted({r['kernel'] for r in recs})}")
    shapes, labels = _attention_shapes(recs)
    ax = ax or plt.subplots(figsize=(9, 3.8))[1]
    for i, k in enumerate(kernels_):
        vals = [_at_shape(recs, k, s, "ratio_graph") for s in shapes]
        ax.plot(np.arange(len(shapes)), vals, "o-", color=f"C{i}", label=k)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xticks(np.arange(len(shapes)), labels, fontsize=7)
    ax.set_ylabel("speed / cuDNN SDPA's")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(ax, "attention forward, bf16, as a multiple of cuDNN", doc)
    return ax


def plot_attention(doc, ax=None):
    """TFLOP/s per shape for every kernel of ``results/<gpu>/ch08_attention.json`` (CUDA graphs)."""
    import matplotlib.pyplot as plt
    import numpy as np

    recs = [r for r in doc["records"] if "tflops" in r]
    shapes, labels = _attention_shapes(recs)
    kernels_ = list(dict.fromkeys(r["kernel"] for r in recs))
    ax = ax or plt.subplots(figsize=(11, 4))[1]
    width = 0.8 / len(kernels_)
    for i, k in enumerate(kernels_):
        vals = [_at_shape(recs, k, s, "tflops") for s in shapes]
        ax.bar(np.arange(len(shapes)) + i * width, vals, width, label=k)
    ax.set_xticks(np.arange(len(shapes)) + 0.4 - width / 2, labels, fontsize=7)
    ax.set_ylabel("TFLOP/s (4·B·H·S²·D, halved if causal)")
    ax.set_ylim(0, 1.18 * max(r["tflops"] for r in recs))
    ax.legend(fontsize=8, ncol=4, loc="upper right")
    _title(ax, "attention forward, bf16", doc)
    return ax


def plot_split_schedules(num_tiles, num_programs, k_iters, axes=None, kinds=("data-parallel", "split tail", "stream-K")):
    """What each SM computes over time (in K steps) when ``num_tiles`` tiles of ``k_iters`` steps are
    shared among ``num_programs`` SMs three ways (``kernels.schedule.schedule_pieces``): one bar per
    piece, coloured by tile; hatched pieces are partial sums that someone must add up."""
    import matplotlib.pyplot as plt

    from .schedule import pieces_makespan, schedule_pieces

    if axes is None:
        axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 0.45 * num_programs + 1.6), sharey=True)[1]
    cmap = plt.get_cmap("tab20")
    for ax, kind in zip(axes, kinds):
        pieces = schedule_pieces(kind, num_tiles, num_programs, k_iters)
        for p, prog in enumerate(pieces):
            t0 = 0
            for tile, kb, ke in prog:
                whole = (kb, ke) == (0, k_iters)
                ax.barh(p, ke - kb, left=t0, color=cmap(tile % 20), edgecolor="black", linewidth=0.5,
                        hatch=None if whole else "///")
                ax.text(t0 + (ke - kb) / 2, p, str(tile), ha="center", va="center", fontsize=7)
                t0 += ke - kb
        span = pieces_makespan(pieces, k_iters)
        ax.axvline(span, color="red", lw=1)
        ax.set_title(f"{kind}: {span:g} K steps", fontsize=9)
        ax.set_xlabel("time (K steps)")
        ax.invert_yaxis()
    axes[0].set_ylabel("program (SM)")
    axes[0].set_yticks(range(num_programs))
    return axes


def plot_split_record(doc, ax=None):
    """TFLOP/s (CUDA graph) of each way of handling the last wave, per shape (``ch03_split``)."""
    import matplotlib.pyplot as plt

    recs = doc["records"]
    kinds = list(dict.fromkeys(r["kernel"] for r in recs))
    shapes = list(dict.fromkeys((r["M"], r["N"], r["K"]) for r in recs))
    ax = ax or plt.subplots(figsize=(11, 4))[1]
    w = 0.8 / len(kinds)
    for j, k in enumerate(kinds):
        ys = [next((r["graph_tflops"] for r in recs if r["kernel"] == k and (r["M"], r["N"], r["K"]) == s), 0)
              for s in shapes]
        ax.bar([i + (j - (len(kinds) - 1) / 2) * w for i in range(len(shapes))], ys, w,
               color="gray" if k == "cuBLAS" else f"C{j}", label=k)
    for i, s in enumerate(shapes):
        r = next(r for r in recs if (r["M"], r["N"], r["K"]) == s)
        ax.text(i, 20, f"{r['tiles']} tiles\n{r['waves']:.2f} waves", ha="center", fontsize=7, color="white")
    ax.set_xticks(range(len(shapes)), [f"{m}x{n}x{k}" for m, n, k in shapes], fontsize=8)
    ax.set_ylabel("TFLOP/s (CUDA graph)")
    ax.legend(fontsize=7, ncol=2)
    _title(ax, "the last wave: whole tiles, split by K, stream-K (128x256 tiles)", doc)
    return ax


def plot_grid(doc, ax=None, floor=0.9):
    """``kernels.matmul`` against cuBLAS over the grid of shapes (``ch05_grid``): the CUDA-graph ratio
    (GPU time) and the ``do_bench`` ratio (from Python, launch costs included), with the ``floor`` line."""
    import matplotlib.pyplot as plt

    recs = doc["records"]
    ax = ax or plt.subplots(figsize=(12, 4))[1]
    xs = range(len(recs))
    ax.bar([x - 0.2 for x in xs], [r["ratio_graph"] for r in recs], 0.4, color="C0", label="CUDA graph (GPU time)")
    ax.bar([x + 0.2 for x in xs], [r["ratio"] for r in recs], 0.4, color="C1", alpha=0.6,
           label="do_bench (from Python)")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(floor, color="red", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), [f"{r['M']}x{r['N']}x{r['K']}\n{r['kernel']}" for r in recs], fontsize=6, rotation=60)
    ax.set_ylabel("x cuBLAS (log scale)")
    ax.legend(fontsize=8)
    _title(ax, "kernels.matmul / torch.matmul, bf16", doc)
    return ax
