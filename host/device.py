"""Devices that run a :class:`~neurocorex.network.Network`.

:func:`connect` opens one.  Every device offers the same API; a device
implements a handful of primitives (``_write_*``, ``_read_*``, ``_run``) and
this base class builds loading, running and readback from them, including the
padding of a smaller network into a larger core.
"""

from __future__ import annotations

import sys

import numpy as np

from .errors import DeviceError, ShapeError
from .formats import CoreConfig, NEURON_PARAMS, STDP_FIELDS, V_BITS, signed_range
from .network import Network

__all__ = ["Device", "ModelDevice", "Recording", "connect"]


class Recording:
    """What :meth:`Device.run` returns.

    Attributes
    ----------
    spikes : ndarray of bool, shape (steps, N)
        Output spikes of the network's neurons per step.
    counters : dict
        Device counters after the run (steps, spikes, synaptic events, ...).
    """

    def __init__(self, spikes, counters=None):
        self.spikes = spikes
        self.counters = dict(counters or {})

    @property
    def steps(self) -> int:
        return self.spikes.shape[0]

    def rates(self) -> np.ndarray:
        """Spikes per step of every neuron."""
        return self.spikes.mean(axis=0) if self.steps else np.zeros(self.spikes.shape[1])

    def __repr__(self):
        return (f"Recording(steps={self.steps}, neurons={self.spikes.shape[1]}, "
                f"spikes={int(self.spikes.sum())})")


class Device:
    """Base class of every device.  Use as a context manager."""

    #: Steps per call of the primitive ``_run`` when showing progress.
    chunk = 1000

    def __init__(self, config: CoreConfig):
        self.config = config
        self.net: Network | None = None

    # -- primitives a device implements --------------------------------------------------

    def _write_params(self, params: dict): raise NotImplementedError
    def _write_globals(self, values: dict): raise NotImplementedError
    def _write_stdp(self, values: dict): raise NotImplementedError
    def _write_weights(self, w_rec, plastic_rec, w_in, plastic_in): raise NotImplementedError
    def _read_weights(self): raise NotImplementedError
    def _read_state(self) -> dict: raise NotImplementedError
    def _reset_state(self): raise NotImplementedError
    def _run(self, inputs) -> np.ndarray: raise NotImplementedError
    def _counters(self) -> dict: raise NotImplementedError
    def _info(self) -> dict: return {}

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- user API -------------------------------------------------------------------------------

    def info(self) -> dict:
        """Capabilities: ``neurons``, ``inputs``, ``weight_bits``, ``version``, ..."""
        from . import __version__
        d = {"device": self.name, "neurons": self.config.neurons, "inputs": self.config.inputs,
             "weight_bits": self.config.weight_bits, "synapses": self.config.synapses,
             "version": __version__}
        d.update(self._info())
        return d

    name = "device"

    def load(self, net: Network) -> None:
        """Load a network: weights, masks, parameters, STDP; resets the state.

        A network smaller than the core is padded with silent neurons and axons.
        Nothing is sent if the network is invalid or does not fit.
        """
        if not isinstance(net, Network):
            raise ShapeError(f"load() takes a Network, got {type(net).__name__}")
        img = net.validate()
        c = self.config
        if net.neurons > c.neurons or net.inputs > c.inputs:
            raise DeviceError(f"network needs {net.neurons} neurons and {net.inputs} inputs; "
                              f"this {self.name} device has {c.neurons} and {c.inputs}")
        if net.config.weight_bits != c.weight_bits:
            raise DeviceError(f"network has weight_bits={net.config.weight_bits}; "
                              f"this device has {c.weight_bits}")
        n, m = net.neurons, net.inputs
        N, M = c.neurons, c.inputs
        w_rec = np.zeros((N, N), np.int64); w_rec[:n, :n] = img["w_rec"]
        p_rec = np.zeros((N, N), bool); p_rec[:n, :n] = img["plastic_rec"]
        w_in = np.zeros((M, N), np.int64); w_in[:m, :n] = img["w_in"]
        p_in = np.zeros((M, N), bool); p_in[:m, :n] = img["plastic_in"]
        params = {}
        for f in NEURON_PARAMS:
            full = np.zeros(N, np.int64)
            full[:n] = img["params"][f.name]
            if f.name == "threshold":
                full[n:] = signed_range(V_BITS)[1]      # padding neurons never fire
            params[f.name] = full
        self._write_params(params)
        self._write_globals(img["globals"])
        self._write_stdp(img["stdp"])
        self._write_weights(w_rec, p_rec, w_in, p_in)
        self._reset_state()
        self.net = net
        self._stdp = dict(img["stdp"])      # what the device holds; set_learning edits this copy

    def set_learning(self, enabled: bool) -> None:
        """Switch STDP on or off without touching anything else."""
        self._require_net()
        # the device's copy, not the user's Network (which stays as it was loaded)
        self._stdp["enabled"] = int(bool(enabled))
        self._write_stdp(dict(self._stdp))

    def reset(self) -> None:
        """Zero V, I, refractory counters, traces and pending spikes."""
        self._reset_state()

    def run(self, steps: int, inputs=None, progress: bool | None = None) -> Recording:
        """Run ``steps`` time steps.

        Parameters
        ----------
        steps : int
            Number of steps (>= 0).
        inputs : None or array of bool, shape (steps, M)
            Input spikes per step; also accepted as (steps, M_core).
        progress : bool or None
            Show a progress bar; by default when stderr is a terminal and the
            run is long.
        """
        self._require_net()
        from .formats import check_int
        steps = check_int("steps", steps, 0, 2**31 - 1)
        m, M = self.net.inputs, self.config.inputs
        full = np.zeros((steps, M), bool)
        if inputs is not None:
            try:
                arr = np.asarray(inputs)
            except ValueError:          # ragged nested lists
                raise ShapeError(f"inputs must have shape ({steps}, {m})") from None
            if arr.dtype != bool:
                if not np.issubdtype(arr.dtype, np.number) or np.any((arr != 0) & (arr != 1)):
                    raise ShapeError("inputs must be boolean (0/1) spikes")
                arr = arr != 0
            if arr.ndim != 2 or arr.shape[0] != steps or arr.shape[1] not in (m, M):
                raise ShapeError(f"inputs must have shape ({steps}, {m}), got {arr.shape}")
            full[:, :arr.shape[1]] = arr
        if progress is None:
            progress = sys.stderr.isatty() and steps >= 10 * self.chunk
        out = np.zeros((steps, self.config.neurons), bool)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=steps, unit="step", desc=f"run on {self.name}")
        for start in range(0, steps, self.chunk):
            stop = min(steps, start + self.chunk)
            out[start:stop] = self._run(full[start:stop])
            if bar:
                bar.update(stop - start)
        if bar:
            bar.close()
        return Recording(out[:, :self.net.neurons], self._counters())

    def read_weights(self):
        """Return ``(w_rec, w_in)`` as the core holds them now."""
        self._require_net()
        w_rec, w_in = self._read_weights()
        n, m = self.net.neurons, self.net.inputs
        return np.asarray(w_rec)[:n, :n].copy(), np.asarray(w_in)[:m, :n].copy()

    def read_state(self) -> dict:
        """Return V, I, refractory counters and traces (arrays per neuron/axon)."""
        self._require_net()
        s = self._read_state()
        n, m = self.net.neurons, self.net.inputs
        out = {k: np.asarray(v)[:n].copy() for k, v in s.items() if k != "input_trace"}
        out["input_trace"] = np.asarray(s["input_trace"])[:m].copy()
        return out

    def counters(self) -> dict:
        return self._counters()

    def _require_net(self):
        if self.net is None:
            raise DeviceError("no network loaded; call load(net) first")


