"""Where every number in the chapters' prose comes from (checked by tests/test_claims.py).

One line per claim: ``Claim(notebook, text, [sources], rounding=...)``. ``text`` is a literal piece of
the notebook's markdown (any whitespace matches a line break); the measurement-like numbers in it are
matched in order to the sources. The rules (what counts as a number, how rounding works, the source
kinds) are in ``benchmarks/claims.py``. Every number is registered against the H100's records
(``results/h100/``).

To change a number in a chapter: change the prose, then the claim here, and run
``python -m pytest -q tests/test_claims.py``. A number that fails says what the record holds.

Importing this module reads nothing and imports nothing of the course's kernels: sources are
evaluated only by ``benchmarks.claims.check``.
"""
import re

from benchmarks.claims import Calc, Claim, Fact, LogNumber, Record, Spec, matches, one_of

GPU = "h200"


def rec(name, field="ratio_graph", agg=None, scale=1.0, **where):
    """A field of ``results/h100/<name>.json`` in the records matching ``where``."""
    return Record(name, GPU, where, field, agg, scale)


def rec100(name, field="ratio_graph", agg=None, scale=1.0, **where):
    """A field of ``results/h100/<name>.json``: the H100's record, where the prose compares the GPUs."""
    return Record(name, "h100", where, field, agg, scale)


def calc(expr, why):
    return Calc(expr, why=why)


# Shared sources
SMS = Spec(GPU, "sms")
BANDWIDTH = Spec(GPU, "bandwidth_tbs")
RIDGE = Spec(GPU, "ridge[bf16]")
BF16_PEAK = Spec(GPU, "peak_tflops[bf16]")
FP32_PEAK = Spec(GPU, "peak_tflops[fp32]")
L2_MB = calc("widgets.H100_L2 / 2**20", "the H100's L2 cache in MB (kernels.widgets.H100_L2)")
HBM_GB = Fact(80, "NVIDIA H100 datasheet (SXM5): 80 GB of HBM3; the GPU of the H100 records, 'NVIDIA H100 80GB HBM3'")
HBM_GB_H200 = Fact(141, "NVIDIA H200 datasheet (SXM): 141 GB of HBM3e")
REGS_PER_SM = Fact(65536, "NVIDIA H100 Tensor Core GPU Architecture whitepaper: 64K 32-bit registers per SM")
COPY_H200 = Record("ch00_ceilings", "h200", {"kind": "copy", "graph": False}, "tbs")
INTENSITY_4096 = calc("matmul_intensity(4096, 4096, 4096)", "flop per byte of a bf16 4096³ matmul")
NAIVE_UNDER = rec("ch01_naive", "ratio", agg="max", scale=100, M=one_of(1024, 2048))  # % of cuBLAS, both dtypes

# Record filters used more than once
PP, COOP, HOST = "pingpong tuned (gluon)", "tma tuned + warp_specialize (cooperative)", "tma tuned, host descriptors"
T09_HOST, OURS_HOST = "tutorial 09: TMA persistent (host descriptors)", "course ch04: TMA tuned, host descriptors"
BIG = "128x256x64 w8 s3"
LAUNCH_LOG = "results/logs/launch_overhead_2026-11-24.log"
W4_L2_LOG = "results/logs/h200_2026-12-01_w4a16_l2.json"  # benchmarks/explore_w4a16_l2.py: one weight vs six


def tma(config, M, kernel="tma persistent", field="ratio_graph", **kw):
    return rec("ch04_tma", field, kernel=kernel, config=config, M=M, **kw)


def waves(M, N=4096):
    return calc(f"record('ch03_persistent', 'tiles', gpu='{GPU}', M={M}, N={N}, kernel='tiled', config='{BIG}')"
                f" / datasheet('{GPU}').sms", f"tiles of 128×256 at {M}×{N} over the SMs")


ROW_EXTRA = ("record('ch02_order', 'ms', gpu='{gpu}', M=16384, order='row') - "
             "min(record('ch02_order', 'ms', gpu='{gpu}', agg='all', M=16384, order='grouped', group_m=one_of(4, 8, 16, 32)))")


def row_extra(gpu):
    return calc(ROW_EXTRA.format(gpu=gpu), f"row-major's extra time over the best grouped order at 16384³ on the {gpu}, ms")


def control_gap(gpu, agg):
    return calc(f"{agg}(abs(record('ch02_order', 'ratio', gpu='{gpu}', M=m, order='row') - record('ch02_order', 'ratio', "
                f"gpu='{gpu}', M=m, order='grouped', group_m=1)) for m in (8192, 16384))",
                f"{agg} gap between row-major and group_m=1 (the same order) at 8192³ and 16384³ on the {gpu}")


def order_gain(agg):
    return calc(f"{agg}(record('ch02_order', 'tflops', gpu='{GPU}', M=8192, order='grouped', group_m=g)"
                f" / record('ch02_order', 'tflops', gpu='{GPU}', M=8192, order='row') - 1 for g in (8, 16, 32)) * 100",
                f"{agg} gain of grouped order (group_m 8, 16, 32) over row-major at 8192³, %")


