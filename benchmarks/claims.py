"""Numbers in the chapters' prose, checked against where they come from.

A chapter's markdown says things like "the plain TMA pipeline at 0.98× and 1.01×". Each such number
has to come from somewhere: a benchmark record in ``results/<gpu>/``, a calculation with the course's
own functions, a datasheet constant of ``kernels.roofline``, or a committed log. This module holds the
machinery; the table of what each number in the chapters is, is ``chapters/claims.py``; the test is
``tests/test_claims.py``.

Sources (each yields a number, or a list of numbers that must *all* match the written one):

* ``Record(name, gpu, where={field: value or predicate}, field=..., agg=None, scale=1.0)``: a field of
  the records of ``results/<gpu>/<name>.json`` (read with ``kernels.bench.load``) that match ``where``.
  Zero matching records is an error, and so is more than one unless ``agg`` says how to combine them:
  ``"min"``, ``"max"``, ``"median"``, or ``"all"`` (every matching value must round to the written
  number, for prose like "both give 0.89×"). A field that holds a list (``repeats_tflops``) contributes
  each of its values. ``scale`` multiplies (100 for a ratio written as a percentage, 1000 for ms as µs).
* ``Calc(fn_or_expr, why=...)``: a number computed from the course's own functions or plain
  arithmetic. ``fn_or_expr`` is a number, a zero-argument callable, or a Python expression (a string)
  evaluated lazily with the names of :data:`CALC_NAMES` in scope (``tile_intensity``, ``datasheet``,
  ``widgets``, ``record`` ...).
* ``Spec(gpu, field)``: a datasheet figure from ``kernels.roofline.DATASHEETS[gpu]`` (``"sms"``,
  ``"bandwidth_tbs"``, ``"peak_tflops[bf16]"``); their source is documented there.
* ``LogNumber(path, regex, group=1, agg=None)``: a number read from a committed log under
  ``results/logs/`` (every match of ``regex``; more than one needs ``agg``, as for ``Record``).
* ``Fact(value, source=...)``: a hardware figure that no file of the course holds (the size of a
  GPU's memory, say), with the document it comes from. Use it only for such constants.

``Claim(notebook, text, sources, rounding=None)``: ``text`` is a literal piece of one markdown cell of
``chapters/<notebook>.ipynb`` (whitespace in ``text`` matches any run of whitespace, since the prose
wraps lines; it must occur exactly once in the notebook's markdown). The measurement-like numbers
inside it (found by :func:`scan`) are matched, in order, to ``sources``; the counts must agree. To
find the text, each such number in it matches any number, so that when a number in the prose changes
the claim still finds its sentence and the check reports the written and the recorded value.

Rounding. A number written with ``d`` decimals passes when ``|source - written| <= 0.5 * 10**-d``
("0.97×" accepts 0.965 to 0.975). ``rounding`` widens that explicitly, for one claim (a single value)
or per number (a list, ``None`` keeping the default):

* a number ``R``: the written figure is rounded to the nearest ``R`` (``rounding=10`` for "about 430
  TFLOP/s" accepts 425 to 435);
* ``"N%"``: within N % of the written figure;
* ``"upper"``: the written figure is a bound the source stays under ("well under 1 %"); ``"lower"``: a
  bound it stays over.

Which numbers count (:func:`scan`). Inline code, fenced code, LaTeX (``$...$``), HTML tags, link
targets, URLs and file names are ignored. In what is left a number counts when it is

* followed by a unit: ``×`` (but not a tile shape: ``128×256``, a number next to ``×`` and a digit),
  ``%``, ``TFLOP/s``, ``GFLOP/s``, ``TB/s``, ``GB/s``, ``µs``/``us``, ``ms``, ``flop/B``,
  ``flop/byte``, ``flops per byte``, ``KiB``/``KB``/``MiB``/``MB``/``GB``, ``registers``, ``SMs``
  (``streaming multiprocessors``), ``W``, ``MHz``;
* or written with a decimal point (``0.45``, ``1.09 waves``), except a version after a software name
  ("Triton 3.6").

A range ``a–b`` or ``a-b`` followed by a unit is two numbers with that unit ("0.97–0.98×", "3–8 %");
a list "1.01×, 1.01×, 0.98×" is one number per unit. Integers without a unit (shapes such as 4096³,
chapter numbers, counts like "144 tiles") and numbers inside words or names (H100, bf16, FP8, 1e10)
are not measurements. So write the unit on every measured figure, also after "about" ("about 510
TFLOP/s against about 630 TFLOP/s", not "about 510 against 630"): a figure without one is not checked.

``check(claims, notebooks)`` returns the problems as strings (:class:`Problem`, a ``str`` that also
carries ``kind``, ``notebook``, ``cell``, ``start``, ``end``): a claim's text not found or found twice;
a count mismatch; a value outside its rounding (with the written value, the source's value and where
it comes from, so that the prose can be fixed); and every scanned number that no claim covers
("no source"). Only the standard library and the course's ``kernels`` are used; ``kernels`` is imported
only when a source is evaluated, so importing this module (or a table of claims) has no side effects.
"""
from __future__ import annotations

