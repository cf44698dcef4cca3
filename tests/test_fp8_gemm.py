"""The FP8 (e4m3) matmul of chapter 06 (kernels.fp8_gemm): every scaling recipe and output dtype against
the float64 reference rounded to the output format, scales that matter, the launch variants, bad input.

In the interpreter the kernel rounds its output itself (round to nearest even, saturating e4m3), so the
result is the float64 reference rounded to the output dtype, up to float32 accumulation: the sum over K
and the scale multiplications are rounded in float32, which can move a value that lies within about
2**-24 of a rounding midpoint to the neighbouring output value. The checks therefore allow 1 unit in the
last place (ulp) of the output format and require all but 1% of the elements to be bit-exact (a kernel
that truncated instead of rounding would miss about half of them).
"""
import dataclasses
import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import kernels
from kernels import fp8
from kernels import fp8_gemm as G
from kernels import testing as T
from kernels.fp8_gemm import FP8Config, fp8_matmul

E4M3 = torch.float8_e4m3fn
BF16 = torch.bfloat16
# N: a multiple of 8 for bfloat16 output, of 16 for e4m3 (TMA stores need rows of a multiple of 16 bytes);
# both above 128, so that B has two 128-row scale blocks in the block recipe
N_FOR = {BF16: 152, E4M3: 144}
OTHER_DEVICE = "cpu" if kernels.ON_GPU else "meta"  # a device the kernels do not run on


def _config(recipe):
    """Small tiles in the interpreter (several tiles and K steps even at these sizes)."""
    if recipe == "block":
        return kernels.pick(cpu=FP8Config(32, 64, 128, 4, 4, 1), gpu=FP8Config(64, 128, 128, 4, 4, 3))
    return kernels.pick(cpu=FP8Config(32, 32, 32, 4, 4, 1), gpu=FP8Config(64, 64, 128, 4, 4, 3))


def _e4m3(x) -> torch.Tensor:
    """float values rounded to e4m3 by kernels.fp8 (nearest even, saturating), as a float8_e4m3fn tensor
    on the world's device (the cast of representable values is exact)."""
    q = fp8.quantize(np.asarray(x, dtype=np.float64), "e4m3")
    return torch.from_numpy(q).to(torch.float32).to(E4M3).to(kernels.DEVICE)


def _operands(M, N, K, seed=0, scale=16.0):
    rng = np.random.default_rng(seed)
    return _e4m3(rng.standard_normal((M, K)) * scale), _e4m3(rng.standard_normal((N, K)) * scale)


def _scales(recipe, M, N, K, seed=1, decades=3.0):
    """float32 scales of every recipe's shape, spread over orders of magnitude: per row
    10**-decades..10**decades (A) and a decade less (B); per block a different decade for every K block
    and every 128 rows of B."""
    rng = np.random.default_rng(seed)
    sa_shape, sb_shape = G.scale_shape(recipe, M, K, "a"), G.scale_shape(recipe, N, K, "b")
    if recipe == "tensor":
        sa, sb = np.full(sa_shape, 0.37), np.full(sb_shape, 3.1e-3)
    elif recipe == "row":
        sa = 10.0 ** rng.uniform(-decades, decades, sa_shape)
        sb = 10.0 ** rng.uniform(1 - decades, decades - 1, sb_shape)
    else:
        kb = sa_shape[1]
        sa = rng.uniform(0.5, 2, sa_shape) * 10.0 ** (np.arange(kb) - 1)[None, :]
        sb = rng.uniform(0.5, 2, sb_shape) * 10.0 ** (-2 * np.arange(sb_shape[0])[:, None] + np.arange(kb)[None, :])
    as_t = lambda s: torch.from_numpy(np.asarray(s, dtype=np.float32)).to(kernels.DEVICE)  # noqa: E731
    return as_t(sa), as_t(sb)


