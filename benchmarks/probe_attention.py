"""Compile the attention forward for sm_90 (no GPU needed) and read, for each variant, what Triton built:

* whether it warp-specialized the key loop (``ttg.warp_specialize`` regions in the TTGIR and their
  ``setmaxnreg`` register requests, ``kernels.inspect_code.summarize_ttgir``);
* registers per thread, spill stack and static shared memory (``cuobjdump -res-usage`` of the cubin)
  and the shared memory the launch needs (Triton's metadata; Hopper gives a block at most 232448 bytes);
* the order of the key loop's tensor-core instructions, their waits and its exponentials
  (``cuobjdump -sass``, ``kernels.inspect_code.loop_schedule``): whether the softmax's ``exp2`` runs
  while a ``wgmma`` is in flight.

The variants: ``kernels.attention``'s kernel with its options, and ``kernels.attention_gluon``'s
hand-written FlashAttention-3 schedule (Gluon; it runs only on a Hopper GPU, but compiles anywhere).

    python benchmarks/probe_attention.py            # with the Triton installed
    pip install --target /tmp/t36 triton==3.6.0 && PYTHONPATH=/tmp/t36 python benchmarks/probe_attention.py

Runs each compile in a fresh process (the GPU world's ``triton.jit``; a failing compile can abort its
process). Prints one block per variant. ``cuobjdump`` is the one in Triton's wheel.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = [  # label, head dim, causal, AttentionConfig fields
    ("pointer loads, 128x128 tiles (the default)", 128, False, dict(block_m=128, block_n=128, num_warps=8, num_stages=3)),
    ("pointer loads, 128x64 tiles", 128, False, dict(block_m=128, block_n=64, num_warps=8, num_stages=3)),
    ("overlap, 128x128 tiles", 128, False, dict(block_m=128, block_n=128, num_warps=8, num_stages=3, overlap=True)),
    ("overlap, 128x128 tiles, 2 stages", 128, False, dict(block_m=128, block_n=128, num_warps=8, num_stages=2, overlap=True)),
    ("overlap, 128x64 tiles", 128, False, dict(block_m=128, block_n=64, num_warps=8, num_stages=3, overlap=True)),
    ("overlap, 128x64 tiles, head dim 64", 64, False, dict(block_m=128, block_n=64, num_warps=8, num_stages=3, overlap=True)),
    ("TMA + warp specialization, 4 warps", 128, False, dict(block_m=128, block_n=64, num_warps=4, num_stages=3, tma=True, warp_specialize=True)),
    ("TMA + warp specialization, 4 warps, causal", 128, True, dict(block_m=128, block_n=64, num_warps=4, num_stages=3, tma=True, warp_specialize=True)),
    ("TMA + warp specialization, 4 warps, 128x128, 2 stages", 128, False, dict(block_m=128, block_n=128, num_warps=4, num_stages=2, tma=True, warp_specialize=True)),
    ("TMA + warp specialization, 8 warps", 128, False, dict(block_m=128, block_n=64, num_warps=8, num_stages=3, tma=True, warp_specialize=True)),
    ("TMA, no warp specialization", 128, False, dict(block_m=128, block_n=64, num_warps=8, num_stages=3, tma=True)),
    # kernels.attention_gluon: FlashAttention-3's schedule written by hand in Gluon
    ("Gluon FA3 schedule, 128-key tiles, 2 stages", 128, False, dict(gluon=True, block_n=128, stages=2)),
    ("Gluon FA3 schedule, 128-key tiles, 2 stages, ping-pong", 128, False, dict(gluon=True, block_n=128, stages=2, pingpong=True)),
    ("Gluon FA3 schedule, 128-key tiles, 2 stages, causal", 128, True, dict(gluon=True, block_n=128, stages=2)),
    ("Gluon FA3 schedule, 64-key tiles, 3 stages", 128, False, dict(gluon=True, block_n=64, stages=3)),
    ("Gluon FA3 schedule, head dim 64, 128-key tiles, 2 stages", 64, False, dict(gluon=True, block_n=128, stages=2)),
]

_ONE = r"""
import json, os, subprocess, sys, tempfile
import torch
torch.cuda.is_available = lambda: True  # compile as the GPU world does: no GPU is needed to compile
import kernels, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from kernels import attention as A, inspect_code
D, causal, fields = json.loads(sys.argv[1])
if fields.pop("gluon", False):  # kernels.attention_gluon, host-side TMA descriptors
    from triton.experimental.gluon._runtime import GluonASTSource
    from kernels import attention_gluon as G
    fn = G.attention_fa3_kernel
    def desc(rows):
        return f"tensordesc<bf16[{rows}, {D}],{G.shared_layout((rows, D), torch.bfloat16)!r}>"
    consts = dict(CAUSAL=causal, STORE_LSE=True, STAGES=fields["stages"], PINGPONG=fields.get("pingpong", False),
                  PRODUCER_REGS=40, CONSUMER_REGS=232)
    types = {"q_desc": desc(G.BLOCK_M // 2), "k_desc": desc(fields["block_n"]), "v_desc": desc(fields["block_n"]),
             "o_ptr": "*bf16", "lse_ptr": "*fp32", "qk_scale": "fp32"}
    names = list(fn.arg_names)
    sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in names}
    attrs = {(names.index(a),): [["tt.divisibility", 16]] for a in ("o_ptr", "lse_ptr", "stride_os")}
    k = triton.compile(GluonASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
else:
    cfg = A.AttentionConfig(**fields)
    fn = A.attention_fwd_kernel
    consts = dict(HEAD_DIM=D, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=causal, STORE_LSE=True, UPCAST=False,
                  TMA=cfg.tma, WARP_SPECIALIZE=cfg.warp_specialize, EVEN_N=True, OVERLAP=cfg.overlap,
                  LONGEST_FIRST=cfg.longest_first and causal, LONG=False)
    types = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "o_ptr": "*bf16", "lse_ptr": "*fp32", "qk_scale": "fp32"}
    names = list(fn.arg_names)
    sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in names}
    attrs = {(names.index(a),): [["tt.divisibility", 16]] for a in names if a not in consts and (a.endswith("_ptr") or a.startswith("stride_"))}
    k = triton.compile(ASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages})