CLAIMS = [
    # ------------------------------------------------------------------------------- 00 · the GPU
    Claim("00_gpu_in_one_page", "both are **132 streaming multiprocessors (SMs)**", [SMS]),
    Claim("00_gpu_in_one_page", "the H100 has 80 GB of HBM3, the\nH200 141 GB of HBM3e", [HBM_GB, HBM_GB_H200]),
    Claim("00_gpu_in_one_page", "64 K × 32-bit per SM (256 KB)",
          [calc("64 * 1024 * 4 / 1024", "64 K registers of 4 bytes, in KB")]),
    Claim("00_gpu_in_one_page", "256 KB per SM, up to 227 KB shared per program",
          [Fact(256, "NVIDIA H100 Tensor Core GPU Architecture whitepaper: 256 KB of combined L1/shared memory per SM"),
           calc("widgets.H100_SMEM_PER_BLOCK / 1024", "kernels.widgets.H100_SMEM_PER_BLOCK, KB")]),
    Claim("00_gpu_in_one_page", "| 50 MB, shared by all SMs", [L2_MB]),
    Claim("00_gpu_in_one_page", "H100: 3.35 TB/s; H200: 4.8 TB/s (datasheets; 4.26 TB/s measured copying on the H200)",
          [Spec("h100", "bandwidth_tbs"), Spec("h200", "bandwidth_tbs"), COPY_H200]),
    Claim("00_gpu_in_one_page", "989 TFLOP/s dense bf16 (datasheet)", [BF16_PEAK]),
    Claim("00_gpu_in_one_page", "67 TFLOP/s fp32", [FP32_PEAK]),
    Claim("00_gpu_in_one_page", "about 206 flop/byte for bf16 on an H200, and 295 flop/byte\non an H100",
          [Spec("h200", "ridge[bf16]"), Spec("h100", "ridge[bf16]")]),
    Claim("00_gpu_in_one_page", "(1365 flop/byte at\n4096³)", [INTENSITY_4096]),
    Claim("00_gpu_in_one_page", "cuBLAS reached\n  778 TFLOP/s bf16 at 4096³ and a device-to-device copy 4.26 TB/s",
          [rec("ch00_ceilings", "tflops", kind="cublas", M=4096), COPY_H200]),
    Claim("00_gpu_in_one_page", "at up to 1980 MHz", [calc("env('ch00_ceilings', 'h200')['clocks']['sm_max_mhz']",
                                                          "the H200's maximum SM clock, nvidia-smi, in the record")]),
    Claim("00_gpu_in_one_page", "above, 1530 MHz", [rec("ch00_ceilings", "sm_mhz", kind="cublas", M=4096)]),
    Claim("00_gpu_in_one_page", "product ran at 673 TFLOP/s", [rec("ch00_ceilings", "graph_tflops", kind="cublas", M=4096)]),
    Claim("00_gpu_in_one_page", "well under 1% of cuBLAS", [NAIVE_UNDER], rounding="upper"),

    # ------------------------------------------------------------------------------- 01 · three loops
    Claim("01_three_loop_matmul", "**well under 1 % of cuBLAS**", [NAIVE_UNDER], rounding="upper"),
    Claim("01_three_loop_matmul", "a matmul does 1365 flops per byte it must move, far right of the ridge point "
          "(about 206 flop/B on an H200, 295 flop/B on an H100)", [INTENSITY_4096, RIDGE, Spec("h100", "ridge[bf16]")]),
    Claim("01_three_loop_matmul", "**0.21–0.25 TFLOP/s whatever the size and whatever the dtype**, while cuBLAS climbs to "
          "~630 TFLOP/s in bf16 on the H200. At 2048³ that is 0.04 % of the library",
          [rec("ch01_naive", "tflops", agg="min"), rec("ch01_naive", "tflops", agg="max"),
           rec("ch01_naive", "baseline_tflops", dtype="bf16", M=2048),
           rec("ch01_naive", "ratio", scale=100, dtype="bf16", M=2048)],
          rounding=[None, None, 10, None]),
    Claim("01_three_loop_matmul", "at 2048³, about **1366 times** the minimum traffic",
          [calc("naive_matmul_bytes(2048, 2048, 2048) / matmul_min_bytes(2048, 2048, 2048)",
                "bytes the naive kernel asks for over the fewest a 2048³ bf16 matmul must move")]),
    Claim("01_three_loop_matmul", "fp32 lanes (67 TFLOP/s at best)", [FP32_PEAK]),
    Claim("01_three_loop_matmul", "perfect use of the H200's 4.8 TB/s would give under 2.5 TFLOP/s",
          [BANDWIDTH, calc("matmul_flops(2048, 2048, 2048) / naive_matmul_bytes(2048, 2048, 2048) * datasheet('h200').bandwidth_tbs",
                           "the naive kernel's intensity (flop per byte it asks for) times the datasheet bandwidth")],
          rounding=[None, "upper"]),

    # ------------------------------------------------------------------------------- 02 · tiled
    Claim("02_tiled_matmul", "A 16×16 tile does only 8 flops per byte", [calc("tile_intensity(16, 16)", "bf16 16×16 tile")]),
    Claim("02_tiled_matmul", "A 128×256 tile does 85 flop/B", [calc("tile_intensity(128, 256)", "bf16 128×256 tile")]),
    Claim("02_tiled_matmul", "left of the H200's DRAM ridge (206 flop/byte)", [RIDGE]),
    Claim("02_tiled_matmul", "pass about 410 TFLOP/s",
          [calc("tile_intensity(128, 256) * datasheet('h200').bandwidth_tbs", "a 128×256 tile's intensity × DRAM bandwidth")],
          rounding=5),
    Claim("02_tiled_matmul", "**Tiny tiles lose by 20×.** 16×16×16 reaches about 0.05× cuBLAS and 32×32×32 about 0.16×",
          [calc("1 / record('ch02_sweep', 'ratio', gpu='h200', config='16x16x16 w1 s1')", "cuBLAS over the 16×16×16 tile"),
           rec("ch02_sweep", "ratio", config="16x16x16 w1 s1"), rec("ch02_sweep", "ratio", config="32x32x32 w4 s2")],
          rounding=[5, None, None]),
    Claim("02_tiled_matmul", "climbs from about 0.51× to 0.97×",
          [rec("ch02_sweep", "ratio", config="64x64x64 w4 s4"), rec("ch02_sweep", "ratio", config=BIG)]),
    Claim("02_tiled_matmul", "0.97× with 3 stages, 1.00× with 4",
          [rec("ch02_sweep", "ratio", config=BIG), rec("ch02_sweep", "ratio", config="128x256x64 w8 s4")]),
    Claim("02_tiled_matmul", "256×256 drops to about 0.19×. Its fp32 accumulator alone is 256\n  registers",
          [rec("ch02_sweep", "ratio", config="256x256x64 w8 s2"),
           calc("widgets.tile_size_report(256, 256, 64, num_warps=8)['acc_regs']", "fp32 accumulator registers per thread")]),
    Claim("02_tiled_matmul", "A 64×256 float32 accumulator is 16384 values over 128\n  threads: 128 registers a thread",
          [rec("ch02_code", "acc_registers", config=BIG)]),
    Claim("02_tiled_matmul", "128×256 with 8 warps gives each\n  warpgroup one such half, 208 registers in all",
          [rec("ch02_code", "n_regs", config=BIG)]),
    Claim("02_tiled_matmul", "a warpgroup holds 128 rows, 256 registers of accumulator alone",
          [calc("2 * record('ch02_code', 'acc_registers', gpu='h200', config='128x256x64 w4 s3')",
                "two 64-row halves of m64n256 accumulator registers per thread")]),
    Claim("02_tiled_matmul", "compiler spills 190–200 registers to local memory",
          [rec("ch02_code", "n_spills", "min", n_spills=lambda v: v > 0),
           rec("ch02_code", "n_spills", "max", n_spills=lambda v: v > 0)]),
    Claim("02_tiled_matmul", "An SM has 65,536 registers and 228 KiB of shared memory",
          [REGS_PER_SM, calc("course('inspect_code').SM90_SHARED_BYTES / 1024", "Hopper's shared memory per SM, KiB")]),
    Claim("02_tiled_matmul", "208 registers for each of 256 threads (53,248 registers) and 144 KiB",
          [rec("ch02_code", "n_regs", config=BIG),
           calc("record('ch02_code', 'n_regs', gpu='h200', config='128x256x64 w8 s3') * 8 * 32",
                "registers per thread times 8 warps of 32 threads"),
           rec("ch02_code", "shared_bytes", scale=1 / 1024, config=BIG)]),
    Claim("02_tiled_matmul", "a thread can have at most 255 registers", [Fact(255, "PTX ISA / CUDA: at most 255 registers per thread")]),
    Claim("02_tiled_matmul", "it uses 255\n  registers per thread and *spills* 190 registers",
          [rec("ch02_sweep", "n_regs", config="256x256x64 w8 s2"), rec("ch02_sweep", "n_spills", config="256x256x64 w8 s2")]),
    Claim("02_tiled_matmul", "128×256 needs 208 registers and spills none", [rec("ch02_sweep", "n_regs", config=BIG)]),
    Claim("02_tiled_matmul", "about 0.55×, 0.73×, 0.87×",
          [rec("ch02_sweep", "ratio", config=f"128x128x64 w4 s{s}") for s in (1, 2, 4)]),
    Claim("02_tiled_matmul", "64 column-panels of 8 MiB each: far more than the 50 MB of L2",
          [calc("16384 * 256 * 2 / 2**20", "a 16384×256 bf16 panel, MiB"), L2_MB]),
    Claim("02_tiled_matmul", "against the 50 MB L2 of an H100 or H200", [L2_MB]),
    Claim("02_tiled_matmul", "`A` and `B` are 32 MiB each", [calc("4096 * 4096 * 2 / 2**20", "a 4096² bf16 matrix, MiB")]),
    Claim("02_tiled_matmul", "every variant measures 676–697 TFLOP/s, and the\n  repeats of a single variant spread by up to 22 TFLOP/s",
          [rec("ch02_order", "tflops", agg="min", M=4096), rec("ch02_order", "tflops", agg="max", M=4096),
           calc("max(max(r) - min(r) for r in record('ch02_order', 'repeats_tflops', agg='all', gpu='h200', M=4096, "
                "order=one_of('row', 'grouped')) and [record('ch02_order', 'repeats_tflops', agg='all', gpu='h200', M=4096, "
                "group_m=g) for g in (1, 4, 8, 16, 32)])", "largest max−min of one variant's repeats at 4096³")]),
    Claim("02_tiled_matmul", "row-major (about 650 TFLOP/s, median of three) trails grouped order with `group_m` of 8 "
          "to 32 (about 670–680 TFLOP/s) by 4–5 %",
          [rec("ch02_order", "tflops", M=8192, order="row"),
           rec("ch02_order", "tflops", agg="min", M=8192, order="grouped", group_m=one_of(8, 16, 32)),
           rec("ch02_order", "tflops", agg="max", M=8192, order="grouped", group_m=one_of(8, 16, 32)),
           order_gain("min"), order_gain("max")],
          rounding=[10, 10, 10, None, None]),
    Claim("02_tiled_matmul", "row-major drops to 0.89× cuBLAS, while grouped order with `group_m` ≥ 4 holds at\n  0.97–1.00×",
          [rec("ch02_order", "ratio", M=16384, order="row"),
           rec("ch02_order", "ratio", agg="min", M=16384, order="grouped", group_m=one_of(4, 8, 16, 32)),
           rec("ch02_order", "ratio", agg="max", M=16384, order="grouped", group_m=one_of(4, 8, 16, 32))]),
    Claim("02_tiled_matmul", "8 MiB each, and L2 holds 50 MB", [calc("16384 * 256 * 2 / 2**20", "a 16384×256 bf16 panel, MiB"), L2_MB]),
    Claim("02_tiled_matmul", "On the H100 the same\n  row-major kernel took 22.8 ms at 16384³, 10.1 ms more than the best grouped order (0.61× cuBLAS,\n"
          "  against 0.90–1.00× grouped); on the H200 it took 14.3 ms, only 1.5 ms more",
          [rec100("ch02_order", "ms", M=16384, order="row"), row_extra("h100"),
           rec100("ch02_order", "ratio", M=16384, order="row"),
           rec100("ch02_order", "ratio", agg="min", M=16384, order="grouped", group_m=one_of(4, 8, 16, 32)),
           rec100("ch02_order", "ratio", agg="max", M=16384, order="grouped", group_m=one_of(4, 8, 16, 32)),
           rec("ch02_order", "ms", M=16384, order="row"), row_extra("h200")]),
    Claim("02_tiled_matmul", "would shrink the extra 10.1 ms to about 7 ms, not\n  to 1.5 ms",
          [row_extra("h100"), calc(f"({ROW_EXTRA.format(gpu='h100')}) * datasheet('h100').bandwidth_tbs / "
                                   f"datasheet('h200').bandwidth_tbs", "the H100's extra time scaled by the bandwidth ratio, ms"),
           row_extra("h200")]),
    Claim("02_tiled_matmul", "row-major order reads 67.7 GB from DRAM, 63 times the 1.07 GB that",
          [rec("ch02_counters", "dram_read_bytes", scale=1e-9, M=16384, order="row"),
           rec("ch02_counters", "dram_read_x_min", M=16384, order="row"),
           rec("ch02_counters", "min_read_bytes", scale=1e-9, M=16384, order="row")]),
    Claim("02_tiled_matmul", "with an L2 hit rate of 24 %; grouped order reads 14.4 GB and hits 63 %",
          [rec("ch02_counters", "l2_hit_pct", M=16384, order="row"),
           rec("ch02_counters", "dram_read_bytes", scale=1e-9, M=16384, order="grouped"),
           rec("ch02_counters", "l2_hit_pct", M=16384, order="grouped")]),
    Claim("02_tiled_matmul", "67.7 GB at 4.8 TB/s take at least 14.1 ms",
          [rec("ch02_counters", "dram_read_bytes", scale=1e-9, M=16384, order="row"), Spec("h200", "bandwidth_tbs"),
           calc("record('ch02_counters', 'dram_read_bytes', gpu='h200', M=16384, order='row') / "
                "(datasheet('h200').bandwidth_tbs * 1e12) * 1e3", "row-major's DRAM bytes at the H200's bandwidth, ms")]),
    Claim("02_tiled_matmul", "at the H100's 3.35 TB/s at least 20.2 ms, most of its 22.8 ms",
          [Spec("h100", "bandwidth_tbs"),
           calc("record('ch02_counters', 'dram_read_bytes', gpu='h200', M=16384, order='row') / "
                "(datasheet('h100').bandwidth_tbs * 1e12) * 1e3",
                "the H200-counted row-major bytes at the H100's bandwidth, ms"),
           rec100("ch02_order", "ms", M=16384, order="row")]),
    Claim("02_tiled_matmul", "its L2 is the same 50 MB", [L2_MB]),
    Claim("02_tiled_matmul", "both orders read 2.5–2.8 times the minimum",
          [rec("ch02_counters", "dram_read_x_min", "min", M=4096), rec("ch02_counters", "dram_read_x_min", "max", M=4096)]),
    Claim("02_tiled_matmul", "On the H200 the two measure the same (within\n  0.01); on the H100 they differed by 0.03–0.04",
          [control_gap("h200", "max"), control_gap("h100", "min"), control_gap("h100", "max")], rounding=["upper", None, None]),
    Claim("02_tiled_matmul", "1.4 times faster (4.8 against 3.35 TB/s)",
          [calc("datasheet('h200').bandwidth_tbs / datasheet('h100').bandwidth_tbs", "H200 over H100 DRAM bandwidth"),
           Spec("h200", "bandwidth_tbs"), Spec("h100", "bandwidth_tbs")]),
    Claim("02_tiled_matmul", "is 0.96–0.99× the library's",
          [rec("ch02_tiled", agg="min", M=one_of(4096, 8192)), rec("ch02_tiled", agg="max", M=one_of(4096, 8192))]),
    Claim("02_tiled_matmul", "the repeats of each lie within\n  0.011 of each other",
          [calc("max(max(r) - min(r) for r in [record('ch02_tiled', 'repeats_ratio_graph', agg='all', gpu='h200', M=m) "
                "for m in (4096, 8192)])", "largest spread of the three repeats' CUDA-graph ratios")],
          rounding="upper"),
    Claim("02_tiled_matmul", "reaches 0.96× and 0.97× at 4096³ and 8192³, where ours reaches 0.97× and 0.98× in\n  that run",
          [rec("peer_tutorial03", kernel="tutorial 03: tiled matmul", M=m) for m in (4096, 8192)]
          + [rec("peer_tutorial03", kernel="course ch02: tiled (autotuned)", M=m) for m in (4096, 8192)]),
    Claim("02_tiled_matmul", "cuBLAS goes from\n  181 TFLOP/s on the H100 to 247 TFLOP/s on the H200, with the faster memory; our kernel only from\n"
          "  174 TFLOP/s to 207 TFLOP/s, so it falls from 0.96× to 0.84× of cuBLAS. It moves about 2.6 TB/s",
          [rec100("ch02_tiled", "baseline_graph_tflops", M=64), rec("ch02_tiled", "baseline_graph_tflops", M=64),
           rec100("ch02_tiled", "graph_tflops", M=64), rec("ch02_tiled", "graph_tflops", M=64),
           rec100("ch02_tiled", M=64), rec("ch02_tiled", M=64), rec("ch02_tiled", "gbps", M=64, scale=1e-3)]),
    Claim("02_tiled_matmul", "where a plain copy reaches\n  4.26 TB/s", [COPY_H200]),
    Claim("02_tiled_matmul", "(1.00× at 4096³, 192 KiB of shared memory)",
          [rec("ch02_sweep", "ratio", config="128x256x64 w8 s4"),
           rec("ch02_sweep", "shared_bytes", config="128x256x64 w8 s4", scale=1 / 1024)]),
    Claim("02_tiled_matmul", "the GPU work takes 5.9 µs for\n  our kernel and 5.3 µs for cuBLAS",
          [rec("ch02_tiled", "graph_ms", M=1024, scale=1000), rec("ch02_tiled", "baseline_graph_ms", M=1024, scale=1000)]),
    Claim("02_tiled_matmul", "costs\n  67–77 µs of CPU time",
          [rec("launch_overhead", "cpu_launch_us", agg=a, n=one_of(512, 1024), kernel=matches("^tiled")) for a in ("min", "max")]),
    Claim("02_tiled_matmul", "against about 11 µs for `torch.matmul`",
          [rec("launch_overhead", "cpu_launch_us", agg="median", n=one_of(512, 1024), kernel="torch.matmul")], rounding=1),
    Claim("02_tiled_matmul", "on the H100's machine 60–90 µs against about 19 µs",
          [LogNumber(LAUNCH_LOG, r"^\s*(?:512|1024)\s+tiled\b.*?([\d.]+)\s*$", agg="min"),
           LogNumber(LAUNCH_LOG, r"^\s*(?:512|1024)\s+tiled\b.*?([\d.]+)\s*$", agg="max"),
           LogNumber(LAUNCH_LOG, r"^\s*(?:512|1024)\s+torch\.matmul\b.*?([\d.]+)\s*$", agg="median")],
          rounding=[10, 10, None]),

    # ------------------------------------------------------------------------------- 03 · persistent
    Claim("03_persistent_matmul", "An H100 or H200 has 132 SMs. A program of our 128×256 tiled kernel uses about 200 KB of shared memory",
          [SMS, calc("(3 * (128 + 256) * 64 * 2 + 128 * 256 * 2) / 1024",
                     "3 stages of 128×256×64 bf16 tiles plus the bf16 result tile rearranged before the store "
                     "(the account of kernels.tiled.default_config), KB")],
          rounding=[None, "5%"]),
    Claim("03_persistent_matmul", "in which 120 SMs wait. The work is 12.5 % more",
          [calc("2 * datasheet('h100').sms - 144", "SMs idle in the second wave of 144 tiles"),
           calc("(1152 / 1024 - 1) * 100", "work grows with M: 1152×4096 against 1024×4096, %")]),
    Claim("03_persistent_matmul", "pretends the GPU has 4 SMs", [calc("course('persistent').INTERPRETER_SMS", "kernels.persistent")]),
    Claim("03_persistent_matmul", "with 144 tiles on 132 SMs", [SMS]),
    Claim("03_persistent_matmul", "it reached only 0.48× cuBLAS at 4096³",
          [rec100("peer_tutorial09", kernel="tutorial 09: persistent, pointer loads", M=4096)]),
    Claim("03_persistent_matmul", "Ours keeps chapter 02's 0.96×",
          [rec("ch03_persistent", kernel="persistent", M=4096, N=4096, config=BIG)]),
    Claim("03_persistent_matmul", "At 1152×4096×4096 (1.09 waves) both our kernels drop to about 450 TFLOP/s while cuBLAS "
          "keeps about 650 TFLOP/s; at 2176×4096×4096 (2.06 waves) they reach about 515 TFLOP/s and cuBLAS about 620 TFLOP/s",
          [waves(1152), rec("ch03_persistent", "graph_tflops", agg="all", kernel=one_of("tiled", "persistent"), M=1152, N=4096, config=BIG),
           rec("ch03_persistent", "baseline_graph_tflops", agg="median", M=1152, N=4096, config=BIG),
           waves(2176), rec("ch03_persistent", "graph_tflops", agg="all", kernel=one_of("tiled", "persistent"), M=2176, N=4096, config=BIG),
           rec("ch03_persistent", "baseline_graph_tflops", agg="median", M=2176, N=4096, config=BIG)],
          rounding=[None, 10, 10, None, 5, 10]),
    Claim("03_persistent_matmul", "occupy 32 of 132 SMs (0.24 waves)", [SMS, waves(1024, 1024)]),
    Claim("03_persistent_matmul", "Triton's tutorial reached 0.97–1.02× cuBLAS (at 4096³ and 8192³)",
          [rec100("peer_tutorial09", agg=a, kernel=matches(r"^tutorial 09: (descriptor|TMA)"), M=one_of(4096, 8192))
           for a in ("min", "max")]),

    # ------------------------------------------------------------------------------- 04 · TMA
    Claim("04_tma_pipelining", "**2 stages: 0.44×. 3: 0.78×. 4: 0.93×. 5: 0.92×.**",
          [tma(f"128x128x64 w4 s{s}", 4096) for s in (2, 3, 4, 5)]),
    Claim("04_tma_pipelining", "A 128×256×64 stage is 48 KiB of bf16; four of them plus the output tile need 256 KiB",
          [calc("(128 + 256) * 64 * 2 / 1024", "one stage of 128×64 A and 64×256 B bf16 tiles, KiB"),
           calc("float(record('ch04_tma', 'error', kernel='tma persistent', config='128x256x64 w8 s4', M=4096)"
                ".split('Required: ')[1].split(',')[0]) / 1024", "shared memory Triton asked for (its OutOfResources), KiB")]),
    Claim("04_tma_pipelining", "Three stages fit: 1.00× cuBLAS at 4096³, 1.01× at 8192³",
          [tma(BIG, 4096), tma(BIG, 8192)]),
    Claim("04_tma_pipelining", "four stages of 128×256×64 fit: 0.98× at 4096³ and 1.01× at 8192³",
          [tma("128x256x64 w8 s4 sub", 4096), tma("128x256x64 w8 s4 sub", 8192)]),
    Claim("04_tma_pipelining", "(128 tiles of 128×256 for 132 SMs)", [SMS]),
    Claim("04_tma_pipelining", "recovers M = 64 with 64×128 tiles (0.83×) but not 1024³ (0.66× against the tiled kernel's 0.91×)",
          [rec("ch04_tma", kernel="tma tuned", M=64), rec("ch04_tma", kernel="tma tuned", M=1024),
           rec("ch04_tma", kernel="tiled (autotuned)", M=1024)]),
    Claim("04_tma_pipelining", "(5.4 µs on cuBLAS) cannot hide: 8.1 µs with device descriptors,\n  5.6 µs with host ones",
          [rec("ch04_tma", "baseline_graph_ms", scale=1000, kernel="tma tuned", M=1024),
           rec("ch04_tma", "graph_ms", scale=1000, kernel="tma tuned", M=1024),
           rec("ch04_tma", "graph_ms", scale=1000, kernel=HOST, M=1024)]),
    Claim("04_tma_pipelining", "**0.99×, 1.01×, 1.01×, 0.95×, 0.88×** at 4096³, 8192³, 2048³, 1024³ and M = 64",
          [rec("ch04_tma", kernel=HOST, M=m) for m in (4096, 8192, 2048, 1024, 64)]),
    Claim("04_tma_pipelining", "(0.97× at 4096³ and at 8192³, against\n1.00× and 1.01×)",
          [rec("ch04_tma", agg="all", kernel="tma persistent + warp_specialize", config="128x256x64 w4 s3",
               M=one_of(4096, 8192))] + [tma(BIG, m) for m in (4096, 8192)]),
    Claim("04_tma_pipelining", "(on the H100 it gained\n  0.01 at 4096³",
          [calc("record('ch04_tma', 'ratio_graph', gpu='h100', kernel='tma persistent', config='128x256x64 w8 s4 sub', M=4096)"
                " - record('ch04_tma', 'ratio_graph', gpu='h100', kernel='tma persistent', config='128x256x64 w8 s3', M=4096)",
                "the H100's 4-stage subtiled ratio minus its 3-stage ratio at 4096³")]),

    # ------------------------------------------------------------------------------- 05 · warp specialization
    Claim("05_warp_specialization", "a 128×256 fp32 accumulator is 128 KB", [calc("128 * 256 * 4 / 1024", "KB")]),
    Claim("05_warp_specialization", "runs at\n  0.97× cuBLAS, the plain TMA pipeline at 1.00× and 1.01×",
          [rec("ch04_tma", agg="all", kernel="tma persistent + warp_specialize", config="128x256x64 w4 s3",
               M=one_of(4096, 8192))] + [tma(BIG, m) for m in (4096, 8192)]),
    Claim("05_warp_specialization", "(0.87× and 0.90× against 0.93× and\n  0.95×)",
          [tma("128x128x64 w4 s4", m, kernel="tma persistent + warp_specialize") for m in (4096, 8192)]
          + [tma("128x128x64 w4 s4", m) for m in (4096, 8192)]),
    Claim("05_warp_specialization", "At M = 64 (128×128 tiles) 0.65× against\n  0.58×; at 2048³, 0.83× against 0.91× "
          "with 128×128 tiles but 0.94× against 0.92× with 128×256",
          [tma("128x128x64 w4 s4", 64, kernel="tma persistent + warp_specialize"), tma("128x128x64 w4 s4", 64),
           tma("128x128x64 w4 s4", 2048, kernel="tma persistent + warp_specialize"), tma("128x128x64 w4 s4", 2048),
           tma("128x256x64 w4 s3", 2048, kernel="tma persistent + warp_specialize"), tma(BIG, 2048)]),
    Claim("05_warp_specialization", "went the other way (0.84× against 0.80×)",
          [rec100("ch04_tma", kernel=k, config="128x128x64 w4 s4", M=2048)
           for k in ("tma persistent + warp_specialize", "tma persistent")]),
    Claim("05_warp_specialization", "the *producer* (1 warp, 40 registers)",
          [rec("ch05_code", "requested_registers", agg="min", config="128x128x64 g8 s5")]),
    Claim("05_warp_specialization", "(4 more, 232 registers)",
          [rec("ch05_code", "requested_registers", agg="max", config="128x128x64 g8 s5")]),
    Claim("05_warp_specialization", "drops to 40 registers per thread",
          [rec("ch05_code", "requested_registers", agg="min", config="128x128x64 g8 s5")]),
    Claim("05_warp_specialization", "a 128×128 fp32 accumulator (128 registers)",
          [calc("128 * 128 // (4 * 32)", "fp32 accumulator registers per thread of one warpgroup")]),
    # the register budget (values recorded on the H200 with Triton 3.6: ch05_code)
    Claim("05_warp_specialization", "An SM has 65,536 registers of 32 bits", [REGS_PER_SM]),
    Claim("05_warp_specialization", "65,536 / 384 is 170.7",
          [calc("65536 / (record('ch05_code', 'num_warps_total', gpu='h200', schedule='pingpong', "
                             "config='128x128x64 g8 s4') * 32)", "registers per thread if 384 threads shared them evenly")]),
    Claim("05_warp_specialization", "384 × 168 = 64,512 registers",
          [calc("record('ch05_code', 'num_warps_total', gpu='h200', schedule='pingpong', config='128x128x64 g8 s4') * 32 "
                "* record('ch05_code', 'maxnreg', gpu='h200', schedule='pingpong', config='128x128x64 g8 s4')",
                "threads × .maxnreg, from the compiled kernel's record")]),
    Claim("05_warp_specialization", "2 × 128 × 232 + 128 × 40 = 64,512 registers",
          [calc("2 * 128 * max(record('ch05_code', 'requested_registers', agg='all', gpu='h200', schedule='pingpong', "
                "config='128x128x64 g8 s4')) + 128 * min(record('ch05_code', 'requested_registers', agg='all', gpu='h200', "
                "schedule='pingpong', config='128x128x64 g8 s4'))", "two consumer warpgroups and the producer's, registers")]),
    Claim("05_warp_specialization", "keeps 40 registers", [rec("ch05_code", "requested_registers", agg="min",
                                                            schedule="pingpong", config="128x128x64 g8 s4")]),
    Claim("05_warp_specialization", "rises to 256 registers",
          [calc("max(n for op, n in record('ch05_code', 'setmaxnreg', agg='all', gpu='h200', schedule='pingpong', "
                "config='128x128x64 g8 s4'))", "the largest setmaxnreg value in the compiled kernel (inc 256)")]),
    Claim("05_warp_specialization", "63,488 registers, inside the 64,512 registers",
          [calc("128 * 256 + 256 * 120", "the default warpgroup at 256 and two waiting warpgroups at 120, registers"),
           calc("record('ch05_code', 'num_warps_total', gpu='h200', schedule='pingpong', config='128x128x64 g8 s4') * 32 "
                "* record('ch05_code', 'maxnreg', gpu='h200', schedule='pingpong', config='128x128x64 g8 s4')",
                "threads × .maxnreg")]),
    # cooperative against ping-pong (ch05_pingpong)
    Claim("05_warp_specialization", "0.97× at 4096³ and 8192³, against 0.97×\n  and 0.98×",
          [rec("ch05_pingpong", agg="all", kernel=PP, M=one_of(4096, 8192)),
           rec("ch05_pingpong", kernel=COOP, M=4096), rec("ch05_pingpong", kernel=COOP, M=8192)]),
    Claim("05_warp_specialization", "would need 256 registers per\n  thread",
          [calc("128 * 256 // (4 * 32)", "fp32 accumulator registers per thread of one warpgroup")]),
    Claim("05_warp_specialization", "(64 flop/B against 85 flop/B)",
          [calc("tile_intensity(128, 128)", "bf16 128×128 tile"), calc("tile_intensity(128, 256)", "bf16 128×256 tile")]),
    Claim("05_warp_specialization", "2048³ 1.00× against 0.93×, 1024³ 0.88× against\n  0.52×, and the ragged "
          "1152×4096×4096 0.82× against 0.74×",
          [rec("ch05_pingpong", kernel=k, M=m) for m in (2048, 1024, 1152) for k in (PP, COOP)]),
    Claim("05_warp_specialization", "**It loses at M = 64** (0.67× against 0.74×)", [rec("ch05_pingpong", kernel=k, M=64) for k in (PP, COOP)]),
    Claim("05_warp_specialization", "where ping-pong's 0.82× beats its 0.80×",
          [rec("ch05_pingpong", kernel=PP, M=1152), rec("ch05_pingpong", kernel=HOST, M=1152)]),
    Claim("05_warp_specialization", "(0.98×,\n  1.02×, 1.01×, 0.88×, 0.96× at 4096³, 8192³, 2048³, M = 64, 1024³)",
          [rec("ch05_pingpong", kernel=HOST, M=m) for m in (4096, 8192, 2048, 64, 1024)]),
    # the schedule alone (ch05_schedules): Gluon ping-pong and Gluon cooperative, everything else equal
    Claim("05_warp_specialization", "they are within 0.012 of each other (ping-pong 0.97× against 0.96× at\n  4096³)",
          [calc("max(abs(record('ch05_schedules', 'ratio_graph', gpu='h200', schedule='pingpong', config='128x128x64 g8 s4', "
                "M=m, N=n) - record('ch05_schedules', 'ratio_graph', gpu='h200', schedule='cooperative', config='128x128x64 g8 s4', "
                "M=m, N=n)) for m, n in ((4096, 4096), (8192, 8192), (1152, 4096)))", "largest gap between the schedules "
                "where both consumers have tiles"),
           rec("ch05_schedules", schedule="pingpong", config="128x128x64 g8 s4", M=4096),
           rec("ch05_schedules", schedule="cooperative", config="128x128x64 g8 s4", M=4096)],
          rounding=["upper", None, None]),
    Claim("05_warp_specialization", "leads by 0.01 to 0.06",
          [calc(f"{agg}(record('ch05_schedules', 'ratio_graph', gpu='h200', schedule='cooperative', config='128x128x64 g8 s4', "
                "M=m, N=n) - record('ch05_schedules', 'ratio_graph', gpu='h200', schedule='pingpong', config='128x128x64 g8 s4', "
                "M=m, N=n) for m, n in ((2048, 2048), (1024, 1024), (64, 8192)))",
                f"cooperative's {agg} lead where ping-pong's second consumer idles") for agg in ("min", "max")]),
    Claim("05_warp_specialization", "Measured like for like, 0.64× against 0.66×",
          [rec("ch05_schedules", schedule=s, config="128x128x64 g8 s4", M=1024) for s in ("pingpong", "cooperative")]),
    Claim("05_warp_specialization", "The 0.88× against 0.52× above",
          [rec("ch05_pingpong", kernel=PP, M=1024), rec("ch05_pingpong", kernel=COOP, M=1024)]),
    Claim("05_warp_specialization", "do not fit in 227 KiB", [calc("widgets.H100_SMEM_PER_BLOCK / 1024", "KiB a program may use")]),
    Claim("05_warp_specialization", "cooperative 0.98× and 1.00× at 4096³ and 8192³, ping-pong 0.79× and 0.80×",
          [rec("ch05_schedules", schedule="cooperative", config="256x128x64 g8 s3", M=m) for m in (4096, 8192)]
          + [rec("ch05_schedules", schedule="pingpong", config="128x128x64 g8 s3", M=m) for m in (4096, 8192)]),
    Claim("05_warp_specialization", "with four stages the same ping-pong kernel measured 0.97× above",
          [rec("ch05_schedules", agg="all", schedule="pingpong", config="128x128x64 g8 s4", M=one_of(4096, 8192))]),
    Claim("05_warp_specialization", "measured 0.02 to 0.04 above\n  cooperative 128×128 with 4 stages (0.98× against 0.96× at "
          "4096³, 1.00× against 0.96× at 8192³)",
          [calc(f"{agg}(record('ch05_schedules', 'ratio_graph', gpu='h200', schedule='cooperative', config='256x128x64 g8 s3', M=m)"
                " - record('ch05_schedules', 'ratio_graph', gpu='h200', schedule='cooperative', config='128x128x64 g8 s4', M=m)"
                " for m in (4096, 8192))", f"the taller cooperative tile's {agg} gain at 4096³ and 8192³") for agg in ("min", "max")]
          + [rec("ch05_schedules", schedule="cooperative", config=c, M=m)
             for m in (4096, 8192) for c in ("256x128x64 g8 s3", "128x128x64 g8 s4")]),
    Claim("05_warp_specialization", "leaves 32 tiles for 132 SMs (0.40× against 0.65×)",
          [SMS,
           rec("ch05_schedules", schedule="cooperative", config="256x128x64 g8 s3", M=1024),
           rec("ch05_schedules", schedule="pingpong", config="128x128x64 g8 s3", M=1024)]),
    Claim("05_warp_specialization", "1.01× and 1.03× cuBLAS at 4096³ and 8192³",
          [rec("ch05_schedules", schedule="cooperative", config="128x256x64 g8 s3", M=m) for m in (4096, 8192)]),
    # beside Triton's tutorial 09 (the H100's record)
    Claim("05_warp_specialization", "its fastest at 4096³** (1.02×, CUDA graph) and\n  level with its device-descriptor "
          "kernel at 8192³ (1.01× both)",
          [rec100("peer_tutorial09", kernel=T09_HOST, M=4096),
           rec100("peer_tutorial09", agg="all", kernel=one_of(T09_HOST, "tutorial 09: descriptor persistent"), M=8192)]),
    Claim("05_warp_specialization", "1.00× against 1.01× at 8192³ and 0.99× against 0.98× at 2048³; at 4096³ our 1.13× is "
          "a single outlying reading (its do_bench, 1.03× against the tutorial's 1.04×, and the chapter 05 record's 0.98×",
          [rec100("peer_tutorial09", kernel=k, M=m) for m in (8192, 2048) for k in (OURS_HOST, T09_HOST)]
          + [rec100("peer_tutorial09", kernel=OURS_HOST, M=4096), rec100("peer_tutorial09", "ratio", kernel=OURS_HOST, M=4096),
             rec100("peer_tutorial09", "ratio", kernel=T09_HOST, M=4096), rec100("ch05_pingpong", kernel=HOST, M=4096)]),
    Claim("05_warp_specialization", "read 0.36× in this record, and 0.98×\n  in a run made earlier the same day",
          [rec100("peer_tutorial09", "ratio", kernel=T09_HOST, M=2048),
           rec100("peer_tutorial09_first_run", "ratio", kernel=T09_HOST, M=2048)]),
    Claim("05_warp_specialization", "(0.97× and 0.96×) and ahead at 2048³ (1.01×)",
          [rec100("peer_tutorial09", kernel="course ch05: ping-pong (gluon) tuned", M=m) for m in (4096, 8192, 2048)]),
]


