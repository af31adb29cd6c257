"""cocotb test of the core's Verilog against the golden model, bit for bit.

Run by ``tests/test_cocotb_core.py`` through ``cocotb_tools.runner`` on
Verilator and Icarus.  Settings come from the environment:

``NCX_CONFIG``   ``"N,M,weight_bits"`` of the Verilog under test
``NCX_SEEDS``    comma-separated seeds; one random network each
``NCX_STEPS``    time steps per network
``NCX_DESIGN``   ``core`` (default) or ``regfile`` (the plumbing stand-in)
``NCX_CASE_OPTIONS``  JSON object of further ``random_case`` arguments
``NCX_CORRUPT_REFERENCE``  if set, the reference is computed with a wrong
                 ``w_shift`` and the test passes only if that is reported

Each network is a :func:`neurocorex.sim.testnets.random_case` of the Verilog's
shape.  The test uploads it over the ``bus`` stream, runs its schedule
through ``events``/``spikes`` with random gaps and back-pressure, and compares
with :func:`neurocorex.sim.testnets.reference` (the golden model behind the
bus contract, :class:`neurocorex.sim.busmodel.BusCore`): the spikes of every
step, the mid-run reads, and every weight, parameter, state variable, trace,
setting and counter at the end.  Networks after the first start with writes
that restore the power-up contents, as the cases assume a fresh core.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from neurocorex.formats import CoreConfig
from neurocorex.hdl.layouts import (bus_request_layout, bus_response_layout, event_layout,
                                    spike_layout)
from neurocorex.regmap import Region, Counter, address, index_bits
from neurocorex.sim.busmodel import BusCore
from neurocorex.sim.testnets import random_case, readback_addresses, reference

from streams import StreamBench


def _settings():
    n, m, wb = (int(x) for x in os.environ.get("NCX_CONFIG", "8,4,7").split(","))
    seeds = [int(s) for s in os.environ.get("NCX_SEEDS", "1").split(",") if s]
    steps = int(os.environ.get("NCX_STEPS", "30"))
    design = os.environ.get("NCX_DESIGN", "core")
    if design not in ("core", "regfile"):
        raise ValueError(f"NCX_DESIGN must be core or regfile, not {design!r}")
    return CoreConfig(n, m, wb), seeds, steps, design


async def _start(dut, config, seed):
    Clock(dut.clk, 10, unit="ns").start()
    bench = StreamBench(
        dut,
        inputs={"bus": bus_request_layout(config), "events": event_layout(config)},
        outputs={"bus_resp": bus_response_layout(config), "spikes": spike_layout(config)},
        rng=random.Random(seed), gap=0.2, throttle=0.3)
    # inputs idle during reset; the loop starts once outputs are defined
    bench.idle_inputs()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    bench.start()
    return bench


def power_up_writes(config) -> list:
    """Bus writes that put a used core back into its power-up state.

    Every writable configuration address gets the value a fresh golden model
    reads there; then the state is reset and the counters cleared.
    """
    fresh = BusCore(config)
    ib = index_bits(config)
    skip = {int(Region.STATE), int(Region.INPUT_TRACE), int(Region.COUNTER)}
    out = [(a, fresh.read(a)) for a in readback_addresses(config) if (a >> ib) not in skip]
    out.append((address(config, Region.CONTROL, 0), 0))
    out.append((address(config, Region.COUNTER, 0), 0))
    return out


class _Runner:
    """Runs a :class:`~neurocorex.sim.testnets.Case` on the DUT through ``bench``."""

    def __init__(self, dut, bench, config):
        self.dut, self.bench, self.config = dut, bench, config
        self.step_cycles = []

    async def access(self, addr, data=0, write=False) -> int:
        self.bench.send("bus", addr=addr, wdata=data, write=int(write))
        resp = await self.bench.recv("bus_resp")
        return resp["rdata"]

    async def step(self, axons) -> list[int]:
        b = self.bench
        for k in axons:
            b.send("events", index=k, end=0)
        b.send("events", index=0, end=1)
        t0 = b.cycles
        got = []
        while True:
            s = await b.recv("spikes")
            if s["end"]:
                break
            got.append(s["index"])
        self.step_cycles.append(b.cycles - t0)
        return got

    async def run_case(self, case, *, fresh: bool) -> dict:
        """Run ``case``; returns what ``testnets.reference`` returns."""
        out = {"spikes": [], "reads": [], "final": {}}
        self.bench.outs["spikes"].throttle = 1.0 - case.spike_ready
        if not fresh:
            for addr, data in power_up_writes(self.config):
                await self.access(addr, data, write=True)
        for addr, data in case.image:
            await self.access(addr, data, write=True)
        for op in case.ops:
            if op[0] == "step":
                out["spikes"].append(await self.step(op[1]))
            elif op[0] == "write":
                await self.access(op[1], op[2], write=True)
            elif op[0] == "read":
                out["reads"].append(await self.access(op[1]))
        for addr in readback_addresses(self.config):
            out["final"][addr] = await self.access(addr)
        return out


def compare(case, got, want):
    """Assert the DUT's results equal the golden model's, naming the first difference."""
    for t, (g, w) in enumerate(zip(got["spikes"], want["spikes"])):
        assert g == w, f"{case.name} step {t}: spikes {g}, golden model {w}"
    assert len(got["spikes"]) == len(want["spikes"]) == case.steps
    assert got["reads"] == want["reads"], f"{case.name}: mid-run reads {got['reads']} != {want['reads']}"
    bad = [(hex(a), _describe(case.config, a), got["final"][a], w)
           for a, w in want["final"].items() if got["final"][a] != w]
    assert not bad, f"{case.name}: {len(bad)} readback mismatches, first: {bad[:8]}"


def _describe(config, addr):
    ib = index_bits(config)
    region, index = addr >> ib, addr & ((1 << ib) - 1)
    try:
        return f"{Region(region).name}[{index}]"
    except ValueError:
        return f"region {region}[{index}]"


@cocotb.test()
async def core_matches_golden_model(dut):
    """Random networks: spikes every step, mid-run reads, final weights and state, bit-exact."""
    config, seeds, steps, design = _settings()
    if design != "core":
        return
    bench = await _start(dut, config, seeds[0])
    runner = _Runner(dut, bench, config)
    total = 0
    for k, seed in enumerate(seeds):
        case = random_case(seed, neurons=config.neurons, inputs=config.inputs,
                           weight_bits=config.weight_bits, steps=steps,
                           **json.loads(os.environ.get("NCX_CASE_OPTIONS", "{}")))
        runner.step_cycles = []
        got = await runner.run_case(case, fresh=(k == 0))
        total += case.steps
        if os.environ.get("NCX_CORRUPT_REFERENCE"):
            # self-check of the comparison: a reference with a different
            # w_shift (same case otherwise) must be reported as a mismatch
            w_shift = address(config, Region.GLOBAL, 0)
            case.image = [(a, (d + 1) % 9 if a == w_shift else d) for a, d in case.image]
            try:
                compare(case, got, reference(case))
            except AssertionError as e:
                dut._log.info("mismatch reported as it should be: %s", str(e)[:200])
                continue
            raise AssertionError("a corrupted reference was not reported")
        want = reference(case)
        compare(case, got, want)
        cyc = runner.step_cycles
        dut._log.info("%s: %d steps, %d spikes bit-exact; step cycles min/mean/max %d/%.1f/%d",
                      case.name, case.steps, sum(map(len, want["spikes"])),
                      min(cyc), sum(cyc) / len(cyc), max(cyc))
    # the cycle counter is the RTL's own (the model has none): one more step,
    # and it must lie within the cycles the bench saw for that step
    await runner.step([])
    last = await runner.access(address(config, Region.COUNTER, Counter.LAST_STEP_CYCLES))
    assert 0 < last <= runner.step_cycles[-1] + 2, \
        f"LAST_STEP_CYCLES={last}, the bench saw {runner.step_cycles[-1]} cycles"
    assert total == steps * len(seeds)
    dut._log.info("%d networks, %d steps, %d cycles", len(seeds), total, bench.cycles)
    bench.stop()


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def regfile_plumbing(dut):
    """Stand-in design: bus writes read back, step events come back as spikes."""
    config, seeds, steps, design = _settings()
    if design != "regfile":
        return
    bench = await _start(dut, config, seeds[0])
    rng = random.Random(seeds[0])
    runner = _Runner(dut, bench, config)
    regs = {}
    for _ in range(200):
        a = rng.randrange(64)
        if rng.random() < 0.5:
            d = rng.getrandbits(32)
            assert await runner.access(a, d, write=True) == 0
            regs[a] = d
        else:
            assert await runner.access(a) == regs.get(a, 0)
    for _ in range(steps):
        axons = sorted(rng.sample(range(config.inputs), rng.randrange(config.inputs + 1)))
        got = await runner.step(axons)
        assert got == [k for k in axons if k < config.neurons]
    bench.stop()
