"""Compile the attention forward for sm_90 (no GPU needed) and say, for each variant, whether Triton
warp-specialized its key loop: read from the compiled TTGIR (``ttg.warp_specialize`` regions and their
``setmaxnreg`` register requests, ``kernels.inspect_code.summarize_ttgir``).

    python benchmarks/probe_attention_ws.py            # with the Triton installed
    pip install --target /tmp/t36 triton==3.6.0 && PYTHONPATH=/tmp/t36 python benchmarks/probe_attention_ws.py

Runs each compile in a fresh process (the GPU world's ``triton.jit``; a failing compile can abort its
process). Prints one line per variant.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = [  # (label, head dim, block_m, block_n, warps, stages, causal, tma, warp_specialize)
    ("TMA + warp specialization, 4 warps", 128, 128, 64, 4, 3, False, True, True),
    ("TMA + warp specialization, 4 warps, causal", 128, 128, 64, 4, 3, True, True, True),
    ("TMA + warp specialization, 4 warps, 128-key tiles, 2 stages", 128, 128, 128, 4, 2, False, True, True),
    ("TMA + warp specialization, 8 warps", 128, 128, 64, 8, 3, False, True, True),
    ("pointer loads + warp specialization, 4 warps", 128, 128, 64, 4, 3, False, False, True),
    ("TMA, no warp specialization", 128, 128, 64, 8, 3, False, True, False),
]

_ONE = r"""
import json, sys
import torch
torch.cuda.is_available = lambda: True  # compile as the GPU world does: no GPU is needed to compile
import kernels, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from kernels import attention as A, inspect_code
D, BM, BN, nw, st, causal, tma, ws = json.loads(sys.argv[1])
fn = A.attention_fwd_kernel
consts = dict(HEAD_DIM=D, BLOCK_M=BM, BLOCK_N=BN, CAUSAL=causal, STORE_LSE=True, UPCAST=False, TMA=tma,
              WARP_SPECIALIZE=ws, EVEN_N=True)
types = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "o_ptr": "*bf16", "lse_ptr": "*fp32", "qk_scale": "fp32"}
names = list(fn.arg_names)
sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in names}
attrs = {(names.index(a),): [["tt.divisibility", 16]] for a in names if a not in consts and (a.endswith("_ptr") or a.startswith("stride_"))}
k = triton.compile(ASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32),
                   options={"num_warps": nw, "num_stages": st})
info = inspect_code.summarize_ttgir(k.asm["ttgir"])
print(json.dumps({"specialized": info["specialized"], "registers": info["requested_registers"],
                  "shared_bytes": k.metadata.shared, "triton": triton.__version__}))
"""


def probe(args):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TTC_WORLD")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(REPO)) if p)
    proc = subprocess.run([sys.executable, "-c", _ONE, json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=600)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Assertion" in ln or "Pipeline failed" in ln), lines[-1] if lines else "?")
        return {"failed": why.strip()[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    for label, *args in VARIANTS:
        r = probe(args)
        if "failed" in r:
            print(f"{label:62s} compile FAILED: {r['failed']}", flush=True)
        else:
            what = f"specialized, registers {r['registers']}" if r["specialized"] else "not specialized"
            print(f"{label:62s} {what}; {r['shared_bytes']} bytes of shared memory (triton {r['triton']})", flush=True)


if __name__ == "__main__":
    main()
