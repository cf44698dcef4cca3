"""The grader checks the work, not only the values: answers that cheat, or do other work than the
exercise asks, are refused, by kind (see grader/guard.py and grader/checks.py); right answers that
look unusual (host-side TMA descriptors) pass.

Each wrong answer is a solution notebook with one piece swapped, graded in this process (the helpers
come from test_grader.py). Most tests run in both worlds: in the interpreter the builder hooks catch
the answer while it runs; compiled on a GPU the replay and the compiled code do. Tests marked GPU_ONLY
need a CUDA GPU (``TTC_WORLD=gpu python -m pytest tests/test_grader_work.py``).
"""
import sys
from pathlib import Path

import nbformat
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_grader import CH01, CH02, CH03, CH04, T_K_LOOP, T_POINTER_LOOP, grade_variant  # noqa: E402

from grader import checks  # noqa: E402
from grader.guard import Fault, Refused, Sandbox, View, is_allowed  # noqa: E402

GPU_ONLY = pytest.mark.skipif(not checks.ON_GPU, reason="needs a CUDA GPU: compiled kernels")
CPU_ONLY = pytest.mark.skipif(checks.ON_GPU, reason="Triton's interpreter only")


def solution_body(src: Path, cell_id: str) -> str:
    """The text between a solution cell's BEGIN/END SOLUTION markers (to swap it whole)."""
    cell = next(c for c in nbformat.read(str(src), as_version=4).cells if c.get("id") == cell_id)
    start = cell.source.index("### BEGIN SOLUTION\n") + len("### BEGIN SOLUTION\n")
    return cell.source[start:cell.source.index("    ### END SOLUTION")]


# a copy of A with A's strides, made outside any kernel
COPY_OF_A = "torch.empty_strided(a.size(), a.stride(), dtype=a.dtype, device=a.device).copy_(a)"


def refused(r, *words):
    assert r.status == "refused" and r.points == 0, r.report()
    assert any(w in r.message for w in words), r.report()


def failed(r, *words, status=("fail",)):
    assert r.status in status and r.points == 0, r.report()
    assert any(w in r.message for w in words), r.report()


# ------------------------------------------------------------------------------------------------
# kind 1: the product computed where the guard does not look, then copied into C by a kernel
# ------------------------------------------------------------------------------------------------
NAIVE_LAUNCH = "    naive_matmul_kernel[(M, N)]("
# A kernel that copies tmp into C; with TOUCH it first loads the row of A and the column of B that a
# kernel computing C[m, n] would load, so that only the replay can tell it from a real answer.
COPY_KERNEL = '''@triton.jit
def _copy_kernel(src_ptr, dst_ptr, a_ptr, b_ptr, K, s_m, s_n, d_m, d_n, a_m, a_k, b_k, b_n,
                 TOUCH: tl.constexpr, BLOCK_K: tl.constexpr):
    m = tl.program_id(0)
    n = tl.program_id(1)
    if TOUCH:
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            tl.load(a_ptr + m * a_m + ks * a_k, mask=ks < K)
            tl.load(b_ptr + ks * b_k + n * b_n, mask=ks < K)
    v = tl.load(src_ptr + m * s_m + n * s_n)
    tl.store(dst_ptr + m * d_m + n * d_n, v)


def naive_matmul('''
COPY_LAUNCH = ("    _copy_kernel[(M, N)](tmp, out, a, b, K, tmp.stride(0), tmp.stride(1), out.stride(0), out.stride(1),\n"
               "                         a.stride(0), a.stride(1), b.stride(0), b.stride(1), TOUCH={touch}, BLOCK_K=32)\n"
               "    return out\n")
PRODUCTS = {
    # torch with the grader's dispatch mode switched off in this thread (only the replay sees it)
    "modes_off": ("    from torch.utils._python_dispatch import _disable_current_modes\n"
                  "    with _disable_current_modes():\n"
                  "        tmp = torch.mm(a.float(), b.float()).to(a.dtype)\n"),
    # another thread: the guard's TorchDispatchMode is per thread (starting one is refused)
    "thread": ("    import threading\n"
               "    box = {}\n"
               "    worker = threading.Thread(target=lambda: box.update(c=torch.mm(a.float(), b.float()).to(a.dtype)))\n"
               "    worker.start()\n"
               "    worker.join()\n"
               "    tmp = box['c']\n"),
    # NumPy through ctypes and the tensors' addresses (no Tensor.numpy(), no torch op)
    "ctypes": ("    import ctypes\n"
               "    import numpy as np\n"
               "    def grab(t):\n"
               "        st = t.untyped_storage()\n"
               "        raw = np.frombuffer((ctypes.c_char * st.nbytes()).from_address(st.data_ptr()),\n"
               "                            dtype={torch.float32: np.float32, torch.float16: np.float16}[t.dtype])\n"
               "        return np.lib.stride_tricks.as_strided(raw[t.storage_offset():], shape=tuple(t.shape),\n"
               "                                               strides=[s * t.element_size() for s in t.stride()])\n"
               "    tmp = torch.empty(M, N, dtype=a.dtype, device=a.device)\n"
               "    grab(tmp)[...] = grab(a).astype(np.float64) @ grab(b).astype(np.float64)\n"),
}