# Chapter 06 (FP8), recorded on the H200
def fp8(recipe, M, out_dtype="bf16", field="ratio_graph", N=8192):
    N = M if M >= 4096 else N  # the square shapes, or M x 8192 x 8192
    return rec("ch06_fp8_gemm", field, kernel=f"fp8_{recipe}", recipe=recipe, out_dtype=out_dtype, M=M, N=N)


def qcost(recipe, M, field="speedup_over_bf16"):
    return rec("ch06_quantize", field, kernel=f"quantize_{recipe}", M=M, N=M if M >= 4096 else 8192)


CLAIMS += [
    Claim("06_fp8_matmul", "1.12× `torch._scaled_mm` with\n  row-wise scales at 4096³ and 1.06× at 8192³",
          [fp8("row", 4096), fp8("row", 8192)]),
    Claim("06_fp8_matmul", "FP8 does 1.9× the TFLOP/s at 4096³",
          [calc("record('ch06_fp8_gemm', 'graph_tflops', gpu='h200', kernel='fp8_row', M=4096, N=4096) / "
                "record('ch06_fp8_gemm', 'graph_tflops', gpu='h200', kernel='cublas_bf16', M=4096, N=4096)",
                "row-wise FP8 over bf16 cuBLAS, TFLOP/s, same run")]),
    Claim("06_fp8_matmul", "about level row-wise (0.98×) and behind per tensor (0.84×)",
          [fp8("row", 128), fp8("tensor", 128)]),
    Claim("06_fp8_matmul", "0.77× `torch._scaled_mm` with 1×128 and", [fp8("block", 4096)]),
    Claim("06_fp8_matmul", "1.49× faster than\n  the bf16 GEMM at 4096³ and 1.68× at 8192³",
          [qcost("tensor", 4096), qcost("tensor", 8192)]),
    Claim("06_fp8_matmul", "(1.01× and 1.02×)", [qcost("tensor", 128), qcost("row", 128)]),
    Claim("06_fp8_matmul", "keeps 1.28×", [qcost("block", 128)]),
    Claim("06_fp8_matmul", "(1.10× at 4096³)", [qcost("block", 4096)]),
]


