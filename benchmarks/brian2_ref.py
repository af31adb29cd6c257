"""The NeuroCoreX network of a ``.npz`` file, simulated in floating point by Brian2.

This script runs in the optional Brian2 environment (``make brian2-env``,
``.venv-brian2``) and imports nothing from ``neurocorex``: it reads the network
file through its documented keys (``docs/file-formats.md``).

The neuron is the CUBA-LIF of ``docs/spec.md`` §3/§4 in V units (1.0 = one
integer unit of the core), integrated with Brian2's ``exact`` method at
``dt`` = 1 step:

* ``dI/dt = -I/tau_syn`` and ``dv/dt = (v_rest - v)/tau_mem (unless refractory)``
  with ``tau = -dt / ln(alpha / 2**15)``, so one step multiplies by
  ``alpha / 2**15`` exactly, in floating point instead of the core's
  rounding toward zero;
* the spikes of step ``t-1`` and the input spikes of step ``t`` are delivered
  at the start of step ``t`` (synaptic pathways scheduled ``before_groups``,
  the input generator at ``start``) into ``acc``; after the decay,
  ``I += acc`` and, unless refractory, ``v += I`` (the current is added once
  per step, as in the spec);
* threshold ``v >= theta``, reset ``v = v_reset``, refractory period
  ``(t_ref + 1) * dt`` in Brian2's convention (``timestep(t - lastspike) >=
  timestep(refractory)``), which blocks exactly the ``t_ref`` steps after a
  spike as the spec does;
* optional STDP in Brian2's classic form: event-driven pre/post traces per
  synapse, additive updates clipped to ``[w_min, w_max]`` (no 8-bit trace
  saturation, no integer rounding).

Usage::

    python benchmarks/brian2_ref.py NET.npz --steps S [--inputs IN.npz] --out OUT.npz \\
        [--record-v] [--target numpy|cython]
    python benchmarks/brian2_ref.py NET.npz --steps S --inputs IN.npz --bench WARMUP
        (prints a JSON line of timings)

``OUT.npz`` holds ``spikes`` (bool, (S, N)), ``w_rec``, ``w_in`` (float, the
weights after the run) and, with ``--record-v``, ``v`` (float, (S, N), V of each step
before the threshold test, i.e. before a reset).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

ONE = 32768     # 1.0 in the core's 1.15 decay factors


def tau_ms(alpha, dt_ms):
    """Time constant (ms) whose exact one-step decay is ``alpha / 2**15``."""
    a = np.asarray(alpha, float) / ONE
    out = np.empty_like(a)
    out[a >= 1.0] = 1e12                                    # no leak
    out[a <= 0.0] = 1e-9 * dt_ms                            # forget at once
    mid = (a > 0) & (a < 1)
    out[mid] = -dt_ms / np.log(a[mid])
    return out


def read_network(path):
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    if int(d.get("format_version", -1)) != 1:
        raise SystemExit(f"{path}: not a NeuroCoreX network file of format_version 1")
    return d


def build(net, inputs, target="numpy", record_v=False, stdp=None):
    """Build the Brian2 network; returns (Network, handles)."""
    import brian2 as b2
    from brian2 import ms, second

    b2.prefs.codegen.target = target
    b2.prefs.logging.console_log_level = "WARNING"
    dt_ms = float(net["dt"])
    n, m = int(net["neurons"]), int(net["inputs"])
    shift = 2 ** int(net["w_shift"])
    if stdp is None:
        stdp = bool(int(net["stdp_enabled"]))
    b2.defaultclock.dt = dt_ms * ms

    eqs = """
    dv/dt = (v_rest - v) / tau_m : 1 (unless refractory)
    dI/dt = -I / tau_s : 1
    acc : 1
    v_rest : 1 (constant)
    theta : 1 (constant)
    v_reset : 1 (constant)
    tau_m : second (constant)
    tau_s : second (constant)
    ref_period : second (constant)
    """
    G = b2.NeuronGroup(n, eqs, threshold="v >= theta", reset="v = v_reset",
                       refractory="ref_period", method="exact", name="neurons")
    G.v_rest = net["v_rest"].astype(float)
    G.theta = net["threshold"].astype(float)
    G.v_reset = net["v_reset"].astype(float)
    G.tau_m = tau_ms(net["alpha_v"], dt_ms) * ms
    G.tau_s = tau_ms(net["alpha_i"], dt_ms) * ms
    G.ref_period = (net["t_ref"].astype(float) + 1) * dt_ms * ms
    # the current of the step is added once, after the decay (spec §3 phase 3)
    G.run_regularly("I += acc\nv += I * int(not_refractory)\nacc = 0", when="groups", order=1,
                    name="add_current")

    if stdp:
        a_plus = float(net["stdp_a_plus"]) / 256.0
        a_minus = float(net["stdp_a_minus"]) / 256.0
        syn_model = """
        w : 1
        plastic : 1 (constant)
        dapre/dt = -apre / tau_pre : 1 (event-driven)
        dapost/dt = -apost / tau_post : 1 (event-driven)
        """
        on_pre = ("acc_post += w * shift\n"
                  "apre += jump_pre\n"
                  "w = clip(w - plastic * a_minus * apost, w_min, w_max)")
        on_post = ("apost += jump_post\n"
                   "w = clip(w + plastic * a_plus * apre, w_min, w_max)")
        ns = dict(shift=shift, a_plus=a_plus, a_minus=a_minus,
                  jump_pre=float(net["stdp_jump_pre"]), jump_post=float(net["stdp_jump_post"]),
                  w_min=float(net["stdp_w_min"]), w_max=float(net["stdp_w_max"]),
                  tau_pre=float(tau_ms(net["stdp_alpha_pre"], dt_ms)) * ms,
                  tau_post=float(tau_ms(net["stdp_alpha_post"], dt_ms)) * ms)
        kw = dict(model=syn_model, on_pre=on_pre, on_post=on_post, namespace=ns)
    else:
        ns = dict(shift=shift)
        kw = dict(model="w : 1\nplastic : 1 (constant)", on_pre="acc_post += w * shift", namespace=ns)

    objs = [G]
    handles = {"G": G}
    S_rec = b2.Synapses(G, G, name="w_rec", **kw)
    S_rec.connect()
    S_rec.w = net["w_rec"][S_rec.i[:], S_rec.j[:]].astype(float)
    S_rec.plastic = net["plastic_rec"][S_rec.i[:], S_rec.j[:]].astype(float)
    S_rec.pre.when = "before_groups"        # s(t-1) reaches step t before the decay
    objs.append(S_rec)
    handles["S_rec"] = S_rec
    if m:
        idx, times = [], []
        if inputs is not None and inputs.any():
            t_idx, k_idx = np.nonzero(inputs)
            idx, times = k_idx, t_idx * dt_ms
        P = b2.SpikeGeneratorGroup(m, np.asarray(idx, int), np.asarray(times, float) * ms,
                                   when="start", name="axons")
        S_in = b2.Synapses(P, G, name="w_in", **kw)
        S_in.connect()
        S_in.w = net["w_in"][S_in.i[:], S_in.j[:]].astype(float)
        S_in.plastic = net["plastic_in"][S_in.i[:], S_in.j[:]].astype(float)
        S_in.pre.when = "before_groups"     # x(t) reaches step t
        objs += [P, S_in]
        handles["S_in"] = S_in
    spk = b2.SpikeMonitor(G, name="spikes")
    objs.append(spk)
    handles["spikes"] = spk
    if record_v:
        # V before the threshold test: after the step's update, before a reset
        vm = b2.StateMonitor(G, "v", record=True, when="thresholds", order=-1, name="vmon")
        objs.append(vm)
        handles["v"] = vm
    netw = b2.Network(*objs)
    handles["dt_s"] = dt_ms * 1e-3
    handles["second"] = second
    return netw, handles


def spike_matrix(handles, steps, n, first_step=0):
    spk = handles["spikes"]
    t = np.rint(np.asarray(spk.t / handles["second"]) / handles["dt_s"]).astype(int) - first_step
    i = np.asarray(spk.i[:], int)
    keep = (t >= 0) & (t < steps)
    out = np.zeros((steps, n), bool)
    out[t[keep], i[keep]] = True
    return out


def weights(handles, net):
    n, m = int(net["neurons"]), int(net["inputs"])
    S = handles["S_rec"]
    w_rec = np.zeros((n, n))
    w_rec[S.i[:], S.j[:]] = S.w[:]
    w_in = np.zeros((m, n))
    if m:
        S = handles["S_in"]
        w_in[S.i[:], S.j[:]] = S.w[:]
    return w_rec, w_in


def simulate(net, inputs, steps, target="numpy", record_v=False):
    """Run ``steps`` steps; returns a dict of spikes, weights and (optionally) V."""
    from brian2 import ms
    netw, h = build(net, inputs, target=target, record_v=record_v)
    netw.run(steps * h["dt_s"] * 1e3 * ms, namespace={})
    n = int(net["neurons"])
    out = {"spikes": spike_matrix(h, steps, n)}
    out["w_rec"], out["w_in"] = weights(h, net)
    if record_v:
        out["v"] = np.asarray(h["v"].v).T[:steps].copy()
    return out


def bench(net, inputs, steps, warmup, target="cython", stdp=True):
    """Steps per second of Brian2 on this network, compile time excluded.

    A first run of ``warmup`` steps compiles (or loads from Brian2's cache) every
    code object.  Then two timed runs of ``steps // 4`` and ``steps`` steps give
    the per-step time with Brian2's fixed per-``run()`` overhead removed:
    ``(steps - steps//4) / (T_long - T_short)``; the plain ``steps / T_long``
    is reported too, and the same figure in CPU time of this process
    (``steps_per_cpu_s``), which a shared machine's load disturbs less.
    """
    from brian2 import ms
    t0 = time.perf_counter()
    netw, h = build(net, inputs, target=target, stdp=stdp)
    t_build = time.perf_counter() - t0
    dt = h["dt_s"] * 1e3 * ms
    t0 = time.perf_counter()
    netw.run(warmup * dt, namespace={})
    t_warm = time.perf_counter() - t0
    short = max(1, steps // 4)
    t0, c0 = time.perf_counter(), time.process_time()
    netw.run(short * dt, namespace={})
    t_short, c_short = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    netw.run(steps * dt, namespace={})
    t_long, c_long = time.perf_counter() - t0, time.process_time() - c0
    n = int(net["neurons"])
    spikes = spike_matrix(h, steps, n, first_step=warmup + short)
    return {"target": target, "steps": steps, "warmup_steps": warmup,
            "build_s": t_build, "warmup_s": t_warm, "short_s": t_short, "long_s": t_long,
            "steps_per_s": (steps - short) / max(t_long - t_short, 1e-9),
            "steps_per_s_plain": steps / t_long,
            "steps_per_cpu_s": (steps - short) / max(c_long - c_short, 1e-9),
            "activity": float(spikes.mean()), "brian2": __import__("brian2").__version__}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("network")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--inputs")
    p.add_argument("--out")
    p.add_argument("--record-v", action="store_true")
    p.add_argument("--target", default=None, choices=("numpy", "cython"))
    p.add_argument("--bench", type=int, metavar="WARMUP",
                   help="time the run after WARMUP steps; print JSON")
    a = p.parse_args(argv)
    net = read_network(a.network)
    inputs = None
    if a.inputs:
        with np.load(a.inputs, allow_pickle=False) as z:
            inputs = z["inputs"].astype(bool)
    if a.bench is not None:
        total = a.bench + max(1, a.steps // 4) + a.steps
        if inputs is not None and inputs.shape[0] < total:
            raise SystemExit(f"--inputs needs {total} steps for --bench")
        print(json.dumps(bench(net, inputs, a.steps, a.bench, target=a.target or "cython")))
        return 0
    if not a.out:
        p.error("--out is required")
    res = simulate(net, inputs, a.steps, target=a.target or "numpy", record_v=a.record_v)
    np.savez_compressed(a.out, **res)
    print(f"steps: {a.steps}\nspikes: {int(res['spikes'].sum())}\nout: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