def _round(ref: torch.Tensor, out_dtype) -> torch.Tensor:
    """The float64 ``ref`` rounded once, to nearest even, to ``out_dtype``. bfloat16: 8 significant bits
    from the float64 value (torch's float64 -> bfloat16 cast goes through float32, rounding twice);
    e4m3: kernels.fp8.quantize, saturating at +-448."""
    r = ref.detach().cpu().to(torch.float64).numpy()
    if out_dtype == E4M3:
        return torch.from_numpy(fp8.quantize(r, "e4m3")).to(torch.float32).to(E4M3)
    m, e = np.frexp(r)  # r = m * 2**e, 0.5 <= |m| < 1
    exact = np.ldexp(np.round(m * 256) / 256, e)  # np.round: halves to even
    return torch.from_numpy(exact).to(torch.float32).to(BF16)  # representable: both casts are exact


def _ordered(t: torch.Tensor) -> torch.Tensor:
    """Integer keys in the order of the values (bfloat16 or e4m3 bits, sign-magnitude to two's
    complement): the difference of two keys is the distance in ulps."""
    t = t.detach().cpu()
    if t.dtype == BF16:
        bits, sign = t.view(torch.int16).to(torch.int64) & 0xFFFF, 0x8000
    else:
        bits, sign = t.view(torch.uint8).to(torch.int64), 0x80
    mag = bits & (sign - 1)
    return torch.where(bits & sign != 0, -mag, mag)


def _ulps(out, want):
    return (_ordered(out) - _ordered(want)).abs()


def _bound(a, b, sa, sb, recipe):
    """``sum_k |a * sa| |b * sb|`` per output (float64): the scale of the float32 accumulation's error."""
    return G.reference(a.float().abs(), b.float().abs(), sa.abs(), sb.abs(), recipe)


def _check(out, ref, out_dtype, label="", bound=None):
    """``out`` against the float64 ``ref`` rounded to ``out_dtype``: within 1 ulp everywhere, bit-exact in
    at least 99% of the elements (interpreter). On a GPU the tensor cores' FP8 products are not summed in
    IEEE float32 (fewer bits are kept while accumulating), so there an element may also be 2 ulps away
    (bfloat16), or within ``2**-12 * bound`` of ``ref`` where the sum cancels."""
    assert out.dtype == out_dtype and out.shape == ref.shape, (label, out.dtype, out.shape)
    assert torch.isfinite(out.float()).all(), f"{label}: NaN/inf (unwritten elements?)"
    want = _round(ref, out_dtype)
    d = _ulps(out, want)
    if kernels.ON_GPU:
        worst = 1 if out_dtype == E4M3 else 2
        bad = d > worst
        if bound is not None:
            bad &= (out.double().cpu() - ref.cpu()).abs() > 2.0**-12 * bound.cpu()
        assert not bad.any(), (label, int(d.max()), torch.nonzero(bad)[:5].tolist())
        return want
    assert int(d.max()) <= 1, (label, int(d.max()), torch.nonzero(d > 1)[:5].tolist())
    exact = float((d == 0).double().mean())
    assert exact >= 0.99, f"{label}: only {exact:.1%} bit-exact"
    return want


def _differs(out, wrong_ref, out_dtype):
    """The share of elements more than 1 ulp away from a wrong reference: a kernel computing the wrong
    thing would land there, so the test above could catch it."""
    return float((_ulps(out, _round(wrong_ref, out_dtype)) > 1).double().mean())


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("out_dtype", [BF16, E4M3], ids=["bf16", "e4m3"])
@pytest.mark.parametrize("recipe", G.RECIPES)
def test_every_recipe_on_ragged_shapes(recipe, out_dtype):
    N = N_FOR[out_dtype]
    for M, K, seed in [(37, 272, 0), (5, 48, 1)]:  # M, N ragged against the tiles; K against 32 and 128
        a, b = _operands(M, N, K, seed)
        if out_dtype == E4M3:  # e4m3 spans fewer decades: keep most outputs above its subnormals
            sa, sb = _scales(recipe, M, N, K, seed, decades=1.5)
            sa = sa * float(200 / G.reference(a, b, sa, sb, recipe).abs().max())  # and below 448
        else:
            sa, sb = _scales(recipe, M, N, K, seed)
        out = T.poisoned_empty((M, N), out_dtype)
        got = fp8_matmul(a, b, sa, sb, recipe, out_dtype, config=_config(recipe), out=out)
        assert got is out
        _check(out, G.reference(a, b, sa, sb, recipe), out_dtype, f"{recipe} {M}x{N}x{K}",
               _bound(a, b, sa, sb, recipe))