def w4(kernel, field="speedup_over_cublas", agg=None, scale=1.0, **where):
    return rec("ch07_w4a16", field, agg, scale, kernel=kernel, **where)


DECODE_M = one_of(1, 2, 4, 8, 16)
CLAIMS += [
    Claim("07_fp4_decode", "that is 16 flops per byte of bf16 weight",
          [calc("2 * 16 * 8192 * 8192 / (8192 * 8192 * 2)", "flops of y = x @ W.T at M = 16 per byte of W in bf16")]),
    Claim("07_fp4_decode", "about 210 flops per byte", [RIDGE], rounding=10),
    Claim("07_fp4_decode", "Its magnitudes are 0, 0.5, 1, 1.5, 2, 3,",
          [calc("course('fp4').VALUES[1]", "e2m1 code 1"), calc("course('fp4').VALUES[3]", "e2m1 code 3")]),
    Claim("07_fp4_decode", "MXFP4 loses 11.4 % and NVFP4 9.5 %",
          [rec("ch07_accuracy", "rel_error", "all", 100, kernel="mxfp4 plain", weights="gaussian"),
           rec("ch07_accuracy", "rel_error", "all", 100, kernel="nvfp4 plain", weights="gaussian")]),
    Claim("07_fp4_decode", "takes MXFP4 from 9.7 % to 7.1–7.2 %, but NVFP4 from 4.4 % to 6.7–6.8 %",
          [rec("ch07_accuracy", "rel_error", "all", 100, kernel="mxfp4 plain", weights="outlier channels"),
           rec("ch07_accuracy", "rel_error", "min", 100, kernel="mxfp4 rotated", weights="outlier channels"),
           rec("ch07_accuracy", "rel_error", "max", 100, kernel="mxfp4 rotated", weights="outlier channels"),
           rec("ch07_accuracy", "rel_error", "all", 100, kernel="nvfp4 plain", weights="outlier channels"),
           rec("ch07_accuracy", "rel_error", "min", 100, kernel="nvfp4 rotated", weights="outlier channels"),
           rec("ch07_accuracy", "rel_error", "max", 100, kernel="nvfp4 rotated", weights="outlier channels")]),
    Claim("07_fp4_decode", "The best of these reaches 0.33× bf16 cuBLAS",
          [rec("ch07_dot_scaled", "ratio_to_bf16", "max")]),
    Claim("07_fp4_decode", "128 programs for 132 SMs", [SMS]),
    Claim("07_fp4_decode", "0.56–0.68× at M = 1 … 16",
          [w4("ours, row order", agg="min", M=DECODE_M), w4("ours, row order", agg="max", M=DECODE_M)]),
    Claim("07_fp4_decode", "the same 35.7 MB) and", [w4("gemlite", "weight_bytes", "all", 1e-6)]),
    Claim("07_fp4_decode", "takes 17.6–17.8 µs against about 33 µs for cuBLAS: 1.85–1.87×",
          [w4("ours", "graph_us", "min", M=DECODE_M), w4("ours", "graph_us", "max", M=DECODE_M),
           w4("cublas", "graph_us", "all", M=DECODE_M), w4("ours", agg="min", M=DECODE_M), w4("ours", agg="max", M=DECODE_M)],
          rounding=[None, None, 1, None, None]),
    Claim("07_fp4_decode", "(tinygemm 23.9 µs at M = 1", [w4("tinygemm", "graph_us", M=1)]),
    Claim("07_fp4_decode", "gemlite\n  37–67 µs", [w4("gemlite", "graph_us", "min", M=DECODE_M),
                                                   w4("gemlite", "graph_us", "max", M=DECODE_M)]),
    Claim("07_fp4_decode", "six copies of its weight in turn. One 4-bit weight (35.7 MB) fits in\n  the H200's 50 MiB L2",
          [w4("ours", "weight_bytes", "all", 1e-6), L2_MB]),
    Claim("07_fp4_decode", "the same kernel took 16.4–16.5 µs",
          [LogNumber(W4_L2_LOG, r'"ours_one_us": ([\d.]+)', agg="min"),
           LogNumber(W4_L2_LOG, r'"ours_one_us": ([\d.]+)', agg="max")]),
    Claim("07_fp4_decode", "(`ch07_read_floor`) takes 9.9 µs, 3.6 TB/s: that is the floor for any kernel\n  here, 3.3× cuBLAS",
          [rec("ch07_read_floor", "graph_us", "min"), rec("ch07_read_floor", "tbps", "max"),
           calc("record('ch07_w4a16', 'graph_us', 'min', gpu='h200', kernel='cublas') / "
                "record('ch07_read_floor', 'graph_us', 'min', gpu='h200')",
                "cuBLAS's fastest decode-sized time over the fastest read-only kernel's, weights rotated")]),
    Claim("07_fp4_decode", "at 2.0 TB/s of the 4.8 TB/s the memory could give",
          [w4("ours", "weight_tbps", "all", M=DECODE_M), BANDWIDTH]),
    Claim("07_fp4_decode", "weight at about 4 TB/s", [w4("cublas", "weight_tbps", "all", M=DECODE_M)], rounding=0.5),
    Claim("07_fp4_decode", "the 35.7 MB would take 7.4 µs",
          [w4("ours", "weight_bytes", "all", 1e-6),
           calc("record('ch07_w4a16', 'weight_bytes', gpu='h200', kernel='ours', M=1) / (datasheet('h200').bandwidth_tbs * 1e6)",
                "the prepacked weight's bytes at the datasheet bandwidth, µs")]),
    Claim("07_fp4_decode", "the conversion alone is 2.4 instructions",
          [calc("19 / 8", "mxfp4_word_to_bf16 (kernels/w4a16_fragments.py): 15 integer instructions and 4 bf16x2 "
                "multiplies per 32-bit word of 8 weights")]),
    Claim("07_fp4_decode", "1.25× at M = 64, 0.56× at M = 128, and\n  0.39–0.42× from M = 256 on",
          [w4("ours", M=64), w4("ours", M=128), w4("ours", agg="min", M=lambda m: m >= 256),
           w4("ours", agg="max", M=lambda m: m >= 256)]),
    Claim("07_fp4_decode", "the checked wrapper takes 132–136 µs a call, the lean layer\n35–36 µs and a graph replay 23 µs, for 17.7–17.8 µs of GPU work",
          [rec("ch07_launch", "python_us", "min", kernel="w4a16_prepacked (checked wrapper)"),
           rec("ch07_launch", "python_us", "max", kernel="w4a16_prepacked (checked wrapper)"),
           rec("ch07_launch", "python_us", "min", kernel="PrepackedW4A16Linear (lean call)"),
           rec("ch07_launch", "python_us", "max", kernel="PrepackedW4A16Linear (lean call)"),
           rec("ch07_launch", "python_us", "all", kernel="PrepackedW4A16Linear graph replay"),
           rec("ch07_launch", "gpu_us", "min", kernel="PrepackedW4A16Linear graph replay"),
           rec("ch07_launch", "gpu_us", "max", kernel="PrepackedW4A16Linear graph replay")]),
]


