"""UART receiver and transmitter against a Python model of the line."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from neurocorex.hdl.uart import UARTRx, UARTTx, divisor_for


def line_waveform(frames, bit_cycles, *, idle=5, rng=None, glitches=False, gap=(0, 0)):
    """Samples (one per clock) of 8N1 frames ``(byte, stop_bit)`` at ``bit_cycles``
    (may be fractional: a baud mismatch).  With ``glitches``, one clock of every
    bit is inverted at a random place, and long idle gaps get a 1-clock low pulse."""
    rng = rng or random.Random(0)
    out = [1] * idle
    t = float(len(out))
    for byte, stop in frames:
        bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
        start = t
        for k, b in enumerate(bits):
            end = start + (k + 1) * bit_cycles
            n = int(round(end)) - len(out)
            seg = [b] * n
            if glitches and n >= 3:
                # anywhere in the bit, except the second half of the stop bit, where a
                # glitch would look like the next start edge
                seg[rng.randrange(n if k < 9 else n // 2)] ^= 1
            out += seg
        t = start + 10 * bit_cycles
        pause = rng.randint(*gap)
        idle_seg = [1] * (pause + 2)
        if glitches and pause >= bit_cycles + 4:     # at least one bit time before the next start
            idle_seg[rng.randrange(2, pause - int(bit_cycles))] = 0
        out += idle_seg
        t = len(out)
    return out + [1] * (3 * int(bit_cycles) + 5)


class RxPlayer(wiring.Component):
    """Plays a waveform into a UARTRx and stores the received bytes."""

    done: Out(1)
    count: Out(16)

    def __init__(self, wave, divisor, depth=512):
        self.wave, self.divisor, self.depth = wave, divisor, depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.wave = wave = Memory(shape=1, depth=len(self.wave), init=self.wave)
        m.submodules.got = self.got = got = Memory(shape=9, depth=self.depth, init=[])
        rp, wp = wave.read_port(domain="comb"), got.write_port()
        pos = Signal(range(len(self.wave) + 1))
        m.d.comb += [rp.addr.eq(pos), rx.rx.eq(rp.data | (pos >= len(self.wave))),
                     self.done.eq(pos >= len(self.wave))]
        with m.If(~self.done):
            m.d.sync += pos.eq(pos + 1)
        with m.If(rx.out.valid):
            m.d.comb += [wp.addr.eq(self.count), wp.data.eq(rx.out.payload), wp.en.eq(1)]
            m.d.sync += self.count.eq(self.count + 1)
        return m


def receive(wave, divisor):
    dut = RxPlayer(wave, divisor)
    res = []

    async def tb(ctx):
        await ctx.tick().until(dut.done)
        await ctx.tick().repeat(4 * divisor)
        n = ctx.get(dut.count)
        for i in range(n):
            v = ctx.get(dut.got.data[i])
            res.append((v & 0xFF, v >> 8))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return res


@pytest.mark.parametrize("divisor,skew", [(4, 1.0), (8, 1.02), (8, 0.98), (16, 1.0), (13, 1.015)])
def test_rx_bytes_with_baud_mismatch(divisor, skew):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(60)]
    wave = line_waveform([(b, 1) for b in data], divisor * skew, rng=rng, gap=(0, 3))
    assert receive(wave, divisor) == [(b, 0) for b in data]


@pytest.mark.parametrize("divisor", [8, 16])
def test_rx_ignores_one_clock_glitches(divisor):
    rng = random.Random(7)
    data = [rng.randrange(256) for _ in range(60)]
    wave = line_waveform([(b, 1) for b in data], divisor, rng=rng, glitches=True, gap=(0, 3 * divisor))
    assert receive(wave, divisor) == [(b, 0) for b in data]


def test_rx_flags_missing_stop_bit_and_resyncs():
    frames = [(0x55, 1), (0xA3, 0), (0x0F, 1), (0x00, 0), (0xC0, 1)]
    wave = line_waveform(frames, 8, gap=(2, 2))
    assert receive(wave, 8) == [(b, 1 - s) for b, s in frames]


def test_tx_bit_timing_back_to_back():
    divisor = 6
    data = [0x00, 0xFF, 0x5A, 0xC0, 0x81] * 4
    dut = UARTTx(divisor)
    line = []

    async def feeder(ctx):
        for b in data:
            ctx.set(dut.inp.valid, 1)
            ctx.set(dut.inp.payload, b)
            await ctx.tick().until(dut.inp.ready)
        ctx.set(dut.inp.valid, 0)

    async def sampler(ctx):
        for _ in range(10 * divisor * len(data) + 40):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(feeder)
    sim.add_testbench(sampler)
    sim.run()
    first = line.index(0)
    # decode at bit centres assuming exactly 10 bit times per byte, no gaps
    for k, b in enumerate(data):
        base = first + k * 10 * divisor + divisor // 2
        bits = [line[base + i * divisor] for i in range(10)]
        assert bits[0] == 0 and bits[9] == 1
        assert sum(bit << i for i, bit in enumerate(bits[1:9])) == b
    assert all(line[first + 10 * divisor * len(data):])     # idle high afterwards


def test_divisor_checks():
    assert divisor_for(12_000_000, 3_000_000) == 4
    with pytest.raises(ValueError, match="at least 4"):
        divisor_for(12_000_000, 6_000_000)
    with pytest.raises(ValueError, match="off"):
        divisor_for(10_000_000, 2_200_000)