def test_row_scales_are_applied_per_row_and_per_column():
    M, N, K = 37, N_FOR[BF16], 96
    a, b = _operands(M, N, K, 3)
    sa, sb = _scales("row", M, N, K, 3)
    assert float(sa.max() / sa.min()) > 1e3 and float(sb.max() / sb.min()) > 1e2
    out = fp8_matmul(a, b, sa, sb, "row", config=_config("row"))
    _check(out, G.reference(a, b, sa, sb, "row"), BF16, bound=_bound(a, b, sa, sb, "row"))
    # one scale for the whole tensor (the first row's), or the two scale vectors swapped in role, would be wrong
    assert _differs(out, G.reference(a, b, sa[:1], sb[:1], "tensor"), BF16) > 0.9
    assert _differs(out, G.reference(a, b, sa.flip(0), sb.flip(0), "row"), BF16) > 0.9


@pytest.mark.parametrize("out_dtype", [BF16, E4M3], ids=["bf16", "e4m3"])
def test_block_scales_change_along_k_and_across_n_blocks(out_dtype):
    M, N, K = 20, N_FOR[out_dtype], 320  # three K blocks (the last one ragged), two 128-row blocks of B
    a, b = _operands(M, N, K, 4, scale=4.0)
    sa, sb = _scales("block", M, N, K, 4)
    assert sa.shape == (M, 3) and sb.shape == (2, 3)
    if out_dtype == E4M3:
        sa = sa * float(300 / G.reference(a, b, sa, sb, "block").abs().max())
    ref = G.reference(a, b, sa, sb, "block")
    for sa_layout in (sa.contiguous(), sa.t().contiguous().t()):  # row-major, and column-major as quantize_blocks
        for unroll in (1, 2):  # K blocks per loop step; 3 K blocks: the second step has one past K
            cfg = dataclasses.replace(_config("block"), k_unroll=unroll)
            out = fp8_matmul(a, b, sa_layout, sb, "block", out_dtype, config=cfg)
            _check(out, ref, out_dtype, f"block, a_scale strides {sa_layout.stride()}, k_unroll {unroll}",
                   _bound(a, b, sa, sb, "block"))
    # a kernel that used the first K block's scales throughout, or B's first 128-row scales for every
    # column, or no block scales at all, would be far off
    first_k = G.reference(a, b, sa[:, :1].expand(-1, 3), sb[:, :1].expand(-1, 3), "block")
    first_n = G.reference(a, b, sa, sb[:1].expand(2, -1), "block")
    assert _differs(out, first_k, out_dtype) > 0.5
    assert _differs(out[:, 128:], first_n[:, 128:], out_dtype) > 0.5
    assert _differs(out, G.reference(a, b, sa[:1, :1], sb[:1, :1], "tensor"), out_dtype) > 0.5


def test_block_recipe_with_the_largest_b_tile():
    """block_n == 128: one tile per 128-row block of B, so the tile and the B scale block coincide."""
    M, N, K = 9, 256, 256
    a, b = _operands(M, N, K, 5)
    sa, sb = _scales("block", M, N, K, 5)
    cfg = kernels.pick(cpu=FP8Config(16, 128, 128, 4, 4, 1), gpu=FP8Config(64, 128, 128, 4, 8, 4))
    out = fp8_matmul(a, b, sa, sb, "block", config=cfg)
    _check(out, G.reference(a, b, sa, sb, "block"), BF16, bound=_bound(a, b, sa, sb, "block"))


