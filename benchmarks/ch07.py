"""Chapter 07: FP4 weights for decode-sized matmuls on Hopper.

* ``ch07_w4a16``: the two W4A16 MXFP4 kernels (``ours``: the weight prepacked in fragment order,
  ``kernels.w4a16_fragments``; ``ours, row order``: the standard layout, ``kernels.w4a16``) over
  M = 1 ... 4096 at N = K = 8192 (CUDA-graph replay, rotating through six copies of the weight so
  that no call finds its weight in the 50 MB L2), beside
  bf16 cuBLAS on the dequantized weight and the 4-bit weight-only kernels users deploy: gemlite's
  A16W4 MXFP4 (Triton; carried to the GPU as a wheel) and PyTorch's tinygemm int4 path
  (``torch._weight_int4pack_mm``, groups of 32 with bf16 scales and zero points: the same 4 bits a
  weight, another format and 4.5 bits with its scales). Bytes per weight and achieved bandwidth.
* ``ch07_launch``: a decode-sized call timed from Python (the checked wrapper, the lean layer, a graph
  replay) and as GPU time only.
* ``ch07_read_floor``: a kernel that only reads the prepacked weight's bytes: the floor for any W4A16
  kernel at decode sizes.
* ``ch07_accuracy``: the error of FP4 weights (MXFP4, NVFP4, with and without a block Hadamard rotation)
  on Gaussian weights and weights with outlier channels.
* ``ch07_dot_scaled``: what Hopper does with Triton's block-scaled ``tl.dot_scaled`` (no FP4 tensor
  cores: the operands are converted to bf16 first), against bf16 cuBLAS.
"""
import torch
import triton
import triton.language as tl

from kernels import bench
from kernels.testing import rel_error
from kernels import w4a16 as W
from kernels import w4a16_fragments as F

from ._common import cpu_launch_us, error_text, table, tqdm

N = K = 8192
MS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def _us(fn):
    return bench.median_ms(fn, graph=True) * 1e3


def _gemlite(w_bf16):
    """gemlite's A16W4 MXFP4 layer of the same weight, or the reason there is none."""
    try:
        import gemlite
        from gemlite.helper import A16W4_MXFP
    except ImportError as e:
        return None, f"gemlite not installed ({e})"
    lin = torch.nn.Linear(K, N, bias=False, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        lin.weight.copy_(w_bf16)
    layer = A16W4_MXFP(device="cuda:0", dtype=torch.bfloat16).from_linear(lin, del_orig=False)
    return layer, f"gemlite {getattr(gemlite, '__version__', '?')} A16W4_MXFP"


def _tinygemm(w_bf16, group=32):
    """torch's int4 weight-only matmul (tinygemm): asymmetric int4 per group of ``group`` along K, bf16
    scales and zero points; returns ``(fn_of_x, dequantized weight)``."""
    wf = w_bf16.float().reshape(N, K // group, group)
    lo, hi = wf.amin(-1, keepdim=True), wf.amax(-1, keepdim=True)
    scale = ((hi - lo) / 15).clamp(min=1e-8)
    q = ((wf - lo) / scale).round().clamp(0, 15).to(torch.int32)
    deq = (q.float() * scale + lo).reshape(N, K)
    # tinygemm's convention: w = (q - 8) * scale + zero, with zero the value of code 8
    zero = lo + 8 * scale
    sz = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], dim=-1).transpose(0, 1).contiguous().bfloat16()
    q = q.reshape(N, K)
    packed = torch._convert_weight_to_int4pack((q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8), 8)
    return (lambda x: torch._weight_int4pack_mm(x, packed, group, sz)), deq


COPIES = 6  # weights per kernel, each timing rotating through them: 6 x 35.7 MB (4-bit) is 4x the 50 MB L2


def _us_rotating(fns):
    """Per-call GPU time, µs, of a graph calling each of ``fns`` (one per weight copy) once."""
    return bench.rotating_graph_ms(fns) * 1e3