def copy_cheat(product, touch):
    return {"ch01-wrapper": [("def naive_matmul(", COPY_KERNEL),
                             (NAIVE_LAUNCH, PRODUCTS[product] + COPY_LAUNCH.format(touch=touch) + NAIVE_LAUNCH)]}


@pytest.mark.parametrize("product", ["thread", "modes_off"] + ([] if checks.ON_GPU else ["ctypes"]))
def test_product_outside_a_kernel_then_copied_is_refused(product, tmp_path):
    # the copy kernel loads nothing of A and B: in the interpreter its stores are seen to come from
    # elsewhere; on a GPU the replay sees C not follow new inputs; a thread is refused when it starts
    r = grade_variant(CH01, copy_cheat(product, False), "naive_matmul", tmp_path)
    refused(r, "without loading all of row", "C did not follow", "starting a thread")


@pytest.mark.parametrize("product", ["modes_off"] + ([] if checks.ON_GPU else ["ctypes"]))
def test_replay_catches_a_copy_kernel_that_touches_a_and_b(product, tmp_path):
    # loads, stores and values all look right; only running the launches again on new A and B shows
    # that C holds a product computed before the kernels ran
    r = grade_variant(CH01, copy_cheat(product, True), "naive_matmul", tmp_path)
    refused(r, "C did not follow")
    assert "outside a kernel" in r.message


def test_a_copy_of_a_made_before_the_launch_is_refused(tmp_path):
    # the kernel reads a clone of A: A itself never reaches a kernel
    swaps = {"ch01-wrapper": [(NAIVE_LAUNCH + "\n        a, b,", NAIVE_LAUNCH + f"\n        {COPY_OF_A}, b,")]}
    r = grade_variant(CH01, swaps, "naive_matmul", tmp_path)
    refused(r, "A itself was never passed to your kernel")


def test_a_copy_of_a_read_while_a_is_passed_too_is_refused(tmp_path):
    # A reaches a (do-nothing) kernel, but C is computed from a clone: the replay restores the clone
    # to the old A (interpreter: the loads are seen to come from the clone, not from A)
    touch = "@triton.jit\ndef _touch(x_ptr):\n    pass\n\n\ndef naive_matmul("
    swaps = {"ch01-wrapper": [("def naive_matmul(", touch),
                              (NAIVE_LAUNCH + "\n        a, b,",
                               f"    _touch[(1,)](a)\n    a2 = {COPY_OF_A}\n" + NAIVE_LAUNCH + "\n        a2, b,")]}
    r = grade_variant(CH01, swaps, "naive_matmul", tmp_path)
    refused(r, "without loading all of row", "C did not follow")


def test_an_op_the_old_deny_list_did_not_name_is_refused(tmp_path):
    # embedding_bag with per-sample weights is a matmul; no deny list named it. The allow-list refuses
    # every op that is not allocation, a view, a copy, a fill or a cast, and names it with the line
    bag = ("    rows = torch.arange(K, device=a.device).expand(M, K).reshape(-1)\n"
           "    offsets = torch.arange(0, M * K, K, device=a.device)\n"
           "    tmp = torch.nn.functional.embedding_bag(rows, b, offsets, mode='sum', per_sample_weights=a.reshape(-1))\n")
    swaps = {"ch01-wrapper": [("def naive_matmul(", COPY_KERNEL),
                              (NAIVE_LAUNCH, bag + COPY_LAUNCH.format(touch=False) + NAIVE_LAUNCH)]}
    r = grade_variant(CH01, swaps, "naive_matmul", tmp_path)
    refused(r, "`_embedding_bag")
    assert "embedding_bag(rows, b" in r.message  # the learner's line


def test_allow_list_covers_what_wrappers_and_triton_need():
    for op in ("empty", "full", "copy_", "set_", "new_empty", "_to_copy", "clone", "as_strided", "view", "t",
               "transpose", "permute", "slice", "select", "expand", "detach", "alias", "lift_fresh",
               "_unsafe_view", "unsqueeze", "squeeze", "arange", "fill_", "zero_", "zeros", "empty_like"):
        assert is_allowed(op), op
    a = torch.randn(3, 4)
    with Sandbox() as box:
        b = a.t().contiguous().float().reshape(12).view(3, 4)[1:, ::2].clone()
        torch.zeros(2).fill_(1.0)
        # a wrapper's own sanity checks and a print give booleans and text, not products
        assert not bool(torch.isnan(a).any()) and bool((a == a).all())
        assert "tensor(" in repr(a)
        with pytest.raises(Refused):
            torch.where(a > 0, a, a)
        with pytest.raises(Refused):
            a.sum().item()
    assert b.shape == (2, 2) and len(box.refusals) == 2 and "`where`" in box.refusals[0], box.refusals


