"""FP4 (e2m1) codes, packing and microscaling (kernels.fp4)."""
import numpy as np
import pytest

from kernels import fp4

# the OCP MX specification's table of e2m1 values, code 0..7 (codes 8..15: the same, negative)
TABLE = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def test_every_code():
    assert [fp4.decode(c) for c in range(8)] == TABLE
    assert [fp4.decode(c) for c in range(8, 16)] == [-v for v in TABLE]
    assert fp4.quantize_codes(TABLE).tolist() == list(range(8))
    assert fp4.quantize_codes([-v for v in TABLE[1:]]).tolist() == list(range(9, 16))
    with pytest.raises(ValueError, match="0..15"):
        fp4.decode(16)


def test_round_to_nearest_even_and_saturate():
    ties = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    assert fp4.quantize(ties).tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    assert fp4.quantize([0.26, 5.01, 7.0, 1e9, -1e9, -0.1]).tolist() == [0.5, 6.0, 6.0, 6.0, -6.0, -0.0]
    assert fp4.quantize_codes([-0.1]).tolist() == [0]  # a negative value rounded to zero is +0
    with pytest.raises(ValueError, match="no NaN"):
        fp4.quantize([np.nan])


@pytest.mark.parametrize("order", ["low_first", "high_first"])
def test_pack_unpack_round_trip_every_pair(order):
    codes = np.array([[a, b] for a in range(16) for b in range(16)], dtype=np.uint8).reshape(16, 32)
    packed = fp4.pack(codes, order)
    assert packed.shape == (16, 16) and packed.dtype == np.uint8
    assert np.array_equal(fp4.unpack(packed, order), codes)
    lo = fp4.pack(np.array([[1, 2]], dtype=np.uint8), "low_first")
    assert lo.tolist() == [[0x21]] and fp4.pack(np.array([[1, 2]], dtype=np.uint8), "high_first").tolist() == [[0x12]]
    with pytest.raises(ValueError, match="even"):
        fp4.pack(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="order"):
        fp4.unpack(packed, "middle")


def test_mxfp4_blocks_share_a_power_of_two():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 96))
    x[1, :32] = 0.0  # an all-zero block
    x[2, 40] = 100.0  # an outlier in block 1 of row 2
    codes, exp = fp4.mxfp4(x)
    assert codes.shape == (8, 96) and exp.shape == (8, 3) and exp[1, 0] == 0
    assert exp[2, 1] == np.floor(np.log2(100.0)) - 2  # 100 lands in [4, 8) * 2**exp
    d = fp4.mxfp4_dequantize(codes, exp)
    assert d[2, 40] == 96.0  # 100 / 16 = 6.25 saturates to 6: the cost of a power-of-two scale
    assert (d[1, :32] == 0).all()
    rel = np.linalg.norm(d - x) / np.linalg.norm(x)
    assert 0.05 < rel < 0.3
    with pytest.raises(ValueError, match="multiple of the block size"):
        fp4.mxfp4(x[:, :40])


def test_nvfp4_is_finer_than_mxfp4_on_gaussian_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 256))
    mc, me = fp4.mxfp4(x)
    nc, ns, ts = fp4.nvfp4(x)
    assert ns.shape == (64, 16) and np.isin(ns, __import__("kernels.fp8", fromlist=["x"]).E4M3.values()).all()
    mx = np.linalg.norm(fp4.mxfp4_dequantize(mc, me) - x)
    nv = np.linalg.norm(fp4.nvfp4_dequantize(nc, ns, ts) - x)
    assert nv < mx  # 16-value blocks and a scale that is not a power of two
    assert fp4.bits_per_weight(32, 8) == 4.25 and fp4.bits_per_weight(16, 8) == 4.5
