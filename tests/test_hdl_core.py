"""The gateware core against the golden model, bit for bit, in Amaranth's simulator."""

import random

import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from neurocorex.formats import CoreConfig
from neurocorex.regmap import Region, Counter, address, index_bits, REGION_BITS
from neurocorex.sim.busmodel import BusCore
from neurocorex.sim.testnets import KINDS, random_case, reference
from neurocorex.sim.amaranth_core import CoreDriver, CoreHung, run_case
from neurocorex.hdl.core import Core
from neurocorex.hdl.sliced import sliced_banks
from neurocorex.hdl.spram import DOUBLE_PUMPED_CORE


#: accumulator memories as the ULX3S builds them
_LUT_RAM = {"ram_style": "distributed"}


def _check(case, **core_options):
    want = reference(case)
    got = run_case(case, core=Core(case.config, **core_options) if core_options else None)
    for t, (w, g) in enumerate(zip(want["spikes"], got["spikes"])):
        assert g == w, f"{case.name}: spikes differ in step {t}"
    assert len(got["spikes"]) == len(want["spikes"])
    assert got["reads"] == want["reads"], case.name
    ib = index_bits(case.config)
    bad = [(a >> ib, a & ((1 << ib) - 1), want["final"][a], got["final"][a])
           for a in want["final"] if want["final"][a] != got["final"][a]]
    assert not bad, f"{case.name}: (region, index, model, rtl) {bad[:8]}"
    return want


# seeds 1..6 force one feature each (KINDS[seed % 7]): saturation, refractory,
# all inputs, all neurons, masks, learning off and on mid-run
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_network_bit_exact(seed):
    want = _check(random_case(seed))
    assert any(want["spikes"])


def test_rows_of_three_words_bit_exact():
    """N=20: three words per row and bank, so rows follow each other without a gap."""
    _check(random_case(300, neurons=20, inputs=4, steps=10))


@pytest.mark.parametrize("seed", [4, 8])
def test_dual_port_banks_bit_exact(seed):
    """Read-modify-write in one clock (separate read and write ports)."""
    _check(random_case(seed), dual_port=True)


@pytest.mark.parametrize("seed,dual_port", [(4, False), (6, False), (3, True)])
def test_no_read_depends_on_a_write_collision(seed, dual_port):
    """The block RAMs have no collision logic: a read of the address written in
    the same clock may return anything.  With every such read poisoned (the
    word inverted) the core must stay bit-exact."""
    _check(random_case(seed), poison_collisions=True, dual_port=dual_port)


@pytest.mark.parametrize("neurons", [8, 16])
@pytest.mark.parametrize("options", [{}, DOUBLE_PUMPED_CORE,
                                     {"dual_port": True, "bank_memory": sliced_banks(8, 4)}],
                         ids=["default", "no-bank-stage", "registered-blocks"])
def test_short_rows_bit_exact(neurons, options):
    """One and two words per row and bank: rows start one clock apart or back to
    back, with every colliding read poisoned, with and without the bank output
    stage (``register_bank_outputs``, off for the double-pumped banks), and
    with banks that register their read data (two stages before the update:
    one- and two-word rows wait for the first word's accumulator write)."""
    _check(random_case(310 + neurons, neurons=neurons, inputs=5, steps=10),
           poison_collisions=True, **options)


@pytest.mark.parametrize("block_depth,stage", [(None, True), (2, True), (2, False)],
                         ids=["slices", "registered-blocks", "registered-blocks-no-stage"])
def test_sliced_banks_bit_exact(block_depth, stage):
    """Dual-port banks each built from 4-bit memories; with ``block_depth``
    each slice also split into registered 2-word memories (this case's banks
    hold 8 words: 4 blocks) that read in two clocks, with the core's bank
    output stage after them (three clocks to the update) or without it."""
    _check(random_case(11), poison_collisions=True, dual_port=True,
           bank_memory=sliced_banks(4, block_depth), register_bank_outputs=stage)


def test_banks_reading_in_three_clocks_are_refused():
    """The core takes bank memories that read in one or two clocks."""
    build = sliced_banks(8, 16)

    def slow_banks(data, granularity):
        bank, rp, wp = build(data, granularity)
        bank.read_latency = 3
        return bank, rp, wp

    core = Core(CoreConfig(neurons=8, inputs=4), dual_port=True, bank_memory=slow_banks)
    with pytest.raises(ValueError, match="bank memories must read in 1 or 2 clocks, not 3"):
        Fragment.get(core, None)


