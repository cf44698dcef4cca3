"""The exercises the grader knows: name -> check function, points, notebook. No heavy imports here."""
from __future__ import annotations

from dataclasses import dataclass

# Set in the kernels that `python -m grader` starts: the notebook's own self-check cells then do nothing.
HEADLESS_ENV = "TTC_GRADER_HEADLESS"
# Cell tags: "self-check" cells are skipped by the headless grader (it grades the exercise itself);
# "solution-only" cells are skipped too, and dropped from the generated exercise notebooks.
SELF_CHECK_TAG = "self-check"
SOLUTION_ONLY_TAG = "solution-only"


@dataclass(frozen=True)
class Exercise:
    name: str
    points: int
    check: str  # function name in grader.checks
    notebook: str  # stem of the solution/exercise notebook that holds it
    time_limit_cpu: float  # seconds for the whole check, in Triton's interpreter
    time_limit_gpu: float  # seconds for the whole check, compiled on a GPU (includes compiling)
    what: str


EXERCISES = {
    e.name: e
    for e in [
        Exercise("naive_matmul", 10, "check_naive_matmul", "ch01_naive_matmul", 120, 120,
                 "Triton matmul with one program per output element"),
        Exercise("tiled_matmul", 10, "check_tiled_matmul", "ch02_tiled_matmul", 120, 180,
                 "tiled Triton matmul with tl.dot and masked ragged edges"),
        Exercise("grouped_tile", 5, "check_grouped_tile", "ch02_tiled_matmul", 30, 30,
                 "grouped (L2-friendly) tile order, plain Python"),
        Exercise("persistent_matmul", 10, "check_persistent_matmul", "ch03_persistent_matmul", 120, 180,
                 "persistent Triton matmul: num_programs programs loop over the tiles in grouped order"),
        Exercise("stream_k_pieces", 5, "check_stream_k_pieces", "ch03_persistent_matmul", 30, 30,
                 "stream-K schedule: the (tile, K steps) pieces of each program's even run of iterations, plain Python"),
        Exercise("splitk_reduce", 10, "check_splitk_reduce", "ch03_persistent_matmul", 90, 120,
                 "split-K reduction in Triton: add the float32 partial tiles in the fixed order s = 0, 1, ..."),
        Exercise("tma_matmul", 10, "check_tma_matmul", "ch04_tma_matmul", 120, 180,
                 "persistent Triton matmul that loads and stores its tiles through TMA tensor descriptors"),
        Exercise("pingpong_consumer", 5, "check_pingpong_consumer", "ch05_pingpong_protocol", 60, 60,
                 "a ping-pong consumer's barrier protocol (waits, arrivals, turns), plain Python"),
        Exercise("quantize_e4m3", 10, "check_quantize_e4m3", "ch06_fp8_quantize", 90, 120,
                 "per-row dynamic FP8 (e4m3) quantization in Triton: amax, scale, round to nearest even"),
        Exercise("scaled_matmul_e4m3", 10, "check_scaled_matmul_e4m3", "ch06_fp8_quantize", 90, 180,
                 "an FP8 matmul whose epilogue applies the per-row scales of both operands, output bf16"),
        Exercise("pack_e2m1", 5, "check_pack_e2m1", "ch07_fp4_pack", 30, 30,
                 "pack 4-bit e2m1 codes two per byte, both nibble orders, plain PyTorch"),
        Exercise("unpack_e2m1", 5, "check_unpack_e2m1", "ch07_fp4_pack", 30, 30,
                 "unpack bytes into two 4-bit e2m1 codes each, both nibble orders, plain PyTorch"),
        Exercise("dequantize_mxfp4", 10, "check_dequantize_mxfp4", "ch07_fp4_pack", 90, 120,
                 "a Triton kernel that dequantizes an MXFP4 weight (e2m1 codes, e8m0 scale per 32) to bf16"),
        Exercise("online_softmax_update", 5, "check_online_softmax_update", "ch08_attention", 30, 30,
                 "one step of the online softmax (running maximum, sum and output over a tile of scores), plain PyTorch"),
        Exercise("attention_forward", 10, "check_attention_forward", "ch08_attention", 120, 180,
                 "a fused attention forward kernel in Triton: online softmax over tiles of keys, causal mask, log-sum-exp"),
    ]
}

