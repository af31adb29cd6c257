"""Import and export NIR graphs (the Neuromorphic Intermediate Representation).

:func:`from_nir` maps a :class:`nir.NIRGraph` (or a ``.nir`` file) onto a
:class:`~neurocorex.network.Network`; :func:`to_nir` writes a network as a NIR
graph.  ``docs/nir.md`` states the semantics in full; in short:

* **Time.** A NIR graph is a set of ODEs in continuous time.  The core
  integrates them on a grid of step ``dt``.  A spike is an impulse of area
  ``dt`` (a 0/1 sample held for one step, the weight scale of the
  Euler-discretised frameworks); the spikes of step ``t`` arrive at time
  ``t*dt`` and the state is sampled, and the threshold tested, at the end of the
  step.  With that convention every supported neuron model is discretised
  *exactly* (no Euler error): decays become ``exp(-dt/tau)`` and the effect of
  one spike on the membrane over the step becomes a gain folded into the
  weights.
* **Populations.** Every neuron node (``CubaLIF``, ``LIF``, ``IF``, ``LI``,
  ``CubaLI``, ``I``) becomes a block of neurons of the one core.  Projections
  (chains of ``Linear``/``Affine``/``Scale``) from an ``Input`` go into
  ``w_in``; projections from a population (to itself or to another population)
  go into ``w_rec`` as blocks.  A spike detected at the end of step ``t`` is at
  time ``(t+1)*dt``, the instant the core delivers it (step ``t+1``), so the
  block structure is faithful to NIR's instantaneous edges on that grid.
* **Numbers.** Weights, thresholds and time constants are quantised by the
  rules of ``docs/spec.md`` §4; the errors are reported in
  :class:`NIRReport` (``net.nir_report``).
* **Beyond NIR.** STDP settings, plasticity masks, refractory periods and the
  integer scales are stored in ``graph.metadata["neurocorex"]`` and read back.

Anything the core cannot express raises :class:`~neurocorex.errors.UnsupportedError`
naming the node and the reason.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import NeuroCoreXError, RangeError, ShapeError, UnsupportedError
from .formats import DECAY_ONE, V_BITS, W_SHIFT_MAX, signed_range

__all__ = ["from_nir", "to_nir", "NIRReport", "cuba_gain", "META_KEY", "META_VERSION"]

#: Key of the NeuroCoreX entry in ``graph.metadata``.
META_KEY = "neurocorex"
#: Version of the layout of that entry.
META_VERSION = 1

_V_LO, _V_HI = signed_range(V_BITS)
#: Voltages (threshold, reset, leak) are scaled to at most this many V units
#: when ``v_scale`` is chosen automatically: 4x headroom for V and I excursions.
_V_TARGET = 1 << (V_BITS - 3)

_NEURON_TYPES = ("CubaLIF", "CubaLI", "LIF", "LI", "IF", "I")
_SPIKING = ("CubaLIF", "LIF", "IF")
_LINEAR_TYPES = ("Linear", "Affine", "Scale", "Flatten")
_REFUSED = {
    "Conv1d": "convolutions are not expressible: the core has one all-to-all "
              "population, not weight-shared kernels",
    "Conv2d": "convolutions are not expressible: the core has one all-to-all "
              "population, not weight-shared kernels",
    "SumPool2d": "pooling is not expressible (spatial layers are not supported)",
    "AvgPool2d": "pooling is not expressible (spatial layers are not supported)",
    "Delay": "synaptic delays are not expressible: the core delivers every spike "
             "in the next step",
    "Threshold": "a stateless threshold is not expressible: the core's only "
                 "nonlinearity is the LIF neuron",
    "NIRGraph": "nested graphs are not supported; flatten the graph first",
    "Identity": None,       # handled as a linear op
}


def _import_nir():
    try:
        import nir
    except ImportError:
        raise NeuroCoreXError("NIR support needs the 'nir' package (pip install nir)") from None
    return nir


# --- exact discretisation ----------------------------------------------------------

def _decay(tau, dt):
    """``exp(-dt/tau)`` elementwise, with ``tau = 0`` → 0 and ``tau = inf`` → 1."""
    tau = np.asarray(tau, float)
    with np.errstate(divide="ignore"):
        return np.where(tau == 0, 0.0, np.exp(-dt / np.where(tau == 0, 1.0, tau)))


def cuba_gain(tau_syn, tau_mem, dt):
    """Membrane gain of one unit of synaptic current over a step (CubaLIF).

    With ``tau_syn dI/dt = -I`` and ``tau_mem dv/dt = -v + I``, a current
    ``I0`` at the start of a step raises ``v`` by ``I0 * G / (dt/tau_syn)`` at
    its end; an impulse of area ``dt`` and weight ``w`` therefore adds
    ``w * G`` with::

        G = dt * (exp(-dt/tau_syn) - exp(-dt/tau_mem)) / (tau_syn - tau_mem)

    computed without cancellation (``expm1``), including ``tau_syn == tau_mem``
    (``G = a (dt/tau)^2``), ``tau = 0`` and ``tau = inf`` (``G = 0``).
    """
    ts = np.asarray(tau_syn, float)
    tm = np.asarray(tau_mem, float)
    ts, tm = np.broadcast_arrays(ts, tm)
    out = np.zeros(ts.shape)
    a_s, a_m = _decay(ts, dt), _decay(tm, dt)
    fin = np.isfinite(ts) & np.isfinite(tm) & (ts > 0) & (tm > 0)
    with np.errstate(all="ignore"):
        x = dt * (ts - tm) / (ts * tm)
        ratio = np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x))
        g = a_m * dt * dt / (ts * tm) * ratio
    out[fin] = g[fin]
    # one time constant zero: the other filter alone
    z_s = (ts == 0) & (tm > 0) & np.isfinite(tm)
    out[z_s] = (a_m * dt / np.where(tm > 0, tm, 1))[z_s]
    z_m = (tm == 0) & (ts > 0) & np.isfinite(ts)
    out[z_m] = (a_s * dt / np.where(ts > 0, ts, 1))[z_m]
    out[(ts == 0) & (tm == 0)] = np.nan           # an impulse straight into v: undefined
    return out if out.ndim else float(out)


# --- the report ------------------------------------------------------------------------

@dataclass
class NIRReport:
    """What :func:`from_nir` did and the quantisation errors it introduced.

    Attached to the returned network as ``net.nir_report``.

    Attributes
    ----------
    dt : float
        Time step used for the discretisation (the graph's time unit).
    v_scale, w_shift : int
        Integer V units per voltage unit, and the weight shift chosen (or given).
    populations : dict
        Neuron node name → ``(NIR type, neuron indices)``.
    inputs : dict
        Input node name → axon indices.
    outputs : dict
        Output node name → name of the population it observes.
    weight_error : float
        Largest absolute error of a weight's effect on the membrane (voltage
        units per spike); at most ``2**(w_shift-1) / v_scale``.
    weight_error_rel : float
        ``weight_error`` relative to the largest weight effect.
    projection_errors : dict
        ``(source, target)`` → largest absolute error of that block, in the
        units of the NIR weights (before the gain).
    alpha_error : float
        Largest absolute error of a decay factor (fraction of 1; ≤ 2**-16).
    tau_error_rel : float
        Largest relative error of a time constant implied by the quantised decay.
    voltage_error : float
        Largest absolute error of a threshold, reset or leak potential
        (voltage units; ≤ 1/v_scale).
    notes : list of str
        Mapping decisions worth knowing (block structure, non-spiking nodes, ...).
    """
    dt: float = 1.0
    v_scale: int = 1024
    w_shift: int = 0
    populations: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    weight_error: float = 0.0
    weight_error_rel: float = 0.0
    projection_errors: dict = field(default_factory=dict)
    alpha_error: float = 0.0
    tau_error_rel: float = 0.0
    voltage_error: float = 0.0
    notes: list = field(default_factory=list)

    def __str__(self):
        lines = [f"NIR import: dt={self.dt:g}, v_scale={self.v_scale}, w_shift={self.w_shift}"]
        for name, (kind, idx) in self.populations.items():
            lines.append(f"  population {name!r} ({kind}): neurons {_span(idx)}")
        for name, idx in self.inputs.items():
            lines.append(f"  input {name!r}: axons {_span(idx)}")
        lines.append(f"  weight error  <= {self.weight_error:.3g} "
                     f"({100 * self.weight_error_rel:.2f} % of the largest weight)")
        lines.append(f"  decay error   <= {self.alpha_error:.3g} (tau {100 * self.tau_error_rel:.3f} %)")
        lines.append(f"  voltage error <= {self.voltage_error:.3g}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _span(idx):
    idx = np.asarray(idx)
    if idx.size == 0:
        return "none"
    if np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
        return f"{idx[0]}..{idx[-1]}"
    return ",".join(str(i) for i in idx[:8]) + (",..." if idx.size > 8 else "")


# --- reading graphs --------------------------------------------------------------------------

def _load_graph(graph_or_path):
    nir = _import_nir()
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path
    if isinstance(graph_or_path, (str, os.PathLike)):
        path = os.fspath(graph_or_path)
        if not os.path.exists(path):
            raise NeuroCoreXError(f"NIR file {path!r} does not exist")
        try:
            # our own checks below are stricter; the library's type inference
            # would insert nodes into graphs without an Input
            return nir.read(path, type_check=False)
        except Exception as e:      # h5py/nir raise many kinds
            raise NeuroCoreXError(f"NIR file {path!r} is not readable: {e}") from None
    raise ShapeError(f"from_nir() takes a nir.NIRGraph or a path, got {type(graph_or_path).__name__}")


def _size(node):
    """Number of elements a node's output carries (flattened)."""
    kind = type(node).__name__
    if kind == "Input":
        return int(np.prod(node.input_type["input"]))
    if kind == "Output":
        return int(np.prod(node.output_type["output"]))
    if kind in ("CubaLIF", "LIF", "IF"):
        return int(np.size(node.v_threshold))
    if kind in ("CubaLI", "LI"):
        return int(np.size(node.v_leak))
    if kind == "I":
        return int(np.size(node.r))
    raise AssertionError(kind)


