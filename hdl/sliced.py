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
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, MemoryData, ReadPort, WritePort
from amaranth.lib.wiring import Out

__all__ = ["SlicedRAM", "sliced_banks"]


class SlicedRAM(wiring.Component):
    """One memory of ``data``'s shape, built from slices of ``slice_bits`` bits.

    Parameters
    ----------
    data : MemoryData
        Shape (unsigned), depth and (simulation) contents.
    slice_bits : int
        Width of each slice memory (the last may be narrower).

    Members
    -------
    read : Out(ReadPort.Signature)
        ``addr``, ``en`` in; ``data`` out one clock later, held while ``en``
        is low (a word written in the same clock reads as the old word or
        anything: block RAMs without collision logic).
    write : Out(WritePort.Signature)
        ``addr``, ``data``, ``en`` (one bit: whole words).
    """

    def __init__(self, data: MemoryData, slice_bits: int = 4):
        if not isinstance(data, MemoryData):
            self._MustUse__silence = True
            raise TypeError(f"data must be a MemoryData, not {data!r}")
        width = data.shape.width
        if not 1 <= slice_bits <= width:
            self._MustUse__silence = True       # refused: nothing to elaborate
            raise ValueError(f"slice_bits must be in 1..{width} (the word width), not {slice_bits}")
        self.memory_data = data
        self.slice_bits = slice_bits
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
            m.submodules[f"slice{k}"] = mem = Memory(part)
            rp, wp = mem.read_port(), mem.write_port()
            m.d.comb += [rp.addr.eq(self.read.addr), rp.en.eq(self.read.en),
                         wp.addr.eq(self.write.addr), wp.en.eq(self.write.en),
                         wp.data.eq(self.write.data[lo:lo + bits])]
            outs.append(rp.data)
        m.d.comb += self.read.data.eq(Cat(*outs))
        return m


def sliced_banks(slice_bits: int = 4):
    """A ``bank_memory`` builder for :class:`~neurocorex.hdl.core.Core`:
    ``Core(config, dual_port=True, bank_memory=sliced_banks())``."""
    def build(data, granularity):
        if granularity is not None:
            raise ValueError("sliced banks write whole words")
        bank = SlicedRAM(data, slice_bits)
        return bank, bank.read, bank.write
    return build
