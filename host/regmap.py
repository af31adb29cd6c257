"""Address map of the core's configuration bus — the one contract between the
core gateware (:mod:`neurocorex.hdl.core`), the command engine of the link
and the host codec.

The core exposes three streams (see ``docs/architecture.md``):

``bus``      request ``{addr, wdata, write}`` → one response ``{rdata}`` per
             request (``0`` for writes).  Served only between time steps.
``events``   input: ``{index, end}``.  ``end=0``: axon ``index`` spikes in the
             step being collected.  ``end=1``: run that step (``index`` ignored).
``spikes``   output: ``{index, end}``.  ``end=0``: neuron ``index`` spiked in
             the step; ``end=1`` closes the step.  The core stalls while the
             consumer is not ready: nothing is dropped.

An address is ``region << index_bits(config) | index``; data words are
``DATA_BITS`` wide, signed fields two's complement in their low bits.
"""

from __future__ import annotations

import enum

from .formats import CoreConfig, NEURON_PARAMS, NEURON_STATE, STDP_FIELDS, GLOBAL_FIELDS

__all__ = ["Region", "Counter", "DATA_BITS", "REGION_BITS", "index_bits", "addr_bits",
           "address", "synapse_word", "synapse_fields", "field_index"]

DATA_BITS = 32
REGION_BITS = 4


class Region(enum.IntEnum):
    W_REC = 0        #: index ``i*N + j``: synapse word of W_rec[i, j]
    W_IN = 1         #: index ``k*N + j``: synapse word of W_in[k, j]
    PARAM = 2        #: index ``f*N + j``: NEURON_PARAMS[f] of neuron j
    STATE = 3        #: index ``f*N + j``: NEURON_STATE[f] of neuron j
    INPUT_TRACE = 4  #: index ``k``: pre trace of axon k
    STDP = 5         #: index ``f``: STDP_FIELDS[f]
    GLOBAL = 6       #: index ``f``: GLOBAL_FIELDS[f]
    COUNTER = 7      #: index ``Counter``: 32-bit counters (read only; write clears all)
    CONTROL = 8      #: index 0: write = reset state (V, I, ref, traces, pending spikes)


class Counter(enum.IntEnum):
    STEPS = 0
    SPIKES = 1
    INPUT_SPIKES = 2
    SYN_EVENTS = 3
    LAST_STEP_CYCLES = 4   #: clock cycles of the last step, from end event to end marker
    BUSY_CYCLES = 5        #: clock cycles spent in steps, cumulative (wraps)


def index_bits(config: CoreConfig) -> int:
    n, m = config.neurons, config.inputs
    largest = max(n * n, m * n, len(NEURON_PARAMS) * n, len(NEURON_STATE) * n, m,
                  len(STDP_FIELDS), len(GLOBAL_FIELDS), len(Counter), 1)
    return max(1, (largest - 1).bit_length())


def addr_bits(config: CoreConfig) -> int:
    return REGION_BITS + index_bits(config)


def address(config: CoreConfig, region: Region, index: int) -> int:
    return (int(region) << index_bits(config)) | index


def field_index(fields, name: str) -> int:
    for k, f in enumerate(fields):
        if f.name == name:
            return k
    raise KeyError(name)


def synapse_word(config: CoreConfig, weight: int, plastic: bool) -> int:
    """Stored synapse: weight in the low ``weight_bits`` bits, plastic bit above."""
    wb = config.weight_bits
    return (int(bool(plastic)) << wb) | (int(weight) & ((1 << wb) - 1))


def synapse_fields(config: CoreConfig, word: int) -> tuple[int, bool]:
    wb = config.weight_bits
    w = word & ((1 << wb) - 1)
    if w >> (wb - 1):
        w -= 1 << wb
    return w, bool((word >> wb) & 1)
