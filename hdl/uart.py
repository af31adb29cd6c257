"""8N1 UART receiver and transmitter with a baud divisor fixed at elaboration."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["RxByte", "UARTRx", "UARTTx", "divisor_for"]

#: A received byte; ``error`` is set when its stop bit was low.
RxByte = data.StructLayout({"data": 8, "error": 1})


def divisor_for(clk_hz: int, baud: int) -> int:
    """Clock cycles per bit; raise ValueError when the rate is off by more than 2 %."""
    div = round(clk_hz / baud)
    if div < 4:
        raise ValueError(f"baud {baud} needs at least 4 clock cycles per bit at {clk_hz} Hz")
    err = abs(clk_hz / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"baud {baud} is {err:.1%} off at {clk_hz} Hz (divisor {div}); at most 2 % allowed")
    return div


class UARTRx(wiring.Component):
    """Oversampling 8N1 receiver.

    Every bit is sampled at three clocks around its middle and decided by
    majority, so a glitch shorter than a clock cycle cannot flip a bit; a start
    bit that is high again at its middle is ignored as a glitch.  The receiver
    resynchronises on the first falling edge after each stop bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 4).

    Attributes
    ----------
    rx : In(1)
        Serial line (idle high); synchronised inside.
    out : Out(stream of RxByte), always ready
        One transfer per received byte; the consumer must take it.
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError("UART divisor must be at least 4")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1),
                          "out": Out(stream.Signature(RxByte, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        mid = d // 2
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        phase = Signal(range(d))
        bit = Signal(range(10))
        ones = Signal(2)
        shreg = Signal(8)
        sample = Signal()
        m.d.comb += sample.eq(ones + rx >= 2)
        m.d.sync += self.out.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [phase.eq(1), bit.eq(0), ones.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                m.d.sync += phase.eq(phase + 1)
                with m.If(phase == d - 1):
                    m.d.sync += [phase.eq(0), bit.eq(bit + 1)]
                with m.If((phase == mid - 1) | (phase == mid)):
                    m.d.sync += ones.eq(ones + rx)
                with m.If(phase == mid + 1):
                    m.d.sync += ones.eq(0)
                    with m.If(bit == 0):
                        with m.If(sample):           # start bit gone at its middle: a glitch
                            m.next = "IDLE"
                    with m.Elif(bit == 9):
                        m.d.sync += [self.out.valid.eq(1), self.out.payload.data.eq(shreg),
                                     self.out.payload.error.eq(~sample)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += shreg.eq(Cat(shreg[1:], sample))
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter; back-to-back bytes leave no idle bit time between them.

    Attributes
    ----------
    inp : In(stream of 8 bits)
    tx : Out(1)
        Serial line, idle high.
    """

    def __init__(self, divisor: int):
        if divisor < 1:
            raise ValueError("UART divisor must be positive")
        self.divisor = divisor
        super().__init__({"inp": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        phase = Signal(range(d))
        bits = Signal(range(11))          # bits left to send
        shreg = Signal(10, init=0x3FF)
        m.d.comb += self.tx.eq(shreg[0])
        last = (bits == 1) & (phase == d - 1)
        m.d.comb += self.inp.ready.eq((bits == 0) | last)
        with m.If(bits != 0):
            m.d.sync += phase.eq(phase + 1)
            with m.If(phase == d - 1):
                m.d.sync += [phase.eq(0), bits.eq(bits - 1), shreg.eq(Cat(shreg[1:], 1))]
        with m.If(self.inp.valid & self.inp.ready):
            m.d.sync += [shreg.eq(Cat(0, self.inp.payload, 1)), bits.eq(10), phase.eq(0)]
        return m