def _param(node, name, size, nodename, *, lo=-math.inf, allow_inf=False):
    value = getattr(node, name)
    arr = np.asarray(value, float)
    try:
        arr = np.broadcast_to(arr.reshape(-1) if arr.size == size else arr, (size,)).astype(float)
    except ValueError:
        raise ShapeError(f"node {nodename!r}: {name} has shape {np.shape(value)}, "
                         f"expected {size} values") from None
    if np.any(np.isnan(arr)) or (not allow_inf and np.any(np.isinf(arr))):
        raise RangeError(f"node {nodename!r}: {name} must be finite numbers")
    if np.any(arr < lo):
        raise RangeError(f"node {nodename!r}: {name} must be >= {lo:g}, got {arr.min():g}")
    return arr


@dataclass
class _Pop:
    name: str
    kind: str
    size: int
    a_s: np.ndarray         # synaptic decay over dt (0 = no current state)
    a_m: np.ndarray         # membrane decay over dt (1 = no leak)
    tau_s: np.ndarray
    tau_m: np.ndarray
    gain: np.ndarray        # membrane effect of one unit of NIR weight
    v_leak: np.ndarray
    v_thr: np.ndarray | None
    v_reset: np.ndarray
    idx: np.ndarray | None = None


def _population(name, node, dt):
    kind = type(node).__name__
    n = _size(node)
    spiking = kind in _SPIKING
    thr = _param(node, "v_threshold", n, name) if spiking else None
    reset = _param(node, "v_reset", n, name) if spiking else np.zeros(n)
    if kind in ("CubaLIF", "CubaLI"):
        ts = _param(node, "tau_syn", n, name, lo=0, allow_inf=True)
        tm = _param(node, "tau_mem", n, name, lo=0, allow_inf=True)
        r = _param(node, "r", n, name)
        w_in = _param(node, "w_in", n, name)
        leak = _param(node, "v_leak", n, name)
        if np.any((ts == 0) & (tm == 0)):
            raise UnsupportedError(f"node {name!r} ({kind}): tau_syn = tau_mem = 0 puts an "
                                   "impulse straight into v; not expressible")
        if np.any(np.isinf(ts)):
            raise UnsupportedError(f"node {name!r} ({kind}): tau_syn = inf (a current that "
                                   "never decays and never charges) is not expressible")
        gain = r * w_in * cuba_gain(ts, tm, dt)
        a_s, a_m = _decay(ts, dt), _decay(tm, dt)
    elif kind in ("LIF", "LI"):
        tm = _param(node, "tau", n, name, lo=0, allow_inf=True)
        if np.any(tm == 0):
            raise UnsupportedError(f"node {name!r} ({kind}): tau = 0 is not expressible")
        r = _param(node, "r", n, name)
        leak = _param(node, "v_leak", n, name)
        ts = np.zeros(n)
        a_s, a_m = np.zeros(n), _decay(tm, dt)
        with np.errstate(invalid="ignore"):
            gain = np.where(np.isinf(tm), 0.0, r * a_m * dt / np.where(np.isinf(tm), 1, tm))
    elif kind in ("IF", "I"):
        r = _param(node, "r", n, name)
        ts, tm = np.zeros(n), np.full(n, np.inf)
        a_s, a_m = np.zeros(n), np.ones(n)
        leak = np.zeros(n)
        gain = r * dt
    else:
        raise AssertionError(kind)
    return _Pop(name, kind, n, a_s, a_m, ts, tm, gain, leak, thr, reset)