def test_e4m3_output_saturates_at_448():
    M, N, K = 24, 32, 64
    a, b = _operands(M, N, K, 6, scale=2.0)
    s = torch.full((1, 1), 4.0, device=kernels.DEVICE)
    ref = G.reference(a, b, s, s, "tensor")
    assert (ref > 600).sum() > 10 and (ref < -600).sum() > 10 and (ref.abs() < 400).sum() > 10
    out = fp8_matmul(a, b, s, s, "tensor", E4M3, config=_config("tensor"))
    _check(out, ref, E4M3, bound=_bound(a, b, s, s, "tensor"))
    o = out.float().cpu()
    r = ref.cpu()
    assert (o[r >= 464] == 448).all() and (o[r <= -464] == -448).all()  # beyond 448's rounding range
    assert not torch.isnan(o).any()


@pytest.mark.parametrize("recipe", G.RECIPES)
def test_host_descriptors_epilogue_subtile_and_fewer_programs_agree(recipe):
    M, N, K = kernels.pick(cpu=(37, 80, 272), gpu=(300, 400, 272))
    a, b = _operands(M, N, K, 7)
    sa, sb = _scales(recipe, M, N, K, 7)
    cfg = _config(recipe)
    base = fp8_matmul(a, b, sa, sb, recipe, config=cfg)
    _check(base, G.reference(a, b, sa, sb, recipe), BF16, bound=_bound(a, b, sa, sb, recipe))
    tiles = triton.cdiv(M, cfg.block_m) * triton.cdiv(N, cfg.block_n)
    assert tiles >= 4  # so that 1 and 3 programs each loop over several tiles
    runs = {
        "host descriptors": dict(host_descriptors=True),
        "1 program": dict(num_programs=1),
        "3 programs": dict(num_programs=3),
        "more programs than tiles": dict(num_programs=tiles + 5),
        "epilogue subtile": dict(config=FP8Config(cfg.block_m, cfg.block_n, cfg.block_k, cfg.group_m,
                                                  cfg.num_warps, cfg.num_stages, epilogue_subtile=True)),
        "host descriptors, subtile, flatten, 2 programs": dict(
            host_descriptors=True, num_programs=2,
            config=FP8Config(cfg.block_m, cfg.block_n, cfg.block_k, 1, cfg.num_warps, cfg.num_stages,
                             epilogue_subtile=True, flatten=True)),
    }
    for label, kw in runs.items():
        kw.setdefault("config", cfg)
        got = fp8_matmul(a, b, sa, sb, recipe, **kw)
        # every tile is computed the same way whichever program computes it: bit-identical
        assert torch.equal(got.view(torch.int16), base.view(torch.int16)), f"{recipe}: {label}"


def test_strided_operands_and_out():
    """Row strides larger than the row (views into wider tensors) are used, not assumed."""
    M, N, K = 21, 48, 64
    a, b = _operands(M, N, K, 8)
    sa, sb = _scales("row", M, N, K, 8)
    wide_a = _e4m3(np.full((M, K + 32), 100.0))
    wide_a[:, 16:16 + K] = a  # starts 16 bytes in: aligned
    wide_b = _e4m3(np.full((N, K + 16), -100.0))
    wide_b[:, :K] = b
    wide_out = torch.full((M, N + 24), 7.0, dtype=BF16, device=kernels.DEVICE)
    got = fp8_matmul(wide_a[:, 16:16 + K], wide_b[:, :K], sa, sb, "row", config=_config("row"),
                     out=wide_out[:, 8:8 + N])
    _check(got, G.reference(a, b, sa, sb, "row"), BF16, bound=_bound(a, b, sa, sb, "row"))
    assert (wide_out[:, :8] == 7).all() and (wide_out[:, 8 + N:] == 7).all()  # nothing written outside out


