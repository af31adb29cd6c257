"""Stream payload layouts of the core (``bus``, ``bus_resp``, ``events``, ``spikes``).

Defined once here, from :mod:`neurocorex.regmap` and :mod:`neurocorex.formats`;
the core, the link's command engine and the RTL test harnesses import them.
"""

from __future__ import annotations

from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig
from ..regmap import DATA_BITS, addr_bits

__all__ = ["bus_request_layout", "bus_response_layout", "event_layout", "spike_layout",
           "bus_request_signature", "bus_response_signature", "event_signature",
           "spike_signature", "core_ports", "core_master_ports"]


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


def core_ports(config: CoreConfig) -> dict:
    """The core's stream members as the core sees them (``wiring`` members)."""
    return {
        "bus": In(bus_request_signature(config)),
        "bus_resp": Out(bus_response_signature(config)),
        "events": In(event_signature(config)),
        "spikes": Out(spike_signature(config)),
    }


def core_master_ports(config: CoreConfig) -> dict:
    """The same members seen from the side that drives the core (the link)."""
    return {name: member.flip() for name, member in core_ports(config).items()}