class _Graph:
    """Populations, inputs, outputs and the effective linear maps between them."""

    def __init__(self, graph):
        self.g = graph
        self.nodes = dict(graph.nodes)
        self.preds = {k: [] for k in self.nodes}
        for a, b in graph.edges:
            if a not in self.nodes or b not in self.nodes:
                missing = a if a not in self.nodes else b
                raise ShapeError(f"edge ({a!r}, {b!r}) names the node {missing!r}, "
                                 "which the graph does not have")
            self.preds[b].append(a)
        self.succs = {k: [] for k in self.nodes}
        for a, b in graph.edges:
            self.succs[a].append(b)
        for name, node in self.nodes.items():
            kind = type(node).__name__
            if kind in ("Input", "Output") or kind in _NEURON_TYPES or kind in _LINEAR_TYPES \
                    or kind == "Identity":
                continue
            reason = _REFUSED.get(kind) or f"NIR node type {kind} is not supported by the core"
            raise UnsupportedError(f"node {name!r} ({kind}): {reason}")
        self._memo = {}

    def kind(self, name):
        return type(self.nodes[name]).__name__

    def is_source(self, name):
        return self.kind(name) == "Input" or self.kind(name) in _NEURON_TYPES

    def out_size(self, name):
        k = self.kind(name)
        if k in ("Input",) or k in _NEURON_TYPES:
            return _size(self.nodes[name])
        return self._linear(name)[0]

    def _linear(self, name, stack=()):
        """Size and incoming map of a stateless node: ``(size, {src: (W, b)})``."""
        if name in self._memo:
            return self._memo[name]
        if name in stack:
            raise UnsupportedError(f"node {name!r}: a loop through stateless nodes only "
                                   f"({' -> '.join(stack + (name,))}) is an algebraic loop")
        node = self.nodes[name]
        kind = self.kind(name)
        acc, in_size = {}, None
        for p in self.preds[name]:
            if self.is_source(p):
                s = self.out_size(p)
                contrib = {p: (np.eye(s), np.zeros(s))}
            elif self.kind(p) == "Output":
                raise UnsupportedError(f"node {name!r}: an Output node ({p!r}) cannot feed other nodes")
            else:
                s, contrib = self._linear(p, stack + (name,))
            if in_size is not None and s != in_size:
                raise ShapeError(f"node {name!r}: its inputs have sizes {in_size} and {s}")
            in_size = s
            for src, (w, b) in contrib.items():
                if src in acc:
                    acc[src] = (acc[src][0] + w, acc[src][1] + b)
                else:
                    acc[src] = (w, b)
        if in_size is None:       # a dangling op: no effect on anything
            in_size = 0
        if kind in ("Linear", "Affine"):
            wt = np.asarray(node.weight, float)
            if wt.ndim != 2:
                raise UnsupportedError(f"node {name!r} ({kind}): weights of {wt.ndim} dimensions "
                                       f"(shape {wt.shape}) are not expressible; only 2-D matrices")
            if np.any(~np.isfinite(wt)):
                raise RangeError(f"node {name!r}: weight holds non-finite values")
            if self.preds[name] and wt.shape[1] != in_size:
                raise ShapeError(f"node {name!r}: weight has {wt.shape[1]} columns but its "
                                 f"input carries {in_size} values")
            out = (wt.shape[0], {s: (wt @ w, wt @ b) for s, (w, b) in acc.items()})
            if kind == "Affine":
                bias = np.asarray(node.bias, float).reshape(-1)
                bias = np.broadcast_to(bias if bias.size > 1 else bias.reshape(()),
                                       (wt.shape[0],)).astype(float)
                w0, b0 = out[1].get("__bias__", (np.zeros((wt.shape[0], 0)), np.zeros(wt.shape[0])))
                out[1]["__bias__"] = (w0, b0 + bias)
        elif kind == "Scale":
            sc = np.asarray(node.scale, float).reshape(-1)
            try:
                sc = np.broadcast_to(sc, (in_size,))
            except ValueError:
                raise ShapeError(f"node {name!r} (Scale): {sc.size} factors for {in_size} values") from None
            out = (in_size, {s: (sc[:, None] * w, sc * b) for s, (w, b) in acc.items()})
        else:                     # Flatten / Identity: elements stay in C order
            out = (in_size, acc)
        self._memo[name] = out
        return out

    def incoming(self, pop):
        """``{source: (W (size_pop, size_src), bias (size_pop,))}`` into a population."""
        n = _size(self.nodes[pop])
        acc = {}
        for p in self.preds[pop]:
            if self.is_source(p):
                s = self.out_size(p)
                if s != n:
                    raise ShapeError(f"edge ({p!r}, {pop!r}): {s} values into a population "
                                     f"of {n} (put a Linear node between them)")
                contrib = {p: (np.eye(n), np.zeros(n))}
            elif self.kind(p) == "Output":
                raise UnsupportedError(f"node {pop!r}: an Output node ({p!r}) cannot feed other nodes")
            else:
                s, contrib = self._linear(p)
                if s != n:
                    raise ShapeError(f"edge ({p!r}, {pop!r}): {s} values into a population of {n}")
            for src, (w, b) in contrib.items():
                if src in acc:
                    acc[src] = (acc[src][0] + w, acc[src][1] + b)
                else:
                    acc[src] = (w, b)
        return acc