@pytest.mark.parametrize("options", [pytest.param({}, marks=pytest.mark.slow),
                                     {"dual_port": True, "bank_memory": sliced_banks(8, 64),
                                      "overlap_rows": True, "accumulator_attrs": _LUT_RAM}],
                         ids=["single", "ulx3s"])
def test_eight_banks_bit_exact(options):
    """Eight synapse banks (16 posts per row word), also as the ULX3S builds
    them: dual-port, two 8-bit slices each split into registered blocks
    (64 words here: N=33, M=6 gives 144 words per bank, 3 blocks), with the
    early rows and the accumulators in LUT RAM (read from an address register)."""
    _check(random_case(5, neurons=33, steps=12, learning=None if not options else False,
                       rewrites=0.3 if options else 0.0),
           banks=8, poison_collisions=True, **options)


def test_no_bank_output_stage_bit_exact():
    """``Core(**DOUBLE_PUMPED_CORE)`` with plain dual-port memories: the update
    stage takes the banks' read data directly."""
    _check(random_case(5), poison_collisions=True, **DOUBLE_PUMPED_CORE)


_OVERLAP_PORTS = [{}, {"dual_port": True}, DOUBLE_PUMPED_CORE]


@pytest.mark.parametrize("seed,neurons", [(21, None), (23, 26),
                                           pytest.param(25, 40, marks=pytest.mark.slow),
                                           pytest.param(27, 33, marks=pytest.mark.slow)])
@pytest.mark.parametrize("ports", _OVERLAP_PORTS, ids=["single", "dual", "no-bank-stage"])
def test_overlap_rows_bit_exact(seed, neurons, ports):
    """``overlap_rows``: the next step's recurrent rows during the pass, with
    learning off (switched on again in ``learn_toggle`` cases) and synapse
    writes between steps, which make the early sums stale."""
    _check(random_case(seed, neurons=neurons, steps=None if neurons is None else 16,
                       learning=False, rewrites=0.3),
           overlap_rows=True, poison_collisions=True, **ports)


@pytest.mark.parametrize("neurons", [8, 16])
@pytest.mark.parametrize("options", [{}, {"dual_port": True, "accumulator_attrs": _LUT_RAM},
                                     {"dual_port": True, "register_bank_outputs": False}],
                         ids=["single", "lut-accumulators", "registered-list-no-stage"])
def test_overlap_rows_short_rows_bit_exact(neurons, options):
    """Early rows of one and two words, and a synapse write after every step;
    also with the accumulators in LUT RAM, whose read address is registered
    instead of their data (a write meeting that address is poisoned too), and
    with the list entry registered (dual-port) but no bank output stage: a
    one-word row ends two clocks after its start, when the list entry of the
    next is not yet in its register."""
    _check(random_case(330 + neurons, neurons=neurons, inputs=5, steps=10, learning=False,
                       rewrites=1.0), overlap_rows=True, poison_collisions=True, **options)


def test_overlap_rows_save_clocks():
    """The early rows run (the steps take fewer clocks) and change no spike."""
    case = random_case(4, neurons=24, inputs=8, steps=6, learning=False)
    plain = run_case(case, core=Core(case.config, dual_port=True), readback=False)
    early = run_case(case, core=Core(case.config, dual_port=True, overlap_rows=True),
                     readback=False)
    assert early["spikes"] == plain["spikes"]
    assert sum(map(len, plain["spikes"])) > 0
    saved = [p - e for p, e in zip(plain["cycles"], early["cycles"])]
    # the first step takes its spikes' rows on (the early rows of the second
    # one); every later step saves
    assert saved[0] < 0 and all(x > 0 for x in saved[1:]), saved
    assert sum(saved) > 0, saved


_MANY_OPTIONS = [{}, DOUBLE_PUMPED_CORE, {}, {"dual_port": True}]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 128))
def test_random_networks_bit_exact_many(seed):
    _check(random_case(seed), **_MANY_OPTIONS[seed % 4])


@pytest.mark.slow
@pytest.mark.parametrize("seed,n,m,wb", [(200, 37, 21, 7), (201, 24, 40, 5), (202, 64, 16, 7),
                                         (203, 1, 0, 7), (204, 3, 1, 15)])
