"""Reading the results of a Yosys + nextpnr run: resource use and Fmax.

nextpnr writes a JSON report (``--report``) and a text log (``--log``);
Yosys writes its own log with a cell count (``stat``).  The functions here
turn them into one flat dictionary that the build prints as ``key: value``
lines.  Each parser works on text so that it can be tested on stored logs.
"""

from __future__ import annotations

import json
import re

__all__ = ["parse_nextpnr_log", "parse_nextpnr_report", "parse_yosys_stat", "summarise", "memory_mapping",
           "drop_spram_init", "memory_bits", "LOGIC_MEMORY_BITS", "critical_path", "double_pump_fmax",
           "RESOURCE_NAMES"]

#: nextpnr cell types → report keys, per FPGA family
RESOURCE_NAMES = {
    "ice40": {"ICESTORM_LC": "lc", "ICESTORM_RAM": "ebr", "ICESTORM_SPRAM": "spram",
              "ICESTORM_DSP": "dsp", "SB_IO": "io", "ICESTORM_PLL": "pll_cells", "SB_GB": "gb"},
    "ecp5": {"TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "DP16KD": "ebr", "MULT18X18D": "dsp",
             "TRELLIS_IO": "io", "EHXPLLL": "pll_cells", "TRELLIS_RAMW": "lutram_w"},
}