def _w4a16_copy(seed):
    """One weight and every kernel's form of it: ``{name: (fn_of_x, dequantized weight for the
    reference)}`` and gemlite's label."""
    torch.manual_seed(seed)
    w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02
    q = W.quantize_mxfp4(w)
    wd = W.dequantize_mxfp4(q)
    layer = W.W4A16Linear(q)
    fast = F.PrepackedW4A16Linear(q, block_n=64, block_k=256, num_warps=4)
    # (call, the weight its error is measured against, what that weight is)
    ours = "the MXFP4 weight, dequantized"
    kernels_ = {"ours": (fast, wd, ours), "ours, row order": (layer, wd, ours),
                "cublas": (lambda x: torch.matmul(x, wd.T), wd, ours)}
    gl, gl_name = _gemlite(w)
    if gl is not None:  # gemlite quantizes the bf16 weight itself, with its own rounding
        kernels_["gemlite"] = (gl, w, "the bf16 weight before quantization (includes the FP4 error)")
    tg, tg_deq = _tinygemm(w)
    kernels_["tinygemm"] = (tg, tg_deq, "the int4 weight, dequantized")
    wbytes = {"ours": fast.pw.nbytes(), "ours, row order": q.nbytes(), "cublas": N * K * 2, "gemlite": q.nbytes(),
              "tinygemm": N * K // 2 + N * K // 32 * 4}
    return kernels_, wbytes, gl_name, fast, layer


def run_w4a16(quick=False):
    """Every kernel over M, each timed over ``COPIES`` weights in turn (one 4-bit weight, 35.7 MB, fits
    in the 50 MB L2: graph replays over a single copy would read part of it from the cache)."""
    ms = (1, 16, 256) if quick else MS
    copies = [_w4a16_copy(seed) for seed in tqdm(range(COPIES), desc="weights")]
    kern0, wbytes, gl_name, fast, layer = copies[0]
    recs = []
    for M in tqdm(ms, desc="W4A16 over M"):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        base_us = _us_rotating([lambda c=c: torch.matmul(x, c[0]["cublas"][1].T) for c in copies])
        for name, (fn0, wref, wref_what) in kern0.items():
            rec = dict(kernel=name, M=M, N=N, K=K, weight_bytes=wbytes[name], baseline="cuBLAS bf16 (torch.matmul)",
                       baseline_graph_us=base_us, weight_copies=COPIES, error_against=wref_what)
            if name == "ours":
                c = fast._buffers(M, x.device)[1]
                rec["config"] = (f"{fast.pw.block_n}x{fast.pw.block_k} w{fast.pw.num_warps} m{c.block_m} "
                                 f"split{c.split_k} s{c.num_stages}")
            if name == "ours, row order":
                rec["config"] = layer._buffers(M, x.device)[2].label()
            if name == "gemlite":
                rec["library"] = gl_name
            try:
                rec["rel_error"] = rel_error(fn0(x), x.double() @ wref.double().T)
                us = base_us if name == "cublas" else _us_rotating([lambda c=c: c[0][name][0](x) for c in copies])
                rec.update(graph_us=us, speedup_over_cublas=base_us / us, weight_tbps=wbytes[name] / us / 1e6,
                           tflops=2 * M * N * K / us / 1e6)
            except Exception as e:  # noqa: BLE001
                rec["error"] = error_text(e)
            recs.append(rec)
    recs[-1]["sm_mhz"] = bench.gpu_clocks().get("sm_mhz")
    return recs


def run_launch(quick=False):
    torch.manual_seed(1)
    qs = [W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02) for _ in range(COPIES)]
    wds = [W.dequantize_mxfp4(q) for q in qs[:2]]  # 2 x 134 MB already exceed L2
    layers = [F.PrepackedW4A16Linear(q, block_n=64, block_k=256, num_warps=4) for q in qs]
    wd, layer = wds[0], layers[0]
    recs = []
    for M in (1, 16):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        xs, replay = layer.graph(M)
        xs.copy_(x)
        ways = {"w4a16_prepacked (checked wrapper)": lambda: F.w4a16_prepacked(x, layer.pw),
                "PrepackedW4A16Linear (lean call)": lambda: layer(x),
                "PrepackedW4A16Linear graph replay": replay,
                "torch.matmul bf16": lambda: torch.matmul(x, wd.T)}
        gpu = {"PrepackedW4A16Linear": _us_rotating([lambda lay=lay: lay(x) for lay in layers]),
               "torch.matmul bf16": _us_rotating([lambda w=w: torch.matmul(x, w.T) for w in wds])}
        for name, fn in ways.items():
            recs.append(dict(kernel=name, M=M, N=N, K=K,
                             python_us=bench.median_ms(fn) * 1e3,  # do_bench: launched from Python
                             cpu_launch_us=cpu_launch_us(fn),
                             gpu_us=gpu["torch.matmul bf16" if name.startswith("torch") else "PrepackedW4A16Linear"]))
    return recs