def test_larger_networks_bit_exact(seed, n, m, wb):
    _check(random_case(seed, neurons=n, inputs=m, weight_bits=wb, steps=12))


def test_cases_cover_every_feature():
    """The generator's cases do what their names promise (checked on the model)."""
    import numpy as np
    seen = set()
    for seed in range(1, 8):
        case = random_case(seed)
        kind = KINDS[seed % len(KINDS)]
        want = reference(case)
        n = case.config.neurons
        if kind == "all_neurons":
            assert any(len(s) == n for s in want["spikes"])
        if kind == "all_inputs":
            m = case.config.inputs
            assert any(op[0] == "step" and len(set(op[1])) == m and len(op[1]) > m for op in case.ops)
        if kind == "saturate":
            core = BusCore(case.config)
            for a, d in case.image:
                core.write(a, d)
            for op in case.ops:
                if op[0] == "step":
                    core.step(sorted(set(op[1])))
                elif op[0] == "write":
                    core.write(op[1], op[2])
            md = core.model
            w = np.concatenate([md.w_rec.ravel(), md.w_in.ravel()])
            assert (w == md.stdp["w_min"]).any() and (w == md.stdp["w_max"]).any()
        if kind == "learn_toggle":
            assert any(op[0] == "write" and op[2] == 0 for op in case.ops)
        seen.add(kind)
    assert seen == set(KINDS)


def test_spike_backpressure_loses_nothing():
    case = random_case(4)              # every neuron spikes in many steps
    case.spike_ready = 0.25
    _check(case)


@pytest.mark.parametrize("options", [{}, {"dual_port": True, "bank_memory": sliced_banks(4, 2)}],
                         ids=["default", "ecp5"])
def test_bus_decode_matches_busmodel(options):
    """Random reads and writes over every region, unmapped addresses included;
    also with the ECP5 options (registered memory words and two-clock banks:
    bus reads take a clock more)."""
    cfg = CoreConfig(5, 3, 6)
    ib = index_bits(cfg)
    rng = random.Random(7)
    ref = BusCore(cfg)
    # a pool of addresses (mapped ones mostly, some unmapped) so that reads meet writes
    pool = []
    for _ in range(80):
        region = rng.randrange(1 << REGION_BITS) if rng.random() < 0.15 else rng.randrange(8)
        index = rng.randrange(1 << ib) if rng.random() < 0.1 else rng.randrange(40)
        pool.append((region << ib) | index)
    pool.append(address(cfg, Region.CONTROL, 0))
    ops = []
    for _ in range(400):
        addr = rng.choice(pool)
        write = rng.random() < 0.4 and addr >> ib != Region.COUNTER or rng.random() < 0.02
        data = rng.choice([0xFFFFFFFF, rng.randrange(1 << 32), rng.randrange(256)])
        ops.append((addr, data, write))
    want = []
    for addr, data, write in ops:
        if write:
            ref.write(addr, data)
            want.append(0)
        else:
            want.append(ref.read(addr))
    core = Core(cfg, **options)
    drv = CoreDriver(core)
    got = []

    async def bench(ctx):
        for addr, data, write in ops:
            got.append(await drv.bus(ctx, addr, data, write))

    sim = Simulator(core)
    drv.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    assert sum(1 for (a, d, w), g in zip(ops, got) if not w and g) > 20


def test_cycle_counters():
    cfg = CoreConfig(6, 4)
    core = Core(cfg)
    drv = CoreDriver(core)
    res = {}

    async def bench(ctx):
        await drv.write(ctx, address(cfg, Region.W_IN, 0), 40)
        busy = 0
        for axons in ([0, 1], [], [2, 3, 0]):
            await drv.step(ctx, axons)
            last = await drv.read(ctx, address(cfg, Region.COUNTER, Counter.LAST_STEP_CYCLES))
            assert last > 0
            busy += last
        res["busy"] = await drv.read(ctx, address(cfg, Region.COUNTER, Counter.BUSY_CYCLES))
        res["busy_want"] = busy
        res["inputs"] = await drv.read(ctx, address(cfg, Region.COUNTER, Counter.INPUT_SPIKES))
        await drv.write(ctx, address(cfg, Region.COUNTER, 0), 0)
        res["cleared"] = [await drv.read(ctx, address(cfg, Region.COUNTER, c)) for c in Counter]

    sim = Simulator(core)
    drv.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    assert res["busy"] == res["busy_want"]
    assert res["inputs"] == 5
    assert res["cleared"] == [0] * len(Counter)