import importlib
import json
import math
import re
import statistics
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
LOGS = REPO / "results" / "logs"
AGGS = (None, "min", "max", "median", "all")


class SourceError(Exception):
    """A source that cannot give a value (no record matches, several do without ``agg``, ...)."""


# --------------------------------------------------------------------------------------------- sources
def _aggregate(values: list, agg, what: str):
    if not values:
        raise SourceError(f"{what}: nothing matched")
    if agg is None:
        if len(values) > 1:
            raise SourceError(f"{what}: {len(values)} values ({_fmt_list(values)}) and no agg= "
                              f"(one of 'min', 'max', 'median', 'all')")
        return values[0]
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    if agg == "median":
        return statistics.median(values)
    if agg == "all":
        return list(values)
    raise SourceError(f"{what}: unknown agg {agg!r}; use one of {AGGS}")


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return _fmt_list(v)
    if not isinstance(v, (int, float)):
        return repr(v)
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def _fmt_list(vs) -> str:
    return "[" + ", ".join(_fmt(v) for v in vs) + "]"


_DOCS: dict = {}


def _load(name: str, gpu: str) -> dict:
    key = (name, gpu)
    if key not in _DOCS:
        from kernels import bench  # imported here: `import kernels` decides the world

        try:
            _DOCS[key] = bench.load(name, gpu)
        except FileNotFoundError as exc:
            raise SourceError(str(exc)) from None
    return _DOCS[key]


def record_values(name: str, gpu: str, where: dict | None, field: str) -> list:
    """The values of ``field`` in the records of ``results/<gpu>/<name>.json`` matching ``where``
    (``{field: value}`` or ``{field: predicate}``); list-valued fields are flattened. Raises
    :class:`SourceError` when no record matches or a matching record lacks the field."""
    doc = _load(name, gpu)
    where = where or {}
    hits = []
    for r in doc["records"]:
        ok = True
        for k, want in where.items():
            if k not in r:
                ok = False
            elif callable(want):
                ok = bool(want(r[k]))
            else:
                ok = r[k] == want
            if not ok:
                break
        if ok:
            hits.append(r)
    what = f"results/{gpu}/{name}.json {_where_text(where)}"
    if not hits:
        raise SourceError(f"{what}: no record matches")
    for k, want in where.items():  # one_of(a, b): a claim about both needs a record of each
        for alt in getattr(want, "alternatives", ()):
            if not any(r.get(k) == alt for r in hits):
                raise SourceError(f"{what}: no record with {k}={alt!r}")
    values = []
    for r in hits:
        if field not in r or r[field] is None:
            raise SourceError(f"{what}: a matching record has no {field!r} "
                              f"(kernel={r.get('kernel')!r}, config={r.get('config')!r}, error={r.get('error')!r})")
        v = r[field]
        values.extend(v if isinstance(v, list) else [v])
    return values


