"""Top level of the NeuroCoreX gateware: UART link, command engine and core.

``NeuroCoreTop(config, clk_hz=..., baud=...)`` is what board top-levels and
the RTL simulation instantiate: a serial line in, a serial line out, two
status LEDs, clocked by the ``sync`` domain.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..formats import CoreConfig
from ..protocol import MAX_FRAME, caps_payload, check_config, max_body
from .engine import CommandEngine, bus_layouts
from .framing import Deframer, Framer
from .layouts import core_master_ports
from .uart import RxByte, UARTRx, UARTTx, divisor_for

__all__ = ["LinkCore", "NeuroCoreTop", "connect_stream"]


def connect_stream(m, src, dst, fields):
    """Connect two streams field by field (the core may declare wider fields)."""
    m.d.comb += [dst.valid.eq(src.valid), src.ready.eq(dst.ready)]
    for f in fields:
        m.d.comb += getattr(dst.payload, f).eq(getattr(src.payload, f))


class LinkCore(wiring.Component):
    """The link without the UART: received bytes in, bytes to send out.

    Attributes
    ----------
    rx : In(stream of RxByte), always ready
    tx : Out(stream of 8 bits)
    bus, bus_resp, events, spikes :
        The core's streams (``neurocorex.regmap``), from the core's side flipped.
    error : Out(1)
        Pulses on every rejected frame.

    ``fast_link`` builds the link for a fast clock (ECP5): the frame buffer
    read in two clocks, the engine's ``tail`` and ``aux`` writes registered
    (:class:`~neurocorex.hdl.engine.CommandEngine`), and the core's streams
    through small FIFOs; it answers the same (a few clocks later).
    """

    def __init__(self, config: CoreConfig, *, caps: bytes, max_frame: int = MAX_FRAME,
                 fast_link: bool = False):
        check_config(config, max_frame)
        self.config = config
        self.caps = caps
        self.max_frame = max_frame
        self.fast_link = bool(fast_link)
        super().__init__({
            "rx": In(stream.Signature(RxByte, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            **core_master_ports(config),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fast = self.fast_link
        m.submodules.deframer = dfr = Deframer(self.max_frame, read_latency=2 if fast else 1)
        m.submodules.engine = eng = CommandEngine(self.config, max_frame=self.max_frame,
                                                  caps=self.caps, fast=fast)
        # answers never exceed the engine's frame body limit
        m.submodules.framer = frm = Framer(max_body(self.max_frame))
        wiring.connect(m, wiring.flipped(self.rx), dfr.inp)
        wiring.connect(m, dfr.verdict, eng.verdict)
        wiring.connect(m, dfr.judged, eng.judged)
        m.d.comb += [eng.dropped.eq(dfr.dropped), dfr.rd_addr.eq(eng.rd_addr),
                     eng.rd_data.eq(dfr.rd_data), dfr.tail.eq(eng.tail),
                     self.error.eq(eng.error)]
        if fast:
            m.d.comb += [dfr.rd_next_addr.eq(eng.rd_next_addr), eng.rd_next.eq(dfr.rd_next)]
        wiring.connect(m, eng.tx, frm.inp)
        wiring.connect(m, frm.out, wiring.flipped(self.tx))
        if fast:
            # the core's streams through small FIFOs: engine and core see only
            # each other's registers (w_rdy, r_rdy, r_data)
            for name, src, dst in [("bus", eng.bus, self.bus), ("bus_resp", self.bus_resp, eng.bus_resp),
                                   ("events", eng.events, self.events),
                                   ("spikes", self.spikes, eng.spikes)]:
                _buffered(m, src, dst, f"{name}_fifo")
        else:
            wiring.connect(m, eng.bus, wiring.flipped(self.bus))
            wiring.connect(m, wiring.flipped(self.bus_resp), eng.bus_resp)
            wiring.connect(m, eng.events, wiring.flipped(self.events))
            wiring.connect(m, wiring.flipped(self.spikes), eng.spikes)
        return m


def _buffered(m, src, dst, name):
    """Stream ``src`` to ``dst`` (same payload shape) through a three-entry
    ``SyncFIFOBuffered``: its ``w_rdy``, ``r_rdy`` and ``r_data`` are
    registers, so no path runs from one side's logic into the other's, and
    it passes one item per clock."""
    width = len(Value.cast(src.payload))
    m.submodules[name] = fifo = SyncFIFOBuffered(width=width, depth=3)
    m.d.comb += [fifo.w_data.eq(src.payload), fifo.w_en.eq(src.valid), src.ready.eq(fifo.w_rdy),
                 dst.valid.eq(fifo.r_rdy), fifo.r_en.eq(dst.ready), dst.payload.eq(fifo.r_data)]


class NeuroCoreTop(wiring.Component):
    """UART link + command engine + :class:`neurocorex.hdl.core.Core`.

    Parameters
    ----------
    config : CoreConfig
    clk_hz : int
        Frequency of the ``sync`` clock (reported by CAPS).
    baud : int
        Line rate; ``clk_hz / baud`` must be within 2 % of an integer >= 4.
    board : str
        Board id reported by CAPS (at most 16 ASCII characters).
    core : Elaboratable with bus/bus_resp/events/spikes streams, optional
        The core to drive; by default ``neurocorex.hdl.core.Core(config)``.
    max_frame : int
        Frame buffer depth in bytes.
    fast_link : bool
        The link built for a fast clock (:class:`LinkCore`).

    Attributes
    ----------
    uart_rx : In(1)
    uart_tx : Out(1)
    led_activity : Out(1)
        Lit for a moment (about 1/16 s) after each byte on the line.
    led_error : Out(1)
        Lit for a moment (about 1/4 s) after each rejected frame.
    """

    def __init__(self, config: CoreConfig, *, clk_hz: int, baud: int, board: str = "sim",
                 core=None, max_frame: int = MAX_FRAME, fast_link: bool = False):
        self.config = config
        self.clk_hz = int(clk_hz)
        self.baud = int(baud)
        self.board = board
        self.divisor = divisor_for(self.clk_hz, self.baud)
        self.max_frame = max_frame
        self.fast_link = bool(fast_link)
        self.caps = caps_payload(config, max_frame=max_frame, clk_hz=self.clk_hz, baud=self.baud,
                                 board=board)
        self._core = core
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
                          "led_activity": Out(1), "led_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        core = self._core
        if core is None:
            from .core import Core
            core = Core(self.config)
        m.submodules.core = core
        m.submodules.uart_rx = rx = UARTRx(self.divisor)
        m.submodules.uart_tx = tx = UARTTx(self.divisor)
        m.submodules.link = link = LinkCore(self.config, caps=self.caps, max_frame=self.max_frame,
                                            fast_link=self.fast_link)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        wiring.connect(m, rx.out, link.rx)
        wiring.connect(m, link.tx, tx.inp)
        lay = bus_layouts(self.config)
        connect_stream(m, link.bus, core.bus, lay["bus"].members)
        connect_stream(m, core.bus_resp, link.bus_resp, lay["bus_resp"].members)
        connect_stream(m, link.events, core.events, lay["events"].members)
        connect_stream(m, core.spikes, link.spikes, lay["spikes"].members)

        # Both LEDs count down on the ticks of one free-running prescaler (a
        # period of about 1/32 s): the activity LED stays lit 2..3 periods
        # after a byte, the error LED 7..8 periods after a rejected frame.
        pre = Signal(max(1, (self.clk_hz // 32).bit_length()))
        tick = Signal()
        m.d.sync += Cat(pre, tick).eq(pre + 1)

        def stretch(pulse, periods, out):
            left = Signal(range(periods + 1))
            with m.If(pulse):
                m.d.sync += left.eq(periods)
            with m.Elif(tick & (left != 0)):
                m.d.sync += left.eq(left - 1)
            m.d.comb += out.eq(left != 0)

        stretch(rx.out.valid | (tx.inp.valid & tx.inp.ready), 3, self.led_activity)
        stretch(link.error, 8, self.led_error)
        return m
