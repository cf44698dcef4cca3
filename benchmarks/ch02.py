"""Chapter 02: the tiled kernel against cuBLAS; a tile-size sweep; row-major vs grouped order."""
import re
from pathlib import Path

import torch

from kernels import tiled
from kernels.tiled import TileConfig, matmul, matmul_tiled

from ._common import error_text, matmul_case, table, tqdm

SHAPES = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192),
          (64, 8192, 8192)]

# The tile-size sweep: the autotuner's list plus small and odd tiles that show why size matters.
SWEEP = tiled.GPU_CONFIGS + [
    TileConfig(128, 256, 64, 8, 8, 4),
    TileConfig(16, 16, 16, 8, 1, 1),
    TileConfig(32, 32, 32, 8, 4, 2),
    TileConfig(64, 64, 32, 8, 4, 2),
    TileConfig(128, 128, 64, 8, 4, 1),
    TileConfig(128, 128, 64, 8, 4, 2),
    TileConfig(128, 256, 64, 8, 8, 2),
    TileConfig(256, 256, 64, 8, 8, 2),
]


def run_versus_library(quick=False):
    shapes = SHAPES[:3] if quick else SHAPES
    recs = []
    for M, N, K in tqdm(shapes, desc="tiled vs cuBLAS"):
        rec = matmul_case("tiled (autotuned)", matmul, M, N, K, repeats=3)
        rec["config"] = tiled.best_config().short()
        recs.append(rec)
    return recs


def _fixed(cfg, order="grouped"):
    return lambda a, b, out: matmul_tiled(a, b, cfg, order=order, out=out)


def run_sweep(quick=False, n=4096):
    configs = SWEEP[:6] if quick else SWEEP  # big kernels (~0.2 ms+): do_bench alone is enough
    recs = []
    for cfg in tqdm(configs, desc=f"tile sweep {n}^3"):
        try:
            rec = matmul_case("tiled", _fixed(cfg), n, n, n, graph=False, config=cfg.short(), **cfg.as_dict())
        except Exception as exc:  # e.g. out of shared memory: record it, it is part of the lesson
            rec = dict(kernel="tiled", M=n, N=n, K=n, dtype="bf16", config=cfg.short(), **cfg.as_dict(),
                       error=error_text(exc))
        try:  # registers and spills per thread, read from the compiled kernel
            rec.update(tiled.kernel_resources(cfg))
        except Exception as exc:
            rec["resources_error"] = error_text(exc)
        recs.append(rec)
    return recs