def record(name: str, field: str, agg=None, gpu: str = "h100", **where):
    """One value (or a list, ``agg="all"``) from a record: for use inside ``Calc`` expressions."""
    return _aggregate(record_values(name, gpu, where, field), agg, f"results/{gpu}/{name}.json "
                      f"{_where_text(where)} {field}")


def _where_text(where: dict) -> str:
    parts = []
    for k, v in (where or {}).items():
        parts.append(f"{k}=<{getattr(v, 'why', None) or 'predicate'}>" if callable(v) else f"{k}={v!r}")
    return "[" + ", ".join(parts) + "]"


def one_of(*values):
    """A ``where`` predicate: the field is one of ``values`` (``M=one_of(4096, 8192)``)."""
    pred = lambda v: v in values  # noqa: E731
    pred.why = "one of " + ", ".join(map(repr, values))
    pred.alternatives = values  # record_values requires a matching record for each of them
    return pred


def matches(pattern: str):
    """A ``where`` predicate: the field (a string) matches the regular expression ``pattern``."""
    rx = re.compile(pattern)
    pred = lambda v: isinstance(v, str) and rx.search(v) is not None  # noqa: E731
    pred.why = f"matches {pattern!r}"
    return pred


@dataclass(frozen=True)
class Record:
    """A field of benchmark records: see the module docstring."""
    name: str
    gpu: str = "h100"
    where: dict = dc_field(default_factory=dict)
    field: str = "ratio_graph"
    agg: str | None = None
    scale: float = 1.0

    def __post_init__(self):
        if self.agg not in AGGS:
            raise ValueError(f"Record: agg must be one of {AGGS}, not {self.agg!r}")

    def value(self):
        v = _aggregate(record_values(self.name, self.gpu, self.where, self.field), self.agg, self.describe())
        return [x * self.scale for x in v] if isinstance(v, list) else v * self.scale

    def describe(self) -> str:
        s = f"results/{self.gpu}/{self.name}.json {_where_text(self.where)} {self.field}"
        if self.agg:
            s += f" ({self.agg})"
        if self.scale != 1.0:
            s += f" ×{self.scale:g}"
        return s


def _calc_names() -> dict:
    """What a ``Calc`` expression can name (imported on first use)."""
    from kernels import roofline, widgets

    names = {n: getattr(roofline, n) for n in dir(roofline) if not n.startswith("_")}
    names.update(roofline=roofline, widgets=widgets, math=math, record=record, one_of=one_of,
                 matches=matches, datasheet=lambda gpu="h100": _datasheets()[gpu], log=log_values,
                 env=lambda name, gpu="h100": _load(name, gpu)["environment"],
                 course=lambda module: importlib.import_module(f"kernels.{module}"))
    return names


CALC_NAMES = ("everything public in kernels.roofline (tile_intensity, matmul_intensity, ...)", "roofline",
              "widgets", "math", "record(name, field, agg=None, gpu='h100', **where)", "one_of", "matches",
              "datasheet(gpu)", "env(name, gpu) (a record's environment: clocks, versions)",
              "log(path, regex, group=1)", "course('persistent') (a module of kernels)")


@dataclass(frozen=True)
class Calc:
    """A number computed from the course's functions or plain arithmetic; ``why`` says what it is."""
    fn_or_expr: Any
    why: str = ""

    def __post_init__(self):
        if not self.why:
            raise ValueError(f"Calc({self.fn_or_expr!r}): say why (what the number is)")

    def value(self):
        f = self.fn_or_expr
        try:
            if isinstance(f, str):
                scope = dict(_calc_names(), __builtins__={"min": min, "max": max, "abs": abs, "round": round,
                                                          "len": len, "sum": sum, "int": int, "float": float})
                return eval(f, scope)
            return f() if callable(f) else f
        except SourceError:
            raise
        except Exception as exc:  # a broken expression is a problem to report, not a crash
            raise SourceError(f"{self.describe()}: {type(exc).__name__}: {exc}") from None

    def describe(self) -> str:
        expr = self.fn_or_expr if isinstance(self.fn_or_expr, (str, int, float)) else "fn"
        return f"calc {expr} ({self.why})"


