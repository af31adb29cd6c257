"""A RAM split into narrow slices, for block RAMs whose read multiplexer is the slow path.

A deep memory maps to many block RAMs, and its read data comes through a
multiplexer over all of them.  Yosys maps an ECP5 memory of 16-bit words as
1024 × 18 blocks, so a synapse bank of 45,056 words (ULX3S, N=512, M=192)
is 44 blocks behind a 44-way multiplexer, the ULX3S's slowest path.  The same
bank as four 4-bit slices is 4 × 11 blocks of 4096 × 4 (the same 44 blocks),
each slice behind an 11-way multiplexer.

:class:`SlicedRAM` has the read and write ports of a plain ``Memory``
(synchronous, not transparent, one write enable per word) over memories of
``slice_bits`` bits (the last one holds what is left of the word).

With ``block_depth`` each slice is also split by address into memories of
``block_depth`` words (one block RAM each), and every block's read data goes
into a register of its own before the multiplexer: the block RAM's late
output (about 6 ns after the clock on ECP5) then drives only a register
placed next to it, and the multiplexer starts a clock later from registers.
The read data comes two clocks after the address instead of one
(``read_latency = 2``), which :class:`~neurocorex.hdl.core.Core` takes as one
more pipeline stage.

Every memory is read through an asynchronous port and a register and marked
``no_rw_check`` (:mod:`neurocorex.hdl.ramports`): Yosys maps it to the block
RAM alone.  A synchronous port would cost a delayed write and a bypass in
logic per block RAM (on the ULX3S's 176 bank blocks, 520 flip-flops and 1,180
LUTs in the core's synthesis), and the bypass put the write-enable decoding
in front of the block's output register.  A read of the word written in the same clock may
then return anything; ``poison`` makes it return the inverted word in
simulation.
"""

from __future__ import annotations

from amaranth.back import rtlil
from amaranth.hdl import Array, Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData, ReadPort, WritePort
from amaranth.lib.wiring import Out

from .ramports import NO_RW_CHECK, RegisteredRead

__all__ = ["SlicedRAM", "sliced_banks"]