def run_accuracy(quick=False):
    import numpy as np

    from kernels import rotation as R

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4096))
    recs = []
    cases = {"gaussian": rng.standard_normal((512, 4096)) * 0.02,
             "outlier channels": R.outlier_weights(512, 4096, channels=8, factor=50.0, seed=0)}
    for name, w in cases.items():
        for block in (32, 128):
            e = R.fp4_matmul_errors(x, w, rotation_block=block, seed=0)
            for fmt in ("mxfp4", "nvfp4"):
                for how in ("plain", "rotated"):
                    recs.append(dict(kernel=f"{fmt} {how}", weights=name, format=fmt, rotation=how,
                                     rotation_block=block, rel_error=e[fmt][how], bf16_rel_error=e["bf16"]))
    return recs


@triton.jit
def _xor(a, b):
    return a ^ b


@triton.jit
def _read_only_kernel(src, out, WORDS: tl.constexpr, STEPS: tl.constexpr, STAGES: tl.constexpr):
    # each program streams STEPS x WORDS int32 words (pipelined loads) and keeps only their xor
    base = src + tl.program_id(0).to(tl.int64) * STEPS * WORDS
    acc = tl.zeros((WORDS,), dtype=tl.int32)
    for i in tl.range(0, STEPS, num_stages=STAGES):
        acc ^= tl.load(base + i * WORDS + tl.arange(0, WORDS))
    tl.store(out + tl.program_id(0), tl.reduce(acc, 0, _xor))


