"""SlicedRAM: a memory built from narrow slices behaves as one plain Memory."""

import random

import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib.memory import Memory, MemoryData
from amaranth.sim import Simulator

from neurocorex.hdl.sliced import SlicedRAM


def _compare(seed, *, width=16, depth=40, slice_bits=4, block_depth=None, cycles=300,
             ref_registered=None):
    """Drive a SlicedRAM and a plain Memory with the same random reads and
    writes; return the clocks where their read data differ.  With
    ``block_depth`` the plain memory's read data goes through one more
    register, loaded the clock after a read is issued (``ref_registered``
    overrides that)."""
    rng = random.Random(seed)
    init = [rng.randrange(1 << width) for _ in range(depth)]
    m = Module()
    m.submodules.dut = dut = SlicedRAM(MemoryData(shape=unsigned(width), depth=depth, init=init),
                                       slice_bits, block_depth)
    m.submodules.ref = ref = Memory(shape=unsigned(width), depth=depth, init=init)
    rp, wp = ref.read_port(), ref.write_port()
    ref_data = rp.data
    if block_depth is not None if ref_registered is None else ref_registered:
        en1, ref_data = Signal(), Signal(width)
        m.d.sync += en1.eq(rp.en)
        with m.If(en1):
            m.d.sync += ref_data.eq(rp.data)
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
            if ctx.get(dut.read.data) != ctx.get(ref_data):
                bad.append(k)

    sim.add_testbench(bench)
    sim.run()
    return bad


@pytest.mark.parametrize("seed,width,slice_bits", [(1, 16, 4), (2, 16, 8), (3, 10, 4), (4, 16, 16),
                                                   (5, 7, 1)])
def test_sliced_ram_matches_a_plain_memory(seed, width, slice_bits):
    assert _compare(seed, width=width, slice_bits=slice_bits) == []


@pytest.mark.parametrize("seed,width,slice_bits,block_depth", [(6, 16, 8, 8), (7, 16, 4, 16),
                                                               (8, 10, 4, 64), (9, 8, 8, 1)])
def test_blocked_sliced_ram_matches_a_plain_memory_and_a_register(seed, width, slice_bits,
                                                                  block_depth):
    """Slices split into blocks of ``block_depth`` words (40 words: 5 blocks of
    8, 2.5 of 16, one shallower than 64, 40 of 1), each read into a register."""
    assert _compare(seed, width=width, slice_bits=slice_bits, block_depth=block_depth) == []


def test_blocked_sliced_ram_reads_two_clocks_late():
    """Compared with the plain memory's own read data (one clock), the blocked
    RAM differs: its data comes a clock later; and the slices alone differ
    from the registered reference."""
    assert _compare(10, slice_bits=8, block_depth=8, ref_registered=False) != []
    assert _compare(10, slice_bits=8, block_depth=None, ref_registered=True) != []


@pytest.mark.parametrize("block_depth", [0, 3, 12])
def test_bad_block_depth_is_refused(block_depth):
    with pytest.raises(ValueError, match="block_depth"):
        SlicedRAM(MemoryData(shape=unsigned(16), depth=8, init=[]), 8, block_depth)


@pytest.mark.parametrize("slice_bits", [0, -1, 17])
def test_bad_slice_width_is_refused(slice_bits):
    with pytest.raises(ValueError, match="slice_bits"):
        SlicedRAM(MemoryData(shape=unsigned(16), depth=8, init=[]), slice_bits)


@pytest.mark.parametrize("block_depth", [None, 4])
def test_poison_inverts_a_read_that_meets_a_write(block_depth):
    """With ``poison`` a read of the word written in the same clock returns the
    old word inverted (the hardware may return anything); the next reads are
    clean and the write took effect."""
    dut = SlicedRAM(MemoryData(shape=unsigned(8), depth=8, init=list(range(8))), 4, block_depth,
                    poison=True)
    got = []

    async def bench(ctx):
        # clock 0: read and write word 5; clock 1: read word 6; clock 2: read word 5
        for k, (ra, wen) in enumerate([(5, 1), (6, 0), (5, 0), (0, 0)]):
            ctx.set(dut.read.addr, ra)
            ctx.set(dut.read.en, k < 3)
            ctx.set(dut.write.addr, 5)
            ctx.set(dut.write.data, 0xAA)
            ctx.set(dut.write.en, wen)
            await ctx.tick()
            got.append(ctx.get(dut.read.data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    lat = dut.read_latency
    assert got[lat - 1:lat + 2] == [0x05 ^ 0xFF, 6, 0xAA]
