"""The NeuroCoreX core: all-to-all CUBA-LIF neurons with on-chip STDP.

Interface contract (see ``neurocorex.regmap`` and ``docs/architecture.md``).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig
from .layouts import (bus_request_signature, bus_response_signature, event_signature,
                      spike_signature)

__all__ = ["Core"]


class Core(wiring.Component):
    """One core of ``N`` neurons and ``M`` input axons.

    Parameters
    ----------
    config : CoreConfig
        Elaboration-time shape.

    Members
    -------
    bus : In(stream) of ``{addr, wdata, write}``
        Configuration bus, decoded per :mod:`neurocorex.regmap`; served only
        between steps.
    bus_resp : Out(stream) of ``{rdata}``
        One response per request (0 for writes).
    events : In(stream) of ``{index, end}``
        Input spikes of the step being collected; ``end=1`` runs the step.
    spikes : Out(stream) of ``{index, end}``
        The step's spiking neurons in increasing order, then ``end=1``.
    """

    def __init__(self, config: CoreConfig):
        self.config = config
        super().__init__({
            "bus": In(bus_request_signature(config)),
            "bus_resp": Out(bus_response_signature(config)),
            "events": In(event_signature(config)),
            "spikes": Out(spike_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        # Placeholder until the datapath lands: answers every request with 0 and
        # closes every step with no spikes.
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.bus.ready.eq(1)
                m.d.comb += self.events.ready.eq(1)
                with m.If(self.bus.valid):
                    m.next = "RESP"
                with m.Elif(self.events.valid & self.events.payload.end):
                    m.next = "END"
            with m.State("RESP"):
                m.d.comb += self.bus_resp.valid.eq(1)
                with m.If(self.bus_resp.ready):
                    m.next = "IDLE"
            with m.State("END"):
                m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.end.eq(1)]
                with m.If(self.spikes.ready):
                    m.next = "IDLE"
        return m
