"""Small stand-in designs with the port names of the real ones.

They exercise the simulation plumbing (Verilog cache, cocotb drivers, the
Verilator UART harness) independently of the core and the link:

* :class:`EchoTop` has the pins of ``NeuroCoreTop`` and sends back every byte
  it receives on ``uart_rx`` (8N1, ``clk_hz // baud`` clocks per bit).
* :class:`RegfileCore` has the streams of ``Core``: its bus is a plain register
  file and every step echoes the input axons below ``N`` as spikes.
"""

from amaranth import Module, Signal, Cat, C, Mux
from amaranth.lib import wiring, memory
from amaranth.lib.wiring import In, Out

from neurocorex.formats import CoreConfig
from neurocorex.regmap import DATA_BITS


class _UartRx(wiring.Component):
    rx: In(1, init=1)
    data: Out(8)
    strobe: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(range(2 * self.divisor + 1))
        bit = Signal(range(10))
        shreg = Signal(8)
        busy = Signal()
        m.d.sync += self.strobe.eq(0)
        with m.If(~busy):
            with m.If(~self.rx):
                # first sample in the middle of bit 0
                m.d.sync += [busy.eq(1), bit.eq(0), cnt.eq(self.divisor + self.divisor // 2 - 1)]
        with m.Elif(cnt != 0):
            m.d.sync += cnt.eq(cnt - 1)
        with m.Else():
            m.d.sync += cnt.eq(self.divisor - 1)
            with m.If(bit == 8):
                m.d.sync += busy.eq(0)
                with m.If(self.rx):
                    m.d.sync += [self.data.eq(shreg), self.strobe.eq(1)]
            with m.Else():
                m.d.sync += [shreg.eq(Cat(shreg[1:], self.rx)), bit.eq(bit + 1)]
        return m


class _UartTx(wiring.Component):
    tx: Out(1, init=1)
    data: In(8)
    valid: In(1)
    ready: Out(1)

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)
        left = Signal(range(11))
        m.d.comb += self.tx.eq(shreg[0])
        last = (left == 1) & (cnt == 0)
        # a new frame starts right after the stop bit: exactly 10 bit times per byte
        m.d.comb += self.ready.eq((left == 0) | last)
        with m.If(self.ready & self.valid):
            m.d.sync += [shreg.eq(Cat(C(0, 1), self.data, C(1, 1))), left.eq(10),
                         cnt.eq(self.divisor - 1)]
        with m.Elif(left == 0):
            pass
        with m.Elif(cnt != 0):
            m.d.sync += cnt.eq(cnt - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], C(1, 1))), left.eq(left - 1),
                         cnt.eq(self.divisor - 1)]
        return m


class EchoTop(wiring.Component):
    """UART echo with the pins of the full design (``uart_rx``, ``uart_tx``)."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, config=None, *, clk_hz, baud, board="sim"):
        self.divisor = clk_hz // baud
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = _UartRx(self.divisor)
        m.submodules.tx = tx = _UartTx(self.divisor)
        m.submodules.fifo = fifo = memory.Memory(shape=8, depth=256, init=[])
        wr, rd = fifo.write_port(), fifo.read_port(domain="comb")
        head, tail = Signal(8), Signal(8)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx),
                     wr.addr.eq(head), wr.data.eq(rx.data), wr.en.eq(rx.strobe),
                     rd.addr.eq(tail), tx.data.eq(rd.data), tx.valid.eq(head != tail)]
        with m.If(rx.strobe):
            m.d.sync += head.eq(head + 1)
        with m.If(tx.valid & tx.ready):
            m.d.sync += tail.eq(tail + 1)
        return m


class RegfileCore(wiring.Component):
    """Streams of the core (``bus``, ``bus_resp``, ``events``, ``spikes``), trivial behaviour.

    Reads return the last word written to the same low address bits; a step
    emits the axons it was given that are below ``N`` (in arrival order),
    then the end marker.
    """

    def __init__(self, config: CoreConfig):
        self.config = config
        from neurocorex.hdl.layouts import (bus_request_signature, bus_response_signature,
                                            event_signature, spike_signature)
        super().__init__({
            "bus": In(bus_request_signature(config)),
            "bus_resp": Out(bus_response_signature(config)),
            "events": In(event_signature(config)),
            "spikes": Out(spike_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.config.neurons
        m.submodules.regs = regs = memory.Memory(shape=DATA_BITS, depth=64, init=[])
        wr, rd = regs.write_port(), regs.read_port(domain="comb")
        bus, resp = self.bus, self.bus_resp
        m.d.comb += [wr.addr.eq(bus.payload.addr[:6]), rd.addr.eq(bus.payload.addr[:6]),
                     wr.data.eq(bus.payload.wdata), bus.ready.eq(~resp.valid),
                     wr.en.eq(bus.valid & bus.ready & bus.payload.write)]
        with m.If(bus.valid & bus.ready):
            m.d.sync += [resp.valid.eq(1),
                         resp.payload.rdata.eq(Mux(bus.payload.write, 0, rd.data))]
        with m.Elif(resp.ready):
            m.d.sync += resp.valid.eq(0)
        # events -> spikes: one-entry pass-through, dropping indices >= N
        ev, sp = self.events, self.spikes
        keep = ev.payload.end | (ev.payload.index < n)
        m.d.comb += ev.ready.eq(~sp.valid | sp.ready)
        with m.If(ev.valid & ev.ready):
            m.d.sync += [sp.valid.eq(keep), sp.payload.index.eq(ev.payload.index),
                         sp.payload.end.eq(ev.payload.end)]
        with m.Elif(sp.ready):
            m.d.sync += sp.valid.eq(0)
        return m