@pytest.mark.parametrize("max_cycles,hung", [(None, False), (20, True)])
def test_driver_stops_a_step_that_does_not_end(max_cycles, hung):
    """A core that never ends a step (here: a step longer than the driver
    allows) stops the simulation with CoreHung instead of running forever."""
    cfg = CoreConfig(6, 4)
    core = Core(cfg)
    drv = CoreDriver(core, max_cycles=max_cycles)
    done = []

    async def bench(ctx):
        await drv.step(ctx, [0, 1, 2])
        done.append(drv.cycles)

    sim = Simulator(core)
    drv.add_to(sim)
    sim.add_testbench(bench)
    if hung:
        with pytest.raises(CoreHung, match="in 20 clock cycles"):
            sim.run()
        assert not done
    else:
        sim.run()
        assert done and done[0] > 20


@pytest.mark.parametrize("cfg", [CoreConfig(8, 4), CoreConfig(1, 0), CoreConfig(12, 7, 4)])
def test_core_converts_to_verilog(cfg):
    text = verilog.convert(Core(cfg, synapse_attrs={"ram_style": "huge"}), name="nx_core")
    assert "module nx_core" in text
    assert "ram_style" in text


@pytest.mark.parametrize("extreme", ["min", "max"])
def test_accumulator_extremes(extreme):
    """Every source spikes with the extreme weight: the exact sum needs every accumulator bit."""
    import numpy as np
    from neurocorex.sim.testnets import Case, image_writes
    cfg = CoreConfig(3, 5, 7)
    n, m = cfg.neurons, cfg.inputs
    w = cfg.weight_range[0 if extreme == "min" else 1]
    params = {"threshold": np.full(n, -32768), "v_reset": np.zeros(n, int),
              "v_rest": np.zeros(n, int), "alpha_v": np.zeros(n, int),
              "alpha_i": np.zeros(n, int), "t_ref": np.zeros(n, int)}
    stdp = {"enabled": 0, "a_plus": 0, "a_minus": 0, "alpha_pre": 0, "alpha_post": 0,
            "jump_pre": 0, "jump_post": 0, "w_min": cfg.weight_range[0], "w_max": cfg.weight_range[1]}
    image = image_writes(cfg, np.full((n, n), w), np.zeros((n, n), bool), np.full((m, n), w),
                         np.zeros((m, n), bool), params, stdp, {"w_shift": 2})
    case = Case(f"acc-{extreme}", cfg, image, [("step", list(range(m)))] * 4)
    want = _check(case)
    i_addr = address(cfg, Region.STATE, 1 * n)
    assert want["final"][i_addr] == (w * (n + m) * 4) & 0xFFFF    # I of neuron 0 = sum << 2


def test_out_of_range_and_repeated_events():
    """M=5 has a 3-bit index: events 5..7 do not exist and change nothing;
    repeated events of one axon (adjacent or not) count once."""
    cfg = CoreConfig(4, 5)
    core = Core(cfg)
    drv = CoreDriver(core)
    ref = BusCore(cfg)
    writes = [(address(cfg, Region.W_IN, k * 4 + k % 4), 63) for k in range(5)]
    writes += [(address(cfg, Region.GLOBAL, 0), 8)]
    writes += [(address(cfg, Region.PARAM, j), 1000) for j in range(4)]
    steps = [[5, 6, 7], [1, 7], [], [0, 4, 6, 4], [2, 2, 2, 3, 2, 3, 3, 7, 3]]
    got = []

    async def bench(ctx):
        for a, d in writes:
            await drv.write(ctx, a, d)
        for axons in steps:
            got.append(await drv.step(ctx, axons))
        got.append(await drv.read(ctx, address(cfg, Region.COUNTER, Counter.INPUT_SPIKES)))

    sim = Simulator(core)
    drv.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    for a, d in writes:
        ref.write(a, d)
    want = [ref.step([k for k in axons if k < cfg.inputs]) for axons in steps]
    want.append(ref.read(address(cfg, Region.COUNTER, Counter.INPUT_SPIKES)))
    assert got == want
    assert any(got[:-1]) and got[-1] == 5
