"""Read Triton's compiled code for the marks of warp specialization, TMA and wgmma (chapter 05).

``summarize_ttgir`` splits a TTGIR module at its ``ttg.warp_specialize`` op into the default region and
each ``partitionN`` region, and counts the operations in each, so a reader can see which warps load
(``async_tma_copy_global_to_local``) and which compute (``warp_group_dot``). ``setmaxnreg`` lists the
register moves in the PTX: the producer giving registers up, the consumers taking them.
``loop_schedule`` condenses the SASS of a kernel's main loop to the order of its tensor-core
instructions, their waits and its exponentials (chapter 08: does the softmax run while a ``wgmma`` is
in flight?). ``resource_usage`` reads registers, spill stack and shared memory from ``cuobjdump``.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

INTERESTING = (
    "ttng.async_tma_copy_global_to_local", "ttng.async_tma_copy_local_to_global", "ttng.warp_group_dot",
    "ttng.barrier_expect", "ttng.wait_barrier", "ttng.arrive_barrier", "ttng.tensormap_create",
)


@dataclass
class Region:
    name: str
    num_warps: int | None
    ops: Counter = field(default_factory=Counter)

    def role(self) -> str:
        loads = self.ops["ttng.async_tma_copy_global_to_local"]
        dots = self.ops["ttng.warp_group_dot"]
        if loads and not dots:
            return "producer: issues TMA loads"
        if dots and not loads:
            return "consumer: wgmma" + (" + TMA store" if self.ops["ttng.async_tma_copy_local_to_global"] else "")
        return "mixed"


def summarize_ttgir(text: str) -> dict:
    """Regions of a warp-specialized kernel, with their warps and operation counts.

    Returns ``{"specialized": bool, "requested_registers": [..], "regions": [Region, ...]}``; an
    unspecialized kernel gives one region, ``whole kernel``.
    """
    lines = text.splitlines()
    ws_at = next((i for i, ln in enumerate(lines) if "ttg.warp_specialize(" in ln), None)
    func_warps = re.search(r'"ttg.num-warps"\s*=\s*(\d+)', text)
    if ws_at is None:
        ops = Counter(op for ln in lines for op in re.findall(r"\b(?:ttng|ttg|tt)\.[a-z_]+", ln))
        return {"specialized": False, "requested_registers": [],
                "regions": [Region("whole kernel", int(func_warps.group(1)) if func_warps else None, ops)]}
    regs = re.search(r"requestedRegisters = array<i32: ([\d, ]+)>", lines[ws_at])
    starts = [(ws_at, "default", int(func_warps.group(1)) if func_warps else None)]
    for i, ln in enumerate(lines[ws_at + 1:], ws_at + 1):
        m = re.match(r"\s*(partition\d+)\(.*num_warps\((\d+)\)", ln)
        if m:
            starts.append((i, m.group(1), int(m.group(2))))
    regions = []
    for j, (i, name, warps) in enumerate(starts):
        end = starts[j + 1][0] if j + 1 < len(starts) else len(lines)
        ops = Counter(op for ln in lines[i + (0 if j else 1):end]
                      for op in re.findall(r"\b(?:ttng|ttg|tt)\.[a-z_]+", ln))
        regions.append(Region(name, warps, ops))
    return {"specialized": True,
            "requested_registers": [int(x) for x in regs.group(1).split(",")] if regs else [],
            "regions": regions}


def setmaxnreg(ptx: str) -> list[tuple[str, int]]:
    """The ``setmaxnreg`` instructions in PTX, in order: ``[("dec", 40), ("inc", 232), ...]``."""
    return [(m.group(1), int(m.group(2))) for m in re.finditer(r"setmaxnreg\.(inc|dec)\.sync\.aligned\.u32\s+(\d+)", ptx)]


def sass_instructions(sass: str) -> list[tuple[int, str]]:
    """``(address, opcode)`` of each instruction in ``cuobjdump -sass`` output (predicates dropped,
    modifiers kept: ``IMAD.SHL.U32``)."""
    out = []
    for ln in sass.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,6})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*?);", ln)
        if m:
            keep = m.group(2) == "BRA" or m.group(2).startswith("WARPGROUP.DEPBAR")  # keep the target / the count
            out.append((int(m.group(1), 16), m.group(2) + (m.group(3) if keep else "")))
    return out


def sass_main_loop(sass: str) -> Counter:
    """Opcode counts (without modifiers) of the longest loop in the SASS: the instructions between a
    backward branch and its target. A kernel's K loop is its longest loop."""
    ins = sass_instructions(sass)
    best = (0, -1)
    for addr, op in ins:
        t = re.search(r"BRA\s.*?0x([0-9a-f]+)", op)
        if t and int(t.group(1), 16) < addr and addr - int(t.group(1), 16) > best[1] - best[0]:
            best = (int(t.group(1), 16), addr)
    return Counter(op.split(".")[0] for addr, op in ins if best[0] <= addr <= best[1])


