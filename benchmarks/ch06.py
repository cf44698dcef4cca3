"""Chapter 06: the FP8 GEMM per scaling recipe against ``torch._scaled_mm`` with the same recipe and output
dtype, its error, and the cost of the dynamic quantization that feeds it.

Inputs are random normal activations ``x`` (M, K) and weights ``w`` (N, K), quantized by the course's
Triton kernels (``kernels.quantize``). Errors: against float64 of the dequantized inputs (what the
kernel computes, before its rounding) and against the bf16 matmul of the unquantized inputs (what
quantizing costs). Every FP8 kernel is timed beside the library in the same process
(``kernels.bench.compare``, interleaved repeats).
"""
import torch

from kernels import bench
from kernels import fp8_gemm as G
from kernels.quantize import quantize_blocks, quantize_rows, quantize_tensor
from kernels.testing import rel_error

from ._common import error_text, table, tqdm

SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (4096, 3072, 3072), (128, 8192, 8192)]


def torch_blockwise(qa, sa, qb, sb):
    """``torch._scaled_mm`` with 1x128 / 128x128 scales, if this torch and GPU have it: returns
    ``(fn, layout)`` or ``(None, why)``. The scale layouts torch accepts are tried in turn and the one
    whose result agrees with the float64 reference on a corner of the output is kept."""
    sa_cm = sa.t().contiguous().t()  # (M, K/128), column-major
    cands = {
        "scale_a (M, K/128) column-major, scale_b = (N/128, K/128) row-major .t()": (sa_cm, sb.contiguous().t()),
        "scale_a (M, K/128) column-major, scale_b = (N/128, K/128) column-major .t()": (sa_cm, sb.t().contiguous().t().t()),
        "scale_a (M, K/128) column-major, scale_b (N/128, K/128)": (sa_cm, sb),
    }
    ref = G.reference(qa[:256], qb[:256], sa[:256], sb[:2], "block")
    why = []
    for layout, (a_s, b_s) in cands.items():
        try:
            c = torch._scaled_mm(qa, qb.T, scale_a=a_s, scale_b=b_s, out_dtype=torch.bfloat16)
        except Exception as e:  # noqa: BLE001
            why.append(error_text(e))
            continue
        if rel_error(c[:256, :256], ref) < 1e-2:
            return (lambda: torch._scaled_mm(qa, qb.T, scale_a=a_s, scale_b=b_s, out_dtype=torch.bfloat16)), layout
        why.append(f"{layout}: wrong result")
    return None, "; ".join(why)


def _quantized(x, w, recipe):
    if recipe == "tensor":
        return (*quantize_tensor(x), *quantize_tensor(w))
    if recipe == "row":
        return (*quantize_rows(x), *quantize_rows(w))
    return (*quantize_blocks(x, (1, 128)), *quantize_blocks(w, (128, 128)))


CASES = [("row", torch.bfloat16), ("tensor", torch.bfloat16), ("tensor", torch.float8_e4m3fn), ("block", torch.bfloat16)]


def run_gemm(quick=False):
    shapes = SHAPES[:1] if quick else SHAPES
    recs = []
    for M, N, K in tqdm(shapes, desc="fp8 gemm"):
        x = torch.randn(M, K, device="cuda")
        w = torch.randn(N, K, device="cuda")
        xb, wb = x.bfloat16(), w.bfloat16()
        exact = x[:256].double() @ w[:256].double().T
        flops = bench.matmul_flops(M, N, K)
        for recipe, od in CASES:
            qa, sa, qb, sb = _quantized(x, w, recipe)
            odn = "e4m3" if od == torch.float8_e4m3fn else "bf16"
            fields = dict(M=M, N=N, K=K, recipe=recipe, out_dtype=odn)
            try:
                c = G.fp8_matmul_tuned(qa, qb, sa, sb, recipe, od)
                ref = G.reference(qa[:256], qb[:256], sa[:256], sb[:2] if recipe == "block" else sb[:256], recipe)
                fields["rel_error_vs_dequantized"] = rel_error(c[:256, :256], ref)
                fields["rel_error_vs_unquantized"] = rel_error(c[:256, :256], exact)
                fields["config"] = G.tuned_config(recipe)
                if recipe == "block":
                    lib, layout = torch_blockwise(qa, sa, qb, sb)
                    if lib is None:
                        baseline = "dequantize to bf16 + torch.matmul"
                        fields["torch_blockwise"] = layout
                        lib = lambda: torch.matmul(xb, wb.T)  # noqa: E731
                    else:
                        baseline = "torch._scaled_mm blockwise (1x128, 128x128)"
                        fields["torch_scale_layout"] = layout
                elif recipe == "row":
                    sbT = sb.reshape(1, N)
                    lib = lambda: torch._scaled_mm(qa, qb.T, scale_a=sa, scale_b=sbT, out_dtype=od)  # noqa: E731
                    baseline = "torch._scaled_mm row-wise"
                else:
                    sa0, sb0 = sa.reshape(()), sb.reshape(())
                    lib = lambda: torch._scaled_mm(qa, qb.T, scale_a=sa0, scale_b=sb0, out_dtype=od)  # noqa: E731
                    baseline = "torch._scaled_mm per-tensor"
                recs.append(bench.compare(
                    f"fp8_{recipe}", lambda: G.fp8_matmul_tuned(qa, qb, sa, sb, recipe, od, out=c), lib,
                    baseline=baseline, flops=flops, repeats=1 if quick else 3, **fields))
            except Exception as e:  # noqa: BLE001
                recs.append(dict(kernel=f"fp8_{recipe}", error=error_text(e), **fields))
        # the bf16 cuBLAS matmul of the same shape, for scale
        out = torch.matmul(xb, wb.T)
        err = rel_error(out[:256, :256], exact)  # before the timing: arguments are evaluated before the call
        recs.append(bench.compare("cublas_bf16", lambda: torch.matmul(xb, wb.T, out=out),
                                  lambda: torch.matmul(xb, wb.T, out=out), flops=flops, M=M, N=N, K=K,
                                  recipe="none", out_dtype="bf16",
                                  rel_error_vs_unquantized=err))
    return recs