_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_CROSS_RE = re.compile(r"^Info: Max delay posedge (\S+)\s+-> posedge (\S+?)\s*:\s+([\d.]+) ns", re.M)
_FMAX_RE = re.compile(
    r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz\s+\((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation and Fmax from a nextpnr log.

    Returns ``{"utilization": {cell: (used, available)}, "fmax": {clock: (achieved_mhz,
    target_mhz, passed)}, "cross": {(from_clock, to_clock): max_delay_ns}}``.
    nextpnr prints the utilisation table twice (after packing and after
    placement) and Fmax after placement and after routing; the last of each is
    kept, since it describes the routed design.  ``cross`` has the paths
    between two clocks, which nextpnr reports but does not check.
    """
    util = {}
    blocks = text.split("Device utilisation:")
    if len(blocks) > 1:
        for name, used, avail, _ in _UTIL_RE.findall(blocks[-1].split("\n\n")[0]):
            util[name] = (int(used), int(avail))
    fmax = {}
    for clk, ach, res, tgt in _FMAX_RE.findall(text):
        fmax[clk] = (float(ach), float(tgt), res == "PASS")
    cross = {}
    for a, b, ns in _CROSS_RE.findall(text):
        if a != b:
            cross[(a, b)] = float(ns)
    return {"utilization": util, "fmax": fmax, "cross": cross}


def parse_nextpnr_report(text: str) -> dict:
    """The same dictionary as :func:`parse_nextpnr_log`, from nextpnr's ``--report`` JSON."""
    data = json.loads(text)
    util = {k: (int(v["used"]), int(v["available"])) for k, v in data.get("utilization", {}).items()}
    fmax = {k: (float(v["achieved"]), float(v["constraint"]), float(v["achieved"]) >= float(v["constraint"]))
            for k, v in data.get("fmax", {}).items()}
    cross = {}
    for cp in data.get("critical_paths", []):
        a, b = cp.get("from", ""), cp.get("to", "")
        if a.startswith("posedge ") and b.startswith("posedge ") and a != b:
            cross[(a[8:], b[8:])] = round(sum(p.get("delay", 0) for p in cp["path"]), 3)
    return {"utilization": util, "fmax": fmax, "cross": cross}


_STAT_CELL_RE = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?\$?([A-Za-z_][\w$]*)\s*$", re.M)
_STAT_CELL_RE_OLD = re.compile(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)\s*$", re.M)


def parse_yosys_stat(text: str) -> dict:
    """Cell counts of the last ``stat`` in a Yosys log (whole design, submodules included)."""
    idx = text.rfind("=== design hierarchy ===")
    if idx < 0:
        idx = text.rfind("=== top ===")
    if idx < 0:
        return {}
    lines = []
    for line in text[idx:].splitlines()[1:]:
        # the statistics end where the next pass or section starts
        if re.match(r"^(\d+\.[\d.]*\s|===|End of script)", line):
            break
        lines.append(line)
    section = "\n".join(lines)
    cells = {}
    for count, name in _STAT_CELL_RE.findall(section):
        cells[name] = cells.get(name, 0) + int(count)
    if not cells:
        for name, count in _STAT_CELL_RE_OLD.findall(section):
            cells[name] = int(count)
    return cells


def summarise(family: str, pnr: dict, yosys_cells: dict, clock: str | None = None, *,
              core_mhz: float | None = None, fast_mhz: float | None = None,
              schedule: str = "middle") -> dict:
    """Flat report: resource use ``used/available`` and Fmax of the core clock.

    ``clock`` picks the clock whose Fmax is reported; by default the one with
    the highest target (the core clock; the UART and LEDs run in it too).

    With ``fast_mhz`` (a double-pumped design: a second clock at twice the core
    clock ``core_mhz``), the clocks are told apart by their targets and
    ``fmax_mhz`` is the limiting figure stated as a core clock (see
    :func:`double_pump_fmax`); both clocks' own figures are reported too.
    """
    out = {}
    names = RESOURCE_NAMES[family]
    util = pnr["utilization"]
    for cell, key in names.items():
        if cell in util:
            used, avail = util[cell]
            out[key] = used
            out[f"{key}_available"] = avail
    if family == "ice40":
        # an iCE40 logic cell holds one LUT4 and one FF; count each from Yosys
        out["lut"] = sum(v for k, v in yosys_cells.items() if k == "SB_LUT4")
        out["ff"] = sum(v for k, v in yosys_cells.items() if k.startswith("SB_DFF"))
        out["carry"] = yosys_cells.get("SB_CARRY", 0)
    fmax = pnr["fmax"]
    if fmax and fast_mhz is not None:
        out.update(double_pump_fmax(fmax, pnr.get("cross", {}), core_mhz, fast_mhz, schedule))
    elif fmax:
        if clock is None or clock not in fmax:
            clock = max(fmax, key=lambda c: fmax[c][1])
        ach, tgt, ok = fmax[clock]
        out["clock_net"] = clock
        out["fmax_mhz"] = round(ach, 2)
        out["target_mhz"] = round(tgt, 2)
        out["timing_met"] = bool(ok)
    return out


def double_pump_fmax(fmax: dict, cross: dict, core_mhz: float, fast_mhz: float,
                     schedule: str = "middle") -> dict:
    """Timing of a design with a core clock and a phase-aligned clock twice as fast.

    nextpnr checks each clock's own paths; the paths between the two it only
    reports (their longest delay).  With the ``"middle"`` schedule of
    :class:`~neurocorex.hdl.spram.DoublePumpedRAM` every such path must fit in
    half a core period (a core edge to the RAM's middle edge, or that edge to
    the next core edge); with ``"edge"`` in a whole one (core edge to core
    edge; ``docs/boards.md``).  The core clock is limited by: its own Fmax,
    half the fast clock's Fmax, and ``1 / (k · delay)`` (``k`` = 2 or 1) of
    the longest path each way between them.  ``fmax_mhz`` is the lowest of
    these, ``fmax_limit`` names it, ``target_mhz`` is the core clock's target.
    """
    k = 2 if schedule == "middle" else 1
    if len(fmax) < 2:
        # one clock was optimised away or merged: nothing to tell apart
        (name, (ach, tgt, _)), = fmax.items()
        return {"clock_net": name, "fmax_mhz": round(ach, 2), "target_mhz": round(tgt, 2),
                "timing_met": ach >= tgt, "fmax_limit": "core clock"}
    core = min(fmax, key=lambda c: abs(fmax[c][1] - core_mhz))
    fast = min((c for c in fmax if c != core), key=lambda c: abs(fmax[c][1] - fast_mhz))
    c_ach, c_tgt, _ = fmax[core]
    f_ach, f_tgt, _ = fmax[fast]
    limits = {"core clock": c_ach, "fast clock (its Fmax / 2)": f_ach / 2}
    out = {"clock_net": core, "fast_clock_net": fast,
           "fmax_core_mhz": round(c_ach, 2), "fmax_fast_mhz": round(f_ach, 2),
           "fast_target_mhz": round(f_tgt, 2), "cross_budget_ns": round(1e3 / (k * c_tgt), 2)}
    for (a, b), key, label in (((core, fast), "cross_core_to_fast_ns", "core -> fast paths"),
                               ((fast, core), "cross_fast_to_core_ns", "fast -> core paths")):
        if (a, b) in cross:
            out[key] = round(cross[(a, b)], 2)
            if cross[(a, b)] > 0:
                limits[label] = 1e3 / (k * cross[(a, b)])
    limit = min(limits, key=limits.get)
    out.update(fmax_mhz=round(limits[limit], 2), target_mhz=round(c_tgt, 2),
               timing_met=bool(limits[limit] >= c_tgt), fmax_limit=limit)
    return out


_MEMMAP_RE = re.compile(r"^mapping memory (\S+) via (\S+)", re.M)
_MEM_LOGIC_RE = re.compile(r"^using FF mapping for memory (\S+)", re.M)


def memory_mapping(yosys_log: str) -> dict:
    """Memory name → Yosys cell it was mapped to (``logic`` when it became LUTs/FFs)."""
    out = {}
    for name, cell in _MEMMAP_RE.findall(yosys_log):
        out[name] = cell
    for name in _MEM_LOGIC_RE.findall(yosys_log):
        out[name] = "logic"
    return out


_MODULE_RE = re.compile(r"^module (\S+)\n(.*?)^end\n", re.S | re.M)
_HUGE_RE = re.compile(r'attribute \\ram_style "huge"\n(?:\s*attribute [^\n]*\n)*\s*memory [^\n]*?(\\\S+)\n')
_INIT_CELL_RE = re.compile(r"(\n(?:\s*attribute [^\n]*\n)*\s*cell \$meminit_v2 \S+\n.*?\n\s*end\n)", re.S)


def drop_spram_init(rtlil: str):
    """Remove the initial values of memories marked ``ram_style = "huge"``.

    iCE40 SPRAM has no initial contents, so Yosys only maps a memory to it when
    the memory has none; Amaranth always emits one (zeros by default).  Only
    those memories lose it; every other memory (EBR) keeps its initial value.
    Returns ``(new_rtlil, dropped, nonzero)``: the memory names whose
    initialisation was removed, and those among them that had non-zero values.
    """
    dropped, nonzero = [], []

    def fix_module(mod):
        body = mod.group(2)
        huge = set(_HUGE_RE.findall(body))
        if not huge:
            return mod.group(0)

        def fix_cell(cell):
            text = cell.group(1)
            memid = re.search(r'parameter \\MEMID "\\(\\\S+?)"', text)
            if memid is None or memid.group(1) not in huge:
                return text
            name = memid.group(1)[1:]
            dropped.append(name)
            data = re.search(r"connect \\DATA \d+'([01xz]+)", text)
            if data and "1" in data.group(1):
                nonzero.append(name)
            return "\n"

        return f"module {mod.group(1)}\n{_INIT_CELL_RE.sub(fix_cell, body)}end\n"

    out = _MODULE_RE.sub(fix_module, rtlil)
    return out, sorted(set(dropped)), sorted(set(nonzero))


#: a memory at least this large (bits) must not be built from LUTs and FFs
LOGIC_MEMORY_BITS = 1024

_MEMDECL_RE = re.compile(r"^\s*memory width (\d+)(?: offset -?\d+)? size (\d+) \\(\S+)$", re.M)


def memory_bits(rtlil: str) -> dict:
    """Size in bits of every memory of an Amaranth RTLIL design, by its Yosys path
    (``module.memory``, the name the memory mapping log uses after flattening)."""
    out = {}
    for mod in _MODULE_RE.finditer(rtlil):
        module = mod.group(1).lstrip("\\")
        for width, size, name in _MEMDECL_RE.findall(mod.group(2)):
            out[f"{module}.{name}"] = int(width) * int(size)
    return out


def critical_path(report_json: str) -> str:
    """One line on the worst clock-to-clock path of a nextpnr ``--report`` JSON:
    its delay, logic levels, start and end cells, and the design source lines
    it runs through (toolchain library files left out)."""
    data = json.loads(report_json)
    worst, worst_delay = None, -1.0
    for cp in data.get("critical_paths", []):
        if cp.get("from", "").startswith("<") or cp.get("to", "").startswith("<"):
            continue                  # paths to and from pins are not the core clock's limit
        delay = sum(p.get("delay", 0) for p in cp["path"])
        if delay > worst_delay:
            worst, worst_delay = cp, delay
    if worst is None:
        return "none"
    path = worst["path"]
    levels = sum(1 for p in path if p.get("type") == "logic")
    srcs = []
    for p in path:
        for src in p.get("sources", []):
            if "/share/" in src or "cells_map" in src or "arith_map" in src:
                continue
            short = "/".join(src.split("/")[-2:])
            if short not in srcs:
                srcs.append(short)
    first, last = path[0]["from"]["cell"], path[-1]["to"]["cell"]
    return (f"{worst_delay:.1f} ns, {levels} logic levels, {first} -> {last}"
            + (f", via {' '.join(srcs)}" if srcs else ""))