def test_one_element_scales_of_any_shape_for_the_tensor_recipe():
    M, N, K = 8, 16, 32
    a, b = _operands(M, N, K, 9)
    sa = torch.tensor(0.5, device=kernels.DEVICE)  # 0-d
    sb = torch.tensor([0.25], device=kernels.DEVICE)  # (1,)
    *_, sa2, sb2 = G.check_fp8_operands("t", a, b, sa, sb, "tensor", BF16)
    assert sa2.shape == (1, 1) and sb2.shape == (1, 1)
    out = fp8_matmul(a, b, sa, sb, "tensor", config=_config("tensor"))
    _check(out, G.reference(a, b, sa2, sb2, "tensor"), BF16, bound=_bound(a, b, sa2, sb2, "tensor"))


@pytest.mark.parametrize("recipe", G.RECIPES)
def test_default_configuration_and_tuned_entry_point(recipe):
    """Without a config every recipe runs: the default configuration must suit the recipe (the block
    recipe needs block_k == 128 and block_n <= 128), in this world and the other. In the interpreter
    fp8_matmul_tuned runs fp8_matmul's default configuration."""
    for on_gpu in (False, True):
        cfg = G.default_config(recipe, on_gpu=on_gpu)
        G._check_config(cfg, recipe, "default_config")
    M, N, K = 19, 32, 160
    a, b = _operands(M, N, K, 10)
    sa, sb = _scales(recipe, M, N, K, 10)
    ref, bound = G.reference(a, b, sa, sb, recipe), _bound(a, b, sa, sb, recipe)
    _check(fp8_matmul(a, b, sa, sb, recipe), ref, BF16, "default config", bound)
    _check(G.fp8_matmul_tuned(a, b, sa, sb, recipe), ref, BF16, "tuned", bound)


# --------------------------------------------------------------------------------------------------
# the pieces: shapes of the scales, the reference's expansion, the bfloat16 rounding
# --------------------------------------------------------------------------------------------------
def test_scale_shapes_and_expansion_agree_with_kernels_fp8():
    rng = np.random.default_rng(11)
    for rows, k in [(37, 272), (128, 128), (129, 16), (1, 300)]:
        x = rng.standard_normal((rows, k))
        for recipe, blocks in [("tensor", {}), ("row", {}), ("block", {"a": (1, 128), "b": (128, 128)})]:
            for operand in ("a", "b"):
                kw = {"block": blocks[operand]} if blocks else {}
                s = fp8.scales(x, recipe, **kw)
                assert G.scale_shape(recipe, rows, k, operand) == s.shape, (recipe, operand, rows, k)
                got = G.expand_scale(torch.from_numpy(s), rows, k, recipe, operand).numpy()
                assert np.array_equal(got, fp8.expand(s, (rows, k), recipe, **kw)), (recipe, operand)


@triton.jit
def _round_bf16_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n)
    tl.store(y_ptr + offs, G.round_to_bf16(x), mask=offs < n)


def test_round_to_bf16_is_round_to_nearest_even():
    rng = np.random.default_rng(12)
    kept = rng.integers(0x0080, 0x7F00, 200).astype(np.int64)  # normal bfloat16 bit patterns
    low = np.concatenate([np.full(50, 0x8000),  # exact ties: to the even neighbour
                          np.full(50, 0x7FFF), np.full(50, 0x8001), rng.integers(0, 0x10000, 50)])
    bits = (kept << 16) | low
    bits[:10] = (0x3F7F << 16) | 0x8000  # a tie whose even neighbour is the next binade (carry into the exponent)
    sign = np.where(rng.random(200) < 0.5, 0, 1 << 31)
    x = torch.from_numpy(((bits | sign) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)).view(torch.float32)
    x = x.to(kernels.DEVICE)
    y = torch.empty_like(x)
    _round_bf16_kernel[(1,)](x, y, x.numel(), BLOCK=256)
    x = x.cpu()
    want = x.to(BF16).to(torch.float32)  # torch's float32 -> bfloat16 cast rounds to nearest even
    assert torch.equal(y.cpu(), want), torch.nonzero(y.cpu() != want)[:5]
    assert float(y.cpu()[0].abs()) == 1.0  # 0x3F7F8000 rounds up to 1.0


