"""Exploration run (GPU): correctness and first timings of the FP8 GEMM and the W4A16 kernel."""
import json
import os
import sys
import time
import traceback

import kernels  # noqa: F401  (decides the world first)
import torch
import triton
from triton.testing import do_bench, do_bench_cudagraph

OUT = os.environ.get("OUT", "/tmp")
which = sys.argv[1:] or ["conv", "w4", "peers", "fp8"]
res = {"env": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}}


def save():
    with open(os.path.join(OUT, "explore_" + "_".join(which) + ".json"), "w") as f:
        json.dump(res, f, indent=1)


def graph_us(fn):
    return do_bench_cudagraph(fn, rep=100) * 1e3


def section(name):
    def deco(f):
        t = time.time()
        try:
            res[name] = f()
        except Exception as e:  # noqa: BLE001
            res[name] = {"error": repr(e)[:2000], "tb": traceback.format_exc()[-3000:]}
        print(f"== {name}: {time.time() - t:.1f}s", json.dumps(res[name])[:3000], flush=True)
        save()
        return f
    return deco


torch.manual_seed(0)

from kernels import w4a16 as W  # noqa: E402
from kernels import fp8_gemm as G  # noqa: E402
from kernels.quantize import quantize_rows, quantize_tensor, quantize_blocks  # noqa: E402

if "conv" in which:
    @section("conversions")
    def _():
        out = {}
        codes = torch.arange(16, dtype=torch.uint8, device="cuda").repeat(2)
        packed = (codes[0::2] | (codes[1::2] << 4)).reshape(1, 16).repeat(4, 4).contiguous()
        sc = torch.tensor([[100, 120, 127, 140]], dtype=torch.uint8, device="cuda").repeat(4, 1).contiguous()
        w = W.MXFP4Weight(packed, sc)
        eye = torch.eye(128, device="cuda", dtype=torch.bfloat16)
        ref = W.dequantize_mxfp4(w, torch.float64)
        for bits in (False, True):
            y = torch.empty(128, 4, device="cuda", dtype=torch.bfloat16)
            W.launch(eye, w, y, W.W4A16Config(64, 128, 1, 4, 2, 16), bf16_bits=bits)
            out[f"exact_bf16_bits={bits}"] = bool(torch.equal(y.T.double(), ref))
        return out

if "w4" in which:
    N = K = 8192
    wf = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
    q = W.quantize_mxfp4(wf)
    wd = W.dequantize_mxfp4(q)

    @section("w4_modes")
    def _():
        out = {}
        cfgs = [W.W4A16Config(64, 256, 2, 4, 3, 16), W.W4A16Config(64, 128, 4, 4, 3, 16),
                W.W4A16Config(64, 256, 1, 4, 4, 16), W.W4A16Config(128, 128, 2, 4, 3, 16),
                W.W4A16Config(32, 256, 4, 4, 3, 16), W.W4A16Config(64, 512, 4, 4, 2, 16),
                W.W4A16Config(128, 256, 4, 8, 3, 16)]
        for M in (16, 1):
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            ref = x.double() @ wd.double().T
            out[f"M{M}_cublas_us"] = round(graph_us(lambda: torch.matmul(x, wd.T)), 2)
            rows = []
            for cfg in cfgs:
                for mode in (0, 1, 2):
                    for bits in (False, True):
                        def f():
                            if cfg.split_k == 1:
                                y = torch.empty((M, N), dtype=torch.bfloat16, device="cuda")
                                W.launch(x, q, y, cfg, bits, mode)
                                return y
                            y = torch.zeros((M, N), dtype=torch.float32, device="cuda")
                            W.launch(x, q, y, cfg, bits, mode)
                            return y.to(torch.bfloat16)
                        try:
                            y = f()
                            err = ((y.double() - ref).abs().max() / ref.abs().max()).item()
                            rows.append((cfg.label(), mode, bits, round(graph_us(f), 2), round(err, 5)))
                        except Exception as e:  # noqa: BLE001
                            rows.append((cfg.label(), mode, bits, None, repr(e)[:150]))
            rows.sort(key=lambda r: r[3] if r[3] is not None else 1e9)
            out[f"M{M}"] = rows
        return out

