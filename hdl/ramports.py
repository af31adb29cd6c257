"""Block RAM read ports built as Yosys maps them best.

An Amaranth synchronous read port returns the old word when its address is
written in the same clock; Yosys emulates that in logic on ECP5 and iCE40
block RAMs (a delayed write and a bypass: about 30 flip-flops and 20-35 LUTs
per memory).  An asynchronous read port followed by a register, on a memory
marked ``no_rw_check``, maps to the block RAM alone: Yosys merges the register
into the RAM and builds nothing for a read of the address being written,
which may then return anything.  Users of these ports must never use such a
read; ``poison`` makes it return garbage in simulation so that tests can
show they do not.
"""

from amaranth.back import rtlil
from amaranth.hdl import Mux, Signal

__all__ = ["NO_RW_CHECK", "RegisteredRead"]

#: Memory attributes: a read of the address written in the same clock is a don't-care.
NO_RW_CHECK = {"no_rw_check": 1}


class RegisteredRead:
    """``addr``, ``en`` and ``data`` (one clock after ``addr``, held while
    ``en`` is low) of an asynchronous read port followed by a register.

    ``poison`` (the memory's write port): in simulation, a read that meets a
    write of its address returns the inverted word."""

    def __init__(self, m, port, name, poison=None):
        self.addr = port.addr
        self.en = Signal(init=1, name=f"{name}_ren")
        # neither reset nor initial value: a block RAM output has none, and
        # Yosys would add logic to emulate them
        self.data = Signal.like(port.data, name=f"{name}_rdata", reset_less=True,
                                attrs={"init": rtlil.Undef(len(port.data))})
        with m.If(self.en):
            if poison is None:
                m.d.sync += self.data.eq(port.data)
            else:
                # simulation check: a read that meets a write of its address
                # returns garbage, as the block RAM may
                hit = poison.en.any() & (poison.addr == port.addr)
                m.d.sync += self.data.eq(Mux(hit, ~port.data, port.data))
