"""Exploration (GPU): the inline-PTX dequantization (MODE 3) against MODE 0 and cuBLAS."""
import json, os
import kernels  # noqa: F401
import torch
from triton.testing import do_bench_cudagraph
from kernels import w4a16 as W

torch.manual_seed(0)
N = K = 8192
q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
wd = W.dequantize_mxfp4(q)
res = {}
# exactness of MODE 3 on every code pair and a few scales
codes = torch.arange(256, dtype=torch.uint8, device="cuda").reshape(1, 256).repeat(8, 1)
sc = torch.tensor([100, 120, 127, 140, 1, 2, 160, 126], dtype=torch.uint8, device="cuda").reshape(8, 1).repeat(1, 16)
ex = W.MXFP4Weight(codes.contiguous(), sc.contiguous())
eye = torch.eye(512, device="cuda", dtype=torch.bfloat16)
y = torch.empty(512, 8, device="cuda", dtype=torch.bfloat16)
W.launch(eye, ex, y, W.W4A16Config(64, 128, 1, 4, 2, 16), False, 3)
ref = W.dequantize_mxfp4(ex, torch.float64)
res["mode3_exact"] = bool(torch.equal(y.T.double(), ref.bfloat16().double()))
res["mode3_mismatches"] = int((y.T.double() != ref.bfloat16().double()).sum())
for M in (1, 16):
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    r = x.double() @ wd.double().T
    res[f"M{M}_cublas"] = do_bench_cudagraph(lambda: x @ wd.T, rep=100) * 1e3
    for cfg in (W.W4A16Config(64, 128, 4, 4, 3, 16), W.W4A16Config(64, 256, 2, 4, 3, 16),
                W.W4A16Config(128, 128, 4, 4, 3, 16), W.W4A16Config(64, 256, 4, 4, 4, 16)):
        for mode in (0, 3):
            def f():
                yy = torch.zeros((M, N), dtype=torch.float32, device="cuda")
                W.launch(x, q, yy, cfg, mode == 0, mode)
                return yy.to(torch.bfloat16)
            try:
                e = ((f().double() - r).abs().max() / r.abs().max()).item()
                res[f"M{M} {cfg.label()} mode{mode}"] = (round(do_bench_cudagraph(f, rep=100) * 1e3, 2), e)
            except Exception as exc:  # noqa: BLE001
                res[f"M{M} {cfg.label()} mode{mode}"] = repr(exc)[:300]
print(json.dumps(res, indent=0))
json.dump(res, open(os.path.join(os.environ.get("OUT", "/tmp"), "w4_asm.json"), "w"), indent=1)