@pytest.mark.filterwarnings("ignore::FutureWarning")  # gc.get_objects() meets deprecated torch objects
def test_reference_is_computed_after_the_call(tmp_path):
    # nothing the answer can find in memory during the call holds the expected product
    look = ("    import gc\n"
            "    if any(isinstance(o, torch.Tensor) and o.dtype == torch.float64 and tuple(o.shape) == (M, N)\n"
            "           for o in gc.get_objects()):\n"
            "        raise RuntimeError('found the reference')\n")
    r = grade_variant(CH02, {"ch02-wrapper": [("    grid = (triton.cdiv", look + "    grid = (triton.cdiv")]},
                      "tiled_matmul", tmp_path)
    assert r.passed, r.report()


# ------------------------------------------------------------------------------------------------
# kind 2: structural checks on every launch, and on what ran
# ------------------------------------------------------------------------------------------------
P_LAUNCH = "    persistent_matmul_kernel[(num_programs,)]("
P_COPY = '''@triton.jit
def _copy_rows(src_ptr, dst_ptr, M, N, s_m, s_n, d_m, d_n, num_programs, BLOCK_N: tl.constexpr):
    for m in range(tl.program_id(0), M, num_programs):
        for n0 in range(0, N, BLOCK_N):
            ns = n0 + tl.arange(0, BLOCK_N)
            tl.store(dst_ptr + m * d_m + ns * d_n, tl.load(src_ptr + m * s_m + ns * s_n, mask=ns < N), mask=ns < N)


def persistent_matmul('''


P_ELEMENTS = """@triton.jit
def _one_program_per_element(a_ptr, b_ptr, c_ptr, K, s_am, s_ak, s_bk, s_bn, s_cm, s_cn, BLOCK_K: tl.constexpr):
    m = tl.program_id(0)
    n = tl.program_id(1)
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        acc += (tl.load(a_ptr + m * s_am + ks * s_ak, mask=ks < K, other=0.0).to(tl.float32)
                * tl.load(b_ptr + ks * s_bk + n * s_bn, mask=ks < K, other=0.0).to(tl.float32))
    tl.store(c_ptr + m * s_cm + n * s_cn, tl.sum(acc, axis=0).to(c_ptr.dtype.element_ty))


"""


def test_persistent_every_launch_is_checked(tmp_path):
    # a kernel with one program per element (more programs than num_programs) into a temporary, then a
    # compliant persistent copy into C: the copy alone started num_programs programs
    swaps = {"ch03-wrapper": [
        ("def persistent_matmul(", P_ELEMENTS + P_COPY),
        (P_LAUNCH, "    tmp = torch.empty(M, N, dtype=a.dtype, device=a.device)\n"
                   "    _one_program_per_element[(M, N)](a, b, tmp, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),\n"
                   "                                     tmp.stride(0), tmp.stride(1), BLOCK_K=32)\n"
                   "    _copy_rows[(num_programs,)](tmp, out, M, N, tmp.stride(0), tmp.stride(1), out.stride(0),\n"
                   "                                out.stride(1), num_programs, BLOCK_N=32)\n"
                   "    return out\n" + P_LAUNCH)]}
    r = grade_variant(CH03, swaps, "persistent_matmul", tmp_path)
    refused(r, "one program per tile is chapter 02's kernel")
    assert "_one_program_per_element[" in r.message


T_LAUNCH = "    tma_matmul_kernel[(num_programs,)]("
T_POINTER_KERNEL = '''@triton.jit
def _pointer_tiles(a_ptr, b_ptr, c_ptr, M, N, K, s_am, s_bk, s_cm,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + rows[:, None] * s_am + ks[None, :], mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
        b = tl.load(b_ptr + ks[:, None] * s_bk + cols[None, :], mask=(ks[:, None] < K) & (cols[None, :] < N), other=0.0)
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    tl.store(c_ptr + rows[:, None] * s_cm + cols[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def _tma_copy(src_ptr, dst_ptr, M, N, s_m, d_m, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    src = tl.make_tensor_descriptor(src_ptr, shape=[M, N], strides=[s_m, 1], block_shape=[BLOCK_M, BLOCK_N])
    dst = tl.make_tensor_descriptor(dst_ptr, shape=[M, N], strides=[d_m, 1], block_shape=[BLOCK_M, BLOCK_N])
    tiles_n = tl.cdiv(N, BLOCK_N)
    for t in range(tl.program_id(0), tl.cdiv(M, BLOCK_M) * tiles_n, tl.num_programs(0)):
        r = (t // tiles_n) * BLOCK_M
        c = (t % tiles_n) * BLOCK_N
        dst.store([r, c], src.load([r, c]))


def tma_matmul('''


def test_tma_every_kernel_that_ran_is_checked(tmp_path):
    # a pointer-loading tiled kernel into a temporary, then a TMA copy into C
    swaps = {"ch04-wrapper": [
        ("def tma_matmul(", T_POINTER_KERNEL),
        (T_LAUNCH, "    tmp = torch.empty(M, N, dtype=a.dtype, device=a.device)\n"
                   "    _pointer_tiles[(triton.cdiv(M, 32), triton.cdiv(N, 32))](a, b, tmp, M, N, K, a.stride(0),\n"
                   "        b.stride(0), tmp.stride(0), BLOCK_M=32, BLOCK_N=32, BLOCK_K=32)\n"
                   "    _tma_copy[(num_programs,)](tmp, out, M, N, tmp.stride(0), out.stride(0), BLOCK_M=32, BLOCK_N=32)\n"
                   "    return out\n" + T_LAUNCH)]}
    r = grade_variant(CH04, swaps, "tma_matmul", tmp_path)
    refused(r, "_pointer_tiles loaded through pointers", "_pointer_tiles[")