# --------------------------------------------------------------------------------------------------
# scale values: not read unless check_values=True
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), -1.0, 0.0, float("inf")])
def test_check_values_refuses_scales_that_are_not_finite_and_positive(bad):
    M, N, K = 8, 16, 32
    a, b = _operands(M, N, K, 13)
    for recipe in G.RECIPES:
        sa, sb = _scales(recipe, M, N, K, 13)
        for which in ("a", "b"):
            s = (sa if which == "a" else sb).clone()
            s.view(-1)[-1] = bad
            args = (s, sb) if which == "a" else (sa, s)
            with pytest.raises(ValueError, match=f"{which}_scale must hold finite positive"):
                fp8_matmul(a, b, *args, recipe, check_values=True)


@pytest.mark.parametrize("out_dtype", [BF16, E4M3], ids=["bf16", "e4m3"])
def test_scale_values_are_not_checked_by_default(out_dtype):
    """Documented: by default the scales' values are not read on the host (as torch._scaled_mm does not):
    a negative scale negates its row, and a NaN scale gives NaN outputs."""
    M, N, K = 8, 16, 32
    a, b = _operands(M, N, K, 14, scale=1.0)
    sa, sb = _scales("row", M, N, K, 14, decades=1.0)
    sa[5] = -sa[5]
    ref = G.reference(a, b, sa, sb, "row")
    out = fp8_matmul(a, b, sa, sb, "row", out_dtype, config=_config("row"))
    _check(out, ref, out_dtype, bound=_bound(a, b, sa, sb, "row"))
    sa[3] = float("nan")
    out = fp8_matmul(a, b, sa, sb, "row", out_dtype, config=_config("row")).float().cpu()
    assert torch.isfinite(torch.cat([out[:3], out[4:]])).all()
    assert torch.isnan(out[3]).all(), f"{out_dtype}: row 3 has a NaN scale but holds {out[3, :4].tolist()}"


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
def _good(M=8, N=16, K=32, recipe="row"):
    a, b = _operands(M, N, K, 15)
    return (a, b, *_scales(recipe, M, N, K, 15))


def test_operands_must_be_2d_e4m3_tensors_with_matching_k():
    a, b, sa, sb = _good()
    with pytest.raises(TypeError, match="fp8_matmul: a must be torch.float8_e4m3fn"):
        fp8_matmul(a.to(BF16), b, sa, sb)
    with pytest.raises(TypeError, match="b must be torch.float8_e4m3fn"):
        fp8_matmul(a, b.to(torch.float32).to(torch.float8_e5m2), sa, sb)
    with pytest.raises(TypeError, match="torch.Tensor"):
        fp8_matmul(a.cpu().float().numpy(), b, sa, sb)
    with pytest.raises(ValueError, match="2-D"):
        fp8_matmul(a[0], b, sa, sb)
    with pytest.raises(ValueError, match="non-empty"):
        fp8_matmul(a[:0], b, sa[:0], sb)
    with pytest.raises(ValueError, match="K differ"):
        fp8_matmul(a, _e4m3(np.ones((16, 48))), sa, sb)
    with pytest.raises(ValueError, match="is on"):
        fp8_matmul(a.to(OTHER_DEVICE), b, sa, sb)


