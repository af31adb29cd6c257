"""Sequential division by an elaboration-time constant (bus index decoding)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ConstDivider"]


class ConstDivider(wiring.Component):
    """``quotient, remainder = divmod(dividend, divisor)`` for a constant divisor.

    A ``start`` pulse latches ``dividend``; ``done`` is high from the cycle the
    result is valid until the next ``start``.  A power-of-two divisor takes one
    clock (bit slicing); any other divisor takes ``width`` clocks (restoring
    division, one quotient bit per clock), which is cheap in logic and fast
    enough for configuration traffic.

    Parameters
    ----------
    width : int
        Width of the dividend.
    divisor : int
        The constant divisor (>= 1).
    held : bool
        The caller holds ``dividend`` from ``start`` until it has used the
        result: a power-of-two divisor then needs no register (``done`` is
        always high and the result follows ``dividend``).
    """

    def __init__(self, width: int, divisor: int, *, held: bool = False):
        if divisor < 1:
            raise ValueError("divisor must be >= 1")
        self.width = width
        self.divisor = divisor
        self.held = bool(held)
        super().__init__({
            "start": In(1), "dividend": In(width),
            "done": Out(1), "quotient": Out(width), "remainder": Out(max(1, divisor.bit_length())),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        if d & (d - 1) == 0:
            k = d.bit_length() - 1
            if self.held:
                value = self.dividend
                m.d.comb += self.done.eq(1)
            else:
                value = Signal(self.width)
                with m.If(self.start):
                    m.d.sync += [value.eq(self.dividend), self.done.eq(1)]
            m.d.comb += [self.quotient.eq(value >> k), self.remainder.eq(value[:k] if k else 0)]
            return m

        rem = Signal(d.bit_length() + 1)
        quo = Signal(self.width)
        count = Signal(range(self.width + 1))
        m.d.comb += [self.quotient.eq(quo), self.remainder.eq(rem)]
        with m.If(self.start):
            m.d.sync += [quo.eq(self.dividend), rem.eq(0), count.eq(self.width), self.done.eq(0)]
        with m.Elif(count != 0):
            # shift the next dividend bit into the remainder; quotient bits enter from the right
            trial = (rem << 1) | quo[-1]
            with m.If(trial >= d):
                m.d.sync += [rem.eq(trial - d), quo.eq((quo << 1) | 1)]
            with m.Else():
                m.d.sync += [rem.eq(trial), quo.eq(quo << 1)]
            m.d.sync += count.eq(count - 1)
            with m.If(count == 1):
                m.d.sync += self.done.eq(1)
        return m
