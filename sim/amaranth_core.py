"""Drive the gateware core (:class:`neurocorex.hdl.core.Core`) in Amaranth's simulator.

:class:`CoreDriver` holds the async helpers a testbench uses (bus reads and
writes, one step with input events, spike collection); :func:`run_case` runs a
:class:`~neurocorex.sim.testnets.Case` and returns what
:func:`~neurocorex.sim.testnets.reference` returns, plus the cycle count of
every step; :func:`preload` fills the core's memories with a network before
simulation (a back door for large benchmarks, where loading 131,072 synapses
through the bus would dominate the simulation time).
"""

from __future__ import annotations

import random

import numpy as np
from amaranth.sim import Simulator

from ..formats import CoreConfig, NEURON_PARAMS, STDP_FIELDS, GLOBAL_FIELDS
from ..regmap import synapse_word
from .testnets import Case, readback_addresses

__all__ = ["CoreDriver", "CoreHung", "run_case", "run_bench", "preload"]


class CoreHung(RuntimeError):
    """The simulated core did not finish a bus access or step in time."""


class CoreDriver:
    """Async helpers that talk to a :class:`Core` through its streams.

    Parameters
    ----------
    core : Core
        The core under simulation.
    spike_ready : float
        Probability that the spike consumer is ready in a cycle (1.0: always).
    seed : int
        Seed of the back-pressure pattern.
    max_cycles : int or None
        Clock cycles one bus access or step may take before the simulation
        stops with :class:`CoreHung` (default: eight clocks per synapse word
        and per neuron and axon, several times what a step with every row
        and column takes, divided by ``spike_ready``).
    """

    def __init__(self, core, *, spike_ready: float = 1.0, seed: int = 0,
                 max_cycles: int | None = None):
        self.core = core
        self.config: CoreConfig = core.config
        self.spike_ready = spike_ready
        self._rng = random.Random(seed)
        self.cycles = 0        # advanced by the background clock counter
        if max_cycles is None:
            cfg = self.config
            words = core.geometry.depth + cfg.neurons + cfg.inputs
            max_cycles = int((8 * words + 1000) / max(spike_ready, 0.05))
        self.max_cycles = max_cycles
        self._since = None     # cycle count at the start of the access or step in progress

    def add_to(self, sim: Simulator, *, clock: bool = True):
        """Add the clock (unless ``sim`` has its clocks already), and a background
        cycle counter, to ``sim``."""
        if clock:
            sim.add_clock(1e-6)

        async def count(ctx):
            async for _ in ctx.tick():
                self.cycles += 1
                if self._since is not None and self.cycles - self._since > self.max_cycles:
                    raise CoreHung(f"the core did not finish a bus access or step in "
                                   f"{self.max_cycles} clock cycles")
        sim.add_testbench(count, background=True)

    def _start(self):
        self._since = self.cycles

    def _end(self):
        self._since = None

    async def bus(self, ctx, addr: int, wdata: int = 0, write: bool = False) -> int:
        c = self.core
        self._start()
        ctx.set(c.bus.payload.addr, addr)
        ctx.set(c.bus.payload.wdata, wdata & 0xFFFFFFFF)
        ctx.set(c.bus.payload.write, int(write))
        ctx.set(c.bus.valid, 1)
        await ctx.tick().until(c.bus.ready)
        ctx.set(c.bus.valid, 0)
        ctx.set(c.bus_resp.ready, 1)
        (rdata,) = await ctx.tick().sample(c.bus_resp.payload.rdata).until(c.bus_resp.valid)
        ctx.set(c.bus_resp.ready, 0)
        self._end()
        return int(rdata)

    async def write(self, ctx, addr: int, data: int) -> None:
        await self.bus(ctx, addr, data, True)

    async def read(self, ctx, addr: int) -> int:
        return await self.bus(ctx, addr)

    async def step(self, ctx, axons=()) -> list:
        """Send the input events of one step, run it and return the spiking neurons."""
        c = self.core
        self._start()
        for k in axons:
            ctx.set(c.events.payload.index, k)
            ctx.set(c.events.payload.end, 0)
            ctx.set(c.events.valid, 1)
            await ctx.tick().until(c.events.ready)
        ctx.set(c.events.payload.end, 1)
        ctx.set(c.events.valid, 1)
        await ctx.tick().until(c.events.ready)
        ctx.set(c.events.valid, 0)
        out = []
        while True:
            ready = self.spike_ready >= 1.0 or self._rng.random() < self.spike_ready
            ctx.set(c.spikes.ready, int(ready))
            _, _, valid, index, end = await ctx.tick().sample(
                c.spikes.valid, c.spikes.payload.index, c.spikes.payload.end)
            if valid and ready:
                if end:
                    break
                out.append(int(index))
        ctx.set(c.spikes.ready, 0)
        self._end()
        return out