def run_quantize(quick=False):
    """Dynamic quantization of bf16 activations (M, K) next to the FP8 GEMM it feeds, per recipe:
    quantize + FP8 GEMM against the bf16 GEMM on the unquantized inputs (weights quantized beforehand,
    as they are static)."""
    shapes = [(4096, 4096, 4096)] if quick else [(4096, 4096, 4096), (8192, 8192, 8192), (128, 8192, 8192),
                                                 (4096, 3072, 3072)]
    recs = []
    for M, N, K in tqdm(shapes, desc="quantize + gemm"):
        xb = torch.randn(M, K, device="cuda").bfloat16()
        w = torch.randn(N, K, device="cuda")
        wb = w.bfloat16()
        out = torch.empty(M, N, dtype=torch.bfloat16, device="cuda")
        bf16_ms = bench.median_ms(lambda: torch.matmul(xb, wb.T, out=out), graph=True)
        for recipe, quant in (("tensor", lambda: quantize_tensor(xb, check_finite=False)),
                              ("row", lambda: quantize_rows(xb, check_finite=False)),
                              ("block", lambda: quantize_blocks(xb, (1, 128), check_finite=False))):
            _, _, qb, sb = _quantized(w, w, recipe)  # the weight's scales, made once
            qa, sa = quant()

            def both():
                a, s = quant()
                return G.fp8_matmul_tuned(a, qb, s, sb, recipe, out=out)
            G.fp8_matmul_tuned(qa, qb, sa, sb, recipe, out=out)
            q_ms = bench.median_ms(quant, graph=True)
            g_ms = bench.median_ms(lambda: G.fp8_matmul_tuned(qa, qb, sa, sb, recipe, out=out), graph=True)
            t_ms = bench.median_ms(both, graph=True)
            moved = M * K * (2 * (2 if recipe != "block" else 1) + 1)  # reads of x (bf16) and the e4m3 write
            recs.append(dict(kernel=f"quantize_{recipe}", M=M, N=N, K=K, recipe=recipe, quantize_graph_ms=q_ms,
                             gemm_graph_ms=g_ms, total_graph_ms=t_ms, bf16_graph_ms=bf16_ms,
                             speedup_over_bf16=bf16_ms / t_ms, quantize_share=q_ms / t_ms,
                             quantize_bytes=moved, quantize_tbps=moved / q_ms / 1e9))
        recs[-1]["sm_mhz"] = bench.gpu_clocks().get("sm_mhz")
    return recs


def run_all(quick=False):
    return {
        "ch06_fp8_gemm": (lambda: run_gemm(quick), {"what": "FP8 e4m3 GEMM per scaling recipe vs torch._scaled_mm "
                                                    "(same recipe and output dtype), errors, bf16 cuBLAS"}),
        "ch06_quantize": (lambda: run_quantize(quick), {"what": "dynamic quantization of bf16 activations + FP8 GEMM "
                                                        "vs the bf16 GEMM, CUDA-graph times"}),
    }


def summary(name, records):
    if name == "ch06_quantize":
        return f"{name}\n" + table(records, ["kernel", "M", "N", "K", "quantize_graph_ms", "gemm_graph_ms",
                                             "total_graph_ms", "bf16_graph_ms", "speedup_over_bf16"])
    return f"{name}\n" + table(records, ["kernel", "recipe", "out_dtype", "M", "N", "K", "graph_tflops",
                                         "ratio", "ratio_graph", "rel_error_vs_dequantized", "error"])
