"""The golden model and Brian2 side by side: speed, and agreement of spike trains.

Speed (``benchmark``): N = 256 neurons, M = 256 inputs, about 5 % activity,
STDP on (Brian2: its classic STDP, event-driven traces, additive, clipped;
cython target).  Prints time steps per second of each and their ratio; Brian2's
compile time is excluded (a warm-up run first, then timed runs).

Agreement (``reference_check``): the same CUBA-LIF network, integers in the
golden model and floats in Brian2 (exact-rule discretisation, dt = 1 step),
compared spike for spike; see ``docs/brian2.md``.

Brian2 runs in the optional environment ``.venv-brian2`` (``make brian2-env``)
through ``benchmarks/brian2_ref.py``, because Brian2 2.9 needs numpy < 2.  If
that environment is missing, the Brian2 half is skipped with a note.

Usage::

    .venv/bin/python benchmarks/model_vs_brian2.py            # speed
    .venv/bin/python benchmarks/model_vs_brian2.py --check    # agreement

Both are importable: ``benchmark(...)`` and ``reference_check(...)`` return
dicts of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import neurocorex as nx

ROOT = Path(__file__).resolve().parent.parent
REF_SCRIPT = ROOT / "benchmarks" / "brian2_ref.py"

__all__ = ["brian2_python", "bench_network", "benchmark", "reference_network", "reference_check",
           "run_brian2", "spike_agreement", "voltage_bound"]


def brian2_python():
    """The interpreter of the Brian2 environment, or None if there is none.

    ``NEUROCOREX_BRIAN2_PYTHON`` overrides the default ``.venv-brian2/bin/python``.
    """
    cand = os.environ.get("NEUROCOREX_BRIAN2_PYTHON") or str(ROOT / ".venv-brian2" / "bin" / "python")
    if not Path(cand).exists():
        return None
    r = subprocess.run([cand, "-c", "import brian2"], capture_output=True, timeout=300)
    return cand if r.returncode == 0 else None


def run_brian2(net, inputs, steps, *, record_v=False, bench_warmup=None, target=None, timeout=1800):
    """Run ``net`` in Brian2 (subprocess); returns the output arrays or, with ``bench_warmup``,
    the timing dict of ``brian2_ref.bench``."""
    py = brian2_python()
    if py is None:
        raise RuntimeError("no Brian2 environment: run `make brian2-env`")
    with tempfile.TemporaryDirectory() as d:
        net.save(Path(d) / "net.npz")
        args = [py, str(REF_SCRIPT), str(Path(d) / "net.npz"), "--steps", str(steps)]
        if inputs is not None:
            np.savez(Path(d) / "in.npz", inputs=inputs)
            args += ["--inputs", str(Path(d) / "in.npz")]
        if target:
            args += ["--target", target]
        if bench_warmup is not None:
            args += ["--bench", str(bench_warmup)]
        else:
            args += ["--out", str(Path(d) / "out.npz")]
            if record_v:
                args.append("--record-v")
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"brian2_ref.py failed:\n{r.stderr[-4000:]}")
        if bench_warmup is not None:
            return json.loads(r.stdout.strip().splitlines()[-1])
        with np.load(Path(d) / "out.npz") as z:
            return {k: z[k] for k in z.files}


# -- speed ------------------------------------------------------------------------------------

def bench_network(neurons=256, inputs=256, seed=0, a_plus=0, a_minus=0):
    """A random network with STDP on for every synapse that fires at about 5 % per step
    under 5 % Poisson input.

    By default the STDP amplitudes are 0: learning is on and both simulators do all
    of its work (Brian2 runs its on_pre/on_post code with the event-driven traces
    and the clipping for every event; the model computes every trace, depression and
    potentiation: it has no shortcut for zero amplitudes), but the weights, and with
    them the activity, stay where they start, so both simulate the same spike
    traffic.  With non-zero amplitudes the float rule and the core's 8-bit rule
    drift apart (A = 1, jumps of 16: about 22 % activity in Brian2, where 1/16 of a
    weight unit per pair accumulates, against 5.6 % in the model, where it rounds
    to 0), and a speed comparison needs equal work.
    """
    rng = np.random.default_rng(seed)
    net = nx.Network(neurons, inputs)
    net.set_neurons(tau_mem=20.0, tau_syn=5.0, threshold=1.0, v_reset=0.0, refractory=2.0)
    net.w_shift = 0
    net.w_in = rng.integers(-2, 8, (inputs, neurons))
    net.w_rec = rng.integers(-4, 3, (neurons, neurons))
    net.plastic_rec = True
    net.plastic_in = True
    net.stdp = nx.STDPSettings(enabled=True, a_plus=a_plus, a_minus=a_minus, jump_pre=16,
                               jump_post=16, w_min=-64, w_max=63)
    net.stdp.set_taus(20.0, 20.0)
    return net


def _model_rate(net, inputs, warmup, backend=None):
    with nx.connect("model", neurons=net.neurons, inputs=net.inputs) as dev:
        if backend:
            dev.model.backend = backend
        dev.load(net)
        dev.run(warmup, inputs[:warmup], progress=False)
        steps = inputs.shape[0] - warmup
        t0, c0 = time.perf_counter(), time.process_time()
        rec = dev.run(steps, inputs[warmup:], progress=False)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return steps / dt, float(rec.spikes.mean()), dt, steps / dc


def benchmark(neurons=256, inputs=256, steps=4000, activity=0.05, seed=0, brian2=True, warmup=200):
    """Time steps per second of the golden model and of Brian2 (cython) on one network.

    Returns a dict: ``model_steps_per_s``, ``model_activity``, ``model_backend``,
    ``model_numpy_steps_per_s`` (the numpy implementation of the same step),
    ``brian2_steps_per_s`` (None if skipped), ``brian2_activity``, ``ratio``
    (model / Brian2), ``note``.  The model's warm-up run also compiles (or loads from
    Numba's cache) its step, so no compile time is timed on either side.
    """
    net = bench_network(neurons, inputs, seed)
    rng = np.random.default_rng(seed + 1)
    short = max(1, steps // 4)
    total = warmup + short + steps                 # Brian2's schedule; the model uses a prefix
    x = rng.random((total, inputs)) < activity
    m_rate, m_act, m_time, m_cpu = _model_rate(net, x[:warmup + steps], warmup)
    np_steps = min(steps, 1000)
    np_rate, np_act = _model_rate(net, x[:warmup + np_steps], warmup, backend="numpy")[:2]
    from neurocorex.sim.model import CoreModel
    probe = CoreModel(nx.CoreConfig(1, 0))
    probe.step()
    backend = probe.backend
    res = {"neurons": neurons, "inputs": inputs, "steps": steps, "input_activity": float(x.mean()),
           "model_backend": backend, "model_steps_per_s": m_rate, "model_activity": m_act,
           "model_seconds": m_time, "model_numpy_steps_per_s": np_rate,
           "brian2_steps_per_s": None, "brian2_activity": None, "ratio": None}
    if not brian2:
        res["note"] = "Brian2 not run (disabled)"
        return res
    if brian2_python() is None:
        res["note"] = "Brian2 skipped: no .venv-brian2 (run `make brian2-env`)"
        return res
    b = run_brian2(net, x, steps, bench_warmup=warmup, target="cython")
    # time the model again after Brian2 and take the mean: the machine is shared, and
    # a load that changes during the run then weighs on both sides alike
    m_rate2, _, _, m_cpu2 = _model_rate(net, x[:warmup + steps], warmup)
    m_rate = (m_rate + m_rate2) / 2
    m_cpu = (m_cpu + m_cpu2) / 2
    res.update(model_steps_per_s=m_rate, model_steps_per_s_runs=[res["model_steps_per_s"], m_rate2],
               model_steps_per_cpu_s=m_cpu,
               brian2_steps_per_s=b["steps_per_s"], brian2_steps_per_s_plain=b["steps_per_s_plain"],
               brian2_steps_per_cpu_s=b["steps_per_cpu_s"],
               brian2_activity=b["activity"], brian2_warmup_seconds=b["warmup_s"],
               brian2_version=b["brian2"], ratio=m_rate / b["steps_per_s"],
               ratio_cpu=m_cpu / b["steps_per_cpu_s"],
               note=("Brian2 cython target; compile time excluded: a warm-up run of "
                     f"{warmup} steps compiled the code first ({b['warmup_s']:.1f} s), then "
                     f"steps/s = ({steps} - {short}) / (T({steps}) - T({short})) removes "
                     "Brian2's fixed per-run() overhead"))
    return res


# -- agreement --------------------------------------------------------------------------------

def reference_network(recurrent=False, neurons=50, inputs=100, seed=0):
    """A CUBA-LIF network whose integers are exact in float (Brian2 gets the same numbers).

    ``v_scale`` = 8192 so that one V unit is small beside the threshold (1.0 = 8192);
    the quantisation of V and I by rounding toward zero is then what separates the two.
    """
    rng = np.random.default_rng(seed)
    net = nx.Network(neurons, inputs, v_scale=8192)
    net.set_neurons(tau_mem=20.0, tau_syn=5.0, threshold=1.0, v_reset=0.0, v_rest=0.0,
                    refractory=2.0)
    net.w_shift = 2                                # one weight unit = 4 V units = 1/2048 threshold
    # mixed-sign input: about 5 % activity under 5 % input, driven by fluctuations
    net.w_in = rng.integers(-50, 63, (inputs, neurons))
    if recurrent:
        net.w_rec = rng.integers(-20, 20, (neurons, neurons))
    return net


def voltage_bound(net):
    """Largest |V_model - V_float| the spec's rounding allows while spike trains agree.

    Per step, ``decay`` truncates toward zero: the current loses less than one unit,
    so ``|e_I| < 1/(1 - a_I)``; V loses less than one unit and inherits ``e_I``:
    ``|e_V| < (1 + 1/(1 - a_I)) / (1 - a_V)``, with ``a = alpha / 2**15``.
    """
    a_i = np.asarray(net.alpha_i, float) / 32768
    a_v = np.asarray(net.alpha_v, float) / 32768
    return (1 + 1 / (1 - a_i)) / (1 - a_v)


def spike_agreement(a, b):
    """Figures comparing two bool spike rasters (steps, N)."""
    both = int((a & b).sum())
    na, nb = int(a.sum()), int(b.sum())
    pad = lambda s: np.pad(s, ((1, 1), (0, 0)))  # noqa: E731
    near = lambda s: pad(s)[:-2] | pad(s)[1:-1] | pad(s)[2:]  # noqa: E731
    a_near = int((a & near(b)).sum())
    b_near = int((b & near(a)).sum())
    return {"model_spikes": na, "brian2_spikes": nb,
            "match_exact": 2 * both / max(na + nb, 1),
            "match_within_1": (a_near + b_near) / max(na + nb, 1),
            "rate_difference": (na - nb) / max(nb, 1)}


def reference_check(recurrent=False, steps=1000, neurons=50, inputs=100, activity=0.05, seed=0):
    """Run one network in the golden model and in Brian2 (float); return agreement figures.

    Besides ``spike_agreement``: ``v_bound`` (units), ``v_dev_max`` (largest
    |V_model - V_brian2| over the steps before each neuron's first disagreement; for a
    recurrent network, before the first disagreement of any neuron) and
    ``first_miss_margin_max`` (largest |V_brian2 - theta| at a neuron's first
    disagreement: the spec predicts it below ``v_bound``).
    """
    net = reference_network(recurrent, neurons, inputs, seed)
    x = np.random.default_rng(seed + 1).random((steps, inputs)) < activity
    with nx.connect("model", neurons=neurons, inputs=inputs) as dev:
        dev.load(net)
        vs, spikes = [], []
        for t in range(steps):      # one step at a time to record V
            rec = dev.run(1, x[t:t + 1], progress=False)
            spikes.append(rec.spikes[0])
            vs.append(dev.read_state()["v"])
    s_m, v_m = np.array(spikes), np.array(vs, float)
    b = run_brian2(net, x, steps, record_v=True, target="numpy")
    s_b, v_b = b["spikes"], b["v"]
    res = spike_agreement(s_m, s_b)
    bound = float(np.max(voltage_bound(net)))
    differ = s_m != s_b
    first = np.where(differ.any(axis=0), differ.argmax(axis=0), steps)   # per neuron
    if recurrent:                        # one neuron's miss changes every neuron's input
        first = np.full(neurons, first.min())
    quiet = ~s_m & ~s_b                  # V before the threshold test is comparable
    dev_max, margin = 0.0, 0.0
    theta = np.asarray(net.threshold, float)
    for j in range(neurons):
        ok = quiet[:first[j], j]
        if ok.any():
            dev_max = max(dev_max, float(np.abs(v_m[:first[j], j][ok] - v_b[:first[j], j][ok]).max()))
        if first[j] < steps and not recurrent:
            margin = max(margin, abs(float(v_b[first[j], j] - theta[j])))
    res.update(recurrent=recurrent, steps=steps, neurons=neurons, inputs=inputs,
               v_scale=net.v_scale, v_bound=bound, v_dev_max=dev_max,
               first_miss_margin_max=margin if not recurrent else None,
               neurons_with_a_miss=int((differ.any(axis=0)).sum()))
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description="golden model vs Brian2")
    p.add_argument("--check", action="store_true", help="agreement of spike trains instead of speed")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--neurons", type=int, default=256)
    p.add_argument("--inputs", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    a = p.parse_args(argv)
    if a.check:
        if brian2_python() is None:
            print("Brian2 skipped: no .venv-brian2 (run `make brian2-env`)")
            return 0
        for rec in (False, True):
            r = reference_check(recurrent=rec, steps=a.steps or 1000)
            if a.json:
                print(json.dumps(r))
                continue
            print(f"{'recurrent' if rec else 'feedforward'} network, {r['neurons']} neurons, "
                  f"{r['inputs']} inputs, {r['steps']} steps")
            for k, v in r.items():
                print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
        return 0
    r = benchmark(a.neurons, a.inputs, steps=a.steps or 4000)
    if a.json:
        print(json.dumps(r))
        return 0
    print(f"N={r['neurons']} M={r['inputs']} input activity {r['input_activity']:.3f}, STDP on, "
          f"{r['steps']} timed steps")
    runs = r.get("model_steps_per_s_runs")
    extra = f"; mean of {runs[0]:.0f} before and {runs[1]:.0f} after Brian2" if runs else ""
    print(f"golden model: {r['model_steps_per_s']:9.0f} steps/s  (activity {r['model_activity']:.3f}{extra}; "
          f"{r['model_backend']} step)")
    print(f"  numpy step: {r['model_numpy_steps_per_s']:9.0f} steps/s  (the same bits without Numba)")
    if r["brian2_steps_per_s"] is None:
        print(r["note"])
        return 0
    print(f"Brian2 {r['brian2_version']}:  {r['brian2_steps_per_s']:9.0f} steps/s  "
          f"(activity {r['brian2_activity']:.3f}; {r['brian2_steps_per_s_plain']:.0f} steps/s "
          "including per-run overhead)")
    print(f"ratio model / Brian2: {r['ratio']:.2f} wall clock, {r['ratio_cpu']:.2f} CPU time "
          f"({r['model_steps_per_cpu_s']:.0f} vs {r['brian2_steps_per_cpu_s']:.0f} steps per CPU second)"
          " (target >= 2)")
    print(r["note"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
