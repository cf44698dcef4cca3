"""Chapter 05: warp specialization, cooperative (Triton's ``warp_specialize``) vs ping-pong (Gluon).

For each shape: cuBLAS (``torch.matmul``) in the same run, the chapter 04 TMA kernel without
specialization, Triton's cooperative warp specialization (autotuned), and the hand-written Gluon
ping-pong kernel, every configuration and the tuned pick. ``code`` records what the compiled ping-pong
kernel is made of (regions, warps, registers), read from its TTGIR and PTX.
"""
import re

import torch

from kernels import inspect_code as ic
from kernels import pingpong as pp
from kernels.tma import matmul_tma_tuned, tuned_config

from . import matmul_grid
from ._common import error_text, matmul_case, table, tqdm

SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048), (64, 8192, 8192), (1024, 1024, 1024),
          (1152, 4096, 4096)]


def _error(name, M, N, K, exc, **fields):
    return dict(kernel=name, M=M, N=N, K=K, error=error_text(exc),
                **fields)


def run(quick=False):
    recs = []
    for M, N, K in tqdm(SHAPES[:1] if quick else SHAPES, desc="ch05 shapes"):
        for ws in (False, True):
            name = "tma tuned" + (" + warp_specialize (cooperative)" if ws else "")
            try:
                rec = matmul_case(name, lambda a, b, out, ws=ws: matmul_tma_tuned(a, b, warp_specialize=ws, out=out),
                                  M, N, K, repeats=3)
                rec["config"] = tuned_config(ws)
            except Exception as exc:
                rec = _error(name, M, N, K, exc)
            recs.append(rec)
        try:
            rec = matmul_case("tma tuned, host descriptors", lambda a, b, out: matmul_tma_tuned(
                a, b, out=out, host_descriptors=True), M, N, K, repeats=3)
            rec["config"] = tuned_config(False, True)
        except Exception as exc:
            rec = _error("tma tuned, host descriptors", M, N, K, exc)
        recs.append(rec)
        try:
            rec = matmul_case("pingpong tuned (gluon)", lambda a, b, out: pp.matmul_pingpong_tuned(a, b, out=out),
                              M, N, K, repeats=3)
            rec["config"] = pp.tuned_config((M, K), (K, N), torch.bfloat16)
        except Exception as exc:
            rec = _error("pingpong tuned (gluon)", M, N, K, exc)
        recs.append(rec)
        for cfg in pp.PINGPONG_CONFIGS:
            label = pp.config_label(cfg)
            try:
                recs.append(matmul_case("pingpong (gluon)", lambda a, b, out, cfg=cfg: pp.matmul_pingpong(
                    a, b, cfg, out=out), M, N, K, config=label))
            except Exception as exc:
                recs.append(_error("pingpong (gluon)", M, N, K, exc, config=label))
    return recs


# The two schedules with everything else equal: the same Gluon producer, ring, barriers, host-side
# descriptors and register split; only who computes what differs. (schedule, config, what is equal)
SCHEDULE_PAIRS = [
    ("pingpong", (128, 128, 64, 8, 4), "same program tile and stages"),
    ("cooperative", (128, 128, 64, 8, 4), "same program tile and stages"),
    ("pingpong", (128, 128, 64, 8, 3), "same consumer tile and stages"),
    ("cooperative", (256, 128, 64, 8, 3), "same consumer tile and stages"),
    ("cooperative", (128, 256, 64, 8, 3), "Triton's cooperative tile"),
]


def run_schedules(quick=False):
    """Ping-pong against cooperative, both in Gluon, everything but the schedule equal."""
    recs = []
    for M, N, K in tqdm(SHAPES[:1] if quick else SHAPES, desc="schedules"):
        for schedule, cfg, equal in SCHEDULE_PAIRS:
            fn = pp.matmul_cooperative if schedule == "cooperative" else pp.matmul_pingpong
            label = pp.config_label(cfg)
            fields = dict(schedule=schedule, config=label, equal=equal, **pp.schedule_counts(M, N, cfg, schedule))
            try:
                recs.append(matmul_case(f"{schedule} (gluon)", lambda a, b, out, fn=fn, cfg=cfg: fn(a, b, cfg, out=out),
                                        M, N, K, repeats=1 if quick else 3, **fields))
            except Exception as exc:
                recs.append(_error(f"{schedule} (gluon)", M, N, K, exc, **fields))
    return recs


def run_code():
    recs = []
    for schedule, cfg in [("pingpong", c) for c in pp.PINGPONG_CONFIGS] + [
            ("cooperative", c) for c in pp.COOPERATIVE_CONFIGS]:
        k = pp.compile_for_hopper(cfg, schedule=schedule)
        s = ic.summarize_ttgir(k.asm["ttgir"])
        ptx = k.asm["ptx"]
        maxnreg = [int(v) for v in re.findall(r"\.maxnreg\s+(\d+)", ptx)]
        recs.append(dict(schedule=schedule, config=pp.config_label(cfg), specialized=s["specialized"],
                         maxnreg=maxnreg[0] if maxnreg else None,
                         requested_registers=s["requested_registers"],
                         regions=[dict(name=r.name, warps=r.num_warps, role=r.role()) for r in s["regions"]],
                         setmaxnreg=ic.setmaxnreg(k.asm["ptx"]), num_warps_total=k.metadata.num_warps,
                         shared_bytes=k.metadata.shared, wgmma=k.asm["ptx"].count("wgmma.mma_async")))
    return recs


def run_all(quick=False):
    return {
        "ch05_pingpong": (lambda: run(quick), {"what": "warp specialization: Triton's cooperative schedule vs a "
                                               "hand-written Gluon ping-pong kernel, vs torch.matmul, bf16"}),
        "ch05_schedules": (lambda: run_schedules(quick), {"what": "ping-pong vs cooperative, both hand-written in Gluon "
                                                          "with host descriptors: only the schedule differs"}),
        "ch05_code": (lambda: run_code(), {"what": "the compiled Gluon kernels: regions, warps, registers"}),
        "ch05_grid": (lambda: matmul_grid.run_grid(quick), {"what": "kernels.matmul (the track's kernels chosen by "
                                                            "shape) vs torch.matmul over a grid of shapes, bf16"}),
    }


def summary(name, records):
    if name == "ch05_grid":
        return f"{name}\n" + table(records, ["M", "N", "K", "kernel", "config", "ratio_graph", "ratio", "rel_error"])
    if name == "ch05_code":
        return f"{name}\n" + "\n".join(str(r) for r in records)
    return f"{name}\n" + table(records, ["kernel", "config", "M", "N", "tflops", "ratio", "ratio_graph", "error"])