info = inspect_code.summarize_ttgir(k.asm["ttgir"])
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
    f.write(k.asm["cubin"]); f.flush()
    res = inspect_code.resource_usage(subprocess.run([cuobjdump, "-res-usage", f.name], capture_output=True,
                                                     text=True, check=True).stdout)
    sass = subprocess.run([cuobjdump, "-sass", f.name], capture_output=True, text=True, check=True).stdout
print(json.dumps({"specialized": info["specialized"], "requested_registers": info["requested_registers"],
                  "launch_shared_bytes": k.metadata.shared, **res,
                  "loop": inspect_code.format_schedule(inspect_code.loop_schedule(sass)), "triton": triton.__version__}))
"""

HOPPER_SMEM_PER_BLOCK = 232448  # bytes of shared memory one block may use on sm_90 (CUDA programming guide)


def probe(D, causal, fields):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TTC_WORLD")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(REPO)) if p)
    proc = subprocess.run([sys.executable, "-c", _ONE, json.dumps([D, causal, fields])], capture_output=True,
                          text=True, env=env, timeout=600)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Assertion" in ln or "Pipeline failed" in ln), lines[-1] if lines else "?")
        return {"failed": why.strip()[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    for label, D, causal, fields in VARIANTS:
        r = probe(D, causal, fields)
        if "failed" in r:
            print(f"{label}\n    compile FAILED: {r['failed']}", flush=True)
            continue
        ws = (f"warp-specialized, registers requested {r['requested_registers']}" if r["specialized"]
              else "not warp-specialized")
        fits = "fits" if r["launch_shared_bytes"] <= HOPPER_SMEM_PER_BLOCK else "does NOT fit"
        print(f"{label}\n    {ws}; {r['registers']} registers/thread, spill stack {r['stack']} bytes; "
              f"{r['launch_shared_bytes']} bytes of shared memory ({fits} in {HOPPER_SMEM_PER_BLOCK}); "
              f"triton {r['triton']}\n    main loop: {r['loop']}", flush=True)


if __name__ == "__main__":
    main()