def _datasheets() -> dict:
    from kernels import roofline

    sheets = getattr(roofline, "DATASHEETS", None)
    if sheets is None:  # an older kernels.roofline: the H100's sheet only
        sheets = {"h100": roofline.H100_DATASHEET}
    return sheets


@dataclass(frozen=True)
class Spec:
    """A datasheet figure from ``kernels.roofline.DATASHEETS``: ``"sms"``, ``"bandwidth_tbs"``,
    ``"peak_tflops[bf16]"``, ``"ridge[bf16]"`` (peak / bandwidth, flop per byte)."""
    gpu: str
    field: str

    def value(self):
        sheets = _datasheets()
        if self.gpu not in sheets:
            raise SourceError(f"{self.describe()}: no datasheet for {self.gpu!r} (known: {sorted(sheets)})")
        spec = sheets[self.gpu]
        m = re.fullmatch(r"(\w+)(?:\[(\w+)\])?", self.field)
        if not m:
            raise SourceError(f"{self.describe()}: bad field")
        name, key = m.groups()
        if name == "ridge":
            return spec.ridge(key or "bf16")
        if not hasattr(spec, name):
            raise SourceError(f"{self.describe()}: the datasheet has no {name!r}")
        v = getattr(spec, name)
        if key is not None:
            if key not in v:
                raise SourceError(f"{self.describe()}: no {key!r} in {name} (has {sorted(v)})")
            v = v[key]
        return v

    def describe(self) -> str:
        return f"kernels.roofline.DATASHEETS[{self.gpu!r}].{self.field}"


def log_values(path: str, regex: str, group=1) -> list:
    """Every match of ``regex`` (its ``group``, as a float) in a committed log under results/logs/."""
    p = (REPO / path).resolve()
    if LOGS.resolve() not in p.parents:
        raise SourceError(f"log {path}: not under results/logs/")
    if not p.is_file():
        raise SourceError(f"log {path}: no such file")
    return [float(m.group(group)) for m in re.finditer(regex, p.read_text(), re.M)]


@dataclass(frozen=True)
class LogNumber:
    """A number read from a committed log under ``results/logs/``."""
    path: str
    regex: str
    group: Any = 1
    agg: str | None = None

    def value(self):
        return _aggregate(log_values(self.path, self.regex, self.group), self.agg, self.describe())

    def describe(self) -> str:
        return f"{self.path} /{self.regex}/" + (f" ({self.agg})" if self.agg else "")


@dataclass(frozen=True)
class Fact:
    """A hardware figure no file of the course holds, with the document it comes from."""
    value_: float
    source: str

    def __post_init__(self):
        if not self.source.strip():
            raise ValueError("Fact: name the document the figure comes from")

    def value(self):
        return self.value_

    def describe(self) -> str:
        return f"fact ({self.source})"


Source = Record | Calc | Spec | LogNumber | Fact


@dataclass(frozen=True)
class Claim:
    """A piece of a chapter's markdown and the sources of the numbers in it, in order."""
    notebook: str
    text: str
    sources: Sequence = ()
    rounding: Any = None

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        if isinstance(self.rounding, (list, tuple)) and len(self.rounding) != len(self.sources):
            raise ValueError(f"Claim {self.text!r}: {len(self.rounding)} roundings for {len(self.sources)} sources")

    def rounding_for(self, i: int):
        return self.rounding[i] if isinstance(self.rounding, (list, tuple)) else self.rounding


