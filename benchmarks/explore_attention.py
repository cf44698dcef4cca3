"""Exploration on a GPU (not a chapter record): the attention kernel's tiles and Hopper steps against
cuDNN SDPA and the FA2 backend, bf16, CUDA-graph medians.

    python benchmarks/explore_attention.py [quick | bar | hopper]

``hopper``: the bar's shapes with the FA3-style variants (scores of the next tile issued before the
softmax of this one; causal query tiles longest first; Triton's warp specialization with 4 warps; the
hand-written Gluon FlashAttention-3 schedule of ``kernels.attention_gluon``, its tiles, stages and
ping-pong), fp16 beside bf16 at one shape.

Set SKIP_GLUON=1 to leave out the Gluon variants, ONLY=prefix,prefix to keep only the variants so named. Writes attention_sweep.json (attention_hopper.json for ``hopper``) into $OUT or /tmp.
"""
import dataclasses
import json
import os
import sys
import time

import kernels  # noqa: F401  (decides the world first)
import torch
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels import attention as A
from kernels import attention_gluon as G
from kernels import bench
from kernels.testing import rel_error

OUT = os.environ.get("OUT", "/tmp")
TILES = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 3), (64, 64, 4, 3), (128, 64, 8, 4), (128, 128, 8, 2)]
STEPS = {"pointer": (False, False), "tma": (True, False), "tma+ws": (True, True)}
WS_TILES = [(128, 64, 4, 3), (128, 128, 4, 2), (64, 64, 4, 3), (128, 64, 4, 2)]  # warp specialization: 4 warps


def sdpa(backend, q, k, v, causal):
    def run():
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                    enable_gqa=q.shape[1] != k.shape[1])
    return run


def main(quick=False, bar=False):
    global TILES, STEPS
    shapes = [(4, 16, 16, 4096, 128, False), (4, 16, 16, 4096, 128, True), (4, 16, 16, 4096, 64, False)]
    if bar:  # the chapter's bar shapes, pointer loads only
        shapes = [(4, 16, 16, 4096, 128, False), (4, 16, 16, 4096, 128, True), (1, 16, 16, 16384, 128, False),
                  (1, 16, 16, 16384, 128, True), (4, 16, 16, 4096, 64, False)]
        TILES = [(128, 128, 8, 3), (128, 64, 8, 3), (128, 128, 8, 4), (128, 64, 8, 4)]
        STEPS = {"pointer": (False, False)}
    elif not quick:
        shapes += [(4, 16, 16, 4096, 64, True), (1, 16, 16, 16384, 128, False), (1, 16, 16, 16384, 128, True),
                   (4, 32, 8, 4096, 128, True)]
    res = {"env": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__},
           "rows": []}
    for B, H, Hk, S, D, causal in shapes:
        torch.manual_seed(0)
        q = torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, Hk, S, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, Hk, S, D, device="cuda", dtype=torch.bfloat16)
        flops = A.attention_flops(B, H, S, S, D, causal)
        shape = f"B{B} H{H}/{Hk} S{S} D{D}" + (" causal" if causal else "")
        ref = sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal)()
        base_ms = bench.median_ms(sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal), graph=True)
        row = {"shape": shape, "cudnn_tflops": flops / base_ms / 1e9}
        try:
            fa_ms = bench.median_ms(sdpa(SDPBackend.FLASH_ATTENTION, q, k, v, causal), graph=True)
            row["fa2_x"] = base_ms / fa_ms
        except Exception as e:  # noqa: BLE001
            row["fa2_x"] = str(e)[:60]
        print(row, flush=True)
        res["rows"].append(row)
        for step, (tma, ws) in STEPS.items():
            for bm, bn, nw, st in (WS_TILES if ws else TILES):
                cfg = A.AttentionConfig(bm, bn, nw, st, tma, ws)
                r = {"shape": shape, "step": step, "config": cfg.label()}
                t0 = time.time()
                try:
                    o = A.attention(q, k, v, causal=causal, config=cfg)
                    r["err_vs_cudnn"] = rel_error(o, ref)
                    ms = bench.median_ms(lambda: A.attention(q, k, v, causal=causal, config=cfg), graph=True)
                    r.update(tflops=flops / ms / 1e9, x_cudnn=base_ms / ms)
                except Exception as e:  # noqa: BLE001
                    r["error"] = f"{type(e).__name__}: {str(e)[:100]}"
                r["s"] = round(time.time() - t0, 1)
                print(r, flush=True)
                res["rows"].append(r)
                json.dump(res, open(os.path.join(OUT, "attention_sweep.json"), "w"), indent=1)