SCHEDULE_OPS = {"HGMMA": "wgmma", "WARPGROUP.DEPBAR": "wait", "MUFU.EX2": "exp2"}


def _loops(ins):
    """``(start, end)`` address ranges of the backward branches' loops."""
    out = []
    for addr, op in ins:
        t = re.search(r"BRA\s.*?0x([0-9a-f]+)", op)
        if t and int(t.group(1), 16) < addr:
            out.append((int(t.group(1), 16), addr))
    return out


def _schedule_name(op: str) -> str | None:
    for k, v in SCHEDULE_OPS.items():
        if op == k or op.startswith(k + ".") or op.startswith(k + " "):
            if v == "wait":  # WARPGROUP.DEPBAR.LE gsb0, 0xN: wait until at most N wgmma groups are pending
                n = re.search(r"0x([0-9a-f]+)\s*$", op)
                return f"wait({int(n.group(1), 16)})" if n else "wait"
            return v
    return None


def loop_schedule(sass: str) -> list[tuple[str, int]]:
    """The key loop of ``cuobjdump -sass`` output as runs of ``wgmma`` (``HGMMA``: an asynchronous
    warpgroup matrix multiply-add issued), ``wait(N)`` (``WARPGROUP.DEPBAR.LE gsb0, N``: wait until at
    most ``N`` groups of issued ``wgmma``s are still running) and ``exp2`` (``MUFU.EX2``), in program
    order. The key loop is the shortest loop that holds both ``wgmma``s and ``exp2``s (a
    warp-specialized kernel has outer loops around its partitions), else the longest loop.
    ``[("wgmma", 8), ("wait(0)", 1), ("exp2", 66), ("wgmma", 8)]`` means the exponentials ran only
    after the scores were waited for; ``exp2`` runs before a ``wait`` mean they run while the tensor
    cores work."""
    ins = sass_instructions(sass)
    loops = _loops(ins)
    named = [(addr, _schedule_name(op)) for addr, op in ins]
    named = [(a, n) for a, n in named if n]

    def has(lo, hi, what):
        return any(lo <= a <= hi and n.startswith(what) for a, n in named)

    both = [lp for lp in loops if has(*lp, "wgmma") and has(*lp, "exp2")]
    if both:
        lo, hi = min(both, key=lambda lp: lp[1] - lp[0])
    elif loops:
        lo, hi = max(loops, key=lambda lp: lp[1] - lp[0])
    else:
        return []
    runs: list[tuple[str, int]] = []
    for addr, name in named:
        if not lo <= addr <= hi:
            continue
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return runs


def format_schedule(runs: list[tuple[str, int]]) -> str:
    """``[("wgmma", 8), ("wait(0)", 1)]`` -> ``"wgmma x8 > wait(0) > ..."``."""
    return " > ".join(name if n == 1 else f"{name} x{n}" for name, n in runs)


def resource_usage(cuobjdump_res_usage: str) -> dict:
    """``{"registers", "stack", "shared"}`` of the first function in ``cuobjdump -res-usage`` output
    (``stack`` > 0 means registers spilled to local memory)."""
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", cuobjdump_res_usage)
    if not m:
        raise ValueError("no 'REG:.. STACK:.. SHARED:..' line in the cuobjdump -res-usage output")
    return {"registers": int(m.group(1)), "stack": int(m.group(2)), "shared": int(m.group(3))}


# ------------------------------------------------------------------ what tl.dot becomes (chapter 02)
@dataclass(frozen=True)
class Wgmma:
    """One ``wgmma.mma_async`` shape in a PTX listing: a warpgroup (4 warps, 128 threads) multiplies an
    ``m x k`` tile of A by a ``k x n`` tile of B into an ``m x n`` accumulator; ``count`` instructions of
    this shape appear in the listing; ``acc_registers`` 32-bit registers a thread holds of the
    accumulator (the braces of the instruction)."""

    m: int
    n: int
    k: int
    acc_type: str
    in_type: str
    count: int
    acc_registers: int
    line: str


