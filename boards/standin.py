"""A small stand-in design with the board-facing ports of the full NeuroCoreX top.

It is a UART echo through a single-port memory: every received byte is
written to the next word of a ``16k × 16`` memory, read back and sent.  It
checks the board flow (PLL, pins, UART divisor, SPRAM inference on iCE40)
in seconds, without the core.  Built with ``neurocorex build --stand-in``.
On a board whose synapse banks are double-pumped the memory is a
:class:`~neurocorex.hdl.spram.DoublePumpedRAM`, so the stand-in also checks
the second clock and the SPRAM schedule.
"""


from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from ..hdl.spram import DoublePumpedRAM
from .targets import baud_divisor

__all__ = ["UARTEcho", "CoreExerciser"]


class UARTEcho(wiring.Component):
    """UART echo through a memory; same constructor shape as the full top.

    Parameters
    ----------
    config : CoreConfig
        Only recorded; the stand-in has no core.
    clk_hz : float
        Clock frequency of the ``sync`` domain.
    baud : int
        UART bit rate.
    double_pump : bool
        Use a :class:`~neurocorex.hdl.spram.DoublePumpedRAM` (needs the ``sync2x``
        domain at twice the clock) instead of a single-port memory;
        ``pump_schedule`` is its ``schedule``.
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    led_activity: Out(1)
    led_error: Out(1)

    def __init__(self, config=None, *, clk_hz, baud, board=None, depth=16384, double_pump=False,
                 pump_schedule="middle"):
        self.config = config
        self.divisor = baud_divisor(clk_hz, baud)
        self.depth = depth
        self.double_pump = bool(double_pump)
        self.pump_schedule = pump_schedule
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor

        if self.double_pump:
            m.submodules.mem = mem = DoublePumpedRAM(MemoryData(shape=16, depth=self.depth, init=[]),
                                                     schedule=self.pump_schedule)
            wp, rp = mem.write, mem.read
        else:
            # single-port memory: one address, read enable = not write enable (maps to SPRAM)
            m.submodules.mem = mem = Memory(shape=16, depth=self.depth, init=[],
                                            attrs={"ram_style": "huge"})
            wp = mem.write_port()
            rp = mem.read_port()
        addr = Signal(range(self.depth))
        m.d.comb += [wp.addr.eq(addr), rp.addr.eq(addr), rp.en.eq(~wp.en)]

        # receiver: wait for the start bit, sample each bit in its middle
        rx_sync = Signal(2, init=0b11)
        m.d.sync += rx_sync.eq(((rx_sync << 1) | self.uart_rx)[:2])
        rx = rx_sync[1]
        rx_cnt = Signal(range(div * 3 // 2 + 1))
        rx_bit = Signal(range(10))
        rx_shift = Signal(8)
        rx_busy = Signal()
        got = Signal()
        m.d.sync += got.eq(0)
        with m.If(~rx_busy):
            with m.If(~rx):
                m.d.sync += [rx_busy.eq(1), rx_cnt.eq(div + div // 2 - 1), rx_bit.eq(0)]
        with m.Elif(rx_cnt != 0):
            m.d.sync += rx_cnt.eq(rx_cnt - 1)
        with m.Else():
            with m.If(rx_bit == 8):
                m.d.sync += rx_busy.eq(0)
                with m.If(rx):
                    m.d.sync += got.eq(1)
                with m.Else():
                    m.d.sync += self.led_error.eq(1)   # framing error: stays lit
            with m.Else():
                m.d.sync += [rx_shift.eq(((rx << 7) | (rx_shift >> 1))[:8]),
                             rx_bit.eq(rx_bit + 1), rx_cnt.eq(div - 1)]

        # write the byte, read it in the next cycle (the write blocks the single
        # port's read in its own cycle), take the word one cycle later, send it
        m.d.comb += [wp.data.eq(rx_shift), wp.en.eq(got)]
        reading, readback = Signal(), Signal()
        m.d.sync += [reading.eq(got), readback.eq(reading)]
        tx_shift = Signal(10, init=0x3FF)
        tx_cnt = Signal(range(div))
        tx_bits = Signal(range(11))
        # one byte of buffer: a byte may arrive while the previous one is still sent
        pend, pend_data = Signal(), Signal(8)
        with m.If(pend & (tx_bits == 0)):
            m.d.sync += [tx_shift.eq((1 << 9) | (pend_data << 1)), tx_bits.eq(10),
                         tx_cnt.eq(div - 1), pend.eq(0)]
        with m.Elif(tx_bits != 0):
            with m.If(tx_cnt == 0):
                m.d.sync += [tx_shift.eq((1 << 9) | (tx_shift >> 1)), tx_bits.eq(tx_bits - 1),
                             tx_cnt.eq(div - 1)]
            with m.Else():
                m.d.sync += tx_cnt.eq(tx_cnt - 1)
        with m.If(readback):   # after the load: a new byte wins over clearing pend
            m.d.sync += [pend.eq(1), pend_data.eq(rp.data[:8]), addr.eq(addr + 1)]
        m.d.comb += self.uart_tx.eq(tx_shift[0])

        # activity LED: stretched so a single byte is visible
        stretch = Signal(22)
        with m.If(got):
            m.d.sync += stretch.eq(~0)
        with m.Elif(stretch != 0):
            m.d.sync += stretch.eq(stretch - 1)
        m.d.comb += self.led_activity.eq(stretch != 0)
        return m


class CoreExerciser(wiring.Component):
    """The core alone on a board, driven by a pseudo-random source (no link, no UART).

    It checks how the core itself maps to an FPGA (resources, both clocks'
    Fmax and the paths between them when its banks are double-pumped) at sizes
    where the full top does not fit.  Every input of the core (bus requests,
    input events, ready signals) comes from a 64-bit LFSR, and every output bit
    is folded into ``uart_tx`` and the LEDs, so that synthesis keeps the logic;
    the bitstream computes nothing useful.  Built with ``neurocorex build
    --stand-in core``.

    ``clk_hz``, ``baud`` and ``board`` are those of :class:`UARTEcho` (unused);
    ``core_flags`` build the core as the board's full top does (a board's
    ``Board.core_flags``, :func:`neurocorex.boards.top.board_core`).
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    led_activity: Out(1)
    led_error: Out(1)

    def __init__(self, config, *, clk_hz, baud, board=None, **core_flags):
        from .top import board_core
        self.config = config
        self.core = board_core(config, **core_flags)
        super().__init__()

    def elaborate(self, platform):
        from amaranth.hdl import Cat
        m = Module()
        m.submodules.core = core = self.core
        lfsr = Signal(64, init=1)
        # x^64 + x^63 + x^61 + x^60 + 1 (maximal length), Fibonacci form; the UART
        # input is mixed in so that the source is not a constant sequence
        fb = lfsr[63] ^ lfsr[62] ^ lfsr[60] ^ lfsr[59] ^ self.uart_rx
        m.d.sync += lfsr.eq(Cat(fb, lfsr[:63]))

        def bits(value, start):
            n = len(value)
            return Cat(*[lfsr[(start + k) % 64] for k in range(n)])

        bus, ev = core.bus.payload, core.events.payload
        m.d.comb += [
            bus.addr.eq(bits(bus.addr, 0)), bus.wdata.eq(bits(bus.wdata, 7)),
            bus.write.eq(lfsr[41]), core.bus.valid.eq(lfsr[42] & lfsr[43]),
            ev.index.eq(bits(ev.index, 44)), ev.end.eq(lfsr[60] & lfsr[61] & lfsr[62]),
            core.events.valid.eq(lfsr[50]),
            core.spikes.ready.eq(lfsr[52]), core.bus_resp.ready.eq(lfsr[53]),
        ]
        outs = Cat(core.bus.ready, core.events.ready, core.spikes.valid, core.spikes.payload.as_value(),
                   core.bus_resp.valid, core.bus_resp.payload.as_value())
        fold = Signal(3)
        m.d.sync += fold.eq(Cat(outs.xor(), outs[::2].xor(), outs[1::2].xor()))
        m.d.comb += [self.uart_tx.eq(fold[0]), self.led_activity.eq(fold[1]),
                     self.led_error.eq(fold[2])]
        return m