# --------------------------------------------------------------------------------------------- scanning
_WS = re.compile(r"\s+")


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        for i in range(a, b):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


_IGNORED = [
    re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S),            # fenced code
    re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S),                 # inline code
    re.compile(r"\$\$.+?\$\$", re.S),                               # display LaTeX
    re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$"),             # inline LaTeX
    re.compile(r"</?(?:video|audio|source|img|div|span|br|em|strong|sub|sup|details|summary|table|"
               r"thead|tbody|tr|td|th|code|pre|kbd|center|font|hr)\b[^<>]*>|</?[abip](?:\s+\w+=[^<>]*)?>|<!--.*?-->",
               re.S),  # HTML tags (one-letter tags only as <b>, </b>, <a href=...>)
    re.compile(r"\]\([^)]*\)"),                                     # link targets
    re.compile(r"\bhttps?://\S+|\bwww\.\S+"),                       # bare URLs
    re.compile(r"[\w.~/-]*\w\.(?:py|ipynb|log|json|md|mp4|ptx|ttgir|txt|ya?ml|toml|sh|cfg|csv)\b"),  # files
]

_VERSIONED = r"(?:Triton|triton|torch|PyTorch|CUDA|cuda|Python|python|NumPy|numpy|matplotlib|cuBLAS|nbval|version|v)"
# 64,512 (thousands separated by commas), 0.97, 6.5e-3
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_S = r"[ \t\u00a0\u202f]"  # a space, a tab, a non-breaking or narrow no-break space
# between a number and its unit: nothing, emphasis closing (**600** TFLOP/s), spaces, one line break
_SP = rf"(?:\*{{1,2}}|_{{1,2}})?(?:{_S}*\n)?{_S}*"
_UNIT = (rf"(?:{_S}?×(?!\s*\d)|[xX](?![\w])|{_SP}%|{_SP}percent\b|{_SP}(?:(?i:[TG]FLOP/s(?:ec)?|[TG]FLOPS|flops? per byte|flop/byte|"
         r"flop/B)|TB/s(?:ec)?|GB/s(?:ec)?|[µμ]s|us|ns|ms|KiB|KB|MiB|MB|GB|GiB|registers|SMs|streaming multiprocessors|"
         r"W|watts|MHz|GHz|cycles|times)(?![\w/]))")
# a number: not inside a word or a name (H100, bf16, x_1); an optional sign; an optional second number
# after a dash, "to" or "±" (a range); then a unit, or nothing that continues the token
_TOKEN = re.compile(
    rf"(?<![^\W_])(?<![.×])(?P<sign>(?<![^\s(\[*_])[-−](?=\d))?(?P<a>{_NUM})"
    rf"(?:(?:{_S}?(?P<dash>[–-]){_S}?|{_S}(?P<word>to){_S}|{_S}*(?P<pm>±){_S}*)(?P<b>{_NUM}))?"
    rf"(?:(?P<unit>{_UNIT})|(?![\w.]\d|[\w²³]))")


@dataclass(frozen=True)
class Number:
    """A measurement-like number in a markdown cell: ``start``/``end`` span the whole token (both ends of
    a range), ``values`` are the written values, ``decimals`` their decimal places."""
    cell: int
    start: int
    end: int
    written: str
    values: tuple
    decimals: tuple


def masked(source: str) -> str:
    """``source`` with the regions :func:`scan` ignores blanked out (offsets kept)."""
    text = source
    for rx in _IGNORED:
        text = _blank(text, [m.span() for m in rx.finditer(text)])
    return text


