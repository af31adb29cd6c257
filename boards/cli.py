"""``neurocorex build`` and ``neurocorex program``."""

from __future__ import annotations

import argparse

from ..cli import COMMANDS
from ..errors import NeuroCoreXError
from .targets import BOARDS

__all__ = ["print_report", "REPORT_KEYS"]

#: printed first, in this order; the rest of the report follows
REPORT_KEYS = ("board", "fpga", "design", "neurons", "inputs", "synapses", "clk_mhz", "fast_clk_mhz",
               "target_mhz", "fmax_mhz", "timing_met", "fmax_limit", "fmax_core_mhz", "fmax_fast_mhz",
               "fast_target_mhz", "cross_budget_ns", "cross_core_to_fast_ns", "cross_fast_to_core_ns",
               "critical_path", "baud", "baud_divisor", "baud_error_pct",
               "lc", "lut", "ff", "carry", "ebr", "spram", "dsp", "memories", "memories_in_logic",
               "leds", "pll", "build_s", "cached", "bitstream", "build_dir", "note")


def print_report(rep: dict, out=print):
    avail = {k[:-len("_available")]: v for k, v in rep.items() if k.endswith("_available")}
    keys = [k for k in REPORT_KEYS if k in rep]
    keys += sorted(k for k in rep if k not in keys and not k.endswith("_available") and k != "built")
    for k in keys:
        v = rep[k]
        if k in avail:
            v = f"{v}/{avail[k]}"
        elif isinstance(v, bool):
            v = "yes" if v else "no"
        out(f"{k}: {v}")


def _positive_mhz(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= v <= 500:
        raise argparse.ArgumentTypeError(f"clock must be in [1, 500] MHz, got {v:g}")
    return v


def _build_args(p):
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--board", "-b", choices=sorted(BOARDS), help="build a bitstream for this board")
    what.add_argument("--verilog", metavar="OUT.v", help="write the design as Verilog instead")
    p.add_argument("--neurons", "-N", type=int, help="neurons N (default: the board's largest fit; 256)")
    p.add_argument("--inputs", "-M", type=int, help="input axons M (default: the board's largest fit; 256)")
    p.add_argument("--baud", type=int, help="UART bit rate (default: the board's, 3000000)")
    p.add_argument("--clk-mhz", type=_positive_mhz, help="core clock from the PLL (default: the board's)")
    p.add_argument("--program", action="store_true", help="program the board after a successful build")
    p.add_argument("--force", action="store_true", help="rebuild even if the same design was built")
    p.add_argument("--seeds", type=int, default=3,
                   help="placer seeds to try, one after the other, until timing is met (default 3)")
    p.add_argument("--build-dir", default="build", help="build folder (default: %(default)s)")
    p.add_argument("--stand-in", nargs="?", const="echo", choices=("echo", "core"),
                   help="build a stand-in instead of NeuroCoreX: 'echo' (default), a small UART "
                        "echo that checks the board flow; 'core', the core alone driven by an "
                        "LFSR (its resources and clocks at sizes where the full top does not fit)")
    p.add_argument("--core", action="store_true", help="with --verilog: only the core, without UART")
    p.add_argument("--banks", type=int,
                   help="synapse banks of the core, a power of two >= 4 (default: the board's)")


def _build(args):
    from . import build as b
    if args.verilog:
        if args.program:
            raise NeuroCoreXError("--program needs --board")
        kw = {}
        if args.clk_mhz:
            kw["clk_hz"] = args.clk_mhz * 1e6
        if args.baud:
            kw["baud"] = args.baud
        rep = b.write_verilog(args.verilog, neurons=256 if args.neurons is None else args.neurons,
                              inputs=256 if args.inputs is None else args.inputs,
                              core_only=args.core, stand_in=args.stand_in, **kw)
        print_report(rep)
        return 0
    if args.core:
        raise NeuroCoreXError("--core applies to --verilog only")
    if args.seeds < 1:
        raise NeuroCoreXError(f"--seeds must be at least 1, got {args.seeds}")
    rep = b.build(args.board, neurons=args.neurons, inputs=args.inputs, baud=args.baud,
                  clk_hz=None if args.clk_mhz is None else args.clk_mhz * 1e6,
                  stand_in=args.stand_in, build_root=args.build_dir, force=args.force,
                  banks=args.banks, seeds=args.seeds)
    print_report(rep)
    b.check_report(rep)
    if args.program:
        if not rep.get("built"):
            raise NeuroCoreXError(f"{args.board} is built with Vivado; program its .bit file once built")
        b.program(args.board, rep["bitstream"])
    return 0


def _program_args(p):
    p.add_argument("--board", "-b", required=True, choices=sorted(BOARDS))
    p.add_argument("bitstream", nargs="?", help="bitstream file (default: the last good build)")
    p.add_argument("--build-dir", default="build", help="where builds are (default: %(default)s)")


def _program(args):
    from . import build as b
    argv = b.program(args.board, args.bitstream, build_root=args.build_dir)
    print(f"programmed: {' '.join(argv)}")
    return 0


COMMANDS["build"] = ("build a bitstream (or Verilog) with the open toolchain", _build_args, _build)
COMMANDS["program"] = ("load a bitstream onto a board", _program_args, _program)
