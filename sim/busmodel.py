"""The core's bus contract (``neurocorex.regmap``) served by the golden model.

:class:`BusCore` answers exactly what the gateware core answers on its
``bus``/``events``/``spikes`` streams, computed by :class:`CoreModel`.  It is
the reference for the core's bus in gateware tests and the core behind the
Python virtual board.
"""

from __future__ import annotations

import numpy as np

from ..formats import (CoreConfig, NEURON_PARAMS, NEURON_STATE, STDP_FIELDS, GLOBAL_FIELDS,
                       TRACE_BITS)
from ..errors import RangeError
from ..regmap import (Region, Counter, DATA_BITS, index_bits, synapse_word,
                      synapse_fields)
from .model import CoreModel

__all__ = ["BusCore"]

_MASK = (1 << DATA_BITS) - 1


def _to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class BusCore:
    """Golden model behind the core's bus interface.

    ``read(addr)`` / ``write(addr, data)`` follow ``regmap``; ``step(axons)``
    runs one time step with the given input axon indices and returns the
    indices of the neurons that spiked, in increasing order.

    Writes of a field take its low ``bits`` bits (signed fields are sign
    extended), as the gateware does; reads return the field zero-extended
    from its two's complement bits.  Unmapped addresses read 0 and ignore writes.
    """

    def __init__(self, config: CoreConfig):
        self.config = config
        self.model = CoreModel(config)
        self.last_step_cycles = 0
        self.busy_cycles = 0

    # -- address decoding --------------------------------------------------------------

    def _split(self, addr: int):
        ib = index_bits(self.config)
        region = addr >> ib
        return region, addr & ((1 << ib) - 1)

    def _locate(self, region: int, index: int):
        """Return (kind, key) for a mapped address or None."""
        n, m = self.config.neurons, self.config.inputs
        if region == Region.W_REC and index < n * n:
            return "w_rec", divmod(index, n)
        if region == Region.W_IN and index < m * n:
            return "w_in", divmod(index, n)
        if region == Region.PARAM and index < len(NEURON_PARAMS) * n:
            f, j = divmod(index, n)
            return "param", (NEURON_PARAMS[f], j)
        if region == Region.STATE and index < len(NEURON_STATE) * n:
            f, j = divmod(index, n)
            return "state", (NEURON_STATE[f], j)
        if region == Region.INPUT_TRACE and index < m:
            return "input_trace", index
        if region == Region.STDP and index < len(STDP_FIELDS):
            return "stdp", STDP_FIELDS[index]
        if region == Region.GLOBAL and index < len(GLOBAL_FIELDS):
            return "global", GLOBAL_FIELDS[index]
        if region == Region.COUNTER and index < len(Counter):
            return "counter", Counter(index)
        if region == Region.CONTROL and index == 0:
            return "control", 0
        return None

    def _cell(self, kind, key):
        """(container, key, bits, signed) of a plain integer field."""
        md = self.model
        if kind == "param":
            f, j = key
            return md.params[f.name], j, f.bits, f.signed
        if kind == "state":
            f, j = key
            return getattr(md, f.name), j, f.bits, f.signed
        if kind == "input_trace":
            return md.input_trace, key, TRACE_BITS, False
        if kind == "stdp":
            if key.name in ("w_min", "w_max"):      # as wide as a weight in this core
                return md.stdp, key.name, self.config.weight_bits, True
            return md.stdp, key.name, key.bits, key.signed
        return md.globals, key.name, key.bits, key.signed     # "global"

    def _plastic(self, kind):
        return self.model.plastic_rec if kind == "w_rec" else self.model.plastic_in

    def read(self, addr: int) -> int:
        loc = self._locate(*self._split(addr))
        if loc is None:
            return 0
        kind, key = loc
        md = self.model
        if kind in ("w_rec", "w_in"):
            i, j = key
            return synapse_word(self.config, int(getattr(md, kind)[i, j]), bool(self._plastic(kind)[i, j]))
        if kind == "counter":
            c = md.counters
            val = {Counter.STEPS: c.steps, Counter.SPIKES: c.spikes,
                   Counter.INPUT_SPIKES: c.input_spikes, Counter.SYN_EVENTS: c.syn_events,
                   Counter.LAST_STEP_CYCLES: self.last_step_cycles,
                   Counter.BUSY_CYCLES: self.busy_cycles}[key]
            return val & _MASK
        if kind == "control":
            return 0
        box, k, bits, _ = self._cell(kind, key)
        return int(box[k]) & ((1 << bits) - 1)

    def write(self, addr: int, data: int) -> None:
        loc = self._locate(*self._split(addr))
        if loc is None:
            return
        kind, key = loc
        md = self.model
        if kind in ("w_rec", "w_in"):
            i, j = key
            w, p = synapse_fields(self.config, data & ((1 << self.config.synapse_bits) - 1))
            getattr(md, kind)[i, j] = w
            self._plastic(kind)[i, j] = p
        elif kind in ("counter", "control"):
            if kind == "control":
                md.reset_state()
            else:
                md.counters.__init__()
            self.last_step_cycles = self.busy_cycles = 0
        else:
            box, k, bits, signed = self._cell(kind, key)
            box[k] = _to_signed(data, bits) if signed else data & ((1 << bits) - 1)

    def step(self, axons=()) -> list[int]:
        x = np.zeros(self.config.inputs, bool)
        for k in axons:
            if not 0 <= k < self.config.inputs:
                raise RangeError(f"axon index {k} out of range [0, {self.config.inputs - 1}]")
            x[k] = True
        return [int(j) for j in np.flatnonzero(self.model.step(x))]