GLUON_W4 = "results/logs/h200_2026-12-02_w4a16_gluon.json"  # benchmarks/explore_w4a16_gluon.py on the H200
BOUND_W4 = "results/logs/h200_2026-12-02_w4a16_bound.json"  # benchmarks/explore_w4a16.py bound


def w4_budget(conversion, sums, field="us", kernel="warp-specialized", M=1):
    """A field of one line of the Gluon W4A16 exploration's summary (M = 1, split-K 4, 128 x 128 tiles)."""
    return LogNumber(GLUON_W4, r'\{"kernel": "' + kernel + r'", "conversion": "' + conversion
                     + r'", "split_k_sums": "' + sums + r'", "M": ' + str(M) + r', "us": [\d.]+, "x_cublas": ([\d.]+)\}'
                     if field == "x_cublas" else
                     r'\{"kernel": "' + kernel + r'", "conversion": "' + conversion + r'", "split_k_sums": "' + sums
                     + r'", "M": ' + str(M) + r', "us": ([\d.]+)')


def w4_part(a, b, why):
    """The difference of two lines of the summary, µs."""
    def us(conv, sums):
        return (f"log('{GLUON_W4}', r'\\{{\"kernel\": \"warp-specialized\", \"conversion\": \"{conv}\", "
                f"\"split_k_sums\": \"{sums}\", \"M\": 1, \"us\": ([\\d.]+)')[0]")
    return calc(f"{us(*a)} - {us(*b)}", why)


