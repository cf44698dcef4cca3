"""Every number in the chapters' prose agrees with where it comes from (chapters/claims.py).

The engine is benchmarks/claims.py; the table is chapters/claims.py. CPU only, no Triton compile: the
sources read JSON records, committed logs and the course's plain-Python helpers.
"""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import claims as C
from benchmarks.claims import Calc, Claim, LogNumber, Record, SourceError, Spec, check, scan_cell, within

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

# Numbers in the prose that no record holds yet. Each must be given a source (a record of the H100 or
# of the GPU the chapters move to) and then removed from this list; an entry whose text is gone, or
# that no longer holds a number without a source, fails the test below, so this list cannot go stale.
KNOWN_UNSOURCED: set = set()  # (notebook, text) pairs tolerated for now; every number has a record today


def _table():
    spec = importlib.util.spec_from_file_location("chapter_claims", ROOT / "chapters" / "claims.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TABLE = _table()


def _copy(tmp_path, stem, old, new):
    """A copy of chapters/<stem>.ipynb under tmp_path with ``old`` (once in the file) replaced."""
    src = ROOT / "chapters" / f"{stem}.ipynb"
    raw = src.read_text(encoding="utf-8")
    assert raw.count(old) == 1, f"{old!r} occurs {raw.count(old)} times in {src.name}"
    dst = tmp_path / src.name
    dst.write_text(raw.replace(old, new), encoding="utf-8")
    return dst


def _claims_of(stem):
    return [c for c in TABLE.CLAIMS if c.notebook == stem]


def _known_of(stem):
    return {k for k in KNOWN_UNSOURCED if k[0] == stem}


# ----------------------------------------------------------------------------------- the real check
def test_the_chapters_prose_agrees_with_the_records():
    assert len(CHAPTERS) >= 6
    problems = check(TABLE.CLAIMS, CHAPTERS, unsourced_ok=KNOWN_UNSOURCED)
    assert not problems, "\n".join(problems)


def test_known_unsourced_entries_are_still_there_and_still_unsourced():
    """The tolerated list is exact: without it, check() reports one or more numbers inside each entry
    and nothing else."""
    problems = check(TABLE.CLAIMS, CHAPTERS)
    if not KNOWN_UNSOURCED:
        assert not problems, "\n".join(problems)
        return
    assert problems and all(p.kind == "unsourced" for p in problems), "\n".join(problems)
    paths = {p.stem: p for p in CHAPTERS}
    for nb, text in sorted(KNOWN_UNSOURCED):
        where = C.locate(paths[nb], text)
        assert len(where) == 1, f"{nb}: {text!r} found {len(where)} times"
        cell, a, b = where[0]
        inside = [p for p in problems if p.notebook == nb and p.cell == cell and a <= p.start and p.end <= b]
        assert inside, f"{nb}: {text!r} holds no unsourced number any more: remove it from KNOWN_UNSOURCED"


def test_a_stale_known_unsourced_entry_fails(tmp_path):
    stem = "02_tiled_matmul"
    # a tolerated entry whose text is gone from the chapter is itself a problem
    gone = {(stem, "and earlier runs measured 1.05×")}
    problems = check(_claims_of(stem), [ROOT / "chapters" / f"{stem}.ipynb"], unsourced_ok=gone)
    assert [p.kind for p in problems] == ["stale"], problems
    assert "earlier runs measured 1.05×" in problems[0]
    # and so is one that no longer holds an unsourced number (its number got a claim)
    sourced = {(stem, "the GPU work takes 5.9 µs for")}
    problems = check(_claims_of(stem), [ROOT / "chapters" / f"{stem}.ipynb"], unsourced_ok=sourced)
    assert [p.kind for p in problems] == ["stale"], problems


def test_every_claim_is_for_a_chapter_and_the_table_imports_without_side_effects():
    assert {c.notebook for c in TABLE.CLAIMS} <= {p.stem for p in CHAPTERS}
    code = ("import runpy, sys; runpy.run_path('chapters/claims.py'); "
            "bad = [m for m in ('kernels', 'torch', 'triton') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ----------------------------------------------------------------------------------- planted errors
def test_a_wrong_number_is_reported_with_the_recorded_value(tmp_path):
    stem = "05_warp_specialization"
    nb = _copy(tmp_path, stem, "against 0.97×", "against 0.87×")
    problems = check(_claims_of(stem), [nb])
    assert [p.kind for p in problems] == ["value"], problems
    msg = problems[0]
    assert "0.87" in msg and "ch05_pingpong.json" in msg and "0.97" in msg and "ratio_graph" in msg, msg


def test_an_unregistered_number_is_reported(tmp_path):
    stem = "03_persistent_matmul"
    nb = _copy(tmp_path, stem, "Smaller tiles, chosen by chapter 02's autotuner",
               "Smaller tiles reach 0.42× of cuBLAS, chosen by chapter 02's autotuner")
    problems = check(_claims_of(stem), [nb])
    assert [p.kind for p in problems] == ["unsourced"], problems
    assert "no source: '0.42×'" in problems[0] and "of 03_persistent_matmul" in problems[0]


def test_a_claim_whose_text_is_absent_or_twice_is_reported(tmp_path):
    stem = "03_persistent_matmul"
    nb = ROOT / "chapters" / f"{stem}.ipynb"
    absent = Claim(stem, "reaches 0.99× of nothing", [Calc(0.99, why="test")])
    twice = Claim(stem, "132 SMs", [Spec("h100", "sms")])
    problems = check(_claims_of(stem) + [absent, twice], [nb])
    kinds = sorted(p.kind for p in problems)
    assert kinds == ["text", "text"], problems
    assert any("not found" in p and "0.99× of nothing" in p for p in problems)
    assert any(re.search(r"found \d+ times", p) for p in problems), problems


def test_a_count_mismatch_and_a_failing_source_are_reported(tmp_path):
    stem = "04_tma_pipelining"
    nb = ROOT / "chapters" / f"{stem}.ipynb"
    claims = [c for c in _claims_of(stem) if "Three stages fit" not in c.text]
    claims.append(Claim(stem, "Three stages fit: 0.98× cuBLAS at 4096³, 1.01× at 8192³",
                        [Record("ch04_tma", "h100", {"kernel": "no such kernel"}, "ratio_graph"),
                         Record("ch04_tma", "h100", {"M": 8192}, "K")]))
    claims.append(Claim(stem, "(128 tiles of 128×256 for 132 SMs)", []))
    problems = check(claims, [nb])
    by_kind = {}
    for p in problems:
        by_kind.setdefault(p.kind, []).append(p)
    assert set(by_kind) == {"source", "count"}, problems
    assert any("no record matches" in p for p in by_kind["source"])
    assert any("no agg=" in p for p in by_kind["source"])
    assert "1 numbers in the text" in by_kind["count"][0] and "0 sources" in by_kind["count"][0]


# ----------------------------------------------------------------------------------- rounding
def test_rounding_follows_the_written_decimals():
    assert within(0.974, 0.97, 2)
    assert within(0.965, 0.97, 2) and within(0.975, 0.97, 2)
    assert not within(0.976, 0.97, 2)
    assert not within(0.964, 0.97, 2)
    assert within(12.5, 12.5, 1) and not within(12.56, 12.5, 1)
    assert within(6.6, 7, 0) and not within(6.4, 7, 0)


def test_explicit_rounding():
    assert within(434.9, 430, 0, 10) and within(425.0, 430, 0, 10) and not within(436, 430, 0, 10)
    assert within(208, 200, 0, "5%") and not within(211, 200, 0, "5%")
    assert within(0.72, 1, 0, "upper") and not within(1.2, 1, 0, "upper")
    assert within(3.0, 2, 0, "lower") and not within(1.5, 2, 0, "lower")
    assert within([0.8901, 0.8935], 0.89, 2) and not within([0.8901, 0.8955], 0.89, 2)
    with pytest.raises(ValueError):
        within(1.0, 1.0, 0, "about")


# ----------------------------------------------------------------------------------- the scanner
def _written(md):
    return [n.written for n in scan_cell(md)]


def _values(md):
    return [v for n in scan_cell(md) for v in n.values]


def test_scanner_finds_units_ranges_lists_and_decimals():
    assert _values("the graph time is 0.97–0.98× the library's") == [0.97, 0.98]
    assert _values("costs 60–90 µs of CPU time, by 3–8 %") == [60, 90, 3, 8]
    assert _values("**1.01×, 1.01×, 0.98×** at three sizes") == [1.01, 1.01, 0.98]
    assert _written("about 430 TFLOP/s, 3.35 TB/s, 8 MiB, 50 MB, 227 KB, 40 registers, 132 SMs, 6.0 µs") == [
        "430 TFLOP/s", "3.35 TB/s", "8 MiB", "50 MB", "227 KB", "40 registers", "132 SMs", "6.0 µs"]
    assert _written("1365 flop/byte, 295 flop/B, 8 flops per byte, 700 W at 1980 MHz, 12.5 % more") == [
        "1365 flop/byte", "295 flop/B", "8 flops per byte", "700 W", "1980 MHz", "12.5 %"]
    assert _written("(1.09 waves) and 0.45") == ["1.09", "0.45"]
    assert _written("a copy 3.04\n  TB/s") == ["3.04 TB/s"]
    assert _values("gaps of 0.02–0.03 are not findings") == [0.02, 0.03]


def test_scanner_ignores_shapes_code_math_links_files_versions_and_names():
    assert _values("a 128×256 tile, 128×256×64 stages, 4096³ and 2048² shapes, 64 column-panels") == []
    assert _values("16×16×16 reaches about 0.05× cuBLAS") == [0.05]
    assert _values("`num_stages=3`, `0.5 * x`, and\n```python\nx = 0.97\n```\n") == []
    assert _values("$t \\ge 0.5 F$ and $$ 2.5 $$") == []
    assert _values("[chapter 01](01_three_loop_matmul.ipynb) and https://x.org/v1.2 and results/h100/ch02_order.json") == []
    assert _values("Triton 3.6 and torch 2.11 on an H100, bf16, FP8, sm_90, errors of order 1e10") == []
    assert _values('<video src="media/x.mp4" width="760"></video>') == []
    assert _values("chapters 01–05, 4 warps, 144 tiles, 06–09 coming") == []


def test_scanner_finds_numbers_written_without_spaces_emphasis_signs_and_other_spellings():
    # units right after the number, the letter x, italics and bold, non-breaking spaces
    assert _written("0.5x of it, 3.35TB/s, 1.5ms, 6.0µs, 700W, 1980MHz") == [
        "0.5x", "3.35TB/s", "1.5ms", "6.0µs", "700W", "1980MHz"]
    assert _values("_0.93×_ and **0.50x** and **600** TFLOP/s") == [0.93, 0.5, 600]
    assert _values("97\u00a0% and 600\u202fTFLOP/s") == [97, 600]
    # spellings of throughput, "times", a spaced ×
    assert _values("700 TFLOPS, 650 TFLOP/sec, 12 tflop/s, about 1366 times, 2 × faster") == [700, 650, 12, 1366, 2]
    # ranges with "to", a value ± its uncertainty, signs, scientific notation
    assert _values("600 to 700 TFLOP/s, 90 to 110 %") == [600, 700, 90, 110]
    assert _values("600±5 TFLOP/s") == [600]
    assert _values("−0.98× and -3 %") == [-0.98, -3]
    assert _values("6.5e-3 ms") == [0.0065]
    # a comparison sign is not an HTML tag; two ratios side by side are not a tile shape
    assert _values("when M<N, 0.60×; when N>M, 0.70×") == [0.6, 0.7]
    assert _values("0.97× 0.98×") == [0.97, 0.98]
    assert _values("5 %-10 % and 5%-10%") == [5, 10, 5, 10]  # a dash after a unit is not a sign
    assert _values("a<b and 0.6× c>d, <b>0.7×</b>") == [0.6, 0.7]
    assert _values("0.5X, 50 percent, 3 GHz, 40 ns, 700 watts, 12 cycles, 3 TB/sec") == [0.5, 50, 3, 40, 700, 12, 3]


def test_roundings_cannot_swallow_the_number_and_sources_must_be_numbers():
    with pytest.raises(ValueError, match="more than 25%"):
        within(3.0, 0.64, 2, 10)
    with pytest.raises(ValueError, match="relative rounding"):
        within(1.0, 0.64, 2, "100%")
    with pytest.raises(ValueError, match="not a number"):
        within("0.64", 0.64, 2)
    with pytest.raises(ValueError, match="not a number"):
        within(True, 1, 0)
    assert within(448, 450, 0, 10) and not within(456, 450, 0, 10)
    with pytest.raises(ValueError, match="written 0"):
        within(3.0, 0, 0, 1000)


def test_a_claim_about_several_records_needs_each_of_them():
    from benchmarks.claims import one_of

    both = Record("ch02_tiled", "h200", {"M": one_of(4096, 8192)}, "ratio_graph", agg="all")
    assert len(both.value()) == 2
    missing = Record("ch02_tiled", "h200", {"M": one_of(4096, 12345)}, "ratio_graph", agg="all")
    with pytest.raises(SourceError, match="no record with M=12345"):
        missing.value()


def test_a_source_with_several_records_needs_agg():
    with pytest.raises(SourceError, match="no agg="):
        Record("ch02_tiled", "h100", {}, "ratio_graph").value()
    assert Record("ch02_tiled", "h100", {}, "ratio_graph", agg="max").value() > 0.9
    with pytest.raises(SourceError, match="not under results/logs/"):
        LogNumber("README.md", r"(\d+)").value()
    with pytest.raises(SourceError, match="no datasheet"):
        Spec("a100", "sms").value()


def test_a_wrong_number_with_a_rounding_says_what_the_record_holds():
    """A claim with a numeric rounding used to crash the checker's message ("rounding=10 on a written 0")."""
    from benchmarks import claims as C

    assert C._rounding_text(10, 0) == "±5, rounding=10"
    assert C._rounding_text(None, 2) == "±0.005"
    assert C._rounding_text("upper", 1) == "must not exceed it"
