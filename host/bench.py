"""``neurocorex bench``: one report of the figures the README shows.

Each section runs a script of ``benchmarks/`` (in the source tree) and prints
``key: value`` lines with the configuration it was measured on:

``model``  golden model vs Brian2 (cython) steps/s, N=M=256, ~5 % activity, STDP on
``core``   cycles per step and synaptic events per clock of the gateware core,
           from cycle-accurate simulation, N=M=256, STDP on and off
``boards`` steps/s of each board at its nextpnr Fmax (needs ``make bitstream``)
``rtl``    the ``rtl`` device: upload N=M=256 and run 1,000 steps
``uart``   bulk-upload efficiency of the link, simulated at the UART pins
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

from .cli import COMMANDS
from .errors import NeuroCoreXError

__all__ = ["SECTIONS", "run_bench"]

SECTIONS = ("model", "core", "boards", "rtl", "uart")
_ROOT = Path(__file__).resolve().parent.parent


def _script(name):
    path = _ROOT / "benchmarks" / f"{name}.py"
    if not path.exists():
        raise NeuroCoreXError(f"benchmark script {path} not found; run bench from a source checkout")
    spec = importlib.util.spec_from_file_location(f"_nx_bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_model(quick):
    mod = _script("model_vs_brian2")
    r = mod.benchmark(steps=1000 if quick else 4000)
    out = {"config": f"N={r['neurons']} M={r['inputs']} input activity {r['input_activity']:.3f}, "
                     f"STDP on, backend {r['model_backend']}",
           "model_steps_per_s": round(r["model_steps_per_s"]),
           "model_numpy_steps_per_s": round(r["model_numpy_steps_per_s"])}
    if r.get("brian2_steps_per_s"):
        out["brian2_steps_per_s"] = round(r["brian2_steps_per_s"])
        out["ratio_vs_brian2"] = round(r["ratio"], 2)
        if r.get("ratio_cpu"):
            out["ratio_vs_brian2_cpu_time"] = round(r["ratio_cpu"], 2)
    out["note"] = r.get("note", "")
    return out


def _core_rows(quick):
    from .formats import CoreConfig
    mod = _script("core_cycles")
    cfg = CoreConfig(256, 256)
    rows = {}
    for rate in ((0.05,) if quick else (0.01, 0.05, 0.2)):
        for learn in (False, True):
            r = mod.measure(cfg, rate, learn, steps=4 if quick else 6, warmup=20)
            rows[(rate, learn)] = r
    return rows


def bench_core(quick, rows):
    out = {"config": "N=256 M=256, single-port synapse banks (iCE40 SPRAM), cycle-accurate "
                     "Amaranth simulation, spikes checked against the golden model"}
    for (rate, learn), r in rows.items():
        key = f"rate{rate:g}_stdp_{'on' if learn else 'off'}"
        out[f"{key}_cycles_per_step"] = round(r["cycles"])
        out[f"{key}_events_per_clock"] = round(r["events_per_clock"], 2)
        out[f"{key}_ratio_to_port_limit"] = round(r["events_per_clock"] / r["limit"], 2)
    out["port_limit_synapses_per_clock"] = next(iter(rows.values()))["limit"]
    return out


def _board_ram(board):
    """The core_cycles RAM kind of a board's synapse banks."""
    if board.double_pump:
        return "double-pumped"
    if board.dual_port and board.bank_slice and board.bank_block:
        return "dual-registered"
    return "dual" if board.dual_port else "single"