CLAIMS += [
    Claim("07_fp4_decode", "The whole warp-specialized kernel takes 16.1 µs, 2.07× cuBLAS",
          [w4_budget("full", "kept"), w4_budget("full", "kept", "x_cublas")]),
    Claim("07_fp4_decode", "nothing else takes 11.4 µs (the same without a\n  producer warp: 11.0 µs, 3.05× cuBLAS), near the 9.9 µs",
          [w4_budget("none", "dropped"), w4_budget("none", "dropped", kernel="TMA-pipelined"),
           w4_budget("none", "dropped", "x_cublas", kernel="TMA-pipelined"), rec("ch07_read_floor", "graph_us", "min")]),
    Claim("07_fp4_decode", "Adding the split-K sums costs 1.3–1.6 µs",
          [w4_part(("full", "kept"), ("full", "dropped"), "the split-K sums' cost with the conversion, µs"),
           w4_part(("none", "kept"), ("none", "dropped"), "the split-K sums' cost without the conversion, µs")]),
    Claim("07_fp4_decode", "The conversion costs 3.2–3.5 µs more",
          [w4_part(("full", "kept"), ("none", "kept"), "the conversion's cost with the split-K sums, µs"),
           w4_part(("full", "dropped"), ("none", "dropped"), "the conversion's cost without the split-K sums, µs")]),
    Claim("07_fp4_decode", "issue an instruction in only 52 % of their cycles",
          [LogNumber(GLUON_W4, r"issue_active\.avg\.pct_of_peak_sustained_active\s+%\s+([\d.]+)")]),
    Claim("07_fp4_decode", "saves 1.4 µs in the Triton kernel",
          [calc(f"log('{BOUND_W4}', r'\"variant\": \"committed\",\\s*\"M\": 1,\\s*\"tile\": \"64x256\",\\s*\"split\": 4,"
                f"\\s*\"us\": ([\\d.]+)')[0] - log('{BOUND_W4}', r'\"variant\": \"11 ops\",\\s*\"M\": 1,\\s*"
                f"\"tile\": \"64x256\",\\s*\"split\": 4,\\s*\"us\": ([\\d.]+)')[0]",
                "the prepacked Triton kernel at M = 1 with the committed word conversion minus with a stand-in of "
                "11 instructions a word (explore_w4a16.py bound), µs")]),
]

def _tl(kernel, M):
    """The expression of ``kernels.plots.timeline_summary`` of the recorded ch03 timeline (for a Calc)."""
    return f"course('plots').timeline_summary(course('bench').load('ch03_timeline', '{GPU}'), {kernel}, {M})"


def timeline(kernel, M, field, scale=1.0):
    """A field of ``kernels.plots.timeline_summary`` of the recorded ch03 timeline."""
    return calc(f"{_tl(repr(kernel), M)}['{field}'] * {scale}",
                f"{field} of the {kernel} kernel's measured timeline at {M}x4096x4096")


CLAIMS += [
    Claim("03_persistent_matmul", "All 132 SMs start their first tile within\n  0.19 µs of each other, and the tiles of "
          "that wave take 43.6 µs each", [timeline("tiled", 1152, "sms"), timeline("tiled", 1152, "first_start_spread_us"),
                                          timeline("tiled", 1152, "first_wave_us")]),
    Claim("03_persistent_matmul", "Then 12 SMs run the 12\n  tiles left over while 120 SMs wait: the SMs spend 56 % of the kernel's time",
          [calc("len(record('ch03_timeline', 'tile', agg='all', gpu='h200', kernel='tiled', M=1152)) - datasheet('h200').sms",
                "tiles past the first wave"),
           calc("2 * datasheet('h200').sms - len(record('ch03_timeline', 'tile', agg='all', gpu='h200', kernel='tiled', M=1152))",
                "SMs without a second tile"),
           timeline("tiled", 1152, "busy", 100)]),
    Claim("03_persistent_matmul", "The 12 tail tiles take 40.7 µs, not 43.6 µs",
          [timeline("tiled", 1152, "tail_us"), timeline("tiled", 1152, "first_wave_us")]),
    Claim("03_persistent_matmul", "ends\n  the launch 2.6 µs later than the GPU did",
          [calc(f"2 * {_tl(repr('tiled'), 1152)}['first_wave_us'] - {_tl(repr('tiled'), 1152)}['finish_us']",
                "two equal tiles of the first wave's median minus the measured finish, µs")]),
    Claim("03_persistent_matmul", "0.61 µs for a new program of the tiled kernel and 0.50 µs in the persistent kernel's loop",
          [timeline("tiled", 1152, "gap_us"), timeline("persistent", 1152, "gap_us")]),
    Claim("03_persistent_matmul", "about 1.1–1.4 % of a tile's work",
          [calc(f"{agg}({_tl('k', 1152)}['gap_us'] / {_tl('k', 1152)}['first_wave_us'] for k in ('tiled', 'persistent'))"
                " * 100", f"the {agg} gap between tiles as a share of a first-wave tile, %") for agg in ("min", "max")]),
    Claim("03_persistent_matmul", "kernel's last tile ends at 86.3 µs, the tiled kernel's at 84.6 µs",
          [timeline("persistent", 1152, "finish_us"), timeline("tiled", 1152, "finish_us")]),
    Claim("03_persistent_matmul", "are busy 69–70 % of the time",
          [timeline("persistent", 2176, "busy", 100), timeline("tiled", 2176, "busy", 100)]),
    Claim("03_persistent_matmul", "(0.5–0.6 µs at 1152)",
          [timeline("persistent", 1152, "gap_us"), timeline("tiled", 1152, "gap_us")]),
]

# ------------------------------------------------------------------------------------------ chapter 08
def att(kernel, field="ratio_graph", agg=None, scale=1.0, **where):
    return rec("ch08_attention", field, agg, scale, kernel=kernel, **where)


def naive(kernel, field, S, scale=1.0):
    return rec("ch08_naive_memory", field, None, scale, kernel=kernel, S=S)


NAIVE = "naive (three lines)"
CLAIMS += [
    Claim("08_flash_attention", "about 32 flops per byte",
          [calc("course('attention').attention_flops(1, 16, 16384, 16384, 128) / "
                "course('attention').naive_attention_bytes(1, 16, 16384, 16384, 128)['total']",
                "flops over the bytes the three lines move (float32 scores), S = 16384")], rounding=1),
    Claim("08_flash_attention", "allocates 17.2 GB (the bf16 scores and the probabilities,\n8.6 GB each) and takes 16.8 ms",
          [naive(NAIVE, "peak_extra_bytes", 16384, 1e-9), naive(NAIVE, "scores_bytes", 16384, 1e-9),
           naive(NAIVE, "ms", 16384)]),
    Claim("08_flash_attention", "allocates only its 67 MB output and takes 4.3 ms",
          [naive("ours", "peak_extra_bytes", 16384, 1e-6), naive("ours", "ms", 16384)]),
    Claim("08_flash_attention", "where the scores of all 16 heads take 34 MB, less than the H200's 50 MiB of L2",
          [naive(NAIVE, "scores_bytes", 1024, 1e-6), L2_MB]),
    Claim("08_flash_attention", "0.046 ms against 0.083 ms",
          [naive("ours", "ms", 1024), naive(NAIVE, "ms", 1024)]),
    Claim("08_flash_attention", "cuDNN reaches 596–608 TFLOP/s at head dim 128 without a mask and 503–557 TFLOP/s with one",
          [att("cuDNN SDPA", "tflops", "min", D=128, causal=False), att("cuDNN SDPA", "tflops", "max", D=128, causal=False),
           att("cuDNN SDPA", "tflops", "min", D=128, causal=True), att("cuDNN SDPA", "tflops", "max", D=128, causal=True)],
          rounding=1),
    Claim("08_flash_attention", "reaches 0.57–0.69× of it",
          [att("FA2 backend SDPA", agg="min"), att("FA2 backend SDPA", agg="max")]),
    Claim("08_flash_attention", "0.82–0.84× cuDNN at head dim 128 and 0.87–0.95× at head dim 64",
          [att("ours", agg="min", D=128), att("ours", agg="max", D=128), att("ours", agg="min", D=64),
           att("ours", agg="max", D=64)]),
    Claim("08_flash_attention", "(TMA: 0.69–0.88×)", [att("ours, TMA", agg="min"), att("ours, TMA", agg="max")]),
]

