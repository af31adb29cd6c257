"""A small stand-in design with the board-facing ports of the full NeuroCoreX top.

It is a UART echo through a single-port memory: every received byte is
written to the next word of a ``16k × 16`` memory, read back and sent.  It
checks the board flow (PLL, pins, UART divisor, SPRAM inference on iCE40)
in seconds, without the core.  Built with ``neurocorex build --stand-in``.
"""


from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .targets import baud_divisor

__all__ = ["UARTEcho"]


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
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    led_activity: Out(1)
    led_error: Out(1)

    def __init__(self, config=None, *, clk_hz, baud, board=None, depth=16384):
        self.config = config
        self.divisor = baud_divisor(clk_hz, baud)
        self.depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self.divisor

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

        # write the byte, read it back next cycle, then send it
        m.d.comb += [wp.data.eq(rx_shift), wp.en.eq(got)]
        readback = Signal()
        m.d.sync += readback.eq(got)
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
