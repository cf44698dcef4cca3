"""The logic behind the notebooks' widgets, as plain functions (tested in tests/test_widgets.py).

The widgets themselves only bind sliders to these functions.
"""
from __future__ import annotations

from .roofline import tile_intensity, tiled_matmul_bytes
from .schedule import cdiv, footprint, tile_order

H100_SMS = 132
H100_SMEM_PER_BLOCK = 227 * 1024  # bytes of shared memory one program may use on an H100
H100_L2 = 50 * 1024 * 1024


# ---------------------------------------------------------------- tile order and L2 footprint
def tile_order_data(M, N, K, block_m, block_n, order="grouped", group_m=8, programs_at_once=H100_SMS,
                    elem_bytes=2):
    """Everything the tile-order view shows, computed from ``kernels.schedule``.

    Returns a dict with the grid size, ``launch`` (``launch[m][n]`` = pid that computes tile (m, n)),
    ``waves`` (lists of tiles that run at the same time) and their L2 ``footprints``.
    """
    if min(M, N, K, block_m, block_n, programs_at_once) < 1:
        raise ValueError("sizes, blocks and programs_at_once must all be >= 1")
    grid_m, grid_n = cdiv(M, block_m), cdiv(N, block_n)
    order_list = tile_order(grid_m, grid_n, order, group_m)
    launch = [[-1] * grid_n for _ in range(grid_m)]
    for pid, (m, n) in enumerate(order_list):
        launch[m][n] = pid
    waves = [order_list[i:i + programs_at_once] for i in range(0, len(order_list), programs_at_once)]
    fps = [footprint(w, K, block_m, block_n, elem_bytes) for w in waves]
    return dict(grid_m=grid_m, grid_n=grid_n, launch=launch, waves=waves, footprints=fps,
                order=order, group_m=group_m, programs_at_once=programs_at_once)