T_DEAD_BRANCH_LOOP = T_POINTER_LOOP + """            if K < 0:  # never true: the descriptor loads are in the source, not in what runs
                a = a_desc.load([row0, ks * BLOCK_K])
                b = b_desc.load([ks * BLOCK_K, col0])
"""


def test_tma_check_reads_what_ran_not_the_source(tmp_path):
    r = grade_variant(CH04, {"ch04-kernel": [(T_K_LOOP, T_DEAD_BRANCH_LOOP)]}, "tma_matmul", tmp_path)
    refused(r, "loaded through pointers")


CH02_BODY_START = "    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)\n"
CH02_TILE_CALL = ("    matmul_tile(a_ptr, b_ptr, c_ptr, tl.program_id(0), tl.program_id(1), M, N, K,\n"
                  "                stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,\n"
                  "                BLOCK_M, BLOCK_N, BLOCK_K, False, False)\n")
COURSE_CODE = {
    # chapter 02's own tile code called inside the learner's ch02 kernel
    "ch02_matmul_tile": (CH02, "tiled_matmul", {"ch02-kernel": [
        ("@triton.jit\ndef tiled_matmul_kernel(", "from kernels.tiled import matmul_tile\n\n\n@triton.jit\ndef tiled_matmul_kernel("),
        (CH02_BODY_START, CH02_TILE_CALL + CH02_BODY_START)]}, "kernels.tiled.matmul_tile"),
    # the course's naive kernel called as a device function
    "ch01_course_kernel": (CH01, "naive_matmul", {"ch01-kernel": [
        ("@triton.jit\ndef naive_matmul_kernel(", "from kernels import naive as course\n\n\n@triton.jit\ndef naive_matmul_kernel("),
        ("    m = tl.program_id(0)\n", "    course.naive_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk,\n"
                                     "                               stride_bn, stride_cm, stride_cn, BLOCK_K, False)\n"
                                     "    m = tl.program_id(0)\n")]}, "kernels.naive.naive_matmul_kernel"),
    # chapter 03: matmul_tile and the grouped order are given, the course's persistent kernel is not
    "ch03_course_kernel": (CH03, "persistent_matmul", {"ch03-kernel": [
        ("@triton.jit\ndef persistent_matmul_kernel(", "import kernels.persistent as course\n\n\n@triton.jit\ndef persistent_matmul_kernel("),
        ("    for tile_id in range(tl.program_id(0), num_tiles, num_programs):\n",
         "    course.persistent_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,\n"
         "                                    stride_cm, stride_cn, num_programs, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M,\n"
         "                                    True, EVEN_K, UPCAST)\n"
         "    for tile_id in range(tl.program_id(0), num_tiles, num_programs):\n")]},
        "kernels.persistent.persistent_matmul_kernel"),
}


@pytest.mark.parametrize("case", sorted(COURSE_CODE))
def test_course_code_inside_the_learners_kernel_is_refused(case, tmp_path):
    src, name, swaps, words = COURSE_CODE[case]
    r = grade_variant(src, swaps, name, tmp_path)
    refused(r, words)
    assert "write it yourself" in r.message


def test_source_walk_finds_course_helpers(tmp_path):
    # what a GPU run relies on (compiled, no call is traced): the helpers a kernel's source names
    from test_grader import as_module, variant

    src, name, swaps, words = COURSE_CODE["ch01_course_kernel"]
    module = as_module(variant(src, swaps), tmp_path / "answer_walk.py")
    found = {f"{m}.{q}" for m, q in checks._jit_helpers(module.naive_matmul_kernel)}
    assert words in found
    module = as_module(variant(CH03, {}), tmp_path / "answer_walk3.py")
    found = {f"{m}.{q}" for m, q in checks._jit_helpers(module.persistent_matmul_kernel)}
    assert {"kernels.tiled.matmul_tile", "kernels.schedule.grouped_tile"} <= found
    assert checks._helpers_message(checks._EXERCISE["persistent_matmul"], []) is None