def run_order(quick=False, repeats=3):
    """Row-major vs grouped order. Each variant is timed ``repeats`` times, interleaved, so that the
    spread between repeats of one variant shows how large a difference has to be to mean anything."""
    cfg = TileConfig(128, 256, 64, 8, 8, 3)
    recs = []
    sizes = [4096] if quick else [4096, 8192, 16384]
    groups = [1, 8] if quick else [1, 4, 8, 16, 32]
    for n in sizes:
        variants = [("row", 1)] + [("grouped", g) for g in groups]
        runs = {v: [] for v in variants}
        for rep in tqdm(range(repeats), desc=f"order {n}^3"):
            for order, gm in variants:
                c = TileConfig(cfg.block_m, cfg.block_n, cfg.block_k, gm, cfg.num_warps, cfg.num_stages)
                runs[(order, gm)].append(matmul_case("tiled", _fixed(c, order), n, n, n, seed=rep,
                                                     check=rep == 0, graph=False, order=order, group_m=gm, config=c.short()))
        for v, rs in runs.items():
            rs.sort(key=lambda r: r["ms"])
            med = dict(rs[len(rs) // 2])
            med["rel_error"] = next(r["rel_error"] for r in rs if r["rel_error"] is not None)
            med["repeats_tflops"] = [r["tflops"] for r in rs]
            med["repeats_ratio"] = [r["ratio"] for r in rs]
            recs.append(med)
    return recs


# What tl.dot compiles to, for a few tiles: the A and B tiles' bytes per row set the swizzle, the
# accumulator's size per warpgroup the registers, registers and shared memory the programs per SM.
CODE_CONFIGS = [(TileConfig(128, 256, 64, 8, 8, 3), torch.bfloat16), (TileConfig(128, 128, 64, 8, 4, 4), torch.bfloat16),
                (TileConfig(64, 64, 64, 8, 4, 4), torch.bfloat16), (TileConfig(256, 128, 64, 8, 8, 3), torch.bfloat16),
                (TileConfig(256, 256, 64, 8, 8, 2), torch.bfloat16), (TileConfig(128, 256, 64, 8, 4, 3), torch.bfloat16),
                (TileConfig(128, 128, 32, 8, 4, 3), torch.float32)]


def run_code(quick=False):
    """For each of ``CODE_CONFIGS``: the ``wgmma`` shapes in the compiled PTX, the shared-memory and
    accumulator layouts in the TTGIR, registers, spills, shared memory, and programs per SM."""
    from kernels import inspect_code as I

    recs = []
    for cfg, dtype in tqdm(CODE_CONFIGS[:3] if quick else CODE_CONFIGS, desc="compiled code"):
        rec = dict(config=cfg.short(), dtype=str(dtype).replace("torch.", ""), **cfg.as_dict())
        try:
            k = tiled.compiled_kernel(cfg, dtype, "run_code")
            rec.update(n_regs=int(k.n_regs), n_spills=int(k.n_spills), shared_bytes=int(k.metadata.shared))
            rec["wgmma"] = [dict(m=w.m, n=w.n, k=w.k, acc_type=w.acc_type, in_type=w.in_type, count=w.count,
                                 acc_registers=w.acc_registers, line=w.line[:120]) for w in I.wgmma_instructions(k.asm["ptx"])]
            rec["shared_layouts"] = I.shared_layouts(k.asm["ttgir"])
            rec["mma_layout"] = I.mma_layout(k.asm["ttgir"])
            w = rec["wgmma"][0]  # the main shape, also as flat fields (what the chapter's claims read)
            rec.update(wgmma_m=w["m"], wgmma_n=w["n"], wgmma_k=w["k"], wgmma_in=w["in_type"], wgmma_count=w["count"],
                       acc_registers=w["acc_registers"], swizzle_bytes=rec["shared_layouts"][0]["swizzle_bytes"],
                       warps_m=rec["mma_layout"]["warps_per_cta"][0])
            rec.update({f"occupancy_{key}": v for key, v in
                        I.programs_per_sm(rec["n_regs"], cfg.num_warps, rec["shared_bytes"]).items()})
        except Exception as exc:  # a tile that does not compile is part of the lesson
            rec["error"] = error_text(exc)
        recs.append(rec)
    return recs


_COUNTER_RUN = r"""
import sys
import kernels, torch
from kernels.tiled import TileConfig, matmul_tiled
n, order, group_m = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(2):  # the first compiles; the profiler reads the second
    matmul_tiled(a, b, TileConfig(128, 256, 64, group_m, 8, 3), order=order)
torch.cuda.synchronize()
"""
COUNTERS = {"dram__bytes_read.sum": "dram_read_bytes", "lts__t_sector_hit_rate.pct": "l2_hit_pct",
            "gpu__time_duration.sum": "ncu_time_ns"}
_UNITS = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "Tbyte": 1e12, "%": 1, "ns": 1, "us": 1e3,
          "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "nsecond": 1}


def parse_ncu(text: str) -> dict:
    """``{field: value}`` from Nsight Compute's text report of ``COUNTERS`` (bytes, percent, ns)."""
    out = {}
    for metric, field in COUNTERS.items():
        m = re.search(re.escape(metric) + r"\s+(\S+)\s+([\d,.]+)", text)
        if m:
            out[field] = float(m.group(2).replace(",", "")) * _UNITS.get(m.group(1), float("nan"))
    return out


def run_counters(quick=False):
    """Nsight Compute's counters for the tiled kernel (128x256x64, 8 warps, 3 stages) in row-major and
    grouped order: bytes read from DRAM, the L2 hit rate, and the kernel's time under the profiler.
    Needs ``ncu`` on the PATH (the records say when it was missing)."""
    import shutil
    import subprocess
    import sys

    ncu = shutil.which("ncu")
    recs = []
    for n in ((8192,) if quick else (4096, 8192, 16384)):
        for order, group_m in (("row", 1), ("grouped", 8)):
            rec = dict(M=n, N=n, K=n, order=order, group_m=group_m, config="128x256x64 w8 s3")
            if ncu is None:
                rec["error"] = "ncu (Nsight Compute) is not on the PATH"
            else:
                cmd = [ncu, "--clock-control", "none", "--kernel-name", "regex:tiled_matmul_kernel", "--launch-skip",
                       "1", "--launch-count", "1", "--metrics", ",".join(COUNTERS), sys.executable, "-c",
                       _COUNTER_RUN, str(n), order, str(group_m)]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                   env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
                rec.update(parse_ncu(p.stdout))
                if set(COUNTERS.values()) - set(rec):
                    rec["error"] = (p.stdout[-300:] + p.stderr[-300:]).strip()
                else:
                    rec["min_read_bytes"] = 2 * n * n * 2  # A and B, bf16, each read once
                    rec["dram_read_x_min"] = rec["dram_read_bytes"] / rec["min_read_bytes"]
            recs.append(rec)
    return recs


def run_all(quick=False):
    return {
        "ch02_tiled": (lambda: run_versus_library(quick), {"what": "autotuned tiled kernel vs torch.matmul, bf16"}),
        "ch02_sweep": (lambda: run_sweep(quick), {"what": "tile shapes, warps and stages at 4096^3, bf16"}),
        "ch02_order": (lambda: run_order(quick), {"what": "row-major vs grouped tile order, bf16"}),
        "ch02_counters": (lambda: run_counters(quick), {"what": "Nsight Compute: DRAM bytes read and L2 hit rate, "
                                                        "row-major vs grouped order, 128x256x64 tiles"}),
        "ch02_code": (lambda: run_code(quick), {"what": "what tl.dot compiles to: wgmma shapes, shared-memory "
                                                "layouts, registers, spills, programs per SM"}),
    }


def summary(name, records):
    cols = {"ch02_tiled": ["M", "N", "K", "config", "tflops", "baseline_tflops", "ratio", "ratio_graph"],
            "ch02_sweep": ["config", "ms", "tflops", "ratio"],
            "ch02_order": ["M", "order", "group_m", "tflops", "ratio"],
            "ch02_code": ["config", "dtype", "n_regs", "n_spills", "shared_bytes", "occupancy_programs"],
            "ch02_counters": ["M", "order", "dram_read_bytes", "dram_read_x_min", "l2_hit_pct", "ncu_time_ns"]}[name]
    return f"{name}\n" + table(records, cols)