def bench_boards(rows, quick):
    out = {}
    from .boards.targets import BOARDS
    from .formats import CoreConfig
    mod = _script("core_cycles")
    found = False
    for rep_path in sorted((_ROOT / "build").glob("*/report.json")):
        b = rep_path.parent.name
        rep = json.loads(rep_path.read_text())
        if b not in BOARDS or rep.get("design") != "neurocorex" or "fmax_mhz" not in rep:
            continue
        found = True
        clock = rep.get("clk_mhz") or rep.get("target_mhz")
        out[f"{b}_neurons"] = rep.get("neurons")
        out[f"{b}_inputs"] = rep.get("inputs")
        out[f"{b}_clock_mhz"] = clock
        out[f"{b}_fmax_mhz"] = rep["fmax_mhz"]
        board = BOARDS[b]
        ram, overlap, banks = _board_ram(board), board.overlap_rows, board.banks
        out[f"{b}_synapse_ram"] = (f"{ram}, {banks} banks"
                                   + (", overlap_rows" if overlap else ""))
        cfg = CoreConfig(int(rep["neurons"]), int(rep["inputs"]))
        for learn in (False, True):
            if (ram, banks, overlap) == ("single", 4, False) and (cfg.neurons, cfg.inputs) == (256, 256):
                cycles = rows[(0.05, learn)]["cycles"]        # measured in the core section
            else:
                cycles = mod.measure(cfg, 0.05, learn, steps=4 if quick else 6, warmup=20,
                                     ram=ram, overlap=overlap, banks=banks)["cycles"]
            tag = f"5pct_stdp_{'on' if learn else 'off'}"
            out[f"{b}_cycles_per_step_{tag}"] = round(cycles)
            out[f"{b}_steps_per_s_{tag}"] = round(clock * 1e6 / cycles)
    if not found:
        out["skipped"] = "no board build found; run `make bitstream BOARD=icebreaker` first"
    else:
        out["note"] = ("steps/s = the build's clock / cycles per step at 5 % activity, measured "
                       "cycle-accurately with the board's N, M and synapse RAM")
    return out


def bench_rtl():
    mod = _script("rtl_device")
    r = mod.benchmark(steps=1000, log=lambda *a, **k: None)
    return {"config": f"N={r['neurons']} M={r['inputs']}, {r['steps']} steps, 5 % input activity, "
                      f"{r['baud_div']} clocks per bit, Verilator",
            "build_s": round(r["build_s"], 1), "upload_s": round(r["upload_s"], 1),
            "run_s": round(r["run_s"], 1), "upload_plus_run_s": round(r["upload_run_s"], 1),
            "bit_exact_vs_model": r.get("bit_exact")}


def bench_uart():
    from .formats import CoreConfig
    mod = _script("link_efficiency")
    cfg = CoreConfig(32, 32)
    frames = mod.host_frames(cfg)
    clk, baud = 30_000_000, 3_000_000
    r = mod.simulate(cfg, frames, clk, baud)
    payload = sum(mod.payload_of(f) for f in frames)
    bit_times = r["cycles"] / r["divisor"]
    return {"config": f"whole load() of N=32 M=32, {clk / 1e6:g} MHz, {baud / 1e6:g} Mbaud, "
                      "Amaranth simulation at the UART pins",
            "payload_bytes": payload, "bit_times": round(bit_times),
            "efficiency_of_line_rate": round(payload * 10 / bit_times, 3)}


def run_bench(sections=SECTIONS, quick=False, out=print) -> dict:
    results = {}
    rows = None
    for name in sections:
        t0 = time.monotonic()
        out(f"[{name}]")
        try:
            if name in ("core", "boards") and rows is None:
                rows = _core_rows(quick)
            res = {"model": lambda: bench_model(quick), "core": lambda: bench_core(quick, rows),
                   "boards": lambda: bench_boards(rows, quick), "rtl": bench_rtl,
                   "uart": bench_uart}[name]()
        except NeuroCoreXError:
            raise
        except Exception as e:           # a broken section must not hide the others
            res = {"error": f"{type(e).__name__}: {e}"}
        res["seconds"] = round(time.monotonic() - t0, 1)
        for k, v in res.items():
            out(f"{k}: {v}")
        results[name] = res
    return results


def _args(p):
    p.add_argument("--json", action="store_true", help="print the report as JSON at the end")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer configurations and steps")


def _run(args):
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise NeuroCoreXError(f"unknown bench section {bad[0]!r}; choose from {', '.join(SECTIONS)}")
    res = run_bench(sections, args.quick, out=(lambda *a: print(*a, file=sys.stderr))
                    if args.json else print)
    if args.json:
        print(json.dumps(res, indent=1))
    return 1 if any("error" in r for r in res.values()) else 0


COMMANDS["bench"] = ("print the benchmark report (README figures)", _args, _run)