# ------------------------------------------------------------------------------------------------
# kind 3: host-side TMA descriptors are a right answer
# ------------------------------------------------------------------------------------------------
T_DESCS = """    a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[stride_am, 1],
                                       block_shape=[BLOCK_M, BLOCK_K])
    b_desc = tl.make_tensor_descriptor(b_ptr, shape=[K, N], strides=[stride_bk, 1],
                                       block_shape=[BLOCK_K, BLOCK_N])
    c_desc = tl.make_tensor_descriptor(c_ptr, shape=[M, N], strides=[stride_cm, 1],
                                       block_shape=[BLOCK_M, BLOCK_N])
"""
HOST_DESCRIPTORS = {
    "ch04-kernel": [(T_DESCS, "    a_desc = a_ptr  # TensorDescriptors made on the host\n"
                              "    b_desc = b_ptr\n    c_desc = c_ptr\n")],
    "ch04-wrapper": [
        (T_LAUNCH, "    from triton.tools.tensor_descriptor import TensorDescriptor\n"
                   "    descs = (TensorDescriptor(a, [M, K], [a.stride(0), 1], [block_m, block_k]),\n"
                   "             TensorDescriptor(b, [K, N], [b.stride(0), 1], [block_k, block_n]),\n"
                   "             TensorDescriptor(out, [M, N], [out.stride(0), 1], [block_m, block_n]))\n" + T_LAUNCH),
        ("        a, b, out, M, N, K, a.stride(0)", "        *descs, M, N, K, a.stride(0)")],
}


def test_host_side_descriptors_pass(tmp_path):
    r = grade_variant(CH04, HOST_DESCRIPTORS, "tma_matmul", tmp_path)
    assert r.passed and r.points == 10, r.report()


def test_a_descriptor_base_counts_as_a_tensor_the_launch_received():
    from triton.tools.tensor_descriptor import TensorDescriptor

    from grader.guard import Launch, storage_key, tensors_in

    c = torch.zeros(8, 8)
    desc = TensorDescriptor(c, [8, 8], [8, 1], [8, 8])
    assert [t.data_ptr() for t in tensors_in((desc, 3))] == [c.data_ptr()]
    assert Launch("k", "m", keys=[storage_key(c)]).touches(c[2:])


# ------------------------------------------------------------------------------------------------
# kind 4: coverage the cases lacked
# ------------------------------------------------------------------------------------------------
def cases_of(name, monkeypatch, seed=5):
    seen = []
    monkeypatch.setattr(checks, "_run_matmul_case", lambda fn, case, *a: seen.append(case))
    fn = lambda a, b, out=None, num_programs=None, **kw: None  # noqa: E731
    checks.grade(name, fn, seed=seed)
    return seen


@pytest.mark.parametrize("name", ["naive_matmul", "tiled_matmul", "persistent_matmul", "tma_matmul"])
def test_cases_cover_layouts_edges_long_k_and_precision(name, monkeypatch):
    cases = cases_of(name, monkeypatch)
    layouts = {c.layout for c in cases}
    if name == "tma_matmul":
        assert layouts <= {"row", "padded"}  # TMA's rules: last stride 1, 16-byte rows
        assert any(c.N == 8 and c.M > 1 for c in cases)
    else:
        assert {"col", "every_other", "padded"} <= layouts
        assert any(c.N == 1 and c.M > 1 for c in cases)
    assert any(c.M == 1 and c.N > 1 for c in cases)
    assert any(c.K > 2 * 64 and c.M * c.N <= 40 * 40 for c in cases)  # longer than twice any block
    assert any(c.values == "precision" and c.dtype == torch.float16 for c in cases)


def test_operands_have_the_layouts_they_claim():
    values = torch.randn(5, 7)
    for layout, check in (("row", lambda s: s == (7, 1)), ("padded", lambda s: s[1] == 1 and s[0] > 7),
                          ("col", lambda s: s[0] == 1 and s[1] >= 5), ("every_other", lambda s: s[1] == 2)):
        big, view = checks._place(values, 1000.0, layout)
        assert check(view.stride()), (layout, view.stride())
        assert torch.equal(view.cpu(), values)
        assert int((big == 1000.0).sum()) == big.numel() - values.numel()


N_ROW_A = "    row_a = a_ptr + m * stride_am  # start of row m of A\n"
N_K_LOOP = ("    for k0 in range(0, K, BLOCK_K):\n"
            "        ks = k0 + tl.arange(0, BLOCK_K)\n")
T_A_LOAD = ("        a = tl.load(a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak,\n"
            "                    mask=row_ok[:, None] & k_ok[None, :], other=0.0)\n")