def wgmma_instructions(ptx: str) -> list[Wgmma]:
    """The distinct ``wgmma.mma_async`` shapes of a PTX listing, most frequent first."""
    pat = re.compile(r"wgmma\.mma_async\.sync\.aligned\.m(\d+)n(\d+)k(\d+)\.(\w+)\.(\w+)\.\w+\s*\{([^}]*)\}[^\n]*")
    found: dict[tuple, list] = {}
    for m in pat.finditer(ptx):
        key = (int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), m.group(5))
        entry = found.setdefault(key, [0, len(m.group(6).split(",")), m.group(0).strip()])
        entry[0] += 1
    return sorted((Wgmma(*key, count=c, acc_registers=r, line=line) for key, (c, r, line) in found.items()),
                  key=lambda w: -w.count)


def shared_layouts(ttgir: str) -> list[dict]:
    """The NVMMA shared-memory layouts (the swizzled layouts ``wgmma`` reads its operands from) named
    in a TTGIR module: ``{"swizzle_bytes", "transposed", "element_bits"}`` each, in order of appearance."""
    out = []
    for m in re.finditer(r"#ttg\.nvmma_shared<\{swizzlingByteWidth = (\d+), transposed = (\w+), "
                         r"elementBitWidth = (\d+)[^}]*\}>", ttgir):
        d = {"swizzle_bytes": int(m.group(1)), "transposed": m.group(2) == "true", "element_bits": int(m.group(3))}
        if d not in out:
            out.append(d)
    return out


def mma_layout(ttgir: str) -> dict | None:
    """The accumulator's layout (``#ttg.nvidia_mma``) of a TTGIR module: ``{"version", "warps_per_cta",
    "instr_shape"}``, or None when the module has none (no tensor cores)."""
    m = re.search(r"#ttg\.nvidia_mma<\{versionMajor = (\d+), versionMinor = \d+, warpsPerCTA = \[([\d, ]+)\]"
                  r"(?:, [^}]*?)?, instrShape = \[([\d, ]+)\]\}>", ttgir)
    if not m:
        return None
    nums = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    return {"version": int(m.group(1)), "warps_per_cta": nums(m.group(2)), "instr_shape": nums(m.group(3))}


# Hopper's per-SM limits (NVIDIA Hopper Tuning Guide and CUDA C++ Programming Guide, compute capability 9.0)
SM90_REGISTERS = 65536
SM90_SHARED_BYTES = 233472  # 228 KiB per SM; one program may use up to 227 KiB
SM90_WARPS = 64
SM90_PROGRAMS = 32


def programs_per_sm(registers_per_thread: int, num_warps: int, shared_bytes: int) -> dict:
    """How many programs (thread blocks) of a kernel fit on one Hopper SM at once, and what limits it.
    Registers are allocated per warp in units of 256 (a thread's count rounded up to a multiple of 8),
    shared memory per program with 1 KiB reserved by the system. Returns ``{"programs", "by_registers",
    "by_shared", "by_warps", "limit"}`` (``limit``: which of registers, shared memory, warps and the
    32-program cap bind, joined by "and"; ``by_shared`` is None for a kernel without shared memory).
    Raises TypeError for a count that is not an int, ValueError for one no Hopper kernel can have
    (registers outside 1..255, warps outside 1..32, shared memory past 227 KiB)."""
    for v, label in ((registers_per_thread, "registers_per_thread"), (num_warps, "num_warps"),
                     (shared_bytes, "shared_bytes")):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"programs_per_sm: {label} must be an int, got {v!r}")
    if not 1 <= registers_per_thread <= 255:
        raise ValueError(f"programs_per_sm: a thread has 1 to 255 registers, got {registers_per_thread}")
    if not 1 <= num_warps <= 32:
        raise ValueError(f"programs_per_sm: a program has 1 to 32 warps (1024 threads), got {num_warps}")
    if not 0 <= shared_bytes <= SM90_SHARED_BYTES - 1024:
        raise ValueError(f"programs_per_sm: a program may use 0 to {SM90_SHARED_BYTES - 1024} bytes of shared "
                         f"memory on Hopper, got {shared_bytes}")
    per_warp = -(-registers_per_thread * 32 // 256) * 256
    by_regs = SM90_REGISTERS // (per_warp * num_warps)
    by_smem = SM90_SHARED_BYTES // (shared_bytes + 1024) if shared_bytes else None
    by_warps = SM90_WARPS // num_warps
    limits = {"registers": by_regs, "shared memory": by_smem, "warps": by_warps, "programs": SM90_PROGRAMS}
    limits = {k: v for k, v in limits.items() if v is not None}
    n = min(limits.values())
    return {"programs": n, "by_registers": by_regs, "by_shared": by_smem, "by_warps": by_warps,
            "limit": " and ".join(k for k, v in limits.items() if v == n)}