PROBE_LOG = "results/logs/probe_attention_triton3.6_2026-12-02.log"  # benchmarks/probe_attention.py, sm_90


def probe_regs(label):
    """Registers a thread of the variant ``label`` in the compile probe's log."""
    return LogNumber(PROBE_LOG, re.escape(label) + r"\n\s+[^;]*; (\d+) registers/thread")


SWEEP_LOG, FMA_LOG = "results/logs/h200_2026-12-01_attention_sweep.json", "results/logs/h200_2026-12-01_attention_sweep_fma.json"
D64_128x64 = r'"shape": "B4 H16/16 S4096 D64",\s*"step": "pointer",\s*"config": "128x64 w8 s3",[^}]*?"x_cudnn": ([\d.]+)'

CLAIMS += [
    Claim("08_flash_attention", "took the (4, 16, 4096) shape from 0.92× to 0.95× cuDNN in the tile sweep",
          [LogNumber(SWEEP_LOG, D64_128x64), LogNumber(FMA_LOG, D64_128x64)]),
    Claim("08_flash_attention", "(223 registers a thread\n  against 174 registers for the plain loop at the same tiles)",
          [probe_regs("overlap, 128x64 tiles"), probe_regs("pointer loads, 128x64 tiles")]),
    Claim("08_flash_attention", "255 registers, values spilled to local memory",
          [probe_regs("overlap, 128x128 tiles, 2 stages")]),
    Claim("08_flash_attention", "The timed kernel already needs\n  244 registers at those tiles",
          [probe_regs("pointer loads, 128x128 tiles (the default)")]),
]
CLAIMS += [
    Claim("08_flash_attention", "compiled for 168 registers a thread; at run time\n  the loading warpgroup gives registers back and each consumer takes 232 registers",
          [probe_regs("TMA + warp specialization, 4 warps"),
           LogNumber(PROBE_LOG, r"TMA \+ warp specialization, 4 warps\n\s+warp-specialized, registers requested \[(\d+), \1\]")]),
]

GLUON, GLUON_PP = "ours, Gluon FA3 schedule", "ours, Gluon FA3 schedule + ping-pong"
HOPPER_LOG = "results/logs/attention_hopper_h200_2026-12-02_run1.json"  # explore_attention.py hopper (first run)


def hopper(variant, shape, field="x_cudnn", agg=None):
    """A field of the variant ``variant`` at shapes matching the regex ``shape`` in the exploration log."""
    return LogNumber(HOPPER_LOG, r'"shape": "' + shape + r'",\s*"variant": "' + re.escape(variant) + r'",[^}]*?"'
                     + field + r'": ([\d.einf+-]+)', agg=agg)


CLAIMS += [
    Claim("08_flash_attention", "The Gluon kernel reaches 0.96–1.07× cuDNN at head dim 128:\n  0.96× and 0.99× without a mask at (4, 16, 4096) and (1, 16, 16384), 0.98× and 1.07× with one, and\n  0.96–0.97× with grouped-query heads",
          [att(GLUON, agg="min", D=128), att(GLUON, agg="max", D=128),
           att(GLUON, S=4096, H_kv=16, D=128, causal=False), att(GLUON, S=16384, D=128, causal=False),
           att(GLUON, S=4096, H_kv=16, D=128, causal=True), att(GLUON, S=16384, D=128, causal=True),
           att(GLUON, agg="min", H_kv=8), att(GLUON, agg="max", H_kv=8)]),
    Claim("08_flash_attention", "(0.95–1.06× at head dim 128)",
          [att(GLUON_PP, agg="min", D=128), att(GLUON_PP, agg="max", D=128)]),
    Claim("08_flash_attention", "the Gluon kernel reaches\n  0.75–0.94×, against 0.87–0.95× for the Triton kernel",
          [att(GLUON, agg="min", D=64), att(GLUON, agg="max", D=64), att("ours", agg="min", D=64),
           att("ours", agg="max", D=64)]),
    Claim("08_flash_attention", "The overlap written in Triton loses** (0.67–0.79×)",
          [att("ours, overlap", agg="min"), att("ours, overlap", agg="max")]),
    Claim("08_flash_attention", "reached\n  0.89–0.91× at the two head-dim-128 shapes without a mask",
          [hopper("ws 128x128 s2", r"B\d+ H16/16 S(?:4096|16384) D128 bfloat16", agg="min"),
           hopper("ws 128x128 s2", r"B\d+ H16/16 S(?:4096|16384) D128 bfloat16", agg="max")]),
    Claim("08_flash_attention", "with the causal mask its relative\n  error was 0.18–0.19",
          [hopper("ws 128x128 s2", r"[^\"]* causal bfloat16", "err_vs_cudnn", agg="min"),
           hopper("ws 128x128 s2", r"[^\"]* causal bfloat16", "err_vs_cudnn", agg="max")]),
    Claim("08_flash_attention", "(the table above has that kernel at 0.84×)",
          [att("ours", S=16384, D=128, causal=True)]),
    Claim("08_flash_attention", "at (1, 16, 16384) from 0.85×\n  to 0.88× in the same run",
          [hopper("base", r"B1 H16/16 S16384 D128 causal bfloat16"),
           hopper("longest", r"B1 H16/16 S16384 D128 causal bfloat16")]),
]


def bwd(kernel, agg, **where):
    return rec("ch08_backward", "ratio", agg, kernel=kernel, **where)


CLAIMS += [
    Claim("08_flash_attention", "0.44–0.49×\ncuDNN's backward at head dim 128 and 0.75–0.93× at head dim 64",
          [bwd("ours", "min", D=128), bwd("ours", "max", D=128), bwd("ours", "min", D=64), bwd("ours", "max", D=64)]),
    Claim("08_flash_attention", "backend (0.56–0.62×) only at head dim 64",
          [bwd("FA2 backend SDPA", "min"), bwd("FA2 backend SDPA", "max")]),
]


def sweep(config, D, agg):
    """``x_cudnn`` of the pointer-load variant ``config`` at head dim ``D`` in the first tile sweep."""
    return LogNumber(SWEEP_LOG, r'"shape": "B\d+ H\d+/\d+ S\d+ D' + str(D) + r'(?: causal)?",\s*"step": "pointer",\s*'
                     r'"config": "' + config + r'",[^}]*?"x_cudnn": ([\d.]+)', agg=agg)


CLAIMS += [
    Claim("08_flash_attention", "128 × 128 tiles with 2\n  stages reached 0.77–0.81× at head dim 128, against 0.80–0.82× with 3; at head dim 64, 0.65–0.66×\n  against 0.77–0.79×",
          [sweep("128x128 w8 s2", 128, "min"), sweep("128x128 w8 s2", 128, "max"),
           sweep("128x128 w8 s3", 128, "min"), sweep("128x128 w8 s3", 128, "max"),
           sweep("128x128 w8 s2", 64, "min"), sweep("128x128 w8 s2", 64, "max"),
           sweep("128x128 w8 s3", 64, "min"), sweep("128x128 w8 s3", 64, "max")]),
    Claim("08_flash_attention", "a fourth stage gave 0.78–0.82×, against 0.77–0.82× with 3",
          [sweep("128x64 w8 s4", 128, "min"), sweep("128x64 w8 s4", 128, "max"),
           sweep("128x64 w8 s3", 128, "min"), sweep("128x64 w8 s3", 128, "max")]),
    Claim("08_flash_attention", "reached\n  0.46–0.50× at head dim 128, against 0.77–0.82× on 8 warps",
          [sweep("128x64 w4 s3", 128, "min"), sweep("128x64 w4 s3", 128, "max"),
           sweep("128x64 w8 s3", 128, "min"), sweep("128x64 w8 s3", 128, "max")]),
]

# ------------------------------------------------------------------------------------------ splitting K (03) and kernels.matmul (05)
def split(kernel, M, field="ratio_graph", **kw):
    return rec("ch03_split", field, kernel=kernel, M=M, **kw)


WHOLE, SPLIT_RED, SPLIT_LAST, STREAMK = ("whole tiles (persistent, TMA)", "split tail, reduction kernel",
                                         "split tail, last program adds", "stream-K (pointer loads)")
ROWS_APART = "whole waves, then the last rows apart"
NCU_LOG = "results/logs/h200_2026-12-02_splitk_reduce.json"


def ncu(run, kernel, agg=None, field="time_us"):
    """A counter of ``kernel``'s launches in run ``run`` of the Nsight Compute log (one launch a line)."""
    return LogNumber(NCU_LOG, r'"run": "' + run + r'", "kernel": "' + kernel + r'"[^\n]*?"' + field + r'": ([\d.]+)',
                     agg=agg)
TMA_KINDS = one_of(WHOLE, SPLIT_RED, SPLIT_LAST)
SHARED_PARTS_MB = calc("course('splitk').workspace_bytes(12, 11, 128, 256) / 1e6",
                       "12 shared tiles x 11 parts of 128x256 float32 (kernels.splitk.workspace_bytes), MB")


EXPLORE_LOG = "results/logs/h200_2026-12-02_explore_matmul_2.json"


def explore(kernel, M=64, N=4096, K=4096):
    """A CUDA-graph time (µs) of ``kernel`` at ``M x N x K`` in the second exploration log (one run each)."""
    return LogNumber(EXPLORE_LOG, rf'"M": {M}, "N": {N}, "K": {K}, "copies": \d+, "kernel": "{kernel}", "graph_us": ([\d.]+)')


def grid(M, N, K, field="ratio_graph", scale=1.0):
    return rec("ch05_grid", field, scale=scale, M=M, N=N, K=K)