# --- import ---------------------------------------------------------------------------------------

def _layout_from_meta(meta, what, names, sizes, total):
    """Indices per node from the metadata layout, if it fits; else contiguous."""
    lay = (meta or {}).get("layout", {}).get(what, {}) if isinstance(meta, dict) else {}
    out, ok = {}, bool(lay)
    if ok:
        for name, size in zip(names, sizes):
            idx = np.asarray(lay.get(name, []), np.int64).reshape(-1)
            if idx.size != size:
                ok = False
                break
            out[name] = idx
        if ok:
            allidx = np.concatenate(list(out.values())) if out else np.zeros(0, np.int64)
            ok = np.array_equal(np.sort(allidx), np.arange(total))
    if not ok:
        out, start = {}, 0
        for name, size in zip(names, sizes):
            out[name] = np.arange(start, start + size)
            start += size
    return out


def _pick_scales(w_eff_max, v_max, weight_range, v_scale, w_shift, nodename):
    lo, hi = weight_range
    if v_scale is None:
        v_scale = 1 << 14
        while v_scale > 1:
            fits_v = v_max * v_scale <= _V_TARGET
            fits_w = w_eff_max * v_scale / (1 << (W_SHIFT_MAX if w_shift is None else w_shift)) <= hi
            if fits_v and fits_w:
                break
            v_scale >>= 1
    if w_shift is None:
        for s in range(W_SHIFT_MAX + 1):
            if np.rint(w_eff_max * v_scale / (1 << s)) <= hi:
                w_shift = s
                break
        else:
            raise UnsupportedError(
                f"node {nodename!r}: a weight moves the membrane by {w_eff_max:g} per spike; "
                f"with v_scale={v_scale} that needs more than weight_bits={hi.bit_length() + 1} "
                f"with w_shift <= {W_SHIFT_MAX}")
    return int(v_scale), int(w_shift)


