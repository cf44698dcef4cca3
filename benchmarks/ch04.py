"""Chapter 04 (groundwork): the persistent TMA kernel, its pipeline depth, and warp specialization.

Besides timings, ``inspect_code`` reads the compiled kernel (TTGIR and PTX) for the marks of real
warp specialization on Hopper: a ``ttg.warp_specialize`` region in the TTGIR and ``setmaxnreg`` in the
PTX (producer warps give registers to the consumer warpgroups), and for TMA (``cp.async.bulk.tensor``)
and wgmma instructions.
"""
import torch

from kernels import testing as T
from kernels.tiled import TileConfig, matmul
from kernels.tma import launch, matmul_tma, matmul_tma_tuned, tuned_config

from ._common import error_text, matmul_case, table, tqdm

VARIANTS = [  # (config, warp_specialize, epilogue_subtile); 128x256 with 4 stages fits only with the
    # epilogue subtiled (the whole-tile variants are kept: their failure to compile is part of the lesson)
    (TileConfig(128, 256, 64, 8, 8, 3), False, False),
    (TileConfig(128, 256, 64, 8, 8, 4), False, False),
    (TileConfig(128, 256, 64, 8, 8, 4), False, True),
    (TileConfig(128, 256, 64, 8, 4, 3), True, False),
    (TileConfig(128, 256, 64, 8, 4, 4), True, False),
    (TileConfig(128, 256, 64, 8, 4, 4), True, True),  # refused: does not compile (kernels.tma._check_ws)
    (TileConfig(128, 128, 64, 8, 4, 2), False, False),
    (TileConfig(128, 128, 64, 8, 4, 3), False, False),
    (TileConfig(128, 128, 64, 8, 4, 4), False, False),
    (TileConfig(128, 128, 64, 8, 4, 5), False, False),
    (TileConfig(128, 128, 64, 8, 4, 4), True, False),
]
SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (2048, 2048, 2048), (64, 8192, 8192), (1024, 1024, 1024)]

MARKS = {"ttgir": ["ttg.warp_specialize", "nvws."], "ptx": ["setmaxnreg", "cp.async.bulk.tensor", "wgmma.mma_async"]}


# combinations the wrappers refuse, launched directly to record what the compiler does with them
CODE_ONLY = [  # (config, warp_specialize, epilogue_subtile, host_descriptors, flatten)
    (TileConfig(128, 128, 64, 8, 4, 4), True, False, True, False),
    (TileConfig(128, 128, 64, 8, 4, 4), True, False, False, True),
    (TileConfig(128, 256, 64, 8, 8, 3), False, False, True, True),
    (TileConfig(128, 256, 64, 8, 8, 3), True, False, False, False),  # 8 warps: does it specialize?
]


def inspect_code(cfg, ws, sub=False, n=1024, host=False, flat=False):
    a = T.randn(n, n, dtype=torch.bfloat16)
    b = T.randn(n, n, dtype=torch.bfloat16)
    c = torch.empty(n, n, dtype=torch.bfloat16, device=a.device)
    k = launch(a, b, c, cfg, 132, ws, sub, host, flat)
    out = {}
    for ir, marks in MARKS.items():
        text = k.asm.get(ir, "") if hasattr(k, "asm") else ""
        for m in marks:
            out[f"{ir}:{m}"] = text.count(m)
    out["num_warps_total"] = getattr(k.metadata, "num_warps", None)
    return out


def _label(cfg, sub):
    return cfg.short() + (" sub" if sub else "")


def run(quick=False):
    recs = []
    shapes = SHAPES[:1] if quick else SHAPES
    for M, N, K in shapes:
        recs.append(matmul_case("tiled (autotuned)", matmul, M, N, K, config="autotuned", repeats=3))
        try:
            rec = matmul_case("tma tuned, host descriptors", lambda a, b, out: matmul_tma_tuned(
                a, b, out=out, host_descriptors=True), M, N, K, host_descriptors=True, repeats=3)
            rec["config"] = tuned_config(False, True)
        except Exception as exc:
            rec = dict(kernel="tma tuned, host descriptors", M=M, N=N, K=K,
                       error=error_text(exc))
        recs.append(rec)
        for ws in (False, True):
            name = "tma tuned" + (" + warp_specialize" if ws else "")
            try:
                rec = matmul_case(name, lambda a, b, out, ws=ws: matmul_tma_tuned(a, b, warp_specialize=ws,
                                                                                  out=out), M, N, K, warp_specialize=ws,
                                  repeats=3)
                rec["config"] = tuned_config(ws)
            except Exception as exc:
                rec = dict(kernel=name, M=M, N=N, K=K, config="tuned", warp_specialize=ws,
                           error=error_text(exc))
            recs.append(rec)
        for cfg, ws, sub in tqdm(VARIANTS, desc=f"tma {M}x{N}x{K}"):
            name = "tma persistent" + (" + warp_specialize" if ws else "")
            try:
                recs.append(matmul_case(name, lambda a, b, out, cfg=cfg, ws=ws, sub=sub: matmul_tma(
                    a, b, cfg, warp_specialize=ws, epilogue_subtile=sub, out=out), M, N, K,
                    config=_label(cfg, sub), warp_specialize=ws, epilogue_subtile=sub, **cfg.as_dict()))
            except Exception as exc:
                recs.append(dict(kernel=name, M=M, N=N, K=K, config=_label(cfg, sub), warp_specialize=ws,
                                 epilogue_subtile=sub, error=error_text(exc)))
    return recs


def run_code():
    recs = []
    for cfg, ws, sub, host, flat in [v + (False, False) for v in VARIANTS] + CODE_ONLY:
        fields = dict(config=_label(cfg, sub), warp_specialize=ws, host_descriptors=host, flatten=flat,
                      dtype="bfloat16")
        try:
            recs.append(dict(**fields, **inspect_code(cfg, ws, sub, host=host, flat=flat)))
        except Exception as exc:
            recs.append(dict(**fields, error=error_text(exc)))
    return recs


def run_all(quick=False):
    return {
        "ch04_tma": (lambda: run(quick), {"what": "persistent TMA kernel (device descriptors), stages and warp "
                                          "specialization, vs the ch02 kernel and torch.matmul, bf16"}),
        "ch04_code": (lambda: run_code(), {"what": "marks of TMA, wgmma and warp specialization in the compiled code"}),
    }


def summary(name, records):
    if name == "ch04_code":
        cols = ["config", "warp_specialize", "host_descriptors", "flatten"] + [f"{ir}:{m}" for ir, ms in MARKS.items() for m in ms] + ["error"]
        return f"{name}\n" + "\n".join(str({c: r.get(c) for c in cols}) for r in records)
    return f"{name}\n" + table(records, ["kernel", "config", "M", "tflops", "ratio", "ratio_graph", "error"])