T_B_LOAD = "        b = tl.load(b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn,\n"
T_STORE = "    c_tile = c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn\n"
COVERAGE = {
    # a column stride taken as 1: right on every row-major case, wrong on transposed and sliced views
    "naive_ignores_stride_ak": (CH01, "naive_matmul", {"ch01-kernel": [
        ("a = tl.load(row_a + ks * stride_ak,", "a = tl.load(row_a + ks,")]}, ("fail",), ("stride",)),
    "tiled_ignores_stride_bn": (CH02, "tiled_matmul", {"ch02-kernel": [
        (T_B_LOAD, T_B_LOAD.replace("cols[None, :] * stride_bn", "cols[None, :]"))]}, ("fail",), ("stride",)),
    "tiled_ignores_stride_cn": (CH02, "tiled_matmul", {"ch02-kernel": [
        (T_STORE, T_STORE.replace("cols[None, :] * stride_cn", "cols[None, :]"))]}, ("fail",), ("stride_cn",)),
    # no K loop: one fixed 64-wide chunk, right whenever K <= 64
    "naive_no_k_loop": (CH01, "naive_matmul", {"ch01-kernel": [
        ("acc = tl.zeros((BLOCK_K,), dtype=tl.float32)", "acc = tl.zeros((64,), dtype=tl.float32)"),
        (N_K_LOOP, "    if True:\n        ks = tl.arange(0, 64)\n")]}, ("fail",), ("loop over all of K",)),
    # no mask along K: the last chunk reads past the end of a row of A (interpreter: stopped before the
    # read; compiled: what lies there ends up in C)
    "naive_no_k_mask": (CH01, "naive_matmul", {"ch01-kernel": [
        ("a = tl.load(row_a + ks * stride_ak, mask=inside, other=0.0)", "a = tl.load(row_a + ks * stride_ak)")]},
        ("fail",), ("past A's last column" if not checks.ON_GPU else "wrong values",)),
    # no store mask: the edge tiles write past C's last row or column
    "tiled_no_store_mask": (CH02, "tiled_matmul", {"ch02-kernel": [
        ("tl.store(c_tile, acc.to(c_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])",
         "tl.store(c_tile, acc.to(c_ptr.dtype.element_ty))")]},
        ("fail",), ("is this store masked there" if not checks.ON_GPU else "outside C",)),
    # rows of A read without a mask: inside the guard rows the old cases put below A (so, compiled, it
    # still passes: only the interpreter's checked accesses see it)
    "tiled_unmasked_rows": (CH02, "tiled_matmul", {"ch02-kernel": [
        (T_A_LOAD, T_A_LOAD.replace("mask=row_ok[:, None] & k_ok[None, :]", "mask=k_ok[None, :]"))]},
        ("fail",), ("read outside A: at row",)),
    # 8-wide K blocks: the interpreter runs them, a GPU does not compile them
    "tiled_block_k_8": (CH02, "tiled_matmul", {"ch02-wrapper": [
        ("        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,",
         "        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=8,")]}, ("fail", "error"), ("BLOCK_K) >= 16",)),
    # 8-row tiles compile for sm_90 (Triton 3.6 pads M and N), but the course's tiles are >= 16 everywhere
    "tiled_block_m_8": (CH02, "tiled_matmul", {"ch02-wrapper": [
        ("    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))",
         "    block_m = 8\n    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))")]}, ("fail",),
        ("at least 16 in every dimension",)),
}
COMPILED_PASS = {"tiled_unmasked_rows", "tiled_block_m_8", "naive_no_k_mask"}  # compiled, these are not seen (or not wrong)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", sorted(COVERAGE))
def test_answers_the_old_cases_let_through_fail(case, tmp_path):
    if case in COMPILED_PASS and checks.ON_GPU:
        pytest.skip("compiled: a read past an edge into the guard rows goes unseen; 8-row tiles compile")
    src, name, swaps, status, words = COVERAGE[case]
    r = grade_variant(src, swaps, name, tmp_path)
    failed(r, *words, status=status)


def test_an_out_of_bounds_access_is_stopped_before_it_happens():
    # the hook checks the addresses before the interpreter touches memory: a wild pointer is a Fault,
    # not a segfault
    import triton
    import triton.language as tl

    @triton.jit
    def wild(x_ptr):
        tl.store(x_ptr + 10_000_000 + tl.arange(0, 4), 1.0)

    x = torch.zeros(4, device=checks.DEVICE)
    if checks.ON_GPU:
        pytest.skip("the interpreter's hooks; compiled kernels are not traced")
    with Sandbox(operands={"C": x.view(2, 2)}) as box:
        with pytest.raises(Exception) as raised:
            wild[(1,)](x)
    cause = raised.value
    while cause.__cause__ is not None:  # the interpreter wraps what the hook raised
        cause = cause.__cause__
    assert isinstance(cause, Fault)
    assert box.faults and "outside" in box.faults[0]


def test_view_index_locates_every_element_and_nothing_else():
    import numpy as np

    big = torch.zeros(20, 30)
    for view in (big[1:6, 2:9], big[1:6, 0:14:2], big[1:8, 1:6].t(), big[1:2, 1:6], big[1:6, 1:2]):
        v = View("A", view)
        every = np.arange(v.lo, v.hi, 4, dtype=np.uint64)
        ok, rows, cols, _ = v.index(every)
        assert ok.sum() == view.numel()
        got = {(int(r), int(c)) for r, c in zip(rows[ok], cols[ok])}
        assert got == {(i, j) for i in range(view.shape[0]) for j in range(view.shape[1])}


def test_gpu_compile_error_for_a_small_dot_says_why():
    # what Triton 3.6 raises on a GPU for tl.dot with K = 8: a CompilationError (source, caret, message)
    # caused by an AssertionError from inside triton
    class CompilationError(Exception):
        pass

    cause = AssertionError("Input shapes should have M >= 1, N >= 1 and K >= 16")
    exc = CompilationError("at 20:14:\n        acc = tl.dot(a, b, acc)\n              ^\n" + repr(cause))
    exc.__cause__ = cause
    text = checks.describe_exception(exc)
    assert "BLOCK_K) >= 16" in text and "the kernel line `acc = tl.dot(a, b, acc)`" in text
    assert "unknown place" not in text