def run_read_floor(quick=False):
    """What the memory gives a kernel that only reads: the prepacked 4-bit weight's bytes (35.7 MB with
    the scales) streamed by a Triton kernel that does nothing else, over ``COPIES`` weights in turn,
    a few ways of cutting the stream. The W4A16 kernel cannot beat the fastest of these."""
    torch.manual_seed(2)
    datas = []
    for _ in range(COPIES):
        q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
        pw = F.prepack_mxfp4(q, 64, 256, 4)
        datas.append(torch.cat((pw.data, pw.scales.reshape(-1))).view(torch.int32))
    words = datas[0].numel()
    out = torch.empty(1 << 16, dtype=torch.int32, device="cuda")
    recs = []
    cuts = ((2048, 8, 3, 4), (4096, 8, 3, 4), (1024, 16, 4, 4), (4096, 8, 4, 8)) if not quick else ((2048, 8, 3, 4),)
    for wsz, steps, stages, nw in cuts:
        programs = -(-words // (wsz * steps))
        # pad each copy to whole programs (the padding is read too and counted)
        padded = [torch.nn.functional.pad(d, (0, programs * wsz * steps - words)) for d in datas]
        fns = [lambda d=d: _read_only_kernel[(programs,)](d, out, wsz, steps, stages, num_warps=nw) for d in padded]
        fns[0]()
        us = _us_rotating(fns)
        nbytes = padded[0].numel() * 4
        recs.append(dict(kernel="read only", config=f"{wsz * 4 // 1024} KB x {steps} steps, {programs} programs, "
                         f"w{nw} s{stages}", bytes=nbytes, weight_bytes=words * 4, graph_us=us,
                         tbps=nbytes / us / 1e6, weight_copies=COPIES))
    recs[-1]["sm_mhz"] = bench.gpu_clocks().get("sm_mhz")
    return recs


@triton.jit
def _dot_scaled_kernel(a_ptr, a_s_ptr, b_ptr, b_s_ptr, c_ptr, M, N, K, FMT: tl.constexpr,
                       BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    # a: (M, K/2) e2m1 pairs (or (M, K) e4m3), b: (N, K/2) likewise; scales (M, K/32), (N, K/32) e8m0
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    PACK: tl.constexpr = 2 if FMT == "e2m1" else 1
    kp = tl.arange(0, BK // PACK)
    ks = tl.arange(0, BK // 32)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(a_ptr + rm[:, None] * (K // PACK) + (k0 // PACK + kp)[None, :])
        b = tl.load(b_ptr + rn[:, None] * (K // PACK) + (k0 // PACK + kp)[None, :])
        sa = tl.load(a_s_ptr + rm[:, None] * (K // 32) + (k0 // 32 + ks)[None, :])
        sb = tl.load(b_s_ptr + rn[:, None] * (K // 32) + (k0 // 32 + ks)[None, :])
        acc = tl.dot_scaled(a, sa, FMT, tl.trans(b), sb, FMT, acc)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc.to(tl.bfloat16))


def run_dot_scaled(quick=False):
    """``tl.dot_scaled`` on e2m1 and e4m3 operands with e8m0 scales per 32 at 4096³ (a plain tiled kernel,
    a few tile shapes), against bf16 cuBLAS: Hopper has no block-scaled tensor cores."""
    S = 4096
    recs = []
    xb = torch.randn(S, S, device="cuda", dtype=torch.bfloat16)
    base = _us(lambda: torch.matmul(xb, xb.T))
    for fmt in ("e2m1", "e4m3"):
        pack = 2 if fmt == "e2m1" else 1
        a = torch.randint(0, 255, (S, S // pack), dtype=torch.uint8, device="cuda")
        if fmt == "e4m3":
            a = torch.randn(S, S, device="cuda").to(torch.float8_e4m3fn)
        s = torch.full((S, S // 32), 127, dtype=torch.uint8, device="cuda")
        c = torch.empty(S, S, dtype=torch.bfloat16, device="cuda")
        for bm, bn, bk, nw, st in ((128, 128, 128, 8, 3), (128, 128, 64, 4, 3), (64, 128, 128, 4, 2)):
            rec = dict(kernel=f"tl.dot_scaled {fmt}", format=fmt, M=S, N=S, K=S, config=f"{bm}x{bn}x{bk} w{nw} s{st}",
                       baseline="cuBLAS bf16", baseline_graph_us=base)
            try:
                fn = lambda: _dot_scaled_kernel[(S // bm, S // bn)](a, s, a, s, c, S, S, S, FMT=fmt, BM=bm, BN=bn,  # noqa: E731
                                                                      BK=bk, num_warps=nw, num_stages=st)
                fn()
                us = _us(fn)
                rec.update(graph_us=us, tflops=2 * S**3 / us / 1e6, ratio_to_bf16=base / us)
            except Exception as e:  # noqa: BLE001
                rec["error"] = error_text(e)
            recs.append(rec)
    return recs


def run_all(quick=False):
    return {
        "ch07_w4a16": (lambda: run_w4a16(quick), {"what": "W4A16 MXFP4 over M at N=K=8192 vs bf16 cuBLAS, gemlite "
                                                  "A16W4 MXFP4, torch tinygemm int4; CUDA-graph times"}),
        "ch07_launch": (lambda: run_launch(quick), {"what": "a decode-sized call from Python vs its GPU time"}),
        "ch07_read_floor": (lambda: run_read_floor(quick), {"what": "a kernel that only reads the prepacked 4-bit "
                                                            "weight, rotating over copies: the memory's floor"}),
        "ch07_accuracy": (lambda: run_accuracy(quick), {"what": "FP4 weight error, MXFP4 vs NVFP4, Hadamard rotation"}),
        "ch07_dot_scaled": (lambda: run_dot_scaled(quick), {"what": "tl.dot_scaled on Hopper vs bf16 cuBLAS, 4096^3"}),
    }


def summary(name, records):
    cols = {"ch07_w4a16": ["kernel", "M", "graph_us", "speedup_over_cublas", "weight_tbps", "rel_error", "error"],
            "ch07_launch": ["kernel", "M", "python_us", "cpu_launch_us", "gpu_us"],
            "ch07_read_floor": ["kernel", "config", "bytes", "graph_us", "tbps"],
            "ch07_accuracy": ["kernel", "weights", "rotation_block", "rel_error", "bf16_rel_error"],
            "ch07_dot_scaled": ["kernel", "config", "graph_us", "tflops", "ratio_to_bf16", "error"]}[name]
    return f"{name}\n" + table(records, cols)