def _draw_grid(ax, data, wave):
    import matplotlib.patches as patches
    import numpy as np

    gm, gn, p = data["grid_m"], data["grid_n"], data["programs_at_once"]
    wave_of = np.array(data["launch"]) // p
    ax.imshow(wave_of, cmap="viridis", alpha=0.35, aspect="equal")
    if gm * gn <= 256:
        for m in range(gm):
            for n in range(gn):
                ax.text(n, m, str(data["launch"][m][n]), ha="center", va="center", fontsize=7)
    w = data["waves"][min(wave, len(data["waves"]) - 1)]
    for m, n in w:
        ax.add_patch(patches.Rectangle((n - 0.5, m - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
    rows = sorted({m for m, _ in w})
    cols = sorted({n for _, n in w})
    for m in rows:  # the row-panels of A this wave reads, drawn left of the grid
        ax.add_patch(patches.Rectangle((-1.9, m - 0.5), 1, 1, color="tab:blue", clip_on=False))
    for n in cols:  # the column-panels of B, drawn above it
        ax.add_patch(patches.Rectangle((n - 0.5, -1.9), 1, 1, color="tab:orange", clip_on=False))
    ax.set_xlim(-2, gn - 0.5)
    ax.set_ylim(gm - 0.5, -2)
    ax.set_xticks([])
    ax.set_yticks([])


def tile_order_figure(M=4096, N=4096, K=4096, block_m=128, block_n=128, group_m=8,
                      programs_at_once=H100_SMS, wave=0, elem_bytes=2):
    """Row-major and grouped order side by side: launch order, one wave, and its L2 working set."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 5), layout="constrained",
                             gridspec_kw=dict(width_ratios=[1, 1, 1.1]))
    datas = [tile_order_data(M, N, K, block_m, block_n, o, group_m, programs_at_once, elem_bytes)
             for o in ("row", "grouped")]
    for ax, d in zip(axes[:2], datas):
        _draw_grid(ax, d, wave)
        f = d["footprints"][min(wave, len(d["footprints"]) - 1)]
        name = "row-major" if d["order"] == "row" else f"grouped (group_m={group_m})"
        ax.set_title(f"{name}\nwave {min(wave, len(d['waves']) - 1)}: {f.a_panels} A panels (blue) + "
                     f"{f.b_panels} B panels (orange)\n= {f.bytes / 2**20:.1f} MiB for {f.tiles} tiles",
                     fontsize=9)
    ax = axes[2]
    for d, c in zip(datas, ("C1", "C0")):
        mb = [f.bytes / 2**20 for f in d["footprints"]]
        ax.plot(range(len(mb)), mb, "o-", color=c, label="row-major" if d["order"] == "row" else "grouped")
    ax.axhline(H100_L2 / 2**20, color="gray", ls="--", label="L2 of an H100/H200 (50 MiB)")
    ax.set_xlabel(f"wave ({programs_at_once} programs at once)")
    ax.set_ylabel("A and B panels the wave reads (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(f"C is {M}x{N}, K={K}: {datas[0]['grid_m']}x{datas[0]['grid_n']} tiles of "
                 f"{block_m}x{block_n}", fontsize=9)
    return fig


def _display(fig):
    """Show a figure from inside a widget callback, under any matplotlib backend (``plt.show(fig)``
    fails outside Jupyter's inline backend), and close it so it is not drawn twice."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def tile_order_widget():
    """Sliders for ``tile_order_figure`` (JupyterLab with ipywidgets)."""
    import ipywidgets as W

    def show(M, N, K, block, group_m, programs_at_once, wave):
        _display(tile_order_figure(M, N, K, block, block, group_m, programs_at_once, wave))

    pow2 = [2**i for i in range(8, 15)]
    return W.interactive(
        show,
        M=W.SelectionSlider(options=pow2, value=4096, description="M"),
        N=W.SelectionSlider(options=pow2, value=4096, description="N"),
        K=W.SelectionSlider(options=pow2, value=4096, description="K"),
        block=W.SelectionSlider(options=[32, 64, 128, 256], value=256, description="tile"),
        group_m=W.IntSlider(value=8, min=1, max=32, description="group_m"),
        programs_at_once=W.IntSlider(value=H100_SMS, min=1, max=4 * H100_SMS, description="at once"),
        wave=W.IntSlider(value=0, min=0, max=40, description="wave"),
    )


# ---------------------------------------------------------------- tile size
def tile_size_report(block_m, block_n, block_k, num_stages=3, num_warps=4, M=4096, N=4096, K=4096,
                     elem_bytes=2, sms=H100_SMS, smem_limit=H100_SMEM_PER_BLOCK):
    """What a tile shape implies, before running anything.

    * ``intensity``: flops per byte a program loads (``2*BM*BN / ((BM+BN)*bytes)``): the reuse a tile buys;
    * ``smem_bytes``: shared memory for ``num_stages`` buffered A and B tiles, and whether it fits;
    * ``acc_regs``: fp32 accumulator registers per thread (``BM*BN / (32*num_warps)``; a thread has 255);
    * ``tiles`` and ``waves``: how many programs, and how many rounds of ``sms`` programs that is
      (assuming one program per SM; the last round may be partly empty);
    * ``dram_ratio``: bytes the programs request over the minimum (A, B read once, C written once).
    """
    tiles = cdiv(M, block_m) * cdiv(N, block_n)
    smem = num_stages * (block_m + block_n) * block_k * elem_bytes
    acc_regs = block_m * block_n // (32 * num_warps)
    requested = tiled_matmul_bytes(M, N, K, block_m, block_n, elem_bytes)
    minimum = elem_bytes * (M * K + K * N + M * N)
    waves = tiles / sms
    return dict(
        intensity=tile_intensity(block_m, block_n, elem_bytes),
        smem_bytes=smem, smem_fits=smem <= smem_limit,
        acc_regs=acc_regs, regs_fit=acc_regs <= 192,
        tiles=tiles, waves=waves, last_wave_fill=(tiles % sms or sms) / sms,
        dram_ratio=requested / minimum,
    )


def format_tile_report(r) -> str:
    return "\n".join([
        f"reuse: {r['intensity']:.0f} flop per byte loaded",
        f"shared memory: {r['smem_bytes'] / 1024:.0f} KiB "
        + ("(fits)" if r["smem_fits"] else "(does NOT fit in 227 KiB: the compile fails)"),
        f"accumulator: {r['acc_regs']} fp32 registers per thread"
        + ("" if r["regs_fit"] else " (too many: expect spills to local memory)"),
        f"programs: {r['tiles']} = {r['waves']:.2f} waves of 132; last wave {r['last_wave_fill']:.0%} full",
        f"bytes requested: {r['dram_ratio']:.1f}x the minimum (before L2 reuse)",
    ])


def tile_size_widget(sweep_doc=None):
    """Dropdowns for a tile shape; prints ``tile_size_report`` and the recorded time if measured (from
    ``sweep_doc``, a ``ch02_sweep`` record: its GPU is named)."""
    import ipywidgets as W

    measured, gpu = {}, "the GPU"
    if sweep_doc is not None:
        measured = {r["config"]: r for r in sweep_doc["records"]}
        gpu = sweep_doc.get("environment", {}).get("gpu") or gpu

    def show(block_m, block_n, block_k, num_warps, num_stages):
        from .tiled import TileConfig

        print(format_tile_report(tile_size_report(block_m, block_n, block_k, num_stages, num_warps)))
        key = TileConfig(block_m, block_n, block_k, 8, num_warps, num_stages).short()
        r = measured.get(key)
        if r and "tflops" in r:
            print(f"recorded on {gpu} at 4096^3: {r['tflops']:.0f} TFLOP/s = {r['ratio']:.2f}x cuBLAS")
        elif r:
            print(f"recorded on {gpu}: failed ({r.get('error', '?')})")
        else:
            print("not in the recorded sweep (run benchmarks/ch02.py on a GPU to measure it)")

    opts = [16, 32, 64, 128, 256]
    return W.interactive(
        show,
        block_m=W.Dropdown(options=opts, value=128, description="BLOCK_M"),
        block_n=W.Dropdown(options=opts, value=256, description="BLOCK_N"),
        block_k=W.Dropdown(options=opts[:-1], value=64, description="BLOCK_K"),
        num_warps=W.Dropdown(options=[1, 2, 4, 8], value=8, description="warps"),
        num_stages=W.Dropdown(options=[1, 2, 3, 4, 5], value=3, description="stages"),
    )


# ---------------------------------------------------------------- waves and persistence (chapter 03)
def wave_report(M, N, block_m, block_n, num_sms=H100_SMS):
    """Tiles, waves and the tail for a one-program-per-tile launch, and tiles per SM if persistent."""
    from .schedule import persistent_tiles, waves

    tiles = cdiv(M, block_m) * cdiv(N, block_n)
    n, fill = waves(tiles, num_sms)
    programs = min(num_sms, tiles)
    per_sm = [len(persistent_tiles(p, programs, tiles)) for p in range(programs)]
    return dict(tiles=tiles, waves=n, last_wave_fill=fill, persistent_programs=programs,
                tiles_per_program=(min(per_sm), max(per_sm)),
                ideal_waves=tiles / num_sms)


def format_wave_report(report: dict) -> str:
    """``wave_report``'s numbers as a few lines a learner can read."""
    r = report
    return (f"{r['tiles']} tiles on {r['persistent_programs']} SMs: {r['ideal_waves']:.2f} waves of work, run in "
            f"{r['waves']} waves; the last wave is {r['last_wave_fill']:.0%} full\n"
            f"persistent: {r['persistent_programs']} programs, {r['tiles_per_program'][0]}-"
            f"{r['tiles_per_program'][1]} tiles each")


def waves_figure(M=1152, N=4096, block_m=128, block_n=256, num_sms=H100_SMS, block_overhead=0.05,
                 max_rows=24, k_iters=64):
    """Timelines of a one-program-per-tile launch, a persistent one (``simulate_launch``) and one whose
    last wave is split by K (``schedule_pieces(\"split tail\", ...)``, the schedule of ``kernels.splitk``).

    Time is in units of one tile's work; ``block_overhead`` is what starting a program costs in those
    units (the split panel leaves it out, and the cost of adding the parts). A tile's K loop has
    ``k_iters`` steps (64: K = 4096 in steps of 64), which sets how finely the last wave can be cut.
    Only the first ``max_rows`` SMs are drawn.
    """
    import matplotlib.pyplot as plt

    from .schedule import makespan, pieces_makespan, schedule_pieces, simulate_launch, utilisation

    r = wave_report(M, N, block_m, block_n, num_sms)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True, layout="constrained")
    ends = []
    for ax, persistent in zip(axes, (False, True)):
        spans = simulate_launch(r["tiles"], num_sms, 1.0, block_overhead, persistent=persistent)
        for s in spans:
            if s.sm < max_rows:
                ax.broken_barh([(s.start, s.end - s.start)], (s.sm - 0.4, 0.8),
                               facecolors=f"C{(s.tile // num_sms) % 10}", edgecolor="white", lw=0.3)
        ends.append(makespan(spans))
        name = "persistent: one program per SM" if persistent else "one program per tile"
        launched = min(num_sms, r["tiles"]) if persistent else r["tiles"]
        ax.set_title(f"{name}\n{launched} programs launched, finishes at {makespan(spans):.2f}, "
                     f"SMs busy {utilisation(spans, num_sms):.0%}", fontsize=9)
    pieces = schedule_pieces("split tail", r["tiles"], num_sms, k_iters)
    for sm, prog in enumerate(pieces[:max_rows]):
        t = 0.0
        for tile, kb, ke in prog:
            whole = (kb, ke) == (0, k_iters)
            axes[2].broken_barh([(t, (ke - kb) / k_iters)], (sm - 0.4, 0.8), facecolors=f"C{(tile // num_sms) % 10}",
                                edgecolor="white", lw=0.3, hatch=None if whole else "///")
            t += (ke - kb) / k_iters
    split_end = pieces_makespan(pieces, k_iters) / k_iters
    ends.append(split_end)
    axes[2].set_title(f"the last wave split by K (hatched: partial sums)\nfinishes at {split_end:.2f}, "
                      "before the parts are added", fontsize=9)
    for ax in axes:
        ax.set_xlim(0, max(max(ends), 1) * 1.05)
        ax.set_ylim(min(num_sms, max_rows) - 0.5, -0.5)
        ax.set_xlabel("time (one tile's work = 1)")
    axes[0].set_ylabel(f"SM (first {min(num_sms, max_rows)} of {num_sms})")
    fig.suptitle(f"C {M}x{N} in {block_m}x{block_n} tiles: {r['tiles']} tiles = {r['ideal_waves']:.2f} "
                 f"waves of {num_sms}; last wave {r['last_wave_fill']:.0%} full (colour = wave)", fontsize=10)
    return fig


def waves_widget():
    """Sliders for ``waves_figure``."""
    import ipywidgets as W

    def show(M, N, block, num_sms, block_overhead):
        _display(waves_figure(M, N, block, block * 2, num_sms, block_overhead))

    return W.interactive(
        show,
        M=W.IntSlider(value=1152, min=128, max=8192, step=128, description="M"),
        N=W.IntSlider(value=4096, min=256, max=8192, step=256, description="N"),
        block=W.SelectionSlider(options=[64, 128], value=128, description="tile BM (BN=2BM)"),
        num_sms=W.IntSlider(value=H100_SMS, min=1, max=264, description="SMs"),
        block_overhead=W.FloatSlider(value=0.05, min=0, max=0.5, step=0.01, description="start cost"),
    )


# ---------------------------------------------------------------- software pipelining (chapter 04)
def pipeline_figure(k_steps=8, stages=(1, 2, 3, 4), load_time=2.0, mma_time=1.0):
    """Timelines of one program's K loop for several pipeline depths (``schedule.pipeline_timeline``).

    Time is in units of one K-step's math; ``load_time`` is a load's latency from issue to arrival in the
    same units. Each row pair shows the loads (coloured by shared-memory slot) and the tensor cores.
    """
    import matplotlib.pyplot as plt

    from .schedule import mma_busy, pipeline_time, pipeline_timeline

    stages = list(stages)
    fig, axes = plt.subplots(len(stages), 1, figsize=(11, 1.3 * len(stages) + 0.8), sharex=True,
                             layout="constrained", squeeze=False)
    end = max(pipeline_time(pipeline_timeline(k_steps, s, load_time, mma_time)) for s in stages)
    for ax, s in zip(axes[:, 0], stages):
        spans = pipeline_timeline(k_steps, s, load_time, mma_time)
        h = 0.8 / s  # the loads lane (y from 0.6 to 1.4) has one sub-row per shared-memory slot
        for sp in spans:
            if sp.engine == "load":
                y0, height, color = 0.6 + sp.slot * h, h * 0.9, f"C{sp.slot % 10}"
            else:
                y0, height, color = -0.35, 0.7, "C7"
            ax.broken_barh([(sp.start, sp.end - sp.start)], (y0, height), facecolors=color,
                           edgecolor="white", lw=0.5)
            ax.text((sp.start + sp.end) / 2, y0 + height / 2, f"k{sp.k}", ha="center", va="center",
                    fontsize=7 if height > 0.3 else 5, color="white")
        ax.set_yticks([0, 1], ["tensor cores", "TMA loads\n(row = slot)"])
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlim(0, end * 1.02)
        ax.set_title(f"{s} stage{'s' if s > 1 else ''}: done at {pipeline_time(spans):.1f}, tensor cores busy "
                     f"{mma_busy(spans):.0%}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (one K-step's math = 1)")
    return fig


def pipeline_widget():
    """Sliders for ``pipeline_figure``: K steps, the deepest pipeline shown, load latency."""
    import ipywidgets as W

    def show(k_steps, max_stages, load_time):
        _display(pipeline_figure(k_steps, range(1, max_stages + 1), load_time, 1.0))

    return W.interactive(
        show,
        k_steps=W.IntSlider(value=8, min=1, max=16, description="K steps"),
        max_stages=W.IntSlider(value=4, min=1, max=6, description="stages up to"),
        load_time=W.FloatSlider(value=2.0, min=0.25, max=6.0, step=0.25, description="load latency"),
    )


# ---------------------------------------------------------------- FP8 quantization error (chapter 06)
def fp8_error_figure(tensor="outlier_columns", scaling="row", format="e4m3", outlier=1e4, M=256, N=512,
                     seed=0):
    """What FP8 quantization does to a tensor, drawn: ``(fig, summary)``.

    ``tensor``: a kind of ``kernels.fp8.TENSOR_KINDS`` (made by ``fp8.example_tensor`` with ``outlier``,
    ``M``, ``N``, ``seed``) or a 2-D finite array of your own; ``scaling``: a key of ``fp8.SCALINGS``
    (``"none"``, ``"tensor"``, ``"row"``, ``"column"``, ``"block 1x128"``, ``"block 128x128"``);
    ``format``: ``"e4m3"`` or ``"e5m2"``. Three panels: ``log10 |x|``; the histogram of every nonzero
    element's relative error ``|deq - x| / |x|`` on a log axis, with the format's unit roundoff (values in
    the normal range stay left of it) and 1 (a value flushed to 0); the relative Frobenius error of each
    scaling on the same tensor. ``summary`` is ``fp8.error_summary``'s dict plus ``groups`` (how many
    scales) and ``by_scaling`` (scaling -> Frobenius error). Raises ValueError for an unknown tensor kind,
    scaling or format, or a tensor that is not 2-D and finite."""
    import matplotlib.pyplot as plt
    import numpy as np

    from . import fp8

    if isinstance(tensor, str):
        x = fp8.example_tensor(tensor, M, N, outlier, seed=seed)
        name = tensor.replace("_", " ")
    else:
        x = np.asarray(tensor, dtype=np.float64)
        name = "your tensor"
    s = fp8.error_summary(x, scaling, format)
    by = {k: fp8.error_summary(x, k, format)["frobenius"] for k in fp8.SCALINGS}
    recipe, block = fp8.SCALINGS[scaling]
    groups = 1 if recipe is None else fp8.scales(x, recipe, format, **({"block": block} if block else {})).size
    s = dict(s, groups=int(groups), by_scaling=by)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained",
                             gridspec_kw=dict(width_ratios=[1, 1.35, 1]))
    ax = axes[0]
    mag = np.abs(x)
    floor = mag[mag > 0].min() if (mag > 0).any() else 1.0
    logm = np.log10(np.maximum(mag, floor))
    # colours from a tenth of the typical magnitude up: the small values stay dark, outliers stand out
    im = ax.imshow(logm, aspect="auto", cmap="magma", vmin=min(np.median(logm) - 1, logm.max()),
                   vmax=logm.max(), interpolation="antialiased")
    fig.colorbar(im, ax=ax, shrink=0.8, label="log10 |x|")
    big = mag >= 0.1 * mag.max()
    if 0 < big.sum() <= 0.01 * mag.size:  # a few large values: circle them, a pixel alone is lost
        r, c = np.nonzero(big)
        ax.scatter(c, r, s=12, facecolors="none", edgecolors="cyan", lw=0.6,
                   label=f"{big.sum()} values >= max/10")
        ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"{name}, {x.shape[0]}x{x.shape[1]}\n{scaling}: {groups} scale{'s' if groups > 1 else ''}",
                 fontsize=9)
    ax.set_xlabel("column")
    ax.set_ylabel("row")

    ax = axes[1]
    rel = s["elementwise"]
    lo = 1e-6
    shown = rel[rel > 0]
    bins = np.logspace(np.log10(lo), np.log10(2.0), 56)
    ax.hist(np.clip(shown, lo, None), bins=bins, color="C0")
    ax.axvline(s["unit_roundoff"], color="C2", ls="--",
               label=f"2^-{int(round(-np.log2(s['unit_roundoff'])))}: largest rounding error of a normal value")
    ax.axvline(1.0, color="C3", ls=":", label="1: flushed to 0")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"relative error per element (values below {lo:g} drawn at {lo:g})")
    ax.set_ylabel("elements")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{s['format']}: Frobenius error {s['frobenius']:.2g}, median {s['median']:.2g}\n"
                 f"flushed to 0: {s['flushed']:.2%}, saturated: {s['saturated']:.2%}, exact: {s['exact']:.2%}",
                 fontsize=9)

    ax = axes[2]
    names = list(by)
    vals = [max(by[k], 1e-12) for k in names]
    ax.barh(names, vals, color=["C1" if k == scaling else "C7" for k in names])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {by[names[i]]:.2g}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.invert_yaxis()
    ax.set_xlabel("relative Frobenius error")
    ax.set_title(f"every scaling, {s['format']}, same tensor", fontsize=9)
    return fig, s


