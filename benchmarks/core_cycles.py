"""Cycles per time step of the gateware core, from cycle-accurate simulation.

For N=256 neurons and M=256 inputs (by default) at several activity levels,
with STDP on and off, this runs the core in Amaranth's simulator and prints:
clock cycles per step (from the step's first input event to its end marker),
synaptic events per clock and its ratio to the memory-port limit (``B*L``
synapses readable per clock), and steps per second at ``--clock-mhz``.

The network: axon k drives neuron k strongly (one input spike makes it fire),
every other synapse is weak and random, so the neurons fire at about the
input rate.  It is preloaded into the memories (a back door: loading 131,072
synapses through the bus would dominate the simulation time) and every step's
spikes are checked against the golden model.

Usage::

    python benchmarks/core_cycles.py [--clock-mhz 30] [--steps 8] [--warmup 20]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np

from neurocorex.boards.targets import get_board
from neurocorex.formats import CoreConfig, DECAY_ONE
from neurocorex.hdl.core import Core
from neurocorex.hdl.geometry import Geometry
from neurocorex.hdl.sliced import sliced_banks
from neurocorex.hdl.spram import DOUBLE_PUMPED_CORE
from neurocorex.sim.amaranth_core import preload, run_bench
from neurocorex.sim.model import CoreModel


def build_model(cfg: CoreConfig, learn: bool, seed: int = 1) -> CoreModel:
    rng = np.random.default_rng(seed)
    n, m = cfg.neurons, cfg.inputs
    md = CoreModel(cfg)
    md.w_rec[...] = rng.integers(-3, 4, (n, n))
    md.w_in[...] = rng.integers(-3, 4, (m, n))
    diag = np.arange(min(n, m))
    md.w_in[diag, diag] = cfg.weight_range[1]
    md.plastic_rec[...] = True
    md.plastic_in[...] = True
    md.plastic_in[diag, diag] = False            # keep the drive fixed
    md.globals["w_shift"] = 4
    md.params["threshold"][:] = 800
    md.params["v_reset"][:] = 0
    md.params["v_rest"][:] = 0
    md.params["alpha_v"][:] = 0
    md.params["alpha_i"][:] = 0
    md.params["t_ref"][:] = 0
    a = int(round(DECAY_ONE * np.exp(-1 / 20)))
    # small amplitudes, depression stronger than potentiation: the recurrent
    # excitation does not run away within the measured steps (the neuron
    # activity stays near the input rate) while the weights keep moving
    md.stdp.update(enabled=int(learn), a_plus=4, a_minus=6, alpha_pre=a, alpha_post=a,
                   jump_pre=64, jump_post=64)
    return md


#: Core options of each kind of synapse RAM.  "double-pumped" is the iCEBreaker's
#: SPRAM at twice the core clock (neurocorex.hdl.spram): dual-port cycles,
#: checked equal in tests/test_spram.py.
#: "dual-registered" is the ULX3S's: dual-port block RAMs whose read data is
#: registered before the bank's read multiplexer (two clocks per read, one more
#: pipeline stage; neurocorex.hdl.sliced), sliced as the board builds them.
_ULX3S = get_board("ulx3s")
RAM_CORE_OPTIONS = {
    "single": {},
    "dual": {"dual_port": True},
    "dual-registered": {"dual_port": True, "bank_memory": sliced_banks(_ULX3S.bank_slice,
                                                                    _ULX3S.bank_block)},
    "double-pumped": DOUBLE_PUMPED_CORE,
}


def measure(cfg, rate, learn, steps, warmup, seed=1, ram="single", overlap=False, banks=4):
    md = build_model(cfg, learn, seed)
    rng = np.random.default_rng(seed + 100)
    # the first step after the preload is run but not measured: with
    # overlap_rows it reads its own rows and the next step's early ones
    skip = 1
    inputs = rng.random((warmup + skip + steps, cfg.inputs)) < rate
    # warm the traces up on the model, then start the core from that state
    md.run(warmup, inputs[:warmup])
    ref = copy.deepcopy(md)
    want = [np.flatnonzero(ref.step(x)).tolist() for x in inputs[warmup:]]
    core = Core(cfg, **RAM_CORE_OPTIONS[ram], overlap_rows=overlap, banks=banks)
    preload(core, md)
    out = run_bench(core, inputs[warmup:])
    if out["spikes"] != want:
        raise SystemExit("core and golden model disagree: the benchmark is invalid")
    geo = core.geometry
    rows = []
    prev = len(want[skip - 1])
    want = want[skip:]
    for t in range(steps):
        k = int(inputs[warmup + skip + t].sum())
        rows.append((prev + k) * cfg.neurons)
        prev = len(want[t])
    cycles = np.array(out["cycles"][skip:], float)
    events = np.array(rows, float)
    spikes = np.array([len(s) for s in want], float)
    return {
        "cycles": cycles.mean(), "step_cycles": np.mean(out["step_cycles"][skip:]),
        "events_per_clock": events.sum() / cycles.sum(), "limit": geo.posts,
        "input_rate": inputs[warmup + skip:].mean(), "neuron_rate": spikes.mean() / cfg.neurons,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clock-mhz", type=float, default=30.0,
                   help="clock frequency for steps/s (the UP5K Fmax from synthesis; default 30)")
    p.add_argument("--neurons", type=int, default=256)
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--rates", default="0.01,0.05,0.2", help="input spike probabilities per step")
    p.add_argument("--steps", type=int, default=6, help="measured steps per configuration")
    p.add_argument("--warmup", type=int, default=20, help="model steps before measuring")
    p.add_argument("--ram", choices=sorted(RAM_CORE_OPTIONS), default="single",
                   help="synapse bank RAM: single-port SPRAM, dual-port (ECP5 block RAM), "
                        "dual-port with registered block reads (ULX3S) or SPRAM "
                        "double-pumped (iCEBreaker); default single")
    p.add_argument("--dual-port", dest="ram", action="store_const", const="dual",
                   help="the same as --ram dual")
    p.add_argument("--banks", type=int, default=4, help="synapse banks (Core(banks=...)); default 4")
    p.add_argument("--overlap", action="store_true",
                   help="overlap_rows: the next step's recurrent rows during the neuron pass")
    args = p.parse_args(argv)
    cfg = CoreConfig(args.neurons, args.inputs)
    geo = Geometry(cfg, banks=args.banks)
    print(f"core N={cfg.neurons} M={cfg.inputs} weight_bits={cfg.weight_bits}; {geo}; "
          f"memory-port limit {geo.posts} synapses/clock; "
          f"{args.ram} synapse RAM{', overlap_rows' if args.overlap else ''}; "
          f"clock {args.clock_mhz:g} MHz")
    print(f"{'rate':>5} {'stdp':>4} {'in%':>5} {'out%':>5} {'cycles/step':>11} {'core':>7} "
          f"{'ev/clk':>7} {'ratio':>6} {'steps/s':>9}")
    for rate in (float(x) for x in args.rates.split(",")):
        for learn in (False, True):
            t0 = time.time()
            r = measure(cfg, rate, learn, args.steps, args.warmup, ram=args.ram,
                        overlap=args.overlap, banks=args.banks)
            sps = args.clock_mhz * 1e6 / r["cycles"]
            print(f"{rate:5.2f} {'on' if learn else 'off':>4} {100 * r['input_rate']:5.1f} "
                  f"{100 * r['neuron_rate']:5.1f} {r['cycles']:11.0f} {r['step_cycles']:7.0f} "
                  f"{r['events_per_clock']:7.2f} {r['events_per_clock'] / r['limit']:6.2f} "
                  f"{sps:9.0f}   ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
