"""The ``rtl`` device: the full design simulated at its UART pins, timed.

Target (docs: design brief §6): with ``connect("rtl")`` at N = 256, M = 256,
upload a full network and run 1,000 steps in at most 30 s.

The script times, separately:

* **build**: Verilog conversion and Verilator compile of ``NeuroCoreTop``
  (cached in ``~/.cache/neurocorex``; the first build takes minutes, a cached
  one well under a second; ``--cold`` builds into a fresh cache to measure
  the first build);
* **open**: starting the simulator and the CAPS exchange;
* **upload**: ``Device.load`` of every weight, mask, parameter and setting;
* **run**: the steps, with about 5 % input activity and STDP on.

It then reads the weights back and compares spikes and weights with the
golden model (``connect("model")``): the figures count only if the run is
bit-exact.

Usage::

    .venv/bin/python benchmarks/rtl_device.py                 # N=256, M=256, 1,000 steps
    .venv/bin/python benchmarks/rtl_device.py --neurons 32 --inputs 32 --steps 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import neurocorex as nx
from neurocorex.formats import CoreConfig
from neurocorex.sim.rtl import RTLSerial, build_simulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_vs_brian2 import bench_network  # noqa: E402

__all__ = ["benchmark"]


def benchmark(neurons=256, inputs=256, steps=1000, activity=0.05, seed=0, baud_div=4,
              check=True, learn=False, log=print) -> dict:
    """Build, open, upload, run and check; returns the figures in seconds."""
    config = CoreConfig(neurons, inputs)
    out = {"neurons": neurons, "inputs": inputs, "steps": steps, "baud_div": baud_div}

    t0 = time.perf_counter()
    build_simulator(config, baud_div=baud_div, log=log)
    out["build_s"] = time.perf_counter() - t0

    net = bench_network(neurons, inputs, seed)
    if learn:
        # amplitudes large enough that STDP visibly changes weights
        net.stdp.a_plus, net.stdp.a_minus, net.stdp.jump_pre, net.stdp.jump_post = 24, 16, 96, 96
    rng = np.random.default_rng(seed + 1)
    x = rng.random((steps, inputs)) < activity

    t0 = time.perf_counter()
    dev = nx.connect("rtl", neurons=neurons, inputs=inputs, baud_div=baud_div)
    out["open_s"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        dev.load(net)
        out["upload_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rec = dev.run(steps, inputs=x, progress=False)
        out["run_s"] = time.perf_counter() - t0
        w_rec, w_in = dev.read_weights()
    finally:
        dev.close()
    port = dev.port
    if isinstance(port, RTLSerial) and port.cycles:
        out["sim_cycles"] = port.cycles
        out["bytes_to_device"] = port.stats.get("bytes_in")
        out["bytes_from_device"] = port.stats.get("bytes_out")
    out["upload_run_s"] = out["upload_s"] + out["run_s"]
    out["spikes"] = int(rec.spikes.sum())
    out["activity"] = float(rec.spikes.mean())

    if check:
        with nx.connect("model", neurons=neurons, inputs=inputs) as ref:
            ref.load(net)
            want = ref.run(steps, inputs=x, progress=False)
            rw_rec, rw_in = ref.read_weights()
        out["bit_exact"] = bool((want.spikes == rec.spikes).all() and (rw_rec == w_rec).all()
                                and (rw_in == w_in).all())
        out["weights_changed"] = int((rw_rec != net.w_rec).sum() + (rw_in != net.w_in).sum())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=256)
    ap.add_argument("--inputs", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--activity", type=float, default=0.05)
    ap.add_argument("--baud-div", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-check", action="store_true", help="skip the golden-model comparison")
    ap.add_argument("--learn", action="store_true",
                    help="STDP amplitudes that change weights (default: the speed benchmark's network)")
    ap.add_argument("--cold", action="store_true",
                    help="build into an empty cache (measures the first build)")
    args = ap.parse_args(argv)
    if args.cold:
        os.environ["NEUROCOREX_CACHE"] = tempfile.mkdtemp(prefix="ncx-cold-")
    r = benchmark(args.neurons, args.inputs, args.steps, args.activity, args.seed, args.baud_div,
                  check=not args.no_check, learn=args.learn, log=lambda msg: print(msg, flush=True))
    print(f"rtl device, N={r['neurons']}, M={r['inputs']}, {r['steps']} steps, "
          f"{r['baud_div']} clocks per UART bit")
    print(f"  build (Verilog + Verilator, cached if 0.x s): {r['build_s']:8.1f} s")
    print(f"  open (start simulator, CAPS):                  {r['open_s']:8.2f} s")
    print(f"  upload (load the network):                     {r['upload_s']:8.2f} s")
    print(f"  run {r['steps']} steps:                              {r['run_s']:8.2f} s")
    print(f"  upload + run:                                  {r['upload_run_s']:8.2f} s  (target <= 30 s)")
    if "sim_cycles" in r:
        total = r["open_s"] + r["upload_run_s"]
        print(f"  simulated clock cycles: {r['sim_cycles']:,} ({r['sim_cycles'] / total / 1e6:.2f} M/s); "
              f"bytes to/from device: {r['bytes_to_device']:,}/{r['bytes_from_device']:,}")
    print(f"  output spikes: {r['spikes']:,} (activity {r['activity']:.1%})")
    if "bit_exact" in r:
        print(f"  bit-exact with the golden model (spikes and final weights): {r['bit_exact']}; "
              f"weights changed by STDP: {r['weights_changed']:,}")
    return 0 if r.get("bit_exact", True) and r["upload_run_s"] <= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