def scan_cell(source: str, cell: int = 0) -> list[Number]:
    """The measurement-like numbers of one markdown cell (see the module docstring for the rules)."""
    text = masked(source)
    found = []
    for m in _TOKEN.finditer(text):
        a, b, unit = m.group("a"), m.group("b"), m.group("unit")
        sign = -1.0 if m.group("sign") else 1.0
        a_end = m.end("a")
        nums_end = m.end("b") if b else a_end
        # a tile shape: "128×256", "4096 × 4096" (whole numbers on both sides of ×)
        if "." not in a and (re.search(r"\d\s*×\s*$", text[:m.start()]) or re.match(r"\s*×\s*\d+(?![.\d])", text[nums_end:])):
            continue
        if unit:
            parts = [(a, m.start("a"))] + ([(b, m.start("b"))] if b else [])
            start, end = m.start(), m.end()
        else:
            # no unit: only decimals count, and not a version after a software name ("Triton 3.6")
            parts = [(x, pos) for x, pos in ((a, m.start("a")), (b, m.start("b") if b else -1)) if x and "." in x]
            if not parts or re.search(rf"\b{_VERSIONED}\s*$", text[:m.start()]):
                continue
            start = m.start() if parts[0][1] == m.start("a") else parts[0][1]
            end = parts[-1][1] + len(parts[-1][0])
        vals = tuple((sign if pos == m.start("a") else 1.0) * float(x.replace(",", "")) for x, pos in parts)
        if m.group("pm") and b and len(parts) == 2:  # 600±5: the value is 600, written to ±5
            vals = vals[:1]
            parts = parts[:1]
        decs = tuple(len(x.split(".")[1].split("e")[0].split("E")[0]) if "." in x else 0 for x, _ in parts)
        found.append(Number(cell, start, end, _WS.sub(" ", source[start:end].strip()), vals, decs))
    return found


def markdown_cells(path) -> list[tuple[int, str]]:
    """``(index, source)`` of every markdown cell of a notebook (index among all cells)."""
    nb = json.loads(Path(path).read_text())
    out = []
    for i, c in enumerate(nb["cells"]):
        if c.get("cell_type") == "markdown":
            src = c["source"]
            out.append((i, "".join(src) if isinstance(src, list) else src))
    return out


def scan(path) -> list[Number]:
    """Every measurement-like number in a notebook's markdown cells."""
    return [n for i, src in markdown_cells(path) for n in scan_cell(src, i)]


def _literal(s: str) -> str:
    return r"\s+".join(re.escape(p) for p in _WS.split(s))


def text_pattern(text: str) -> re.Pattern:
    """``text`` as a pattern: literal, except that any whitespace matches any run of whitespace and
    that each measurement-like number in it (:func:`scan_cell`) matches any number. So a claim still
    finds its sentence after a number in it changed, and the check then says what the source holds."""
    text = text.strip()
    wild = []
    for n in scan_cell(text):
        wild += [(n.start + m.start(), n.start + m.end()) for m in re.finditer(_NUM, text[n.start:n.end])]
    out, i = [], 0
    for a, b in sorted(wild):
        out += [_literal(text[i:a]), _NUM]
        i = b
    out.append(_literal(text[i:]))
    return re.compile("".join(out))


def locate(path, text: str) -> list[tuple[int, int, int]]:
    """Where ``text`` occurs in a notebook's markdown: ``(cell, start, end)`` for each occurrence."""
    rx = text_pattern(text)
    return [(i, m.start(), m.end()) for i, src in markdown_cells(path) for m in rx.finditer(src)]


# --------------------------------------------------------------------------------------------- checking
class Problem(str):
    """A problem found by :func:`check`: a message, with ``kind`` (``"text"``, ``"count"``, ``"value"``,
    ``"source"``, ``"unsourced"``, ``"notebook"``, ``"stale"``), ``notebook``, ``cell``, ``start``, ``end``."""

    def __new__(cls, message, kind, notebook=None, cell=None, start=None, end=None):
        self = super().__new__(cls, message)
        self.kind, self.notebook, self.cell, self.start, self.end = kind, notebook, cell, start, end
        return self