def test_layouts_tma_cannot_describe():
    a, b, sa, sb = _good()
    with pytest.raises(ValueError, match="contiguous along its last dimension"):
        fp8_matmul(_e4m3(np.ones((32, 8))).t(), b, sa, sb)
    with pytest.raises(ValueError, match="row stride is 40 bytes"):  # K = 40: not a multiple of 16
        fp8_matmul(_e4m3(np.ones((8, 40))), _e4m3(np.ones((16, 40))), sa, sb)
    wide = _e4m3(np.ones((8, 64)))
    with pytest.raises(ValueError, match="row stride is 40 bytes"):
        fp8_matmul(_e4m3(np.ones((8, 40)))[:, :32], b, sa, sb)
    with pytest.raises(ValueError, match="16-byte boundary"):
        fp8_matmul(wide[:, 8:40], b, sa, sb)
    # the output's rows: N * 2 bytes (bfloat16) or N bytes (e4m3) must be a multiple of 16
    a, b, sa, sb = _good(N=36)
    with pytest.raises(ValueError, match="multiple of 8"):
        fp8_matmul(a, b, sa, sb)
    a, b, sa, sb = _good(N=40)
    fp8_matmul(a, b, sa, sb, config=_config("row"))  # 80 bytes: fine for bfloat16
    with pytest.raises(ValueError, match="multiple of 16"):
        fp8_matmul(a, b, sa, sb, out_dtype=E4M3)


def test_scales_of_the_wrong_type_shape_or_device():
    M, N, K = 8, 16, 160  # two K blocks
    a, b, _, _ = _good(M, N, K)
    ok = {r: _scales(r, M, N, K) for r in G.RECIPES}
    bad_shapes = {
        "tensor": [((2, 1), "a"), ((1, 2), "b")],
        "row": [((M,), "a"), ((1, 1), "a"), ((1, N), "b"), ((N + 1, 1), "b")],
        "block": [((M, 1), "a"), ((1, 2), "a"), ((N, 2), "b"), ((2, 2), "b"), ((1, 1), "b")],
    }
    for recipe, cases in bad_shapes.items():
        sa, sb = ok[recipe]
        for shape, which in cases:
            s = torch.ones(shape, device=kernels.DEVICE)
            args = (s, sb) if which == "a" else (sa, s)
            with pytest.raises(ValueError, match=f"fp8_matmul: {which}_scale must have shape"):
                fp8_matmul(a, b, *args, recipe)
    sa, sb = ok["row"]
    with pytest.raises(TypeError, match="a_scale must be float32"):
        fp8_matmul(a, b, sa.double(), sb)
    with pytest.raises(TypeError, match="b_scale must be float32"):
        fp8_matmul(a, b, sa, sb.to(BF16))
    with pytest.raises(TypeError, match="b_scale must be a torch.Tensor"):
        fp8_matmul(a, b, ok["tensor"][0], 0.5, "tensor")
    with pytest.raises(ValueError, match="a_scale is on"):
        fp8_matmul(a, b, sa.to(OTHER_DEVICE), sb)


def test_bad_recipe_out_dtype_and_num_programs():
    a, b, sa, sb = _good()
    with pytest.raises(ValueError, match="recipe must be one of"):
        fp8_matmul(a, b, sa, sb, "column")
    for dt in (torch.float32, torch.float16, torch.float8_e5m2, "bf16"):
        with pytest.raises(TypeError, match="out_dtype must be"):
            fp8_matmul(a, b, sa, sb, out_dtype=dt)
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_programs"):
            fp8_matmul(a, b, sa, sb, config=_config("row"), num_programs=n)