SMALL_GPU = lambda r: r < 0.03  # noqa: E731  (GPU time under 30 µs, ms)
CLAIMS += [
    Claim("03_persistent_matmul", "12 × 11 partial tiles of 128×256 float32 values, 17 MB written and read",
          [SHARED_PARTS_MB]),
    Claim("03_persistent_matmul", "At 1152×4096×4096, whole tiles reach\n  447 TFLOP/s (0.69× cuBLAS); with the 12 tiles "
          "of the second wave split 11 ways and a second kernel\n  adding the parts, 579 TFLOP/s (0.90×)",
          [split(WHOLE, 1152, "graph_tflops"), split(WHOLE, 1152), split(SPLIT_RED, 1152, "graph_tflops"),
           split(SPLIT_RED, 1152)]),
    Claim("03_persistent_matmul", "it goes from\n  0.84× to 0.99× (612 TFLOP/s against cuBLAS's 621 TFLOP/s)",
          [split(WHOLE, 2176), split(SPLIT_RED, 2176), split(SPLIT_RED, 2176, "graph_tflops"),
           split("cuBLAS", 2176, "graph_tflops")]),
    Claim("03_persistent_matmul", "falls back to 0.72×", [split(SPLIT_LAST, 1152)]),
    Claim("03_persistent_matmul", "for 9 tiles of 4 K steps on 4 SMs",
          [calc("4", "the example's SMs: plots.plot_split_schedules(9, 4, 4) in the next cell")]),
    Claim("03_persistent_matmul", "one wave of whole tiles (1024×4096×4096,\n  128 tiles) takes 52.2 µs, and 1152×4096×4096 "
          "with its second wave split takes 66.8 µs: the 12 tiles\n  of the second wave add 14.6 µs, where a perfect share "
          "of their work over 132 SMs would be 4.7 µs",
          [split(WHOLE, 1024, "graph_ms", scale=1000), split(SPLIT_RED, 1152, "graph_ms", scale=1000),
           calc("(record('ch03_split', 'graph_ms', gpu='h200', kernel='split tail, reduction kernel', M=1152) - "
                "record('ch03_split', 'graph_ms', gpu='h200', kernel='whole tiles (persistent, TMA)', M=1024)) * 1000",
                "the split second wave's time over one wave of whole tiles, µs"),
           Spec("h200", "sms"),
           calc("record('ch03_split', 'graph_ms', gpu='h200', kernel='whole tiles (persistent, TMA)', M=1024) * 1000 * 12 / 132",
                "a tile's time (one wave of whole tiles, one tile a program) times 12 tiles shared by 132 SMs, µs")]),
    Claim("03_persistent_matmul", "56.2–57.2 µs for the split-K kernel and\n  6.8–7.1 µs for the kernel that adds the 17 MB",
          [ncu("split_tail_unrolled_1152x4096x4096", "splitk_matmul_kernel", "min"),
           ncu("split_tail_unrolled_1152x4096x4096", "splitk_matmul_kernel", "max"),
           ncu("split_tail_unrolled_1152x4096x4096", "splitk_reduce_kernel", "min"),
           ncu("split_tail_unrolled_1152x4096x4096", "splitk_reduce_kernel", "max"),
           SHARED_PARTS_MB]),
    Claim("03_persistent_matmul", "reads all of B (33.6 MB) again: 601 TFLOP/s (0.93×). At 2176×4096 (2048\n  rows in two "
          "waves, then 128 rows) it is 1.01×, where the split reached 0.99×",
          [calc("4096 * 4096 * 2 / 1e6", "B of 4096x4096 bf16, MB"),
           split(ROWS_APART, 1152, "graph_tflops"), split(ROWS_APART, 1152), split(ROWS_APART, 2176),
           split(SPLIT_RED, 2176)]),
    Claim("03_persistent_matmul", "the TMA kernels run at 0.98–1.01× cuBLAS",
          [rec("ch03_split", agg=a, kernel=TMA_KINDS, M=one_of(1024, 2048)) for a in ("min", "max")]),
    Claim("03_persistent_matmul", "does not pay: 0.63–0.82×",
          [rec("ch03_split", agg=a, kernel=STREAMK) for a in ("min", "max")]),
    Claim("03_persistent_matmul", "cuBLAS keeps 644 TFLOP/s at 1152×4096×4096",
          [split("cuBLAS", 1152, "graph_tflops")]),

    Claim("05_warp_specialization", "that is about 200 MB of traffic",
          [calc("3 * 2 * 4095 * 4095 * 2 / 1e6", "A, B and C of 4095×4095 bf16, each copied once (read and write), MB")],
          rounding=10),
    Claim("05_warp_specialization", "All 19 shapes run at 0.9× cuBLAS or faster (the lowest is 1024³, at 0.92×), and the "
          "geometric mean\n  is 1.12×",
          [calc("0.9", "the floor drawn on the plot (kernels.plots.plot_grid)"),
           rec("ch05_grid", agg="min"),
           calc("course('bench').geomean(record('ch05_grid', 'ratio_graph', agg='all', gpu='h200'))",
                "geometric mean of the CUDA-graph ratios over the grid")]),
    Claim("05_warp_specialization", "cuBLAS runs at 153 TFLOP/s and `kernels.matmul` at\n  445 TFLOP/s (2.91×)",
          [grid(4095, 4095, 4095, "baseline_graph_tflops"), grid(4095, 4095, 4095, "graph_tflops"), grid(4095, 4095, 4095)]),
    Claim("05_warp_specialization", "it is 196 TFLOP/s against 415 TFLOP/s (2.12×)",
          [grid(3000, 5000, 1700, "baseline_graph_tflops"), grid(3000, 5000, 1700, "graph_tflops"), grid(3000, 5000, 1700)]),
    Claim("05_warp_specialization", "11.7–11.8 µs against\n  13.4–13.5 µs (1.14–1.15×); at 8192: 0.99–1.01×",
          [rec("ch05_grid", "graph_ms", agg="min", scale=1000, M=one_of(1, 16), N=4096),
           rec("ch05_grid", "graph_ms", agg="max", scale=1000, M=one_of(1, 16), N=4096),
           rec("ch05_grid", "baseline_graph_ms", agg="min", scale=1000, M=one_of(1, 16), N=4096),
           rec("ch05_grid", "baseline_graph_ms", agg="max", scale=1000, M=one_of(1, 16), N=4096),
           rec("ch05_grid", agg="min", M=one_of(1, 16), N=4096), rec("ch05_grid", agg="max", M=one_of(1, 16), N=4096),
           rec("ch05_grid", agg="min", M=one_of(1, 16), N=8192), rec("ch05_grid", agg="max", M=one_of(1, 16), N=8192)]),
    Claim("05_warp_specialization", "columns of the 33.6 MB B",
          [calc("4096 * 4096 * 2 / 1e6", "B of 4096×4096 bf16, MB")]),
    Claim("05_warp_specialization", "With 4 stages the kernel took 14.4 µs, with 5 stages 12.4 µs, with 6 stages\n  11.5 µs",
          [explore("split-K 64x64x128 w4 s4 x1"), explore("split-K 64x64x128 w4 s5 x1"),
           explore("split-K 64x64x128 w4 s6 x1")]),
    Claim("05_warp_specialization", "if their tiles fill at least 90 %",
          [calc("90", "kernels.dispatch's rule: the first rows' tiles fill >= 90 % of the full waves (10 * tiles >= 9 * waves * SMs)")]),
    Claim("05_warp_specialization", "(64×32 tiles: 14.1 µs)", [explore("split-K 64x32x128 w4 s4 x1")]),
    Claim("05_warp_specialization", "(64×32×256 tiles in 4 stages: 11.6 µs)", [explore("split-K 64x32x256 w4 s4 x1")]),
    Claim("05_warp_specialization", "memory busy 47–49 % of its peak with 4 stages, 58–59 % with 6, and 59–60 % in cuBLAS's\n  kernel",
          [ncu("splitk_s4_64x4096x4096", "splitk_matmul_kernel", "min", "dram_pct_of_peak"),
           ncu("splitk_s4_64x4096x4096", "splitk_matmul_kernel", "max", "dram_pct_of_peak"),
           ncu("splitk_s6_64x4096x4096", "splitk_matmul_kernel", "min", "dram_pct_of_peak"),
           ncu("splitk_s6_64x4096x4096", "splitk_matmul_kernel", "max", "dram_pct_of_peak"),
           ncu("cublas_64x4096x4096", "nvjet[^\"]*", "min", "dram_pct_of_peak"),
           ncu("cublas_64x4096x4096", "nvjet[^\"]*", "max", "dram_pct_of_peak")]),
    Claim("05_warp_specialization", "In the grid: 11.5 µs against 11.3 µs\n  (0.98×), and 1.15× at M = 128",
          [grid(64, 4096, 4096, "graph_ms", 1000), grid(64, 4096, 4096, "baseline_graph_ms", 1000), grid(64, 4096, 4096),
           grid(128, 4096, 4096)]),
    Claim("05_warp_specialization", "4095³ takes 308.4 µs where 4096³ takes 209.5 µs",
          [grid(4095, 4095, 4095, "graph_ms", 1000), grid(4096, 4096, 4096, "graph_ms", 1000)]),
    Claim("05_warp_specialization", "cuBLAS goes from 206.8 µs to 898.1 µs",
          [grid(4096, 4096, 4096, "baseline_graph_ms", 1000), grid(4095, 4095, 4095, "baseline_graph_ms", 1000)]),
    Claim("05_warp_specialization", "63.3 µs against 59.5 µs\n  (0.94×; chapter 03's run of the same cut gave 0.93×), where "
          "chapter 03's split of the last wave\n  reached 0.90×. At 2176×4096×4096, 1.01×",
          [grid(1152, 4096, 4096, "graph_ms", 1000), grid(1152, 4096, 4096, "baseline_graph_ms", 1000),
           grid(1152, 4096, 4096), split(ROWS_APART, 1152), split(SPLIT_RED, 1152), grid(2176, 4096, 4096)]),
    Claim("05_warp_specialization", "From Python only 7 of the 19 shapes\n  reach 0.9× cuBLAS, and the geometric mean is 0.65×",
          [calc("0.9", "the floor drawn on the plot (kernels.plots.plot_grid)"),
           calc("course('bench').geomean(record('ch05_grid', 'ratio', agg='all', gpu='h200'))",
                "geometric mean of the do_bench ratios over the grid")]),
    Claim("05_warp_specialization", "The 1.12× above is GPU time",
          [calc("course('bench').geomean(record('ch05_grid', 'ratio_graph', agg='all', gpu='h200'))",
                "geometric mean of the CUDA-graph ratios over the grid")]),
    Claim("05_warp_specialization", "under\n  30 µs takes 46–71 µs from Python, where cuBLAS takes 10–28 µs",
          [calc("30", "the threshold of the statement: records whose GPU time (graph_ms) is under 0.03 ms"),
           rec("ch05_grid", "ms", agg="min", scale=1000, graph_ms=SMALL_GPU),
           rec("ch05_grid", "ms", agg="max", scale=1000, graph_ms=SMALL_GPU),
           rec("ch05_grid", "baseline_ms", agg="min", scale=1000, graph_ms=SMALL_GPU),
           rec("ch05_grid", "baseline_ms", agg="max", scale=1000, graph_ms=SMALL_GPU)]),
]