def format_fp8_summary(summary) -> str:
    """``fp8_error_figure``'s summary as two lines a learner can read."""
    s = summary
    return (f"{s['format']}, {s['scaling']} ({s['groups']} scale{'s' if s['groups'] > 1 else ''}): relative Frobenius error {s['frobenius']:.3g}, "
            f"median error per element {s['median']:.3g}\n"
            f"of the nonzero values: {s['flushed']:.2%} flushed to 0, {s['saturated']:.2%} saturated, "
            f"{s['exact']:.2%} exact")


def fp8_error_widget():
    """Dropdowns and a slider for ``fp8_error_figure`` (JupyterLab with ipywidgets): format, scaling,
    tensor kind and the outliers' magnitude."""
    import ipywidgets as W

    from . import fp8

    def show(format, scaling, tensor, log10_outlier):
        fig, summary = fp8_error_figure(tensor, scaling, format, outlier=10.0 ** log10_outlier)
        print(format_fp8_summary(summary))
        _display(fig)

    return W.interactive(
        show,
        format=W.Dropdown(options=list(fp8.FORMATS), value="e4m3", description="format"),
        scaling=W.Dropdown(options=list(fp8.SCALINGS), value="tensor", description="scaling"),
        tensor=W.Dropdown(options=list(fp8.TENSOR_KINDS), value="outlier_columns", description="tensor"),
        log10_outlier=W.FloatSlider(value=4.0, min=1.0, max=6.0, step=0.5, description="log10 outlier"),
    )