def test_bad_configs():
    a, b, sa, sb = _good()
    with pytest.raises(TypeError, match="FP8Config"):
        fp8_matmul(a, b, sa, sb, config=(32, 32, 32))
    for cfg, msg in [(FP8Config(48, 32, 32), "block_m must be a power of two"),
                     (FP8Config(32, 8, 32), "block_n must be a power of two from 16 to 256"),
                     (FP8Config(512, 32, 32), "block_m must be a power of two from 16 to 256"),
                     (FP8Config(32, 32, 32, 2.5), "group_m must be an int"),
                     (FP8Config(32, 32, 32, num_stages=1.5), "num_stages must be an int"),
                     (FP8Config(32, 32, 16), "block_k must be >= 32"),
                     (FP8Config(32, 32, 32, num_warps=2), "num_warps"),
                     (FP8Config(32, 32, 32, num_stages=0), "num_stages"),
                     (FP8Config(32, 32, 32, group_m=0), "group_m")]:
        with pytest.raises(ValueError, match=msg):
            fp8_matmul(a, b, sa, sb, config=cfg)
    a, b, sa, sb = _good(recipe="block")
    for cfg in (FP8Config(32, 32, 64), FP8Config(32, 32, 256), FP8Config(32, 256, 128)):
        with pytest.raises(ValueError, match="block recipe needs block_k == 128"):
            fp8_matmul(a, b, sa, sb, "block", config=cfg)
    with pytest.raises(ValueError, match="k_unroll must be 1, or 2 with the block recipe"):
        fp8_matmul(a, b, sa, sb, "block", config=FP8Config(32, 32, 128, k_unroll=3))
    a, b, sa, sb = _good()
    with pytest.raises(ValueError, match="k_unroll must be 1, or 2 with the block recipe"):
        fp8_matmul(a, b, sa, sb, "row", config=FP8Config(32, 32, 32, k_unroll=2))
    with pytest.raises(ValueError, match="epilogue_subtile stores half tiles"):  # 8-byte halves of e4m3
        fp8_matmul(a, b, sa, sb, "row", E4M3, config=FP8Config(32, 16, 32, epilogue_subtile=True))


def test_views_with_a_pending_negation_are_refused():
    a, b, sa, sb = _good()
    for args, label in (((a._neg_view(), b, sa, sb), "a"), ((a, b, sa._neg_view(), sb), "a_scale")):
        with pytest.raises(ValueError, match=f"{label} is a view with a pending negation"):
            fp8_matmul(*args)


def test_out_of_the_wrong_shape_or_dtype_or_sharing_memory_is_refused():
    M, N, K = 8, 16, 32
    a, b, sa, sb = _good(M, N, K)
    cfg = _config("row")
    with pytest.raises(ValueError, match=r"out must be a \(8, 16\) tensor"):
        fp8_matmul(a, b, sa, sb, config=cfg, out=torch.empty((M, N), dtype=torch.float32, device=kernels.DEVICE))
    with pytest.raises(ValueError, match=r"out must be a \(8, 16\) tensor"):
        fp8_matmul(a, b, sa, sb, config=cfg, out=torch.empty((M, N + 8), dtype=BF16, device=kernels.DEVICE))
    with pytest.raises(ValueError, match="shares memory with an input"):  # out is a view of a
        fp8_matmul(a, b, sa, sb, out_dtype=E4M3, config=cfg, out=a[:, :N])
    a2, b2, sa2, sb2 = _good(M=16, N=16, K=32)
    with pytest.raises(ValueError, match="shares memory with an input"):  # out is a view of b
        fp8_matmul(a2, b2, sa2, sb2, out_dtype=E4M3, config=cfg, out=b2[:, :16])
    with pytest.raises(ValueError, match="contiguous along its last dimension"):
        fp8_matmul(a, b, sa, sb, config=cfg, out=torch.empty((N, M), dtype=BF16, device=kernels.DEVICE).t())


def test_out_whose_elements_share_memory_is_refused():
    """An ``out`` made by ``expand`` has one row for all M: every program would write its tile into the
    same memory and the result would hold M copies of one row (the other matmuls of the course refuse
    it, kernels.operands.check_out)."""
    a, b, sa, sb = _good()
    out = torch.empty((1, 16), dtype=BF16, device=kernels.DEVICE).expand(8, 16)
    with pytest.raises(ValueError, match="fp8_matmul"):
        fp8_matmul(a, b, sa, sb, config=_config("row"), out=out)


def test_out_on_another_device_is_refused():
    a, b, sa, sb = _good()
    out = torch.empty((8, 16), dtype=BF16, device=OTHER_DEVICE)
    with pytest.raises(ValueError, match="fp8_matmul: out"):
        fp8_matmul(a, b, sa, sb, config=_config("row"), out=out)
