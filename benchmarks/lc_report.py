"""Where the logic cells of an iCE40 build go: per module, and the flip-flops that take a cell of their own.

    python benchmarks/lc_report.py [BUILD_DIR] [--top 30]

BUILD_DIR is a folder written by ``neurocorex build --board icebreaker`` (it
holds ``top.json`` and ``top.pcf``; default: the newest under
``build/icebreaker``).  The script packs the synthesised netlist with
``nextpnr-ice40 --pack-only`` (seconds, no placement, so it works for designs
that do not fit) and counts the packed logic cells (``ICESTORM_LC``) by module.
On the iCE40 a flip-flop shares a cell only with the LUT that drives it alone;
a register loaded from another register, a RAM or a DSP output needs a cell
with a pass-through LUT ("DFF only").  Those registers are listed by name:
they are what pipelining and wide pass-through registers cost on this chip.
"""

import argparse
import collections
import json
import re
import subprocess
import sys
from pathlib import Path

from neurocorex.boards.build import toolchain_env

# modules at which the per-module count stops (deeper names are summed into them)
_DEPTH = {"design.core": 3, "design.link": 3}


def _module(name: str) -> str:
    if name.startswith(("$nextpnr", "$PACKER")):
        return "(cells added by the packer: carry feed-ins, constants)"
    parts = name.split(".")
    for prefix, depth in _DEPTH.items():
        if name.startswith(prefix + ".") and len(parts) > depth:
            return ".".join(parts[:depth]) if not parts[depth - 1].startswith(("$", "_")) else prefix
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def pack(build_dir: Path) -> dict:
    """Pack ``top.json`` and return the packed netlist (cached as ``packed.json``)."""
    out = build_dir / "packed.json"
    if not out.exists() or out.stat().st_mtime < (build_dir / "top.json").stat().st_mtime:
        env = toolchain_env("ice40")
        subprocess.run([env["NEXTPNR_ICE40"], "--quiet", "--pack-only", "--write", "packed.json",
                        "--up5k", "--package", "sg48", "--json", "top.json", "--pcf", "top.pcf"],
                       cwd=build_dir, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def breakdown(netlist: dict):
    """``(cells per module, DFF-only cells per module, DFF-only cells per register)``."""
    cells = netlist["modules"]["top"]["cells"]
    per_mod, dff_mod, dff_reg = collections.Counter(), collections.Counter(), collections.Counter()
    for name, cell in cells.items():
        if cell["type"] != "ICESTORM_LC":
            continue
        mod = _module(name)
        per_mod[mod] += 1
        if name.endswith("_DFFLC"):
            dff_mod[mod] += 1
            dff_reg[re.split(r"_SB_|\$", name)[0]] += 1
    return per_mod, dff_mod, dff_reg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir", nargs="?", help="build folder (default: newest build/icebreaker/*)")
    ap.add_argument("--top", type=int, default=30, help="registers to list")
    args = ap.parse_args(argv)
    if args.build_dir:
        d = Path(args.build_dir)
    else:
        dirs = sorted((p for p in Path("build/icebreaker").glob("*") if (p / "top.json").exists()),
                      key=lambda p: p.stat().st_mtime)
        if not dirs:
            print("no build with top.json under build/icebreaker; run neurocorex build --board icebreaker",
                  file=sys.stderr)
            return 2
        d = dirs[-1]
    if not (d / "top.json").exists():
        print(f"{d} has no top.json (synthesis did not finish)", file=sys.stderr)
        return 2
    per_mod, dff_mod, dff_reg = breakdown(pack(d))
    print(f"build: {d}")
    print(f"lc_total: {sum(per_mod.values())}")
    print(f"lc_dff_only: {sum(dff_mod.values())}")
    print(f"{'module':40s} {'LC':>6s} {'DFF only':>9s}")
    for mod, n in per_mod.most_common():
        print(f"{mod:40s} {n:6d} {dff_mod[mod]:9d}")
    print(f"\nregisters with a cell of their own (top {args.top}):")
    for reg, n in dff_reg.most_common(args.top):
        print(f"{n:6d} {reg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