class ModelDevice(Device):
    """The golden model, in process."""

    name = "model"
    chunk = 2000

    def __init__(self, neurons: int = 256, inputs: int = 256, weight_bits: int = 7):
        from .sim.model import CoreModel
        super().__init__(CoreConfig(neurons, inputs, weight_bits))
        self.model = CoreModel(self.config)

    def _write_params(self, params):
        for k, v in params.items():
            self.model.params[k] = np.asarray(v, np.int64).copy()

    def _write_globals(self, values):
        self.model.globals.update(values)

    def _write_stdp(self, values):
        self.model.stdp.update({f.name: int(values[f.name]) for f in STDP_FIELDS})

    def _write_weights(self, w_rec, plastic_rec, w_in, plastic_in):
        m = self.model
        m.w_rec[...] = w_rec
        m.plastic_rec[...] = plastic_rec
        m.w_in[...] = w_in
        m.plastic_in[...] = plastic_in

    def _read_weights(self):
        return self.model.w_rec.astype(np.int64), self.model.w_in.astype(np.int64)

    def _read_state(self):
        s = self.model.state()
        s.pop("spikes")
        return s

    def _reset_state(self):
        self.model.reset_state()

    def _run(self, inputs):
        return self.model.run(inputs.shape[0], inputs)

    def _counters(self):
        return self.model.counters.as_dict()

    def _info(self):
        return {"backend": "golden model"}


def connect(device: str = "model", **kwargs) -> Device:
    """Open a device.

    Parameters
    ----------
    device : str
        ``"model"`` (golden model in process), ``"rtl"`` (the simulated RTL),
        a serial port path or a pyserial URL such as ``socket://host:port``.
    **kwargs
        Device options, e.g. ``neurons=``/``inputs=`` for ``"model"``.
    """
    if not isinstance(device, str) or not device:
        raise DeviceError(f"device must be 'model', 'rtl', a serial port or a URL, got {device!r}")
    if device == "model":
        allowed = ("neurons", "inputs", "weight_bits")
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise DeviceError(f"unknown option {unknown[0]!r} for device 'model'; "
                              f"allowed: {', '.join(allowed)}")
        return ModelDevice(**kwargs)
    from .link import open_device       # imported here: the link module builds on this one
    return open_device(device, **kwargs)
