"""SlicedRAM: a memory built from narrow slices behaves as one plain Memory."""

import random

import pytest
from amaranth.hdl import Module, unsigned
from amaranth.lib.memory import Memory, MemoryData
from amaranth.sim import Simulator

from neurocorex.hdl.sliced import SlicedRAM


def _compare(seed, *, width=16, depth=40, slice_bits=4, cycles=300):
    """Drive a SlicedRAM and a plain Memory with the same random reads and
    writes; return the clocks where their read data differ."""
    rng = random.Random(seed)
    init = [rng.randrange(1 << width) for _ in range(depth)]
    m = Module()
    m.submodules.dut = dut = SlicedRAM(MemoryData(shape=unsigned(width), depth=depth, init=init),
                                       slice_bits)
    m.submodules.ref = ref = Memory(shape=unsigned(width), depth=depth, init=init)
    rp, wp = ref.read_port(), ref.write_port()
    sim = Simulator(m)
    sim.add_clock(1e-6)
    bad = []

    async def bench(ctx):
        for k in range(cycles):
            ra, wa = rng.randrange(depth), rng.randrange(depth)
            if rng.random() < 0.2:
                wa = ra                      # same-clock read and write of a word
            ren, wen, wd = rng.random() < 0.7, rng.random() < 0.5, rng.randrange(1 << width)
            for port, a, en in ((dut.read, ra, ren), (rp, ra, ren)):
                ctx.set(port.addr, a)
                ctx.set(port.en, en)
            for port in (dut.write, wp):
                ctx.set(port.addr, wa)
                ctx.set(port.data, wd)
                ctx.set(port.en, wen)
            await ctx.tick()
            if ctx.get(dut.read.data) != ctx.get(rp.data):
                bad.append(k)

    sim.add_testbench(bench)
    sim.run()
    return bad


@pytest.mark.parametrize("seed,width,slice_bits", [(1, 16, 4), (2, 16, 8), (3, 10, 4), (4, 16, 16),
                                                   (5, 7, 1)])
def test_sliced_ram_matches_a_plain_memory(seed, width, slice_bits):
    assert _compare(seed, width=width, slice_bits=slice_bits) == []


@pytest.mark.parametrize("slice_bits", [0, -1, 17])
def test_bad_slice_width_is_refused(slice_bits):
    with pytest.raises(ValueError, match="slice_bits"):
        SlicedRAM(MemoryData(shape=unsigned(16), depth=8, init=[]), slice_bits)