class SlicedRAM(wiring.Component):
    """One memory of ``data``'s shape, built from slices of ``slice_bits`` bits.

    Parameters
    ----------
    data : MemoryData
        Shape (unsigned), depth and (simulation) contents.
    slice_bits : int
        Width of each slice memory (the last may be narrower).
    block_depth : int or None
        Split each slice into memories of this many words (a power of two;
        the last may be shallower), each with its own output register.
    poison : bool
        Simulation check: a read of a memory's word in the clock it is
        written returns the inverted word.

    Members
    -------
    read : Out(ReadPort.Signature)
        ``addr``, ``en`` in; ``data`` out one clock later (two with
        ``block_depth``), held while ``en`` is low (a word written in the same
        clock reads as anything: block RAMs without collision logic; as the
        old word in simulation, as the inverted word with ``poison``).
    write : Out(WritePort.Signature)
        ``addr``, ``data``, ``en`` (one bit: whole words).
    """

    def __init__(self, data: MemoryData, slice_bits: int = 4, block_depth: int | None = None,
                 *, poison: bool = False):
        if not isinstance(data, MemoryData):
            self._MustUse__silence = True
            raise TypeError(f"data must be a MemoryData, not {data!r}")
        width = data.shape.width
        if not 1 <= slice_bits <= width:
            self._MustUse__silence = True       # refused: nothing to elaborate
            raise ValueError(f"slice_bits must be in 1..{width} (the word width), not {slice_bits}")
        if block_depth is not None and (block_depth < 1 or block_depth & (block_depth - 1)):
            self._MustUse__silence = True
            raise ValueError(f"block_depth must be a power of two, not {block_depth}")
        self.memory_data = data
        self.slice_bits = slice_bits
        self.block_depth = block_depth
        self.poison = bool(poison)
        #: clocks from a read's address to its data
        self.read_latency = 1 if block_depth is None else 2
        aw = max(0, (data.depth - 1).bit_length())
        super().__init__({
            "read": Out(ReadPort.Signature(addr_width=aw, shape=data.shape)),
            "write": Out(WritePort.Signature(addr_width=aw, shape=data.shape)),
        })

    def elaborate(self, platform):
        m = Module()
        data, sb = self.memory_data, self.slice_bits
        width = data.shape.width
        words = [int(v) for v in data.init]
        outs = []
        for k, lo in enumerate(range(0, width, sb)):
            bits = min(sb, width - lo)
            part = MemoryData(shape=unsigned(bits), depth=data.depth,
                              init=[(v >> lo) & ((1 << bits) - 1) for v in words])
            if self.block_depth is None:
                rp, wp = self._memory(m, f"slice{k}", part)
                m.d.comb += [rp.addr.eq(self.read.addr), rp.en.eq(self.read.en),
                             wp.addr.eq(self.write.addr), wp.en.eq(self.write.en),
                             wp.data.eq(self.write.data[lo:lo + bits])]
                outs.append(rp.data)
            else:
                outs.append(self._blocks(m, f"slice{k}", part, lo))
        m.d.comb += self.read.data.eq(Cat(*outs))
        return m

    def _memory(self, m, name, data):
        """A memory with a registered asynchronous read port: ``(read, write)``."""
        m.submodules[name] = mem = Memory(data, attrs=NO_RW_CHECK)
        wp = mem.write_port()
        rp = RegisteredRead(m, mem.read_port(domain="comb"), name,
                            poison=wp if self.poison else None)
        return rp, wp

    def _blocks(self, m, name, part, lo):
        """Memories of ``block_depth`` words for one slice, each read into a
        register; returns the read data (the selected register)."""
        bd = self.block_depth
        bw = bd.bit_length() - 1
        bits = part.shape.width
        en1 = Signal(name=f"{name}_en1")             # a read was issued last clock
        sel = [Signal(range(max(2, -(-part.depth // bd))), name=f"{name}_sel{s}") for s in (1, 2)]
        m.d.sync += en1.eq(self.read.en)
        with m.If(self.read.en):
            m.d.sync += sel[0].eq(self.read.addr[bw:])
        with m.If(en1):
            m.d.sync += sel[1].eq(sel[0])
        regs = []
        for q, start in enumerate(range(0, part.depth, bd)):
            depth = min(bd, part.depth - start)
            block = MemoryData(shape=part.shape, depth=depth, init=list(part.init)[start:start + depth])
            rp, wp = self._memory(m, f"{name}_b{q}", block)
            m.d.comb += [rp.addr.eq(self.read.addr[:bw]), rp.en.eq(self.read.en),
                         wp.addr.eq(self.write.addr[:bw]),
                         wp.en.eq(self.write.en & (self.write.addr[bw:] == q)),
                         wp.data.eq(self.write.data[lo:lo + bits])]
            # (no reset, no initial value: Yosys would add logic for them)
            reg = Signal(bits, name=f"{name}_q{q}", reset_less=True,
                         attrs={"init": rtlil.Undef(bits)})
            with m.If(en1):
                m.d.sync += reg.eq(rp.data)
            regs.append(reg)
        return Array(regs)[sel[1]] if len(regs) > 1 else regs[0]


def sliced_banks(slice_bits: int = 4, block_depth: int | None = None):
    """A ``bank_memory`` builder for :class:`~neurocorex.hdl.core.Core`:
    ``Core(config, dual_port=True, bank_memory=sliced_banks())`` (the core
    reads the banks' ``read_latency``: 2 with ``block_depth``, and passes
    ``poison`` with ``poison_collisions``)."""
    def build(data, granularity, *, poison=False):
        if granularity is not None:
            raise ValueError("sliced banks write whole words")
        bank = SlicedRAM(data, slice_bits, block_depth, poison=poison)
        return bank, bank.read, bank.write
    return build