def run_case(case: Case, *, core=None, readback: bool = True, vcd: str | None = None,
             simulator=None) -> dict:
    """Run ``case`` on the gateware core in Amaranth's simulator.

    Returns ``{"spikes", "reads", "final", "cycles"}``; ``cycles`` has the
    clock cycles of every step, from its first input event to its end marker.
    ``simulator(core)``, if given, builds the simulator with its clocks (e.g.
    for synapse banks in a second, faster clock domain); by default the core
    gets one clock.
    """
    from ..hdl.core import Core
    core = Core(case.config) if core is None else core
    drv = CoreDriver(core, spike_ready=case.spike_ready)
    result = {"spikes": [], "reads": [], "final": {}, "cycles": []}

    async def bench(ctx):
        for addr, data in case.image:
            await drv.write(ctx, addr, data)
        for op in case.ops:
            if op[0] == "step":
                start = drv.cycles
                result["spikes"].append(await drv.step(ctx, op[1]))
                result["cycles"].append(drv.cycles - start)
            elif op[0] == "write":
                await drv.write(ctx, op[1], op[2])
            elif op[0] == "read":
                result["reads"].append(await drv.read(ctx, op[1]))
        if readback:
            for a in readback_addresses(case.config):
                result["final"][a] = await drv.read(ctx, a)

    sim = Simulator(core) if simulator is None else simulator(core)
    drv.add_to(sim, clock=simulator is None)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result


def preload(core, model) -> None:
    """Fill ``core``'s memories and registers from a golden model before simulation.

    ``model`` is a :class:`~neurocorex.sim.model.CoreModel` of the same
    configuration; weights, masks, parameters, STDP settings, globals, the
    neuron state and the pending spikes are copied.  Must be called before the core is elaborated.
    """
    cfg, geo = core.config, core.geometry
    n, m = cfg.neurons, cfg.inputs
    if model.config != cfg:
        raise ValueError("model and core configurations differ")
    banks = [[0] * geo.depth for _ in range(geo.banks)]
    sb = cfg.synapse_bits
    for rows, w, p, row_of in ((n, model.w_rec, model.plastic_rec, geo.rec_row),
                               (m, model.w_in, model.plastic_in, geo.in_row)):
        for i in range(rows):
            r = row_of(i)
            for j in range(n):
                b, a, lane = geo.locate(r, j)
                banks[b][a] |= synapse_word(cfg, int(w[i, j]), bool(p[i, j])) << (lane * sb)
    for b in range(geo.banks):
        core.mem[f"syn{b}"].init = banks[b]
    mask16 = 0xFFFF
    for f in NEURON_PARAMS:
        if f.name == "t_ref":
            continue
        core.mem[f.name].init = [int(x) & mask16 for x in model.params[f.name]]
    core.mem["ref_tref"].init = [(int(r) & 0xFF) | ((int(t) & 0xFF) << 8)
                                 for r, t in zip(model.ref, model.params["t_ref"])]
    core.mem["traces"].init = [(int(x) & 0xFF) | ((int(y) & 0xFF) << 8)
                               for x, y in zip(model.pre_trace, model.post_trace)]
    core.mem["v"].init = [int(x) & mask16 for x in model.v]
    core.mem["i"].init = [int(x) & mask16 for x in model.i]
    if m:
        core.mem["itrace"].init = [int(x) for x in model.input_trace]
    for f in STDP_FIELDS:
        core.reg_init[f.name] = int(model.stdp[f.name])
    for f in GLOBAL_FIELDS:
        core.reg_init[f.name] = int(model.globals[f.name])
    pending = [int(j) for j in np.flatnonzero(model.spikes)]
    core.mem["slist"].init = pending + [0] * (n + m - len(pending))
    core.reg_init["pending_spikes"] = len(pending)


def run_bench(core, inputs, *, spike_ready: float = 1.0) -> dict:
    """Run ``inputs`` (bool array (steps, M)) on a (preloaded) core.

    Returns ``{"spikes": [[j...] per step], "cycles": [per step],
    "step_cycles": [LAST_STEP_CYCLES per step]}``.
    """
    from ..regmap import Counter, Region, address
    drv = CoreDriver(core, spike_ready=spike_ready)
    out = {"spikes": [], "cycles": [], "step_cycles": []}
    cfg = core.config

    async def bench(ctx):
        for row in np.asarray(inputs, bool):
            start = drv.cycles
            out["spikes"].append(await drv.step(ctx, [int(k) for k in np.flatnonzero(row)]))
            out["cycles"].append(drv.cycles - start)
            out["step_cycles"].append(
                await drv.read(ctx, address(cfg, Region.COUNTER, Counter.LAST_STEP_CYCLES)))

    sim = Simulator(core)
    drv.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    return out