def from_nir(graph_or_path, dt=None, *, v_scale=None, w_shift=None, weight_bits=None,
             max_neurons=4096, max_inputs=4096, config=None, stacked=True):
    """Build a :class:`~neurocorex.network.Network` from a NIR graph.

    Parameters
    ----------
    graph_or_path : nir.NIRGraph, str or path
        The graph, or a ``.nir`` file written by :func:`nir.write`.
    dt : float or None
        Time step in the graph's time unit.  ``None``: the ``dt`` stored by
        :func:`to_nir` in the graph's metadata, else 1.0.
    v_scale : int or None
        Integer V units per voltage unit.  ``None``: from the metadata, else the
        largest power of two that keeps thresholds, resets and leaks within
        a quarter of the 16-bit range and the weights expressible.
    w_shift : int or None
        Weight shift.  ``None``: from the metadata, else the smallest shift at
        which every weight fits (finest weight resolution).
    weight_bits : int or None
        Weight width of the target core (default: metadata, else 7).
    max_neurons, max_inputs : int
        The build's ``N`` and ``M``; a graph needing more is refused.
    config : CoreConfig or None
        The target core (e.g. ``device.config``): sets ``max_neurons``,
        ``max_inputs`` and ``weight_bits`` at once.
    stacked : bool
        Allow projections from one population to another (packed as blocks of
        the recurrent matrix, see ``docs/nir.md``).  With ``False`` such graphs
        are refused.

    Returns
    -------
    Network
        The network, with ``net.nir_report`` (a :class:`NIRReport`) holding
        the layout and the quantisation errors.

    Raises
    ------
    UnsupportedError
        A node or structure the core cannot express (the message names it).
    """
    from .network import Network, STDPSettings

    if config is not None:
        max_neurons, max_inputs = config.neurons, config.inputs
        weight_bits = config.weight_bits
    graph = _load_graph(graph_or_path)
    meta = graph.metadata.get(META_KEY) if isinstance(graph.metadata, dict) else None
    if meta is not None and not isinstance(meta, dict):
        meta = None
    if dt is None:
        dt = float(meta["dt"]) if meta and "dt" in meta else 1.0
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise RangeError(f"dt must be a positive number in the graph's time unit, got {dt!r}")
    dt = float(dt)
    if weight_bits is None:
        weight_bits = int(meta["weight_bits"]) if meta and "weight_bits" in meta else 7
    if meta:
        if v_scale is None and "v_scale" in meta:
            v_scale = int(meta["v_scale"])
        if w_shift is None and "w_shift" in meta:
            w_shift = int(meta["w_shift"])

    g = _Graph(graph)
    report = NIRReport(dt=dt)
    pop_names = [k for k in g.nodes if g.kind(k) in _NEURON_TYPES]
    in_names = [k for k in g.nodes if g.kind(k) == "Input"]
    out_names = [k for k in g.nodes if g.kind(k) == "Output"]
    if not pop_names:
        raise UnsupportedError("the graph has no neuron node (CubaLIF, LIF, IF, LI, CubaLI, I); "
                               "the core computes with neurons only")

    pops = {k: _population(k, g.nodes[k], dt) for k in pop_names}
    n_total = sum(p.size for p in pops.values())
    m_total = sum(_size(g.nodes[k]) for k in in_names)
    if n_total > max_neurons:
        sizes = ", ".join(f"{k!r}: {p.size}" for k, p in pops.items())
        big = max(pops.values(), key=lambda p: p.size)
        raise UnsupportedError(f"node {big.name!r}: the graph needs {n_total} neurons ({sizes}); "
                               f"the core has {max_neurons}")
    if m_total > max_inputs:
        raise UnsupportedError(f"node {in_names[-1]!r}: the graph needs {m_total} input axons; "
                               f"the core has {max_inputs}")

    # outputs: must observe a population's spikes (or a non-spiking population's V)
    for o in out_names:
        for p in g.preds[o]:
            if g.kind(p) in _NEURON_TYPES:
                report.outputs[o] = p
            elif g.kind(p) == "Input":
                raise UnsupportedError(f"node {o!r} (Output): it observes the Input {p!r} directly; "
                                       "the core outputs the spikes of neurons only")
            else:
                raise UnsupportedError(f"node {o!r} (Output): it observes the stateless node {p!r} "
                                       f"({g.kind(p)}); the core outputs the spikes of neurons only")

    # layout
    pidx = _layout_from_meta(meta, "neurons", pop_names, [pops[k].size for k in pop_names], n_total)
    iidx = _layout_from_meta(meta, "inputs", in_names, [_size(g.nodes[k]) for k in in_names], m_total)
    for k in pop_names:
        pops[k].idx = pidx[k]
        report.populations[k] = (pops[k].kind, pidx[k])
    report.inputs = dict(iidx)

    # effective weights (membrane effect per spike, voltage units)
    w_rec = np.zeros((n_total, n_total))
    w_in = np.zeros((m_total, n_total))
    blocks = []                                    # (src, tgt, W_nir (tgt,src), W_eff)
    for k in pop_names:
        pop = pops[k]
        for src, (w, b) in g.incoming(k).items():
            if src == "__bias__":
                if not np.any(b):
                    continue
                if pop.kind in ("LIF", "LI"):
                    # tau dv/dt = (v_leak - v) + r (W S + b): a constant bias shifts the leak
                    r = _param(g.nodes[k], "r", pop.size, k)
                    pop.v_leak = pop.v_leak + r * b
                    report.notes.append(f"the bias into {k!r} ({pop.kind}) is folded into v_leak (exact)")
                    continue
                raise UnsupportedError(
                    f"node {k!r} ({pop.kind}): a constant bias (Affine) into a {pop.kind} "
                    "population is not expressible (the core has no constant input; only "
                    "LIF/LI fold it into v_leak)")
            eff = w * pop.gain[:, None]             # (tgt, src)
            if g.kind(src) == "Input":
                w_in[np.ix_(iidx[src], pop.idx)] += eff.T
            else:
                if pops[src].kind not in _SPIKING:
                    raise UnsupportedError(
                        f"node {src!r} ({pops[src].kind}) feeds {k!r}: a non-spiking population's "
                        "output is its membrane potential, which the core does not transmit")
                if src != k and not stacked:
                    raise UnsupportedError(
                        f"node {k!r}: it is fed by the population {src!r}; stacked populations "
                        "are refused with stacked=False")
                w_rec[np.ix_(pops[src].idx, pop.idx)] += eff.T
                if src != k:
                    note = (f"{src!r} -> {k!r} is a block of w_rec: a spike detected at the end "
                            "of step t reaches it in step t+1 (see docs/nir.md)")
                    if note not in report.notes:
                        report.notes.append(note)
            blocks.append((src, k, w, eff))
    for k in pop_names:
        if pops[k].kind not in _SPIKING:
            report.notes.append(f"{k!r} ({pops[k].kind}) does not spike: its threshold is the "
                                "largest V; read its membrane potential with read_state()")

    # scales
    volts = [np.abs(p.v_leak) for p in pops.values()] + [np.abs(p.v_reset) for p in pops.values()]
    volts += [np.abs(p.v_thr) for p in pops.values() if p.v_thr is not None]
    v_max = float(max((v.max() for v in volts if v.size), default=0.0))
    w_eff_max = float(max(np.abs(w_rec).max(initial=0.0), np.abs(w_in).max(initial=0.0)))
    lo, hi = signed_range(weight_bits)
    big_node = pop_names[0]
    if blocks:
        big_node = max(blocks, key=lambda b: np.abs(b[3]).max(initial=0.0))[1]
    v_scale, w_shift = _pick_scales(w_eff_max, v_max, (lo, hi), v_scale, w_shift, big_node)
    report.v_scale, report.w_shift = v_scale, w_shift

    net = Network(n_total, m_total, weight_bits=weight_bits, dt=dt, v_scale=v_scale)
    net.w_shift = w_shift
    unit = (1 << w_shift) / v_scale
    q_rec, q_in = np.rint(w_rec / unit), np.rint(w_in / unit)
    for name, q, w in (("w_rec", q_rec, w_rec), ("w_in", q_in, w_in)):
        if q.size and (q.min() < lo or q.max() > hi):
            bad = np.unravel_index(np.argmax(np.maximum(q - hi, lo - q)), q.shape)
            raise UnsupportedError(
                f"node {big_node!r}: {name}[{bad[0]}, {bad[1]}] moves the membrane by {w[bad]:g} "
                f"per spike, {int(q[bad])} weight units; the core allows [{lo}, {hi}] at "
                f"w_shift={w_shift}, v_scale={v_scale}")
    net.w_rec, net.w_in = q_rec.astype(np.int64), q_in.astype(np.int64)
    report.weight_error = float(max(np.abs(q_rec * unit - w_rec).max(initial=0.0),
                                    np.abs(q_in * unit - w_in).max(initial=0.0)))
    report.weight_error_rel = report.weight_error / w_eff_max if w_eff_max else 0.0
    for src, tgt, w, eff in blocks:
        sidx = iidx[src] if g.kind(src) == "Input" else pops[src].idx
        q = (q_in if g.kind(src) == "Input" else q_rec)[np.ix_(sidx, pops[tgt].idx)].T * unit
        with np.errstate(divide="ignore", invalid="ignore"):
            back = np.where(pops[tgt].gain[:, None] != 0, q / pops[tgt].gain[:, None], 0.0)
        # several paths into one block are summed: report the error of the sum
        report.projection_errors[(src, tgt)] = float(np.abs(back - w).max(initial=0.0)) \
            if sum(1 for b in blocks if b[0] == src and b[1] == tgt) == 1 else \
            float(np.abs(q - eff).max(initial=0.0))

    # neuron parameters
    params = {k: np.zeros(n_total, np.int64) for k in ("threshold", "v_reset", "v_rest",
                                                        "alpha_v", "alpha_i", "t_ref")}
    a_err, t_err, v_err = 0.0, 0.0, 0.0
    for k, p in pops.items():
        for key, a, tau in (("alpha_v", p.a_m, p.tau_m), ("alpha_i", p.a_s, p.tau_s)):
            q = np.rint(a * DECAY_ONE).astype(np.int64)
            params[key][p.idx] = q
            a_err = max(a_err, float(np.abs(q / DECAY_ONE - a).max(initial=0.0)))
            qa = q / DECAY_ONE
            ok = (qa > 0) & (qa < 1) & np.isfinite(tau) & (tau > 0)
            if np.any(ok):
                with np.errstate(divide="ignore"):
                    tq = -dt / np.log(qa[ok])
                t_err = max(t_err, float(np.abs(tq / tau[ok] - 1).max()))
        for key, val in (("v_rest", p.v_leak), ("v_reset", p.v_reset)):
            q = np.rint(val * v_scale)
            if q.size and (q.min() < _V_LO or q.max() > _V_HI):
                raise UnsupportedError(f"node {k!r}: {'v_leak' if key == 'v_rest' else key} = "
                                       f"{val[np.argmax(np.abs(val))]:g} does not fit in 16 bits at "
                                       f"v_scale={v_scale} (range ±{_V_HI / v_scale:g})")
            params[key][p.idx] = q.astype(np.int64)
            v_err = max(v_err, float(np.abs(q / v_scale - val).max(initial=0.0)))
        if p.v_thr is not None:
            # NIR fires on v > thr; on integer V that is V >= floor(thr*v_scale) + 1
            q = np.floor(p.v_thr * v_scale + 1e-9) + 1
            if q.size and (q.min() < _V_LO or q.max() > _V_HI):
                raise UnsupportedError(f"node {k!r}: v_threshold does not fit in 16 bits at "
                                       f"v_scale={v_scale} (range ±{_V_HI / v_scale:g})")
            params["threshold"][p.idx] = q.astype(np.int64)
            v_err = max(v_err, float(np.abs((q - 0.5) / v_scale - p.v_thr).max(initial=0.0)))
        else:
            params["threshold"][p.idx] = _V_HI
    report.alpha_error, report.tau_error_rel, report.voltage_error = a_err, t_err, v_err
    for k, p in pops.items():
        for name, tau in (("tau_mem" if p.kind.startswith("Cuba") else "tau", p.tau_m),
                          ("tau_syn", p.tau_s)):
            if name == "tau_syn" and not p.kind.startswith("Cuba"):
                continue
            fin = np.isfinite(tau) & (tau > 0)
            if np.any(fin & (np.rint(_decay(tau, dt) * DECAY_ONE) == 0)):
                report.notes.append(f"{k!r}: {name} = {tau[fin].min():g} is far below dt = {dt:g}: "
                                    "it decays fully in one step (is dt in the graph's time unit?)")
            if np.any(fin & (np.rint(_decay(tau, dt) * DECAY_ONE) == DECAY_ONE)):
                report.notes.append(f"{k!r}: {name} = {tau[fin].max():g} is so far above dt = {dt:g} "
                                    "that the decay rounds to none")
    # a burst of simultaneous spikes that the 16-bit current cannot hold
    drive = np.maximum(w_rec, 0).sum(axis=0) + np.maximum(w_in, 0).sum(axis=0)
    i_max = _V_HI / v_scale
    if drive.size and drive.max() > i_max:
        report.notes.append(f"the current saturates at {i_max:g} (voltage units) if more than "
                            f"{i_max / drive.max():.0%} of a neuron's excitatory inputs spike at "
                            "once; lower v_scale for more headroom")

    # what NIR cannot carry: from the metadata of a NeuroCoreX export
    if meta:
        params["t_ref"] = _meta_array(meta, "t_ref", (n_total,), params["t_ref"])
        # integers the NIR node cannot carry: the leak of IF/I, the reset of
        # non-spiking nodes (unused by their dynamics, kept for a faithful copy)
        for key, kinds in (("v_rest", ("IF", "I")), ("v_reset", ("LI", "CubaLI", "I"))):
            if key in meta:
                val = _meta_array(meta, key, (n_total,), params[key])
                for p in pops.values():
                    if p.kind in kinds:
                        params[key][p.idx] = val[p.idx]
    for key, val in params.items():
        setattr(net, key, val)
    if meta:
        net.plastic_rec = _meta_array(meta, "plastic_rec", (n_total, n_total), net.plastic_rec)
        net.plastic_in = _meta_array(meta, "plastic_in", (m_total, n_total), net.plastic_in)
        st = meta.get("stdp")
        if isinstance(st, dict):
            kw = {}
            for f in fields(STDPSettings):
                if f.name in st:
                    v = st[f.name]
                    kw[f.name] = bool(v) if f.name == "enabled" else int(v)
            stdp = STDPSettings(w_min=lo, w_max=hi)
            for key, v in kw.items():
                setattr(stdp, key, v)
            net.stdp = stdp
            net.stdp.as_ints(net.config)            # validate now, naming the field
    net.validate()
    net.nir_report = report
    return net