if "peers" in which:
    N = K = 8192

    @section("peers")
    def _():
        out = {}
        try:
            import gemlite
            from gemlite.helper import A16W4_MXFP
            out["gemlite"] = gemlite.__version__ if hasattr(gemlite, "__version__") else "?"
            lin = torch.nn.Linear(K, N, bias=False, dtype=torch.bfloat16, device="cuda")
            gl = A16W4_MXFP(device="cuda:0", dtype=torch.bfloat16).from_linear(lin, del_orig=False)
            for M in (1, 4, 16, 64, 256):
                x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                for _ in range(3):
                    gl(x)
                out[f"gemlite_mxfp4_M{M}_us"] = round(graph_us(lambda: gl(x)), 2)
        except Exception as e:  # noqa: BLE001
            out["gemlite_error"] = repr(e)[:1500] + traceback.format_exc()[-1500:]
        try:
            w = torch.randint(0, 16, (N, K), dtype=torch.int32, device="cuda")
            wu8 = (w[:, ::2] << 4 | w[:, 1::2]).to(torch.uint8)
            wp = torch._convert_weight_to_int4pack(wu8, 8)
            sz = torch.randn(K // 32, N, 2, device="cuda", dtype=torch.bfloat16)
            for M in (1, 4, 16, 64, 256):
                x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
                out[f"tinygemm_int4_g32_M{M}_us"] = round(graph_us(lambda: torch._weight_int4pack_mm(x, wp, 32, sz)), 2)
        except Exception as e:  # noqa: BLE001
            out["tinygemm_error"] = repr(e)[:1500]
        return out

if "fp8" in which:
    @section("fp8_correct")
    def _():
        out = {}
        M, N, K = 1000, 1536, 2048
        x = torch.randn(M, K, device="cuda")
        w = torch.randn(N, K, device="cuda")
        qa, sa = quantize_rows(x)
        qb, sb = quantize_rows(w)
        for rec in ("tensor", "row", "block"):
            if rec == "tensor":
                qa_, sa_ = quantize_tensor(x)
                qb_, sb_ = quantize_tensor(w)
            elif rec == "row":
                qa_, sa_, qb_, sb_ = qa, sa, qb, sb
            else:
                qa_, sa_ = quantize_blocks(x, (1, 128))
                qb_, sb_ = quantize_blocks(w, (128, 128))
            ref = G.reference(qa_, qb_, sa_, sb_, rec)
            for od in (torch.bfloat16, torch.float8_e4m3fn):
                for hd in (False, True):
                    try:
                        c = G.fp8_matmul(qa_, qb_, sa_, sb_, rec, od, host_descriptors=hd)
                        out[f"{rec}_{str(od)[6:]}_host{hd}"] = ((c.double() - ref).abs().max() / ref.abs().max()).item()
                    except Exception as e:  # noqa: BLE001
                        out[f"{rec}_{str(od)[6:]}_host{hd}"] = repr(e)[:300]
        # bits of the quantizer on GPU vs the interpreter-exact reference
        from kernels import fp8 as F
        import numpy as np
        xs = (torch.randn(64, 1000, device="cuda") * 10)
        q, s = quantize_rows(xs)
        a = xs.cpu().numpy().astype(np.float32)
        amax = np.abs(a).max(axis=1, keepdims=True)
        inv = (np.float32(448) / amax).astype(np.float32)
        rq = F.quantize((a * inv).astype(np.float32).astype(np.float64), "e4m3")
        out["quantize_rows_bits_equal"] = bool(np.array_equal(q.double().cpu().numpy(), rq))
        return out

    @section("fp8_speed")
    def _():
        out = {}
        for S in (4096, 8192):
            M = N = K = S
            flop = 2 * M * N * K
            x = torch.randn(M, K, device="cuda")
            w = torch.randn(N, K, device="cuda")
            qa, sa = quantize_rows(x)
            qb, sb = quantize_rows(w)
            sbT = sb.reshape(1, N)
            tf = lambda us: round(flop / us / 1e6, 1)  # noqa: E731
            r = {}
            t = graph_us(lambda: torch._scaled_mm(qa, qb.T, scale_a=sa, scale_b=sbT, out_dtype=torch.bfloat16))
            r["scaled_mm_row_bf16"] = tf(t)
            one = torch.ones((), device="cuda")
            t = graph_us(lambda: torch._scaled_mm(qa, qb.T, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
            r["scaled_mm_tensor_bf16"] = tf(t)
            try:
                t = graph_us(lambda: torch._scaled_mm(qa, qb.T, scale_a=one, scale_b=one, out_dtype=torch.float8_e4m3fn))
                r["scaled_mm_tensor_fp8"] = tf(t)
            except Exception as e:  # noqa: BLE001
                r["scaled_mm_tensor_fp8"] = repr(e)[:200]
            xb = x.bfloat16()
            wb = w.bfloat16()
            r["cublas_bf16"] = tf(graph_us(lambda: xb @ wb.T))
            one11 = one.reshape(1, 1)
            for rec, a_s, b_s in (("row", sa, sb), ("tensor", one11, one11)):
                for hd in (True, False):
                    for od in (torch.bfloat16, torch.float8_e4m3fn):
                        key = f"ours_{rec}_{str(od)[6:]}_host{hd}"
                        try:
                            G.fp8_matmul_tuned(qa, qb, a_s, b_s, rec, od, host_descriptors=hd)
                            r[key] = tf(graph_us(lambda: G.fp8_matmul_tuned(qa, qb, a_s, b_s, rec, od, host_descriptors=hd)))
                            r[key + "_cfg"] = G.tuned_config(rec, hd)
                        except Exception as e:  # noqa: BLE001
                            r[key] = repr(e)[:300]
            # blockwise
            qab, sab = quantize_blocks(x, (1, 128))
            qbb, sbb = quantize_blocks(w, (128, 128))
            for hd in (True, False):
                key = f"ours_block_bf16_host{hd}"
                try:
                    G.fp8_matmul_tuned(qab, qbb, sab, sbb, "block", host_descriptors=hd)
                    r[key] = tf(graph_us(lambda: G.fp8_matmul_tuned(qab, qbb, sab, sbb, "block", host_descriptors=hd)))
                    r[key + "_cfg"] = G.tuned_config("block", hd)
                except Exception as e:  # noqa: BLE001
                    r[key] = repr(e)[:300]
            # torch's blockwise: try _scaled_mm with 1x128 / 128x128 scales in a few layouts
            for name, a_s, b_s in (
                ("sa_colmajor_sbT", sab, sbb.t()),
                ("sa_contig_sbT", sab.contiguous(), sbb.t().contiguous()),
                ("sa_colmajor_sb", sab, sbb),
            ):
                try:
                    c = torch._scaled_mm(qab, qbb.T, scale_a=a_s, scale_b=b_s, out_dtype=torch.bfloat16)
                    ref = G.reference(qab[:256], qbb[:256], sab[:256], sbb[:2], "block")
                    err = ((c[:256, :256].double() - ref).abs().max() / ref.abs().max()).item()
                    r["scaled_mm_block_" + name] = (tf(graph_us(lambda: torch._scaled_mm(
                        qab, qbb.T, scale_a=a_s, scale_b=b_s, out_dtype=torch.bfloat16))), err)
                except Exception as e:  # noqa: BLE001
                    r["scaled_mm_block_" + name] = repr(e)[:300]
            # quantization cost (bf16 activations M x K)
            xq = x.bfloat16()
            r["q_rows_us"] = round(graph_us(lambda: quantize_rows(xq, check_finite=False)), 2)
            r["q_tensor_us"] = round(graph_us(lambda: quantize_tensor(xq, check_finite=False)), 2)
            r["q_block_us"] = round(graph_us(lambda: quantize_blocks(xq, (1, 128), check_finite=False)), 2)
            out[str(S)] = r
        return out