def tolerance(written: float, decimals: int, rounding=None) -> tuple[float, float]:
    """The interval ``[lo, hi]`` a source value must fall in for ``written`` (with ``decimals`` decimal
    places) under ``rounding`` (module docstring)."""
    eps = 1e-9 * max(1.0, abs(written))
    half = 0.5 * 10.0 ** -decimals + eps
    if rounding is None:
        return written - half, written + half
    if rounding == "upper":
        return -math.inf, written + eps
    if rounding == "lower":
        return written - eps, math.inf
    if isinstance(rounding, str) and rounding.endswith("%"):
        pct = float(rounding[:-1])
        if not 0 < pct <= MAX_RELATIVE_ROUNDING * 100:
            raise ValueError(f"rounding {rounding!r}: a relative rounding is between 0 and "
                             f"{MAX_RELATIVE_ROUNDING:.0%}")
        rel = pct / 100 * abs(written)
        h = max(half, rel + eps)
        return written - h, written + h
    if isinstance(rounding, (int, float)) and not isinstance(rounding, bool) and rounding > 0:
        if not written:
            raise ValueError(f"rounding={rounding} on a written 0: say the number's decimals instead")
        if rounding / 2 > MAX_RELATIVE_ROUNDING * abs(written):
            raise ValueError(f"rounding={rounding} would accept anything within ±{rounding / 2:g} of "
                             f"{written:g}: more than {MAX_RELATIVE_ROUNDING:.0%} of the number")
        h = max(half, rounding / 2 + eps)
        return written - h, written + h
    raise ValueError(f"rounding must be None, a positive number, 'N%', 'upper' or 'lower', not {rounding!r}")


MAX_RELATIVE_ROUNDING = 0.25  # "about 20×" may stand for 15 to 25, never for anything


def within(source_value, written: float, decimals: int, rounding=None) -> bool:
    """Whether ``source_value`` (a number, or a list whose every value must fit) gives ``written``.
    Raises ValueError for a source value that is not a number (a string, a bool)."""
    lo, hi = tolerance(written, decimals, rounding)
    vals = source_value if isinstance(source_value, (list, tuple)) else [source_value]
    for v in vals:
        if isinstance(v, (bool, str)) or not isinstance(v, (int, float)):
            raise ValueError(f"a source gave {v!r}, not a number")
    return bool(vals) and all(lo <= float(v) <= hi for v in vals)


def _snippet(src: str, start: int, end: int, pad: int = 40) -> str:
    a, b = max(0, start - pad), min(len(src), end + pad)
    return ("…" if a else "") + _WS.sub(" ", src[a:b]) + ("…" if b < len(src) else "")


def _rounding_text(rounding, decimals) -> str:
    if rounding == "upper":
        return "must not exceed it"
    if rounding == "lower":
        return "must not fall below it"
    if isinstance(rounding, str):
        return f"within {rounding}"
    if isinstance(rounding, (int, float)) and not isinstance(rounding, bool) and rounding > 0:
        return f"±{max(0.5 * 10.0 ** -decimals, rounding / 2):.3g}, rounding={rounding}"  # says it for any written number
    half = tolerance(0.0, decimals, rounding)[1]
    return f"±{half:.3g}"