def _meta_array(meta, key, shape, default):
    if key not in meta:
        return default
    arr = np.asarray(meta[key])
    if arr.size == 0 and 0 in shape:
        return np.zeros(shape, arr.dtype if arr.dtype != object else bool)
    if arr.shape != shape:
        raise ShapeError(f"graph metadata {META_KEY}.{key} has shape {arr.shape}; the graph's "
                         f"layout needs {shape}")
    return arr


# --- export -------------------------------------------------------------------------------------

def _kind_of(alpha_v, alpha_i, spiking, where):
    """NIR node type of one group of neurons, or UnsupportedError."""
    if np.any(alpha_i == DECAY_ONE):
        raise UnsupportedError(f"neurons {where}: alpha_i = {DECAY_ONE} (a current that never decays) "
                               "has no NIR equivalent")
    cur = np.any(alpha_i > 0)
    if cur and not np.all(alpha_i > 0):
        return None
    noleak = alpha_v == DECAY_ONE
    if np.any(noleak) and not np.all(noleak):
        return None
    if np.all(noleak):
        if cur:
            raise UnsupportedError(f"neurons {where}: a membrane without leak (alpha_v = {DECAY_ONE}) "
                                   "fed by a decaying current has no NIR equivalent")
        return "IF" if spiking else "I"
    if not cur and np.any(alpha_v == 0):
        raise UnsupportedError(f"neurons {where}: alpha_v = 0 with alpha_i = 0 (no state at all) "
                               "has no NIR equivalent")
    if cur:
        return "CubaLIF" if spiking else "CubaLI"
    return "LIF" if spiking else "LI"