def hopper():
    shapes = [(4, 16, 16, 4096, 128, False), (4, 16, 16, 4096, 128, True), (1, 16, 16, 16384, 128, False),
              (1, 16, 16, 16384, 128, True), (16, 16, 16, 1024, 128, False), (4, 16, 16, 4096, 64, False),
              (4, 32, 8, 4096, 128, True)]
    C = A.AttentionConfig
    variants = [("base", C(128, 128, 8, 3)), ("base 128x64", C(128, 64, 8, 3)),
                ("overlap 128x64", C(128, 64, 8, 3, overlap=True)), ("overlap 128x64 s2", C(128, 64, 8, 2, overlap=True)),
                ("overlap 128x64 s4", C(128, 64, 8, 4, overlap=True)), ("overlap 128x128 s2", C(128, 128, 8, 2, overlap=True)),
                ("overlap 128x64 tma", C(128, 64, 8, 3, True, overlap=True)),
                ("longest", C(128, 128, 8, 3, longest_first=True)),
                ("overlap+longest 128x64", C(128, 64, 8, 3, overlap=True, longest_first=True)),
                ("ws 128x128 s2", C(128, 128, 4, 2, True, True)), ("ws 128x64 s3", C(128, 64, 4, 3, True, True)),
                ("ws 128x128 s3", C(128, 128, 4, 3, True, True)),
                # kernels.attention_gluon: the hand-written FlashAttention-3 schedule
                ("gluon fa3 n128 s2", dict(block_n=128, stages=2)), ("gluon fa3 n128 s3", dict(block_n=128, stages=3)),
                ("gluon fa3 n64 s3", dict(block_n=64, stages=3)), ("gluon fa3 n64 s4", dict(block_n=64, stages=4)),
                ("gluon fa3 n128 s2 pingpong", dict(block_n=128, stages=2, pingpong=True)),
                ("gluon fa3 n64 s3 pingpong", dict(block_n=64, stages=3, pingpong=True)),
                ("gluon fa3 n128 s3 pingpong", dict(block_n=128, stages=3, pingpong=True))]
    only = [w.strip() for w in os.environ.get("ONLY", "").split(",") if w.strip()]
    if only:  # variants whose name starts with one of these
        variants = [(n, c) for n, c in variants if any(n.startswith(w) for w in only)]
    res = {"env": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__},
           "rows": []}
    A._ensure_allocator()
    for B, H, Hk, S, D, causal in shapes:
        for dtype in ((torch.bfloat16, torch.float16) if (S, D, causal) == (4096, 128, False) else (torch.bfloat16,)):
            torch.manual_seed(0)
            q = torch.randn(B, H, S, D, device="cuda", dtype=dtype)
            k = torch.randn(B, Hk, S, D, device="cuda", dtype=dtype)
            v = torch.randn(B, Hk, S, D, device="cuda", dtype=dtype)
            flops = A.attention_flops(B, H, S, S, D, causal)
            shape = f"B{B} H{H}/{Hk} S{S} D{D}" + (" causal" if causal else "") + f" {str(dtype)[6:]}"
            ref = sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal)()
            base_ms = bench.median_ms(sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal), graph=True)
            row = {"shape": shape, "cudnn_tflops": round(flops / base_ms / 1e9, 1)}
            print(row, flush=True)
            res["rows"].append(row)
            o = torch.empty_like(q)
            for name, cfg in variants:
                if (name.startswith("longest") or "+longest" in name) and not causal:
                    continue
                gluon = isinstance(cfg, dict)
                if gluon and os.environ.get("SKIP_GLUON"):
                    continue
                if not gluon and D == 64 and cfg.block_n == 128 and "128x128" not in name:
                    cfg = dataclasses.replace(cfg, block_n=64)
                if gluon and dtype != torch.bfloat16 and dtype != torch.float16:
                    continue
                r = {"shape": shape, "variant": name, "config": str(cfg) if gluon else cfg.label()}
                t0 = time.time()
                try:
                    if gluon:
                        G.attention_fa3(q, k, v, causal=causal, **cfg)  # checks once
                        fn = lambda cfg=cfg: G.launch(q, k, v, o, o, causal, None, store_lse=False, **cfg)  # noqa: E731
                    else:
                        fn = lambda cfg=cfg: A.launch(q, k, v, o, o, causal, None, "bhsd", cfg, False)  # noqa: E731
                    fn()
                    r["err_vs_cudnn"] = rel_error(o, ref)
                    ms = bench.median_ms(fn, graph=True)
                    r.update(tflops=round(flops / ms / 1e9, 1), x_cudnn=round(base_ms / ms, 3))
                except Exception as e:  # noqa: BLE001
                    r["error"] = f"{type(e).__name__}: {str(e)[:100]}"
                r["s"] = round(time.time() - t0, 1)
                print(r, flush=True)
                res["rows"].append(r)
                json.dump(res, open(os.path.join(OUT, "attention_hopper.json"), "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1:] == ["hopper"]:
        hopper()
    else:
        main(quick=sys.argv[1:] == ["quick"], bar=sys.argv[1:] == ["bar"])
