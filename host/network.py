"""The user's description of a network, in the core's integer units.

A :class:`Network` holds weights, plasticity masks, per-neuron parameters and
STDP settings as integers, exactly as the core stores them.  Helpers convert
physical units (ms, threshold-relative floats) to these integers by the rules
of ``docs/spec.md`` §4 and report the quantisation error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

import numpy as np

from .errors import NeuroCoreXError, RangeError, ShapeError
from .formats import (CoreConfig, NEURON_PARAMS, STDP_FIELDS, GLOBAL_FIELDS, DECAY_ONE,
                      check_int)

__all__ = ["Network", "STDPSettings", "alpha_from_tau", "tau_from_alpha"]

#: Version of the ``.npz`` file layout written by :meth:`Network.save`.
FILE_VERSION = 1


def alpha_from_tau(tau_ms, dt_ms=1.0, name="time constant"):
    """1.15 decay factor for time constant ``tau_ms`` (``inf`` → no leak)."""
    try:
        tau = np.asarray(tau_ms, dtype=float)
    except (TypeError, ValueError):
        raise RangeError(f"{name} must be a number of ms in (0, inf], got {tau_ms!r}") from None
    if np.any(np.isnan(tau)) or np.any(tau <= 0):
        raise RangeError(f"{name} must lie in (0, inf] ms, got {tau_ms!r}")
    with np.errstate(divide="ignore"):
        a = np.rint(DECAY_ONE * np.exp(-dt_ms / tau)).astype(np.int64)
    return a if a.ndim else int(a)


def tau_from_alpha(alpha, dt_ms=1.0):
    """Time constant (ms) that a 1.15 decay factor represents."""
    a = np.asarray(alpha, dtype=float) / DECAY_ONE
    with np.errstate(divide="ignore"):
        tau = np.where(a >= 1.0, np.inf, np.where(a <= 0, 0.0, -dt_ms / np.log(np.maximum(a, 1e-300))))
    return tau if tau.ndim else float(tau)


def _check_array(name, value, shape, lo, hi, dtype=np.int64):
    """Validate and convert ``value`` (scalar or array) to an int array of ``shape``."""
    try:
        arr = np.asarray(value)
    except ValueError:      # ragged nested lists
        raise ShapeError(f"{name} must have shape {shape} (or be a scalar)") from None
    if arr.dtype == bool and dtype is not bool:
        arr = arr.astype(np.int64)
    if dtype is bool:
        if arr.dtype != bool:
            if not np.issubdtype(arr.dtype, np.number) or np.any((arr != 0) & (arr != 1)):
                raise ShapeError(f"{name} must be boolean (0/1)")
            arr = arr != 0
    else:
        if not np.issubdtype(arr.dtype, np.number):
            raise ShapeError(f"{name} must be numeric, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating):
            if np.any(np.isnan(arr)):
                raise RangeError(f"{name} contains NaN; allowed range is [{lo}, {hi}]")
            if np.any(arr != np.round(arr)):
                raise RangeError(f"{name} must hold integers in [{lo}, {hi}] "
                                 "(use the set_* helpers for physical units)")
        if arr.size and (arr.min() < lo or arr.max() > hi):
            bad = arr.min() if arr.min() < lo else arr.max()
            raise RangeError(f"{name} has value {bad} out of range; allowed range is [{lo}, {hi}]")
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise ShapeError(f"{name} must have shape {shape} (or be a scalar), got {np.shape(value)}") from None
    return np.array(arr, dtype=dtype)


@dataclass
class STDPSettings:
    """Pair-based STDP settings (integers; see ``docs/spec.md`` §3).

    Use :meth:`set_taus` to give the trace time constants in ms.
    """
    enabled: bool = False
    a_plus: int = 0
    a_minus: int = 0
    alpha_pre: int = 0
    alpha_post: int = 0
    jump_pre: int = 255
    jump_post: int = 255
    w_min: int = 0
    w_max: int = 63

    def set_taus(self, tau_pre, tau_post, dt=1.0):
        alpha_pre = alpha_from_tau(tau_pre, dt, "tau_pre")
        self.alpha_post = alpha_from_tau(tau_post, dt, "tau_post")
        self.alpha_pre = alpha_pre

    def as_ints(self, config: CoreConfig) -> dict:
        """Validated integer settings, or :class:`RangeError` naming the field."""
        out = {}
        for f in STDP_FIELDS:
            lo, hi = config.stdp_range(f.name)
            out[f.name] = check_int(f"stdp.{f.name}", int(getattr(self, f.name))
                                    if isinstance(getattr(self, f.name), (bool, np.bool_))
                                    else getattr(self, f.name), lo, hi)
        if out["w_min"] > out["w_max"]:
            raise RangeError(f"stdp.w_min={out['w_min']} must not exceed stdp.w_max={out['w_max']}")
        return out


def read_npz(path, what: str) -> dict:
    """All arrays of the ``.npz`` archive at ``path``, read without pickles.

    A missing, damaged or non-archive file (e.g. a bare ``.npy``) raises
    :class:`NeuroCoreXError` naming ``what`` and the path.
    """
    name = f"{what} {os.fspath(path)!r}"
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise NeuroCoreXError(f"{name} does not exist") from None
    except (OSError, ValueError, EOFError) as e:
        raise NeuroCoreXError(f"{name} is not a readable .npz: {e}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):      # a bare .npy array
        raise NeuroCoreXError(f"{name} is not an .npz archive")
    try:
        with z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:      # a damaged member
        raise NeuroCoreXError(f"{name} is not a readable .npz: {e}") from None


class Network:
    """A network of ``neurons`` LIF neurons and ``inputs`` input axons.

    Parameters
    ----------
    neurons : int
        Number of neurons ``N``.
    inputs : int
        Number of input axons ``M``.
    weight_bits : int
        Signed weight width of the target core (default 7: weights in [-64, 63]).
    dt : float
        Time step in ms, used by the physical-unit helpers.
    v_scale : int
        Integer voltage units per 1.0 of the user's voltage unit.

    Attributes
    ----------
    w_rec : ndarray (N, N)
        Recurrent weights, ``w_rec[i, j]`` from neuron ``i`` to neuron ``j``.
    w_in : ndarray (M, N)
        Input weights, ``w_in[k, j]`` from axon ``k`` to neuron ``j``.
    plastic_rec, plastic_in : ndarray of bool
        Which synapses STDP may change.
    threshold, v_reset, v_rest, alpha_v, alpha_i, t_ref : ndarray (N,)
        Per-neuron parameters in integer units; assign a scalar or an array.
    w_shift : int
        A weight ``w`` adds ``w * 2**w_shift`` to the synaptic current.
    stdp : STDPSettings
    """

    _PARAMS = tuple(f.name for f in NEURON_PARAMS)

    def __init__(self, neurons: int, inputs: int = 0, *, weight_bits: int = 7,
                 dt: float = 1.0, v_scale: int = 1024):
        self.config = CoreConfig(neurons=check_int("neurons", neurons, 1, 4096),
                                 inputs=check_int("inputs", inputs, 0, 4096),
                                 weight_bits=weight_bits)
        self.dt = dt                    # both checked by __setattr__
        self.v_scale = v_scale
        n, m = self.config.neurons, self.config.inputs
        self._w_rec = np.zeros((n, n), np.int64)
        self._w_in = np.zeros((m, n), np.int64)
        self._plastic_rec = np.zeros((n, n), bool)
        self._plastic_in = np.zeros((m, n), bool)
        self._params = {}
        self.w_shift = 0
        lo, hi = self.config.weight_range
        self.stdp = STDPSettings(w_min=lo, w_max=hi)
        # defaults: no leak in the current, tau_mem = 20 steps, threshold 1.0
        self.set_neurons(tau_mem=20.0 * self.dt, tau_syn=5.0 * self.dt,
                         threshold=1.0, v_reset=0.0, v_rest=0.0, refractory=0.0)

    # -- shape -------------------------------------------------------------------

    @property
    def neurons(self) -> int:
        return self.config.neurons

    @property
    def inputs(self) -> int:
        return self.config.inputs

    # -- arrays with validation on assignment ----------------------------------------

    def _wrange(self):
        return self.config.weight_range

    @property
    def w_rec(self):
        return self._w_rec

    @w_rec.setter
    def w_rec(self, value):
        self._w_rec = _check_array("w_rec", value, (self.neurons, self.neurons), *self._wrange())

    @property
    def w_in(self):
        return self._w_in

    @w_in.setter
    def w_in(self, value):
        self._w_in = _check_array("w_in", value, (self.inputs, self.neurons), *self._wrange())

    @property
    def plastic_rec(self):
        return self._plastic_rec

    @plastic_rec.setter
    def plastic_rec(self, value):
        self._plastic_rec = _check_array("plastic_rec", value, (self.neurons, self.neurons),
                                         0, 1, bool)

    @property
    def plastic_in(self):
        return self._plastic_in

    @plastic_in.setter
    def plastic_in(self, value):
        self._plastic_in = _check_array("plastic_in", value, (self.inputs, self.neurons),
                                        0, 1, bool)

    def __getattr__(self, name):
        if name in Network._PARAMS:
            return self.__dict__["_params"][name]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name in Network._PARAMS:
            lo, hi = self.config.param_range(name)
            self._params[name] = _check_array(name, value, (self.neurons,), lo, hi)
        elif name == "w_shift":
            lo, hi = self.config.param_range("w_shift")
            object.__setattr__(self, name, check_int("w_shift", value, lo, hi))
        elif name == "dt":          # checked here too, or save() would write an unloadable file
            if isinstance(value, (bool, np.bool_)) or not (isinstance(value, (int, float)) and value > 0
                                                           and math.isfinite(value)):
                raise RangeError(f"dt must be a positive number of ms, got {value!r}")
            object.__setattr__(self, name, float(value))
        elif name == "v_scale":
            object.__setattr__(self, name, check_int("v_scale", value, 1, 32767))
        else:
            object.__setattr__(self, name, value)

    # -- physical units ------------------------------------------------------------------

    def set_neurons(self, *, tau_mem=None, tau_syn=None, threshold=None, v_reset=None,
                    v_rest=None, refractory=None, neurons=None) -> float:
        """Set parameters from physical units; returns the largest relative error.

        Time constants and ``refractory`` are in ms (``dt`` per step), voltages
        are floats in units of ``1/v_scale``.  ``neurons`` selects a subset
        (index, slice or mask); by default all neurons.  Nothing changes if any
        value is invalid.
        """
        sel = slice(None) if neurons is None else neurons
        updates, errs = {}, [0.0]
        for key, tname, tau in (("alpha_v", "tau_mem", tau_mem), ("alpha_i", "tau_syn", tau_syn)):
            if tau is not None:
                a = alpha_from_tau(tau, self.dt, tname)
                updates[key] = a
                exact = DECAY_ONE * np.exp(-self.dt / np.asarray(tau, float))
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.abs(a - exact) / np.where(exact > 0, exact, 1)
                errs.append(float(np.max(rel)))
        for key, val in (("threshold", threshold), ("v_reset", v_reset), ("v_rest", v_rest)):
            if val is not None:
                lo, hi = self.config.param_range(key)
                f = np.asarray(val, float)
                if np.any(np.isnan(f)):
                    raise RangeError(f"{key} is NaN; allowed range is [{lo / self.v_scale:g}, "
                                     f"{hi / self.v_scale:g}] at v_scale={self.v_scale}")
                q = np.rint(f * self.v_scale)
                if q.size and (q.min() < lo or q.max() > hi):
                    raise RangeError(f"{key} must lie in [{lo / self.v_scale:g}, {hi / self.v_scale:g}] "
                                     f"at v_scale={self.v_scale}, got {val!r}")
                updates[key] = q.astype(np.int64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.abs(q / self.v_scale - f) / np.where(f != 0, np.abs(f), 1)
                errs.append(float(np.max(rel)) if rel.size else 0.0)
        if refractory is not None:
            r = np.asarray(refractory, float)
            if np.any(np.isnan(r)) or np.any(r < 0):
                raise RangeError(f"refractory must lie in [0, {255 * self.dt:g}] ms at dt={self.dt:g}, "
                                 f"got {refractory!r}")
            q = np.rint(r / self.dt)
            if q.size and q.max() > 255:
                raise RangeError(f"refractory must lie in [0, {255 * self.dt:g}] ms at dt={self.dt:g}")
            updates["t_ref"] = q.astype(np.int64)
        new = {k: np.array(self._params.get(k, np.zeros(self.neurons, np.int64))) for k in self._PARAMS}
        for k, v in updates.items():
            try:
                new[k][sel] = v
            except (IndexError, ValueError, TypeError):
                raise ShapeError(f"neurons={neurons!r} must select neurons in [0, {self.neurons - 1}] "
                                 f"matching the shape of the values given, got {np.shape(v)}") from None
        for k in self._PARAMS:          # validate everything, then commit
            lo, hi = self.config.param_range(k)
            new[k] = _check_array(k, new[k], (self.neurons,), lo, hi)
        self._params.update(new)
        return max(errs)

    def set_weights(self, rec=None, inputs=None) -> float:
        """Set weights from floats (current jump per spike, in voltage units).

        The integer weight is ``round(w * v_scale / 2**w_shift)``.  Returns the
        largest absolute quantisation error in the float units.  Raises
        :class:`RangeError` if a weight does not fit (raise ``w_shift``).
        """
        scale = self.v_scale / (1 << self.w_shift)
        lo, hi = self.config.weight_range
        out, err = {}, 0.0
        for name, val, shape in (("w_rec", rec, (self.neurons, self.neurons)),
                                 ("w_in", inputs, (self.inputs, self.neurons))):
            if val is None:
                continue
            f = np.asarray(val, float)
            if f.shape != shape:
                raise ShapeError(f"{name} must have shape {shape}, got {f.shape}")
            if np.any(np.isnan(f)):
                raise RangeError(f"{name} contains NaN; allowed range is [{lo / scale:g}, {hi / scale:g}] "
                                 f"at w_shift={self.w_shift}, v_scale={self.v_scale}")
            q = np.rint(f * scale)
            if q.size and (q.min() < lo or q.max() > hi):
                raise RangeError(f"{name} needs weights in [{lo / scale:g}, {hi / scale:g}] "
                                 f"at w_shift={self.w_shift}, v_scale={self.v_scale}; "
                                 f"got [{f.min():g}, {f.max():g}]")
            out[name] = q.astype(np.int64)
            if q.size:
                err = max(err, float(np.max(np.abs(q / scale - f))))
        for name, q in out.items():
            setattr(self, name, q)
        return err

    # -- validation ------------------------------------------------------------------------

    def validate(self) -> dict:
        """Check every field; return the integer image the core is loaded with."""
        image = {
            "w_rec": _check_array("w_rec", self._w_rec, (self.neurons, self.neurons), *self._wrange()),
            "w_in": _check_array("w_in", self._w_in, (self.inputs, self.neurons), *self._wrange()),
            "plastic_rec": _check_array("plastic_rec", self._plastic_rec,
                                        (self.neurons, self.neurons), 0, 1, bool),
            "plastic_in": _check_array("plastic_in", self._plastic_in,
                                       (self.inputs, self.neurons), 0, 1, bool),
            "params": {k: _check_array(k, v, (self.neurons,), *self.config.param_range(k))
                       for k, v in self._params.items()},
            "globals": {f.name: check_int(f.name, getattr(self, f.name), *f.range)
                        for f in GLOBAL_FIELDS},
            "stdp": self.stdp.as_ints(self.config),
        }
        return image

    # -- files ----------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the network to an ``.npz`` file (keys in ``docs/file-formats.md``)."""
        img = self.validate()
        data = {"format_version": FILE_VERSION, "neurons": self.neurons, "inputs": self.inputs,
                "weight_bits": self.config.weight_bits, "dt": self.dt, "v_scale": self.v_scale,
                "w_rec": img["w_rec"], "w_in": img["w_in"],
                "plastic_rec": img["plastic_rec"], "plastic_in": img["plastic_in"]}
        data.update(img["params"])
        data.update(img["globals"])
        data.update({f"stdp_{k}": v for k, v in img["stdp"].items()})
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **data)

    @classmethod
    def load(cls, path) -> "Network":
        """Read a network written by :meth:`save`."""
        d = read_npz(path, "network file")
        if "format_version" not in d:
            raise NeuroCoreXError(f"{os.fspath(path)!r} is not a NeuroCoreX network (no format_version)")
        try:
            ver = int(d["format_version"])
        except (TypeError, ValueError):
            ver = d["format_version"]
        if ver != FILE_VERSION:
            raise NeuroCoreXError(f"{os.fspath(path)!r} has format_version {ver}; "
                                  f"this library reads version {FILE_VERSION}")
        try:
            net = cls(int(d["neurons"]), int(d["inputs"]), weight_bits=int(d["weight_bits"]),
                      dt=float(d["dt"]), v_scale=int(d["v_scale"]))
            net.w_rec, net.w_in = d["w_rec"], d["w_in"]
            net.plastic_rec, net.plastic_in = d["plastic_rec"], d["plastic_in"]
            for k in cls._PARAMS:
                setattr(net, k, d[k])
            for f in GLOBAL_FIELDS:
                setattr(net, f.name, int(d[f.name]))
            for f in fields(STDPSettings):
                val = d[f"stdp_{f.name}"]
                setattr(net.stdp, f.name, bool(val) if f.name == "enabled" else int(val))
        except KeyError as e:
            raise NeuroCoreXError(f"{os.fspath(path)!r} lacks the key {e.args[0]!r}") from None
        except NeuroCoreXError as e:
            raise type(e)(f"{os.fspath(path)!r}: {e}") from None
        except (TypeError, ValueError) as e:      # e.g. an array where a scalar belongs
            raise NeuroCoreXError(f"{os.fspath(path)!r} holds a malformed field: {e}") from None
        net.validate()
        return net

    # -- NIR ------------------------------------------------------------------------------------

    @classmethod
    def from_nir(cls, graph_or_path, dt=None, **kwargs) -> "Network":
        """Build a network from a NIR graph or ``.nir`` file; see :func:`neurocorex.nirgraph.from_nir`."""
        from .nirgraph import from_nir
        return from_nir(graph_or_path, dt=dt, **kwargs)

    def to_nir(self):
        """This network as a ``nir.NIRGraph``; see :func:`neurocorex.nirgraph.to_nir`."""
        from .nirgraph import to_nir
        return to_nir(self)

    def copy(self) -> "Network":
        import copy
        return copy.deepcopy(self)

    def __repr__(self):
        return (f"Network(neurons={self.neurons}, inputs={self.inputs}, "
                f"weight_bits={self.config.weight_bits}, stdp={'on' if self.stdp.enabled else 'off'})")