# ------------------------------------------------------------------------------------------------
# kind 5: more work than the schedule asks, or less precision
# ------------------------------------------------------------------------------------------------
CH01_BODY = solution_body(CH01, "ch01-kernel")
CH02_BODY = solution_body(CH02, "ch02-kernel")
TILE_LOOP_BODY = """    for pm in range(0, tl.cdiv(M, BLOCK_M)):
        for pn in range(0, tl.cdiv(N, BLOCK_N)):
            rows = pm * BLOCK_M + tl.arange(0, BLOCK_M)
            cols = pn * BLOCK_N + tl.arange(0, BLOCK_N)
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for k0 in range(0, K, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                a = tl.load(a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak,
                            mask=(rows[:, None] < M) & (ks[None, :] < K), other=0.0)
                b = tl.load(b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn,
                            mask=(ks[:, None] < K) & (cols[None, :] < N), other=0.0)
                acc = tl.dot(a, b, acc)
            if {mine}:
                tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc.to(c_ptr.dtype.element_ty),
                         mask=(rows[:, None] < M) & (cols[None, :] < N))
"""
ROW_PER_PROGRAM_BODY = """    m = tl.program_id(0)
    for n in range(0, N):
        acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            inside = ks < K
            a = tl.load(a_ptr + m * stride_am + ks * stride_ak, mask=inside, other=0.0)
            b = tl.load(b_ptr + n * stride_bn + ks * stride_bk, mask=inside, other=0.0)
            acc += a.to(tl.float32) * b.to(tl.float32)
        tl.store(c_ptr + m * stride_cm + n * stride_cn, tl.sum(acc, axis=0).to(c_ptr.dtype.element_ty))
"""
GRID = "    grid = (triton.cdiv(M, block_m), triton.cdiv(N, block_n))"
SCHEDULE = {
    # twice as many programs as tiles: every tile computed and stored twice
    "tiled_every_tile_twice": (CH02, "tiled_matmul", {
        "ch02-kernel": [(CH02_BODY_START, "    rows = (tl.program_id(0) % tl.cdiv(M, BLOCK_M)) * BLOCK_M + tl.arange(0, BLOCK_M)\n")],
        "ch02-wrapper": [(GRID, "    grid = (2 * triton.cdiv(M, block_m), triton.cdiv(N, block_n))")]},
        "stored 2 times"),
    # one program computes every tile
    "tiled_one_program_does_all": (CH02, "tiled_matmul", {
        "ch02-kernel": [(CH02_BODY, TILE_LOOP_BODY.format(mine="True"))],
        "ch02-wrapper": [(GRID, "    grid = (1, 1)")]}, "tiles of C"),
    # every program computes every tile and stores only its own
    "tiled_computes_everything_stores_its_own": (CH02, "tiled_matmul", {
        "ch02-kernel": [(CH02_BODY, TILE_LOOP_BODY.format(mine="(pm == tl.program_id(0)) & (pn == tl.program_id(1))"))]},
        "computes more than its own"),
    # chapter 01: one program per row of C instead of per element
    "naive_row_per_program": (CH01, "naive_matmul", {
        "ch01-kernel": [(CH01_BODY, ROW_PER_PROGRAM_BODY)],
        "ch01-wrapper": [("naive_matmul_kernel[(M, N)](", "naive_matmul_kernel[(M, 1)](")]},
        "elements of C"),
    # chapter 03: program 0 does every tile, the others nothing
    "persistent_program_0_does_all": (CH03, "persistent_matmul", {"ch03-kernel": [
        ("    for tile_id in range(tl.program_id(0), num_tiles, num_programs):\n",
         "    for tile_id in range(tl.program_id(0) * num_tiles, num_tiles, 1):\n")]}, "tiles of C, but with"),
}


@CPU_ONLY  # compiled, nothing traces the programs: duplicated work gives the right values
@pytest.mark.parametrize("case", sorted(SCHEDULE))
def test_more_work_than_the_schedule_asks_fails(case, tmp_path):
    src, name, swaps, words = SCHEDULE[case]
    failed(grade_variant(src, swaps, name, tmp_path), words)


FP16_ACC = {
    "naive": (CH01, "naive_matmul", {"ch01-kernel": [
        ("acc = tl.zeros((BLOCK_K,), dtype=tl.float32)", "acc = tl.zeros((BLOCK_K,), dtype=c_ptr.dtype.element_ty)"),
        ("acc += a.to(tl.float32) * b.to(tl.float32)", "acc += a * b")]}),
    "tiled": (CH02, "tiled_matmul", {"ch02-kernel": [
        ("acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
         "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=c_ptr.dtype.element_ty)"),
        ("acc = tl.dot(a, b, acc)", "acc = tl.dot(a, b, acc, out_dtype=c_ptr.dtype.element_ty)")]}),
}