def check(claims: Iterable[Claim], notebooks: Iterable, unsourced_ok: Iterable[tuple[str, str]] = ()) -> list[Problem]:
    """Check ``claims`` against the markdown of ``notebooks`` (paths; a claim's ``notebook`` is a file's
    stem, ``"03_persistent_matmul"``). Returns a list of :class:`Problem` (``str``); empty when every
    claim's text is found once, its numbers agree with its sources, and every measurement-like number
    of the notebooks is covered by some claim.

    ``unsourced_ok``: ``(notebook, text)`` pairs whose numbers may stay without a source for now; an
    entry whose text is gone, or that no longer holds an unsourced number, is itself a problem
    (``"stale"``), so such a list cannot outlive its reason."""
    _DOCS.clear()
    paths = {Path(p).stem: Path(p) for p in notebooks}
    claims = list(claims)
    problems: list[Problem] = []
    cells = {nb: dict(markdown_cells(p)) for nb, p in paths.items()}
    numbers = {nb: scan(p) for nb, p in paths.items()}
    covered: dict[str, list[tuple[int, int, int]]] = {nb: [] for nb in paths}

    for c in claims:
        if c.notebook not in paths:
            problems.append(Problem(f"claim for a notebook not checked: {c.notebook!r} ({c.text!r}); "
                                    f"checked: {sorted(paths)}", "notebook", c.notebook))
            continue
        where = locate(paths[c.notebook], c.text)
        if len(where) != 1:
            what = "not found" if not where else f"found {len(where)} times (cells {[w[0] for w in where]}); make it longer"
            problems.append(Problem(f"{c.notebook}: claim text {what}: {c.text!r}", "text", c.notebook))
            continue
        cell, start, end = where[0]
        covered[c.notebook].append((cell, start, end))
        src = cells[c.notebook][cell]
        inside = [n for n in numbers[c.notebook] if n.cell == cell and start <= n.start and n.end <= end]
        written = [(n, v, d) for n in inside for v, d in zip(n.values, n.decimals)]
        if len(written) != len(c.sources):
            problems.append(Problem(
                f"{c.notebook} cell {cell}: {len(written)} numbers in the text "
                f"({[n.written for n in inside]}) but {len(c.sources)} sources: {c.text!r}",
                "count", c.notebook, cell, start, end))
            continue
        for i, ((n, w, d), s) in enumerate(zip(written, c.sources)):
            try:
                v = s.value()
            except Exception as exc:  # noqa: BLE001  (a broken source is a problem to report, not a crash)
                why = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
                problems.append(Problem(f"{c.notebook} cell {cell}: source of {n.written!r} fails: {why}",
                                        "source", c.notebook, cell, n.start, n.end))
                continue
            r = c.rounding_for(i)
            try:
                ok = within(v, w, d, r)
            except (TypeError, ValueError) as exc:
                problems.append(Problem(f"{c.notebook} cell {cell}: {exc}", "source", c.notebook, cell, n.start, n.end))
                continue
            if not ok:
                problems.append(Problem(
                    f"{c.notebook} cell {cell}: written {_fmt(w)} (in {n.written!r}) but {s.describe()} = "
                    f"{_fmt(v)} ({_rounding_text(r, d)}): {_snippet(src, n.start, n.end)!r}",
                    "value", c.notebook, cell, n.start, n.end))

    allowed: list[tuple[str, str, tuple[int, int, int] | None]] = []
    for nb, text in unsourced_ok:
        if nb not in paths:
            continue
        where = locate(paths[nb], text)
        if len(where) != 1:
            problems.append(Problem(f"{nb}: unsourced_ok text {'not found' if not where else 'found twice'}: "
                                    f"{text!r}; update the list", "stale", nb))
            allowed.append((nb, text, None))
        else:
            allowed.append((nb, text, where[0]))
    used = set()
    for nb, nums in numbers.items():
        for n in nums:
            if any(cell == n.cell and a <= n.start and n.end <= b for cell, a, b in covered[nb]):
                continue
            ok = [k for k, (anb, _, w) in enumerate(allowed)
                  if anb == nb and w is not None and w[0] == n.cell and w[1] <= n.start and n.end <= w[2]]
            if ok:
                used.update(ok)
                continue
            problems.append(Problem(f"no source: {n.written!r} in cell {n.cell} of {nb}: "
                                    f"{_snippet(cells[nb][n.cell], n.start, n.end)!r}",
                                    "unsourced", nb, n.cell, n.start, n.end))
    for k, (nb, text, w) in enumerate(allowed):
        if w is not None and k not in used:
            problems.append(Problem(f"{nb}: unsourced_ok entry holds no unsourced number any more; remove it: "
                                    f"{text!r}", "stale", nb, w[0], w[1], w[2]))
    return problems
