"""Synthesis report of the NeuroCoreX core alone (no UART, no pins): Yosys cell counts.

    python benchmarks/synth_report.py [--board icebreaker|ulx3s] [-N 256] [-M 256] [--hier]

Runs the board's Yosys synthesis (``synth_ice40`` or ``synth_ecp5`` with the
options of its build, from the PyPI Yosys) on the core as the board's design
instantiates it (``neurocorex.boards.top.board_core``: on the iCEBreaker
double-pumped SPRAM banks, their initial values removed; on the ULX3S
dual-port block RAM banks) and prints ``key: value`` lines: LUT4s, FFs,
carries, EBRs, SPRAMs, DSPs and where each memory went.  It stops after
synthesis (no placement: the core's streams are not pins), so it is the
core's own cost; ``neurocorex build --board`` gives the placed and routed
figures of the whole design.  Results are cached in ``build/synth/``.

``--hier`` synthesises without flattening (``-noflatten``) and adds one line
per Amaranth submodule (``module.lut``, ``module.carry``, ...): the core's own
logic (``top.core``, or ``top`` when the core is the top), the neuron unit
(``….nu``), the trace unit (``….tu``), the divider (``….div``) and, on the
iCEBreaker, each double-pumped bank (``….mem_syn0`` ...).  Flattening lets
Yosys optimise across the units, so the flat total is a little lower than the
sum of the per-module figures.
"""

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, ClockSignal, Module
from amaranth.lib import wiring

from neurocorex.boards import report as rep
from neurocorex.boards.build import toolchain_env
from neurocorex.boards.targets import BOARDS
from neurocorex.boards.top import board_core
from neurocorex.formats import CoreConfig
from neurocorex.hdl.spram import FAST_DOMAIN

BUDGET = {
    "ice40": {"lut": 5280, "ebr": 30, "spram": 4, "dsp": 8},
    "ecp5": {"lut": 83640, "ebr": 208, "dsp": 156},
}


_SECTION_RE = re.compile(r"^=== (\S+) ===$", re.M)
_CELL_RE = re.compile(r"^\s+(\d+)\s+(\S+)$", re.M)


def per_module(log: str) -> dict:
    """Local cell counts of every module in the last ``stat`` of a Yosys log."""
    text = log[log.rfind("Printing statistics"):]
    text = text[:text.find("=== design hierarchy ===")]
    marks = list(_SECTION_RE.finditer(text))
    out = {}
    for k, mark in enumerate(marks):
        body = text[mark.end():marks[k + 1].start() if k + 1 < len(marks) else len(text)]
        out[mark.group(1).lstrip("\\")] = {name: int(n) for n, name in _CELL_RE.findall(body)}
    return out


def _summary(family, cells):
    if family == "ice40":
        return {"lut": cells.get("SB_LUT4", 0), "carry": cells.get("SB_CARRY", 0),
                "ff": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
                "ebr": cells.get("SB_RAM40_4K", 0), "spram": cells.get("SB_SPRAM256KA", 0),
                "dsp": cells.get("SB_MAC16", 0)}
    return {"lut": cells.get("LUT4", 0), "ff": cells.get("TRELLIS_FF", 0),
            "ebr": cells.get("DP16KD", 0), "dsp": cells.get("MULT18X18D", 0),
            "lutram": cells.get("TRELLIS_DPR16X4", 0)}


class _Wrapped(wiring.Component):
    """The core with the fast domain of its double-pumped banks clocked from a port."""

    def __init__(self, core):
        self.core = core
        super().__init__({**core.signature.members, "fast_clk": wiring.In(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains += ClockDomain(FAST_DOMAIN, reset_less=True)
        m.d.comb += ClockSignal(FAST_DOMAIN).eq(self.fast_clk)
        m.submodules.core = self.core
        for name in self.core.signature.members:       # every member is a stream
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(self.core, name))
        return m


def synth(board_name, neurons, inputs, banks=None, root="build/synth", hier=False):
    board = BOARDS[board_name]
    family = board.family
    config = CoreConfig(neurons=neurons, inputs=inputs)
    flags = board.core_flags_with(banks)
    banks = flags["banks"]
    core = board_core(config, **flags)
    if board.double_pump:
        text = rtlil.convert(_Wrapped(core), name="top")
    else:
        text = rtlil.convert(core, name="top")
    if family == "ice40":
        text, _, _ = rep.drop_spram_init(text)
    digest = hashlib.sha256((board_name + str(hier) + text).encode()).hexdigest()[:12]
    d = Path(root) / f"{board_name}-{neurons}x{inputs}-b{banks}{'-hier' if hier else ''}-{digest}"
    out_json = d / "report.json"
    if out_json.exists():
        return json.loads(out_json.read_text())
    d.mkdir(parents=True, exist_ok=True)
    (d / "core.il").write_text(text)
    cmd = f"synth_{family} {board.overrides.get('synth_opts', '')} -top top"
    if hier:
        cmd += " -noflatten; stat"
    env = toolchain_env(family)
    t0 = time.monotonic()
    subprocess.run([env["YOSYS"], "-q", "-l", "synth.log", "-p", f"read_rtlil core.il; {cmd}"],
                   cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
    log = (d / "synth.log").read_text(errors="replace")
    cells = rep.parse_yosys_stat(log)
    r = _summary(family, cells)
    if hier:
        for name, mod_cells in per_module(log).items():
            r.update({f"{name}.{k}": v for k, v in _summary(family, mod_cells).items()})
    mems = rep.memory_mapping(log)
    r.update(board=board_name, family=family, neurons=neurons, inputs=inputs, banks=banks,
             synapses=config.synapses,
             memories=", ".join(f"{k.split('.')[-1]}->{v}" for k, v in sorted(mems.items())),
             memories_in_logic=sum(v == "logic" for v in mems.values()),
             synth_s=round(time.monotonic() - t0, 1), log=str(d / "synth.log"))
    out_json.write_text(json.dumps(r, indent=1))
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--board", choices=sorted(b for b, v in BOARDS.items() if v.family in BUDGET),
                   default="icebreaker")
    p.add_argument("-N", "--neurons", type=int, default=256)
    p.add_argument("-M", "--inputs", type=int, default=256)
    p.add_argument("--banks", type=int, help="synapse banks of the core (default: the board's)")
    p.add_argument("--hier", action="store_true",
                   help="keep the submodules apart (-noflatten) and report each of them")
    args = p.parse_args(argv)
    r = synth(args.board, args.neurons, args.inputs, args.banks, hier=args.hier)
    family = BOARDS[args.board].family
    for k, v in r.items():
        budget = BUDGET[family].get(k)
        print(f"{k}: {v}" + (f"/{budget}" if budget else ""))
    over = [k for k, b in BUDGET[family].items() if r.get(k, 0) > b]
    if over:
        print(f"over budget: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