@pytest.mark.parametrize("case", sorted(FP16_ACC))
def test_a_float16_accumulator_fails_the_precision_case(case, tmp_path):
    # accumulating in C's dtype: right to the tolerance on random normal values, wrong once K is long
    src, name, swaps = FP16_ACC[case]
    r = grade_variant(src, swaps, name, tmp_path)
    assert r.status == "fail" and r.points == 0, r.report()
    if not checks.ON_GPU:  # at the interpreter's sizes, only the precision case shows it
        assert "float16 accumulator" in r.message, r.report()
        failing = [s for s in r.subchecks if s.status == "fail"]
        assert failing and "precision" in failing[0].label, r.report()


# ------------------------------------------------------------------------------------------------
# kind 6: exits, interrupts, subclasses, the other world
# ------------------------------------------------------------------------------------------------
def test_sys_exit_and_keyboard_interrupt_are_reported_as_what_they_are(tmp_path):
    r = grade_variant(CH01, {"ch01-wrapper": [(NAIVE_LAUNCH, "    import sys\n    sys.exit(2)\n" + NAIVE_LAUNCH)]},
                      "naive_matmul", tmp_path)
    assert r.status == "error" and "sys.exit(2)" in r.message and "could not run" not in r.message, r.report()
    r = grade_variant(CH01, {"ch01-wrapper": [(NAIVE_LAUNCH, "    raise KeyboardInterrupt\n" + NAIVE_LAUNCH)]},
                      "naive_matmul", tmp_path)
    assert r.status == "error" and "KeyboardInterrupt" in r.message, r.report()


def test_a_tensor_subclass_is_refused(tmp_path):
    sub = "    class Mine(torch.Tensor):\n        pass\n\n    return out.as_subclass(Mine)"
    r = grade_variant(CH01, {"ch01-wrapper": [("    return out", sub)]}, "naive_matmul", tmp_path)
    failed(r, "subclass")


def test_a_kernel_made_for_the_other_world_gets_the_fix(tmp_path):
    # what `@triton.jit` made before `import kernels` switched worlds: the other kind of function
    other = ("triton.runtime.interpreter.InterpretedFunction" if checks.ON_GPU
             else "triton.runtime.jit.JITFunction")
    swaps = {"ch01-wrapper": [("def naive_matmul(", f"import triton.runtime.interpreter\n"
                                                    f"naive_matmul_kernel = {other}(naive_matmul_kernel.fn)\n\n\n"
                                                    "def naive_matmul(")]}
    r = grade_variant(CH01, swaps, "naive_matmul", tmp_path)
    assert r.status == "error", r.report()
    assert "import kernels" in r.message and "restart" in r.message, r.report()
    # from the error text alone (a kernel the grader cannot see)
    err = RuntimeError("Cannot call @triton.jit'd outside of the scope of a kernel")
    assert "import kernels" in checks._world_message(lambda: None, err)


def test_hint_for_unwritten_elements_names_strides_on_strided_cases():
    case = checks._Case("column-major", 5, 4, 3, torch.float32, layout="col")
    case.strides = {"A": (1, 8), "B": (1, 6), "C": (1, 8)}
    nan = torch.zeros(5, 4, dtype=torch.bool)
    nan[:, 1:] = True
    msg = checks._unwritten_message(nan, case)
    assert "stride_cm and stride_cn" in msg and "row mask" not in msg


# ------------------------------------------------------------------------------------------------
# GPU only: what the compiled code says
# ------------------------------------------------------------------------------------------------
@GPU_ONLY
def test_compiled_tma_kernel_loads_are_read_from_its_ttir(tmp_path):
    from kernels.tma import matmul_tma
    from kernels.tiled import matmul_tiled

    a = torch.randn(256, 128, device="cuda", dtype=torch.float16)
    b = torch.randn(128, 256, device="cuda", dtype=torch.float16)
    with Sandbox() as box:
        matmul_tma(a, b)
        matmul_tiled(a, b)
    desc, ptr, ptr_stores = checks._ir_loads(box.launches[0])
    assert desc >= 2 and ptr == 0 and ptr_stores == 0, (desc, ptr, ptr_stores)
    desc, ptr, ptr_stores = checks._ir_loads(box.launches[-1])
    assert desc == 0 and ptr >= 2 and ptr_stores >= 1, (desc, ptr, ptr_stores)


@GPU_ONLY
def test_pointer_loads_are_refused_from_the_compiled_code(tmp_path):
    r = grade_variant(CH04, {"ch04-kernel": [(T_K_LOOP, T_POINTER_LOOP)]}, "tma_matmul", tmp_path)
    refused(r, "loaded through pointers")


@GPU_ONLY
def test_replay_on_a_gpu_refuses_a_copy_kernel(tmp_path):
    # compiled, nothing traces the programs: the replay alone tells a copy from a computation
    r = grade_variant(CH01, copy_cheat("modes_off", False), "naive_matmul", tmp_path)
    refused(r, "C did not follow")


@GPU_ONLY
def test_course_helpers_are_found_in_the_source_on_a_gpu(tmp_path):
    src, name, swaps, words = COURSE_CODE["ch02_matmul_tile"]
    refused(grade_variant(src, swaps, name, tmp_path), words)
