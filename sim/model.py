"""Bit-exact golden model of the NeuroCoreX core.

The model implements ``docs/spec.md`` with numpy integer arithmetic,
vectorised over neurons.  The gateware is checked against it bit for bit, so
every operation here is the specified one, in the specified order.

Two implementations of one step give the same bits: ``numpy`` (vectorised,
:meth:`CoreModel._step_numpy`) and ``numba`` (the loops of :func:`_step_loops`
compiled by Numba, several times faster; used when Numba is installed).  The
environment variable ``NEUROCOREX_MODEL_BACKEND`` (``numpy`` or ``numba``) or
the attribute :attr:`CoreModel.backend` chooses; the tests run both against a
scalar reference.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ShapeError
from ..formats import (CoreConfig, NEURON_PARAMS, STDP_FIELDS, GLOBAL_FIELDS,
                       V_BITS, I_BITS, TRACE_BITS, signed_range, unsigned_range,
                       decay, decay_trace, stdp_delta)

__all__ = ["CoreModel", "StepCounters"]

_V_LO, _V_HI = signed_range(V_BITS)
_I_LO, _I_HI = signed_range(I_BITS)
_T_HI = unsigned_range(TRACE_BITS)[1]


def _step_loops(w, plastic, pre, learn, a_minus, a_plus, w_min, w_max, w_shift,
                i_st, v_st, ref_st, alpha_i, alpha_v, v_rest, threshold, v_reset, t_ref,
                x_tr, y_tr, alpha_pre, alpha_post, jump_pre, jump_post, events, spike):
    """Phases 1-5 of docs/spec.md §3 as loops over scalars (compiled by Numba).

    ``w``/``plastic`` are the stacked (N+M, N) synapse arrays, ``pre`` the rows with a
    pre event, ``events`` the (N+M) bools ``[s(t-1), x(t)]``, ``x_tr`` the (N+M) pre
    traces (neurons, then axons).  Updates ``w``, the state arrays, the traces and
    ``spike`` in place; returns the number of spikes.
    """
    n = v_st.shape[0]
    rows = w.shape[0]
    # (1) integration with the weights of the step's start, then (2) depression
    acc = np.zeros(n, np.int64)
    for r in pre:
        for j in range(n):
            acc[j] += w[r, j]
    if learn and len(pre) > 0:
        dep = np.empty(n, np.int64)
        for j in range(n):
            dep[j] = (a_minus * y_tr[j] + 128) >> 8
        for r in pre:
            for j in range(n):
                if plastic[r, j]:
                    old = w[r, j]
                    if old > w_min:
                        nw = old - dep[j]
                        w[r, j] = nw if nw > w_min else w_min
    # (3) neurons; decay rounds toward zero: (x*a + (2^15-1 if x*a < 0)) >> 15
    scale = 1 << w_shift
    nspk = 0
    for j in range(n):
        prod = i_st[j] * alpha_i[j]
        if prod < 0:
            prod += 32767
        cur = (prod >> 15) + acc[j] * scale
        cur = -32768 if cur < -32768 else (32767 if cur > 32767 else cur)
        i_st[j] = cur
        if ref_st[j] > 0:
            ref_st[j] -= 1
            spike[j] = False
            continue
        u = v_st[j] - v_rest[j]
        u = -32768 if u < -32768 else (32767 if u > 32767 else u)
        prod = u * alpha_v[j]
        if prod < 0:
            prod += 32767
        vv = v_rest[j] + (prod >> 15) + cur
        vv = -32768 if vv < -32768 else (32767 if vv > 32767 else vv)
        if vv >= threshold[j]:
            spike[j] = True
            vv = v_reset[j]
            ref_st[j] = t_ref[j]
            nspk += 1
        else:
            spike[j] = False
        v_st[j] = vv
    # (4) traces
    for j in range(n):
        tr = (x_tr[j] * alpha_pre) >> 15
        if spike[j]:
            tr += jump_pre
        x_tr[j] = tr if tr < 255 else 255
        tr = (y_tr[j] * alpha_post) >> 15
        if spike[j]:
            tr += jump_post
        y_tr[j] = tr if tr < 255 else 255
    for k in range(n, rows):
        tr = (x_tr[k] * alpha_pre) >> 15
        if events[k]:
            tr += jump_pre
        x_tr[k] = tr if tr < 255 else 255
    # (5) potentiation with the new pre traces
    if learn and nspk > 0:
        posts = np.empty(nspk, np.int64)
        c = 0
        for j in range(n):
            if spike[j]:
                posts[c] = j
                c += 1
        for src in range(rows):
            q = (a_plus * x_tr[src] + 128) >> 8
            for c in range(nspk):
                j = posts[c]
                if plastic[src, j]:
                    old = w[src, j]
                    if old < w_max:
                        nw = old + q
                        w[src, j] = nw if nw < w_max else w_max
    return nspk


_KERNEL = None


def _numba_kernel():
    """``_step_loops`` compiled by Numba (cached on disk), or None without Numba."""
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba
        except ImportError:
            _KERNEL = False
        else:
            _KERNEL = numba.njit(cache=True, nogil=True)(_step_loops)
    return _KERNEL or None


def _clip(a, lo, hi):
    """sat: clamp the int64 array ``a`` to ``[lo, hi]`` in place (cheaper than np.clip)."""
    np.maximum(a, lo, out=a)
    np.minimum(a, hi, out=a)
    return a


class StepCounters:
    """Cumulative counters, the same the gateware keeps."""

    __slots__ = ("steps", "spikes", "input_spikes", "syn_events")

    def __init__(self):
        self.steps = self.spikes = self.input_spikes = self.syn_events = 0

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}


class CoreModel:
    """The core's state and one-step update, in integers.

    Parameters
    ----------
    config : CoreConfig
        Number of neurons ``N``, inputs ``M`` and the weight width.

    Attributes
    ----------
    w_rec, w_in : ndarray of int32, shapes (N, N) and (M, N)
        Weights, ``w_rec[i, j]`` from neuron ``i`` to neuron ``j``.  Both are
        views of one ``(N + M, N)`` array (sources: neurons, then axons), so that
        one gather serves a step's pre events and one its post events;
        assigning to them copies into that array.
    plastic_rec, plastic_in : ndarray of bool
        Per-synapse plasticity enables, views of one array likewise.
    params : dict of ndarray
        Per-neuron parameters, keys from ``formats.NEURON_PARAMS``.
    stdp : dict of int
        STDP settings, keys from ``formats.STDP_FIELDS``.
    w_shift : int
        Weight-to-current shift.
    """

    #: ``"numba"`` or ``"numpy"``; both give the same bits (see the module docstring).
    #: ``"numba"`` falls back to ``"numpy"`` at the first step if Numba is missing.
    backend: str

    def __init__(self, config: CoreConfig):
        self.config = config
        # Numba is imported at the first step, not here: opening a device stays quick
        self.backend = os.environ.get("NEUROCOREX_MODEL_BACKEND", "numba")
        n, m = config.neurons, config.inputs
        # row s is source s: neuron s for s < N, axon s - N after
        self._w = np.zeros((n + m, n), np.int32)
        self._plastic = np.zeros((n + m, n), bool)
        self._views = (self._w[:n], self._w[n:], self._plastic[:n], self._plastic[n:])
        self.params = {f.name: np.zeros(n, np.int64) for f in NEURON_PARAMS}
        self.params["threshold"][:] = _V_HI
        self.stdp = {f.name: 0 for f in STDP_FIELDS}
        self.stdp["w_min"], self.stdp["w_max"] = config.weight_range
        self.globals = {f.name: 0 for f in GLOBAL_FIELDS}
        self.counters = StepCounters()
        self.reset_state()

    # -- synapses: views of the stacked arrays ---------------------------------

    @property
    def w_rec(self) -> np.ndarray:
        return self._views[0]

    @w_rec.setter
    def w_rec(self, value):
        self._views[0][...] = value

    @property
    def w_in(self) -> np.ndarray:
        return self._views[1]

    @w_in.setter
    def w_in(self, value):
        self._views[1][...] = value

    @property
    def plastic_rec(self) -> np.ndarray:
        return self._views[2]

    @plastic_rec.setter
    def plastic_rec(self, value):
        self._views[2][...] = value

    @property
    def plastic_in(self) -> np.ndarray:
        return self._views[3]

    @plastic_in.setter
    def plastic_in(self, value):
        self._views[3][...] = value

    # -- state ---------------------------------------------------------------

    def reset_state(self):
        """Zero V, I, refractory counters, traces and the pending spikes."""
        n, m = self.config.neurons, self.config.inputs
        self.v = np.zeros(n, np.int64)
        self.i = np.zeros(n, np.int64)
        self.ref = np.zeros(n, np.int64)
        self.pre_trace = np.zeros(n, np.int64)
        self.post_trace = np.zeros(n, np.int64)
        self.input_trace = np.zeros(m, np.int64)
        self.spikes = np.zeros(n, bool)     # s(t-1), delivered next step
        self.counters = StepCounters()

    def state(self) -> dict:
        return {"v": self.v.copy(), "i": self.i.copy(), "ref": self.ref.copy(),
                "pre_trace": self.pre_trace.copy(), "post_trace": self.post_trace.copy(),
                "input_trace": self.input_trace.copy(), "spikes": self.spikes.copy()}

    @property
    def w_shift(self) -> int:
        return self.globals["w_shift"]

    # -- one time step ---------------------------------------------------------

    def step(self, inputs=None) -> np.ndarray:
        """Advance one time step; ``inputs`` is a bool array of length M.

        Returns the bool array of neurons that spiked in this step.
        """
        cfg = self.config
        x = np.zeros(cfg.inputs, bool) if inputs is None else np.asarray(inputs, bool)
        if x.shape != (cfg.inputs,):
            raise ShapeError(f"inputs must have shape ({cfg.inputs},), got {x.shape}")
        if self.backend == "numba":
            if _numba_kernel() is not None:
                return self._step_numba(x)
            self.backend = "numpy"
        return self._step_numpy(x)

    def _step_numba(self, x):
        n = self.config.neurons
        events = np.concatenate((self.spikes, x))
        pre = np.flatnonzero(events)
        n_rec = int(np.count_nonzero(self.spikes))
        p, st = self.params, self.stdp
        i_st = np.array(self.i, np.int64)
        v_st = np.array(self.v, np.int64)
        ref_st = np.array(self.ref, np.int64)
        x_tr = np.concatenate((self.pre_trace, self.input_trace)).astype(np.int64)
        y_tr = np.array(self.post_trace, np.int64)
        spike = np.zeros(n, bool)
        prm = [np.asarray(p[k], np.int64) for k in
               ("alpha_i", "alpha_v", "v_rest", "threshold", "v_reset", "t_ref")]
        nspk = _numba_kernel()(
            self._w, self._plastic, pre, bool(st["enabled"]), int(st["a_minus"]), int(st["a_plus"]),
            int(st["w_min"]), int(st["w_max"]), int(self.w_shift), i_st, v_st, ref_st, *prm,
            x_tr, y_tr, int(st["alpha_pre"]), int(st["alpha_post"]), int(st["jump_pre"]),
            int(st["jump_post"]), events, spike)
        self.i, self.v, self.ref = i_st, v_st, ref_st
        self.pre_trace, self.input_trace = x_tr[:n], x_tr[n:]
        self.post_trace = y_tr
        self.spikes = spike
        c = self.counters
        c.steps += 1
        c.spikes += int(nspk)
        c.input_spikes += len(pre) - n_rec
        c.syn_events += len(pre) * n
        return spike

    def _step_numpy(self, x):
        cfg = self.config
        n = cfg.neurons
        w, plastic = self._w, self._plastic
        # pre events: rows of the stacked arrays, neurons R then axons K (+N)
        pre = np.flatnonzero(np.concatenate((self.spikes, x)))
        n_rec = int(np.count_nonzero(self.spikes))
        p = self.params
        st = self.stdp
        learn = bool(st["enabled"])
        w_min, w_max = st["w_min"], st["w_max"]

        # (1) integration of the spikes of step t-1 and the inputs of step t,
        #     with the weights as they were at the start of the step, and
        # (2) depression on those pre events, with the post traces of step t-1.
        #     One gather serves both (it is a copy: the integration sees the
        #     weights from before the depression).
        if len(pre):
            old = w[pre]
            acc = old.sum(axis=0, dtype=np.int64)
            if learn:
                dep = stdp_delta(st["a_minus"], self.post_trace)       # per post neuron
                new = np.maximum(old - dep, w_min)
                # bounds only stop movement: a weight at or below w_min stays put
                w[pre] = np.where(plastic[pre] & (old > w_min), new, old)
            acc <<= self.w_shift
        else:
            acc = np.zeros(n, np.int64)

        # (3) neuron update.
        ref = self.ref
        refractory = ref > 0
        i_new = decay(self.i, p["alpha_i"]) + acc
        _clip(i_new, _I_LO, _I_HI)
        v_rest = p["v_rest"]
        u = _clip(self.v - v_rest, _V_LO, _V_HI)
        v_new = decay(u, p["alpha_v"]) + v_rest
        v_new += i_new
        _clip(v_new, _V_LO, _V_HI)
        spike = v_new >= p["threshold"]
        if refractory.any():
            spike &= ~refractory
            v_new = np.where(refractory, self.v, v_new)     # held while refractory
            ref_new = np.where(refractory, ref - 1, 0)
        else:
            ref_new = np.zeros_like(ref)
        posts = np.flatnonzero(spike)
        if len(posts):
            v_new = np.where(spike, p["v_reset"], v_new)
            ref_new = np.where(spike, p["t_ref"], ref_new)
        self.v, self.ref, self.i = v_new, ref_new, i_new

        # (4) traces, always updated (learning may be switched on later).
        #     Neurons' pre traces and the axons' traces share alpha_pre and jump_pre.
        x_all = decay_trace(np.concatenate((self.pre_trace, self.input_trace)), st["alpha_pre"])
        x_all += st["jump_pre"] * np.concatenate((spike, x))
        np.minimum(x_all, _T_HI, out=x_all)
        self.pre_trace, self.input_trace = x_all[:n], x_all[n:]
        self.post_trace = np.minimum(decay_trace(self.post_trace, st["alpha_post"])
                                     + st["jump_post"] * spike, _T_HI)

        # (5) potentiation on post events, with the pre traces of step t
        #     (all N neurons and M axons: the rows of the stacked arrays).
        if learn and len(posts):
            pot = stdp_delta(st["a_plus"], x_all)[:, None]            # per pre source
            old = w[:, posts]
            new = np.minimum(old + pot, w_max)
            # bounds only stop movement: a weight at or above w_max stays put
            w[:, posts] = np.where(plastic[:, posts] & (old < w_max), new, old)

        self.spikes = spike
        c = self.counters
        c.steps += 1
        c.spikes += len(posts)
        c.input_spikes += len(pre) - n_rec
        c.syn_events += len(pre) * n
        return spike

    def run(self, steps: int, inputs=None) -> np.ndarray:
        """Run ``steps`` steps; ``inputs`` is None or bool (steps, M)."""
        out = np.zeros((steps, self.config.neurons), bool)
        for t in range(steps):
            out[t] = self.step(None if inputs is None else inputs[t])
        return out
