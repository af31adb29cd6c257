"""Random test networks for the core, as bus-level scripts.

A :class:`Case` is what a host would do to a freshly powered-up core: the bus
writes that load a network (``image``) and a schedule of operations
(``ops``): ``("step", axons)``, ``("write", addr, data)`` and
``("read", addr)``.  :func:`reference` runs a case on the golden model behind
the bus contract (:class:`~neurocorex.sim.busmodel.BusCore`); any RTL harness
(Amaranth simulator, cocotb) runs the same case and compares.

:func:`random_case` draws networks that exercise STDP saturation at both
bounds, refractory periods, steps where every input spikes (with duplicate
events), steps where every neuron spikes, plasticity masks, learning switched
off and on mid-run, mid-run bus writes, counter clears and state resets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..formats import (CoreConfig, NEURON_PARAMS, NEURON_STATE, STDP_FIELDS, GLOBAL_FIELDS,
                       DECAY_ONE)
from ..regmap import Region, Counter, address, synapse_word, field_index
from .busmodel import BusCore

__all__ = ["Case", "KINDS", "random_case", "random_cases", "reference", "readback_addresses",
           "image_writes"]

#: Feature each case index forces (``random_case(seed)`` uses ``KINDS[seed % len(KINDS)]``).
KINDS = ("basic", "saturate", "refractory", "all_inputs", "all_neurons", "masks", "learn_toggle")

#: Counters compared with the golden model (the cycle counters are the RTL's own).
MODEL_COUNTERS = (Counter.STEPS, Counter.SPIKES, Counter.INPUT_SPIKES, Counter.SYN_EVENTS)


@dataclass
class Case:
    """A bus-level script for one core."""
    name: str
    config: CoreConfig
    image: list = field(default_factory=list)     # [(addr, data)]
    ops: list = field(default_factory=list)       # [("step", [axons]) | ("write", a, d) | ("read", a)]
    #: probability that the spike consumer is ready in a cycle (back-pressure tests)
    spike_ready: float = 1.0

    @property
    def steps(self) -> int:
        return sum(1 for op in self.ops if op[0] == "step")


def _w(config, region, index, data):
    return (address(config, region, index), int(data) & 0xFFFFFFFF)


def image_writes(config: CoreConfig, w_rec, p_rec, w_in, p_in, params: dict, stdp: dict,
                 globals_: dict, *, skip_defaults: bool = True) -> list:
    """Bus writes that load a network into a core fresh from power-up.

    With ``skip_defaults`` the writes of values equal to the power-up contents
    (zero synapses, zero parameters, the default threshold) are left out.
    """
    n, m = config.neurons, config.inputs
    out = []
    for f, spec in enumerate(NEURON_PARAMS):
        default = (1 << 15) - 1 if spec.name == "threshold" else 0
        for j in range(n):
            v = int(params[spec.name][j])
            if not (skip_defaults and v == default):
                out.append(_w(config, Region.PARAM, f * n + j, v))
    for k, spec in enumerate(STDP_FIELDS):
        out.append(_w(config, Region.STDP, k, stdp[spec.name]))
    for k, spec in enumerate(GLOBAL_FIELDS):
        out.append(_w(config, Region.GLOBAL, k, globals_[spec.name]))
    for region, w, p, rows in ((Region.W_REC, w_rec, p_rec, n), (Region.W_IN, w_in, p_in, m)):
        for i in range(rows):
            for j in range(n):
                word = synapse_word(config, int(w[i, j]), bool(p[i, j]))
                if not (skip_defaults and word == 0):
                    out.append(_w(config, region, i * n + j, word))
    return out


def readback_addresses(config: CoreConfig) -> list:
    """Every readable address whose value the golden model defines."""
    n, m = config.neurons, config.inputs
    a = [address(config, Region.W_REC, x) for x in range(n * n)]
    a += [address(config, Region.W_IN, x) for x in range(m * n)]
    a += [address(config, Region.PARAM, x) for x in range(len(NEURON_PARAMS) * n)]
    a += [address(config, Region.STATE, x) for x in range(len(NEURON_STATE) * n)]
    a += [address(config, Region.INPUT_TRACE, x) for x in range(m)]
    a += [address(config, Region.STDP, x) for x in range(len(STDP_FIELDS))]
    a += [address(config, Region.GLOBAL, x) for x in range(len(GLOBAL_FIELDS))]
    a += [address(config, Region.COUNTER, int(c)) for c in MODEL_COUNTERS]
    return a


def reference(case: Case) -> dict:
    """Run ``case`` on the golden model's bus contract.

    Returns ``{"spikes": [[j, ...] per step], "reads": [value per read op],
    "final": {addr: value}}``.
    """
    core = BusCore(case.config)
    for addr, data in case.image:
        core.write(addr, data)
    spikes, reads = [], []
    for op in case.ops:
        if op[0] == "step":
            spikes.append(core.step(sorted(set(op[1]))))
        elif op[0] == "write":
            core.write(op[1], op[2])
        elif op[0] == "read":
            reads.append(core.read(op[1]))
        else:
            raise ValueError(f"unknown op {op[0]!r}")
    final = {a: core.read(a) for a in readback_addresses(case.config)}
    return {"spikes": spikes, "reads": reads, "final": final}


def _alpha(rng):
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.2:
        return DECAY_ONE
    return int(rng.integers(DECAY_ONE // 2, DECAY_ONE))


def random_case(seed: int, *, neurons=None, inputs=None, weight_bits=None, steps=None,
                kind: str | None = None, learning: bool | None = None,
                rewrites: float = 0.0) -> Case:
    """Draw one random network and schedule.

    Parameters
    ----------
    seed : int
        Seed; ``kind`` defaults to ``KINDS[seed % len(KINDS)]``.
    neurons, inputs, weight_bits, steps : int or None
        Shape and length; drawn small (fast in simulation) when None.
    learning : bool or None
        Force STDP on or off at the start (drawn when None; ``learn_toggle``
        cases still switch it mid-run).
    rewrites : float
        Chance per step of a synapse write after it (recurrent or input, a
        random word), from a second generator: the other draws stay as they
        are without it.
    """
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)] if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n = int(rng.integers(2, 11)) if neurons is None else neurons
    m = int(rng.integers(0, 9)) if inputs is None else inputs
    if kind == "all_inputs" and m == 0 and inputs is None:
        m = int(rng.integers(1, 9))
    wb = int(rng.choice([7, 7, 7, 5, 4, 9])) if weight_bits is None else weight_bits
    steps = int(rng.integers(20, 36)) if steps is None else steps
    cfg = CoreConfig(n, m, wb)
    wlo, whi = cfg.weight_range

    # STDP settings
    learn = kind != "basic" or rng.random() < 0.8
    if learning is not None:
        learn = learning
    w_min, w_max = sorted(int(x) for x in rng.integers(wlo, whi + 1, 2))
    if rng.random() < 0.3:
        w_min, w_max = wlo, whi
    stdp = {"enabled": int(learn), "a_plus": int(rng.integers(0, 256)),
            "a_minus": int(rng.integers(0, 256)), "alpha_pre": _alpha(rng),
            "alpha_post": _alpha(rng), "jump_pre": int(rng.integers(0, 256)),
            "jump_post": int(rng.integers(0, 256)), "w_min": w_min, "w_max": w_max}
    if kind == "saturate":
        stdp.update(a_plus=255, a_minus=255, jump_pre=255, jump_post=255,
                    alpha_pre=DECAY_ONE, alpha_post=DECAY_ONE)
        w_min, w_max = sorted(int(x) for x in rng.integers(wlo // 2, whi // 2 + 1, 2))
        stdp.update(w_min=w_min, w_max=w_max)

    # weights: some at and beyond the bounds
    w_rec = rng.integers(wlo, whi + 1, (n, n))
    w_in = rng.integers(wlo, whi + 1, (m, n))
    for w in (w_rec, w_in):
        pick = rng.random(w.shape)
        w[pick < 0.1] = w_min
        w[(pick >= 0.1) & (pick < 0.2)] = w_max
        w[(pick >= 0.2) & (pick < 0.3)] = 0
    p_frac = 1.0 if kind in ("saturate", "learn_toggle") else rng.random()
    p_rec = rng.random((n, n)) < p_frac
    p_in = rng.random((m, n)) < p_frac
    if kind == "masks":
        p_rec = rng.random((n, n)) < 0.5
        p_in = rng.random((m, n)) < 0.5

    # neurons
    w_shift = int(rng.integers(0, 9))
    unit = (1 << w_shift) * max(1, whi)        # current of one strong spike
    params = {
        "threshold": rng.integers(unit // 4, 3 * unit + 2, n),
        "v_reset": rng.integers(-unit // 2, unit // 4 + 1, n),
        "v_rest": rng.integers(-unit // 4, unit // 4 + 1, n),
        "alpha_v": np.array([_alpha(rng) for _ in range(n)]),
        "alpha_i": np.array([_alpha(rng) for _ in range(n)]),
        "t_ref": rng.integers(0, 3, n),
    }
    if kind == "refractory":
        params["t_ref"] = rng.integers(0, 8, n)
        params["threshold"] = rng.integers(-unit, unit // 2 + 1, n)
    if kind == "all_neurons":
        # V >= -32768 always holds: every neuron spikes in every step
        params["threshold"][:] = -32768
        params["t_ref"][:] = 0
    for k in ("threshold", "v_reset", "v_rest"):
        params[k] = np.clip(params[k], -32768, 32767)
    if rng.random() < 0.15:
        params["threshold"][rng.integers(0, n)] = 32767    # the power-up value

    globals_ = {"w_shift": w_shift}
    image = image_writes(cfg, w_rec, p_rec, w_in, p_in, params, stdp, globals_)

    # schedule
    ops = []
    wrng = np.random.default_rng([seed, 1])
    rate = rng.uniform(0.05, 0.6)
    toggle_at = int(rng.integers(steps // 3, 2 * steps // 3)) if kind == "learn_toggle" else -1
    for t in range(steps):
        if m and (kind == "all_inputs" and t % 3 == 1 or rng.random() < 0.05):
            axons = list(range(m)) + [int(x) for x in rng.integers(0, m, 2)]   # duplicates
            rng.shuffle(axons)
        elif m:
            axons = [int(k) for k in np.flatnonzero(rng.random(m) < rate)]
            if axons and rng.random() < 0.2:
                axons.append(axons[0])                                        # duplicate
        else:
            axons = []
        ops.append(("step", axons))
        if rewrites and wrng.random() < rewrites:
            region = Region.W_IN if m and wrng.random() < 0.5 else Region.W_REC
            x = int(wrng.integers(0, (m if region == Region.W_IN else n) * n))
            word = synapse_word(cfg, int(wrng.integers(wlo, whi + 1)), bool(wrng.random() < 0.8))
            ops.append(("write", address(cfg, region, x), word))
        if t == toggle_at:
            ops.append(("write", address(cfg, Region.STDP, field_index(STDP_FIELDS, "enabled")),
                        0))
        # learning (re)enabled with a new A- mid-run: in learn_toggle cases after the
        # switch-off, in the others at step 4 (switching it on if it was off)
        if t == toggle_at + 5 and rng.random() < 0.7:
            ops.append(("write", address(cfg, Region.STDP, field_index(STDP_FIELDS, "enabled")),
                        1))
            ops.append(("write", address(cfg, Region.STDP, field_index(STDP_FIELDS, "a_minus")),
                        int(rng.integers(0, 256))))
        r = rng.random()
        if r < 0.04:
            j = int(rng.integers(0, n))
            f = int(rng.integers(0, len(NEURON_STATE)))
            ops.append(("write", address(cfg, Region.STATE, f * n + j), int(rng.integers(0, 1 << 16))))
        elif r < 0.08:
            ops.append(("read", address(cfg, Region.STATE, int(rng.integers(0, len(NEURON_STATE) * n)))))
        elif r < 0.10:
            ops.append(("read", address(cfg, Region.COUNTER, int(rng.choice(MODEL_COUNTERS)))))
        elif r < 0.11:
            ops.append(("write", address(cfg, Region.COUNTER, 0), 0))
        elif r < 0.12 and kind != "learn_toggle":
            ops.append(("write", address(cfg, Region.CONTROL, 0), 0))
    spike_ready = 1.0 if rng.random() < 0.7 else float(rng.uniform(0.3, 0.9))
    return Case(f"{kind}-{seed}-N{n}M{m}W{wb}", cfg, image, ops, spike_ready)


def random_cases(count: int, first_seed: int = 0, **kwargs) -> list:
    """``count`` cases from consecutive seeds (every kind appears once per 7)."""
    return [random_case(s, **kwargs) for s in range(first_seed, first_seed + count)]