def _group_kinds(img):
    p = img["params"]
    spiking = p["threshold"] < _V_HI
    kinds = []
    for j in range(len(spiking)):
        kinds.append(_kind_of(p["alpha_v"][j:j + 1], p["alpha_i"][j:j + 1], bool(spiking[j]),
                              f"[{j}]"))
    return np.array(kinds, object), spiking


def to_nir(net):
    """Write a :class:`~neurocorex.network.Network` as a :class:`nir.NIRGraph`.

    Neurons become ``CubaLIF`` (or ``LIF`` without a current decay, ``IF``
    without any leak; ``CubaLI``/``LI``/``I`` for neurons whose threshold is
    the largest V).  ``w_in`` becomes ``Linear`` nodes from an ``Input``;
    ``w_rec`` becomes ``Linear`` nodes between populations (a self loop for a
    recurrent population).  The parameters are chosen (``r``, ``w_in = 1``)
    so that a ``Linear`` weight is the float weight of
    :meth:`Network.set_weights`: the jump of the core's current per spike in
    voltage units.  STDP settings, plasticity masks, refractory periods,
    ``v_scale``, ``w_shift``, ``dt`` and the neuron/axon layout go to
    ``graph.metadata["neurocorex"]`` so that :func:`from_nir` restores the
    network exactly.

    A network imported with :func:`from_nir` is written with its original
    populations and node names (when every population still has one kind).
    """
    nir = _import_nir()
    img = net.validate()
    p = img["params"]
    n, m = net.neurons, net.inputs
    dt, vs, shift = net.dt, net.v_scale, img["globals"]["w_shift"]
    kinds, spiking = _group_kinds(img)

    # groups: the imported layout if it is still consistent, else by kind
    groups, inputs, outputs = None, {"input": np.arange(m)} if m else {}, None
    rep = getattr(net, "nir_report", None)
    if isinstance(rep, NIRReport) and rep.populations:
        idxs = [np.asarray(i) for _, i in rep.populations.values()]
        cover = np.sort(np.concatenate(idxs)) if idxs else np.zeros(0)
        if np.array_equal(cover, np.arange(n)) and all(
                len({kinds[j] for j in i}) == 1 and kinds[i[0]] is not None for i in idxs if i.size):
            groups = {k: np.asarray(i) for k, (_, i) in rep.populations.items()}
            incover = np.sort(np.concatenate([np.asarray(i) for i in rep.inputs.values()])) \
                if rep.inputs else np.zeros(0)
            if np.array_equal(incover, np.arange(m)):
                inputs = {k: np.asarray(i) for k, i in rep.inputs.items()}
            outputs = dict(rep.outputs)
    if groups is None:
        if any(k is None for k in kinds):
            raise AssertionError("per-neuron kind is always defined")
        order = list(dict.fromkeys(kinds))
        if len(order) == 1:
            groups = {"neurons": np.arange(n)}
        else:
            groups = {str(k).lower(): np.flatnonzero(kinds == k) for k in order}

    nodes, edges = {}, []
    for name, idx in inputs.items():
        nodes[name] = nir.Input(input_type={"input": np.array([idx.size])})
    unit = (1 << shift) / vs
    for name, idx in groups.items():
        kind = kinds[idx[0]]
        av = p["alpha_v"][idx] / DECAY_ONE
        ai = p["alpha_i"][idx] / DECAY_ONE
        with np.errstate(divide="ignore"):
            tau_m = np.where(av >= 1, np.inf, np.where(av <= 0, 0.0, -dt / np.log(np.where(av > 0, av, 1))))
            tau_s = np.where(ai <= 0, 0.0, -dt / np.log(np.where((ai > 0) & (ai < 1), ai, 0.5)))
        thr = (p["threshold"][idx] - 0.5) / vs
        reset = p["v_reset"][idx] / vs
        leak = p["v_rest"][idx] / vs
        if kind in ("CubaLIF", "CubaLI"):
            r = 1.0 / cuba_gain(tau_s, tau_m, dt)
            common = dict(tau_syn=tau_s, tau_mem=tau_m, r=r, v_leak=leak, w_in=np.ones(idx.size))
            node = nir.CubaLIF(v_threshold=thr, v_reset=reset, **common) if kind == "CubaLIF" \
                else nir.CubaLI(**common)
        elif kind in ("LIF", "LI"):
            r = tau_m / (av * dt)
            node = nir.LIF(tau=tau_m, r=r, v_leak=leak, v_threshold=thr, v_reset=reset) \
                if kind == "LIF" else nir.LI(tau=tau_m, r=r, v_leak=leak)
        else:
            r = np.full(idx.size, 1.0 / dt)
            node = nir.IF(r=r, v_threshold=thr, v_reset=reset) if kind == "IF" else nir.I(r=r)
        nodes[name] = node
    # projections: one Linear per non-zero block (weights in voltage units per spike)
    for iname, iidx in inputs.items():
        for gname, gidx in groups.items():
            blk = img["w_in"][np.ix_(iidx, gidx)]
            if np.any(blk):
                lname = _unique(nodes, f"w_{iname}_{gname}")
                nodes[lname] = nir.Linear(weight=(blk.T * unit).astype(float))
                edges += [(iname, lname), (lname, gname)]
    for sname, sidx in groups.items():
        for gname, gidx in groups.items():
            blk = img["w_rec"][np.ix_(sidx, gidx)]
            if np.any(blk):
                if kinds[sidx[0]] not in _SPIKING:
                    raise UnsupportedError(f"neurons of {sname!r} never spike (threshold at the "
                                           "largest V) but have outgoing weights; NIR has no "
                                           "equivalent")
                lname = _unique(nodes, f"w_{sname}_{gname}")
                nodes[lname] = nir.Linear(weight=(blk.T * unit).astype(float))
                edges += [(sname, lname), (lname, gname)]
    if outputs is None:
        outputs = {("output" if len(groups) == 1 else f"output_{g}"): g for g in groups}
    for oname, gname in outputs.items():
        oname = oname if oname not in nodes else _unique(nodes, oname)
        nodes[oname] = nir.Output(output_type={"output": np.array([groups[gname].size])})
        edges.append((gname, oname))

    st = img["stdp"]
    meta = {
        "format_version": META_VERSION, "dt": float(dt), "v_scale": int(vs), "w_shift": int(shift),
        "weight_bits": int(net.config.weight_bits),
        "stdp": {k: int(v) for k, v in st.items()},
        "plastic_rec": img["plastic_rec"].astype(bool),
        "plastic_in": img["plastic_in"].astype(bool),
        "t_ref": p["t_ref"].astype(np.int64),
        "v_rest": p["v_rest"].astype(np.int64),
        "v_reset": p["v_reset"].astype(np.int64),
        "layout": {"neurons": {k: np.asarray(v, np.int64) for k, v in groups.items()},
                   "inputs": {k: np.asarray(v, np.int64) for k, v in inputs.items()}},
    }
    if np.any(p["t_ref"]):
        meta["note"] = ("refractory periods (t_ref, in steps of dt) are not part of NIR; "
                        "tools other than NeuroCoreX ignore them")
    # the library's type inference would add Input nodes in front of
    # populations without incoming edges; every node's type is set already
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={META_KEY: meta}, type_check=False)
    graph.check_types()
    return graph


def _unique(nodes, name):
    if name not in nodes:
        return name
    i = 1
    while f"{name}_{i}" in nodes:
        i += 1
    return f"{name}_{i}"
