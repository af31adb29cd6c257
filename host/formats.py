"""Number formats and parameter layouts of the NeuroCoreX core.

This module is the single source of truth for every width, range and
fixed-point convention of the core.  The golden model
(:mod:`neurocorex.sim.model`), the host compiler (:mod:`neurocorex.network`)
and the gateware (:mod:`neurocorex.hdl`) import it; nothing here is written
down a second time.  ``docs/spec.md`` explains the meaning of each field.

All quantities are plain Python integers.  Signed values are two's complement.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict

from .errors import RangeError

__all__ = [
    "DECAY_FRAC_BITS", "DECAY_ONE", "STDP_FRAC_BITS",
    "V_BITS", "I_BITS", "TREF_BITS", "TRACE_BITS", "ALPHA_BITS",
    "STDP_A_BITS", "W_SHIFT_MAX",
    "CoreConfig", "NEURON_PARAMS", "NEURON_STATE", "STDP_FIELDS", "GLOBAL_FIELDS",
    "FieldSpec", "signed_range", "unsigned_range", "check_int",
    "decay", "decay_trace", "stdp_delta", "saturate",
]

# --- fixed-point conventions --------------------------------------------------

#: Decay factors are unsigned 1.15 fixed point: ``alpha / 2**15`` in [0, 1].
DECAY_FRAC_BITS = 15
DECAY_ONE = 1 << DECAY_FRAC_BITS
#: Decay factors occupy 16 bits so that exactly 1.0 (no leak) is expressible.
ALPHA_BITS = 16
#: STDP amplitudes multiply 8-bit traces; the product is scaled by 2**-8.
STDP_FRAC_BITS = 8

V_BITS = 16       #: membrane potential, signed
I_BITS = 16       #: synaptic current, signed
TREF_BITS = 8     #: refractory counter, unsigned
TRACE_BITS = 8    #: STDP traces, unsigned
STDP_A_BITS = 8   #: STDP amplitudes A+ and A-, unsigned
W_SHIFT_MAX = 8   #: largest weight-to-current shift


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, (1 << bits) - 1


def saturate(value, lo: int, hi: int):
    """Clamp ``value`` (int or numpy array) to ``[lo, hi]``."""
    if isinstance(value, int):
        return lo if value < lo else hi if value > hi else value
    import numpy as np
    return np.clip(value, lo, hi)


def check_int(name: str, value, lo: int, hi: int) -> int:
    """Return ``value`` as int, or raise :class:`RangeError` naming ``name``."""
    try:
        import numpy as np
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        if isinstance(value, float) and value != value:   # NaN
            raise RangeError(f"{name} is NaN; allowed range is [{lo}, {hi}]")
        ivalue = int(value)
        if ivalue != value:
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        raise RangeError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}") from None
    if not lo <= ivalue <= hi:
        raise RangeError(f"{name}={ivalue} is out of range; allowed range is [{lo}, {hi}]")
    return ivalue


# --- arithmetic primitives (shared by the model and documented in the spec) ----

def decay(x, alpha):
    """Signed decay ``x * alpha / 2**15`` rounded toward zero.

    Works elementwise on numpy int64 arrays and on Python ints.  Rounding toward
    zero makes every leak reach its rest value and is symmetric in sign.
    The gateware computes it as ``(x*alpha + (2**15-1 if x < 0 else 0)) >> 15``.
    """
    p = x * alpha
    bias = (DECAY_ONE - 1)
    if isinstance(p, int):
        return (p + (bias if p < 0 else 0)) >> DECAY_FRAC_BITS
    import numpy as np
    return (p + np.where(p < 0, bias, 0)) >> DECAY_FRAC_BITS


def decay_trace(x, alpha):
    """Unsigned trace decay ``floor(x * alpha / 2**15)``."""
    return (x * alpha) >> DECAY_FRAC_BITS


def stdp_delta(amplitude, trace):
    """Weight change ``round(A * trace / 2**8)`` (half rounds up)."""
    return (amplitude * trace + (1 << (STDP_FRAC_BITS - 1))) >> STDP_FRAC_BITS


# --- field descriptions ---------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    """One integer field: its name, width, signedness and meaning."""
    name: str
    bits: int
    signed: bool
    doc: str
    lo: int | None = None   # narrower range than the width allows
    hi: int | None = None

    @property
    def range(self) -> tuple[int, int]:
        lo, hi = signed_range(self.bits) if self.signed else unsigned_range(self.bits)
        return (lo if self.lo is None else self.lo, hi if self.hi is None else self.hi)


#: Per-neuron parameters, in the order they are stored and sent on the wire.
NEURON_PARAMS: tuple[FieldSpec, ...] = (
    FieldSpec("threshold", V_BITS, True, "firing threshold theta (V units)"),
    FieldSpec("v_reset", V_BITS, True, "membrane potential after a spike"),
    FieldSpec("v_rest", V_BITS, True, "resting potential the membrane leaks to"),
    FieldSpec("alpha_v", ALPHA_BITS, False, "membrane decay factor, 1.15 fixed point",
              0, DECAY_ONE),
    FieldSpec("alpha_i", ALPHA_BITS, False, "synaptic current decay factor, 1.15 fixed point",
              0, DECAY_ONE),
    FieldSpec("t_ref", TREF_BITS, False, "refractory period in time steps"),
)

#: Per-neuron state, as read back by state probes.
NEURON_STATE: tuple[FieldSpec, ...] = (
    FieldSpec("v", V_BITS, True, "membrane potential"),
    FieldSpec("i", I_BITS, True, "synaptic current"),
    FieldSpec("ref", TREF_BITS, False, "remaining refractory steps"),
    FieldSpec("pre_trace", TRACE_BITS, False, "pre-synaptic trace of the neuron's outgoing synapses"),
    FieldSpec("post_trace", TRACE_BITS, False, "post-synaptic trace of the neuron's incoming synapses"),
)

#: Global STDP settings.  ``w_min``/``w_max`` are checked against the weight width.
STDP_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("enabled", 1, False, "learning on (1) or off (0)"),
    FieldSpec("a_plus", STDP_A_BITS, False, "potentiation amplitude A+ (x 2**-8 per trace unit)"),
    FieldSpec("a_minus", STDP_A_BITS, False, "depression amplitude A- (x 2**-8 per trace unit)"),
    FieldSpec("alpha_pre", ALPHA_BITS, False, "pre-trace decay factor, 1.15", 0, DECAY_ONE),
    FieldSpec("alpha_post", ALPHA_BITS, False, "post-trace decay factor, 1.15", 0, DECAY_ONE),
    FieldSpec("jump_pre", TRACE_BITS, False, "pre-trace increment on a pre spike"),
    FieldSpec("jump_post", TRACE_BITS, False, "post-trace increment on a post spike"),
    FieldSpec("w_min", 8, True, "lower weight bound"),
    FieldSpec("w_max", 8, True, "upper weight bound"),
)

#: Core-wide settings that are neither per neuron nor STDP.
GLOBAL_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("w_shift", 4, False, "a weight w adds w * 2**w_shift to the current", 0, W_SHIFT_MAX),
)


# --- core configuration --------------------------------------------------------------

@dataclass(frozen=True)
class CoreConfig:
    """Elaboration-time shape of one core.

    Parameters
    ----------
    neurons : int
        Number of LIF neurons ``N`` (1 .. 4096).
    inputs : int
        Number of input axons ``M`` (0 .. 4096).
    weight_bits : int
        Width of a signed weight (2 .. 15).  A synapse word is
        ``weight_bits + 1`` bits: the weight and its plasticity-enable bit.
    """
    neurons: int = 256
    inputs: int = 256
    weight_bits: int = 7

    def __post_init__(self):
        check_int("neurons", self.neurons, 1, 4096)
        check_int("inputs", self.inputs, 0, 4096)
        check_int("weight_bits", self.weight_bits, 2, 15)

    # derived widths
    @property
    def weight_range(self) -> tuple[int, int]:
        return signed_range(self.weight_bits)

    @property
    def synapse_bits(self) -> int:
        """Bits of one stored synapse: weight plus plasticity bit."""
        return self.weight_bits + 1

    @property
    def acc_bits(self) -> int:
        """Width of the per-step input accumulator; it cannot overflow."""
        sources = self.neurons + self.inputs
        return self.weight_bits + W_SHIFT_MAX + max(1, sources - 1).bit_length() + 1

    @property
    def synapses(self) -> int:
        return self.neurons * (self.neurons + self.inputs)

    def param_range(self, name: str) -> tuple[int, int]:
        for f in NEURON_PARAMS + NEURON_STATE + GLOBAL_FIELDS:
            if f.name == name:
                return f.range
        raise KeyError(name)

    def stdp_range(self, name: str) -> tuple[int, int]:
        if name in ("w_min", "w_max"):
            return self.weight_range
        for f in STDP_FIELDS:
            if f.name == name:
                return f.range
        raise KeyError(name)

    def as_dict(self) -> dict:
        return asdict(self)
