"""Stream payload layouts of the core (``bus``, ``bus_resp``, ``events``, ``spikes``).

Defined once here, from :mod:`neurocorex.regmap` and :mod:`neurocorex.formats`;
the core, the link's command engine and the RTL test harnesses import them.
"""

from __future__ import annotations

from amaranth.lib import data, stream

from ..formats import CoreConfig
from ..regmap import DATA_BITS, addr_bits

__all__ = ["bus_request_layout", "bus_response_layout", "event_layout", "spike_layout",
           "bus_request_signature", "bus_response_signature", "event_signature",
           "spike_signature"]


def bus_request_layout(config: CoreConfig) -> data.StructLayout:
    """``{addr, wdata, write}``: one bus access (``regmap`` address, data, 1 = write)."""
    return data.StructLayout({
        "addr": addr_bits(config),
        "wdata": DATA_BITS,
        "write": 1,
    })


def bus_response_layout(config: CoreConfig) -> data.StructLayout:
    """``{rdata}``: read data, zero for a write."""
    return data.StructLayout({"rdata": DATA_BITS})


def event_layout(config: CoreConfig) -> data.StructLayout:
    """``{index, end}``: ``end=0`` input spike on axon ``index``; ``end=1`` run the step."""
    return data.StructLayout({
        "index": range(max(config.inputs, 1)),
        "end": 1,
    })


def spike_layout(config: CoreConfig) -> data.StructLayout:
    """``{index, end}``: ``end=0`` neuron ``index`` spiked; ``end=1`` closes the step."""
    return data.StructLayout({
        "index": range(config.neurons),
        "end": 1,
    })


def bus_request_signature(config: CoreConfig) -> stream.Signature:
    return stream.Signature(bus_request_layout(config))


def bus_response_signature(config: CoreConfig) -> stream.Signature:
    return stream.Signature(bus_response_layout(config))


def event_signature(config: CoreConfig) -> stream.Signature:
    return stream.Signature(event_layout(config))


def spike_signature(config: CoreConfig) -> stream.Signature:
    return stream.Signature(spike_layout(config))
