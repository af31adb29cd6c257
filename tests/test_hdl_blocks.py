"""Blocks of the core, each against a Python reference in Amaranth's simulator."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from neurocorex.formats import (CoreConfig, decay, decay_trace, stdp_delta, saturate,
                                DECAY_ONE)
from neurocorex.regmap import synapse_word, synapse_fields
from neurocorex.hdl.divider import ConstDivider
from neurocorex.hdl.geometry import Geometry
from neurocorex.hdl.neuron import NeuronUnit, TraceUnit
from neurocorex.hdl.synapse import SynapseUpdate


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _run_pipeline(dut, params, inputs, streams, top=None):
    """Set ``params``, feed ``inputs`` one per clock (``None``: a clock without
    input) and collect, for each output stream ``name`` of ``streams`` (``{name:
    (latency, fields)}``), the valid outputs' ``fields`` until the pipeline has
    drained.  Checks that each stream's output of an input is valid exactly
    ``latency`` clocks after it went in (the core's write-back and drain timing
    rely on it).  ``top`` is simulated instead of ``dut`` if given."""
    got = {name: [] for name in streams}
    cycles = {name: [] for name in streams}
    drain = max(lat for lat, _ in streams.values()) + 1
    in_fields = {name for name, _ in dut.inp.payload.shape()}

    async def bench(ctx):
        for k, v in params.items():
            ctx.set(getattr(dut.params, k), v)
        for n, a in enumerate(inputs + [None] * drain):
            ctx.set(dut.inp.valid, a is not None)
            if a is not None:
                for k, v in a.items():
                    if k in in_fields:
                        ctx.set(getattr(dut.inp.payload, k), v)
            await ctx.tick()
            # after this tick the input of clock n has passed one register
            for name, (_, fields) in streams.items():
                port = getattr(dut, name)
                if ctx.get(port.valid):
                    got[name].append({k: ctx.get(getattr(port.payload, k)) for k in fields})
                    cycles[name].append(n + 1)

    _sim(top if top is not None else dut, bench)
    fed = [n for n, a in enumerate(inputs) if a is not None]
    for name, (lat, _) in streams.items():
        assert cycles[name] == [n + lat for n in fed], name
    return got


#: the NeuronUnit's late operand groups: tag port and the values read with it
_LATE = {"alpha_v_tag": ("alpha_v",), "trace_tag": ("pre", "post"), "ref_tag": ("ref", "t_ref"),
         "v_reset_tag": ("v_reset",)}


class _LateRams(Elaboratable):
    """A NeuronUnit whose late operands come from synchronous RAMs, one per
    group, addressed by the unit's tag and holding ``table[tag]``: the data
    arrives one clock after the address, as from the core's memories.

    ``wrong`` (``{tag port: (delay, offset)}``) models a mistaken read for a
    group: data ``delay`` clocks after the address (0: the same clock), or of
    tag ``tag + offset``."""

    def __init__(self, dut, table, wrong=None):
        self.dut, self.table, self.wrong = dut, table, dict(wrong or {})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        depth = 1 << dut.tag_bits
        for tag_name, fields in _LATE.items():
            delay, offset = self.wrong.get(tag_name, (1, 0))
            widths = [len(getattr(dut.late, f)) for f in fields]
            init = []
            for t in range(depth):
                word, pos = 0, 0
                for f, w in zip(fields, widths):
                    word |= (self.table[t][f] & ((1 << w) - 1)) << pos
                    pos += w
                init.append(word)
            mem = Memory(shape=unsigned(sum(widths)), depth=depth, init=init)
            m.submodules[f"ram_{tag_name}"] = mem
            rp = mem.read_port(domain="comb" if delay == 0 else "sync")
            m.d.comb += rp.addr.eq(getattr(dut.late, tag_name) + offset)
            data = rp.data
            for k in range(delay - 1):
                r = Signal.like(data, name=f"{tag_name}_d{k}")
                m.d.sync += r.eq(data)
                data = r
            pos = 0
            for f, w in zip(fields, widths):
                m.d.comb += getattr(dut.late, f).eq(data[pos:pos + w])
                pos += w
        return m


def _run_neuron_unit(dut, params, inputs, rng, wrong=None):
    """Run ``inputs`` (each with a distinct tag; ``None``: no input that clock)
    through ``dut`` with its late operands in synchronous RAMs; returns one
    dict of ``out`` and ``amounts`` fields per input, with its ``tag``."""
    table = []
    for t in range(1 << dut.tag_bits):
        # tags no input uses hold random values, which a wrong read would get
        table.append({"alpha_v": rng.randrange(65536), "pre": rng.randrange(256),
                      "post": rng.randrange(256), "ref": rng.randrange(256),
                      "t_ref": rng.randrange(256), "v_reset": rng.randrange(-32768, 32768)})
    for a in inputs:
        if a is not None:
            table[a["tag"]] = {k: a[k] for fields in _LATE.values() for k in fields}
    top = _LateRams(dut, table, wrong)
    got = _run_pipeline(dut, params, inputs, {
        "out": (dut.latency - 1, ("tag", "v", "v_we", "i", "ref", "spike", "pre", "post")),
        "amounts": (dut.latency, ("tag", "d", "q"))}, top=top)
    merged = []
    for o, q in zip(got["out"], got["amounts"]):
        assert o["tag"] == q["tag"]
        merged.append({**{k: int(v) for k, v in o.items()}, "d": int(q["d"]), "q": int(q["q"])})
    return merged


def _check_neuron(a, g, params):
    """``g`` (unit output) against the reference; with ``v_we`` low the unit
    leaves ``v`` to the caller, which keeps the old value."""
    want = neuron_reference(a, params)
    g = dict(g)
    v, v_we = g.pop("v"), g.pop("v_we")
    g.pop("tag")
    return {**g, "v": v if v_we else a["v"]} == want


def _s16(x):
    return saturate(x, -32768, 32767)


def neuron_reference(a, p):
    """Spec phase 3 and the neuron part of phase 4 for one neuron (ints)."""
    acc = a["acc"] << p["w_shift"]
    i_new = _s16(decay(a["i"], a["alpha_i"]) + acc)
    if a["ref"] > 0:
        v, ref, spike = a["v"], a["ref"] - 1, 0
    else:
        u = _s16(a["v"] - a["v_rest"])
        v = _s16(a["v_rest"] + decay(u, a["alpha_v"]) + i_new)
        spike = int(v >= a["threshold"])
        ref = a["t_ref"] if spike else 0
        if spike:
            v = a["v_reset"]
    pre = min(255, decay_trace(a["pre"], p["alpha_pre"]) + p["jump_pre"] * spike)
    post = min(255, decay_trace(a["post"], p["alpha_post"]) + p["jump_post"] * spike)
    return {"v": v, "i": i_new, "ref": ref, "spike": spike, "pre": pre, "post": post,
            "d": stdp_delta(p["a_minus"], post), "q": stdp_delta(p["a_plus"], pre)}


def _pick(rng, lo, hi):
    r = rng.random()
    if r < 0.1:
        return lo
    if r < 0.2:
        return hi
    if r < 0.25:
        return 0 if lo <= 0 <= hi else lo
    return rng.randint(lo, hi)


@pytest.mark.parametrize("seed,input_register", [(1, False), (2, False), (3, False), (4, False),
                                                 (5, False), (6, True), (7, True)])
def test_neuron_unit_matches_reference(seed, input_register):
    rng = random.Random(seed)
    acc_bits = 18
    dut = NeuronUnit(acc_bits, 8, input_register=input_register)
    # alpha over the whole 16-bit field: the bus can write values above 1.0;
    # w_shift's extremes (0 and 15) are among the seeds
    params = {"w_shift": {3: 0, 4: 15}.get(seed, rng.randint(0, 15)), "a_plus": rng.randint(0, 255),
              "a_minus": rng.randint(0, 255), "alpha_pre": _pick(rng, 0, 65535),
              "alpha_post": _pick(rng, 0, DECAY_ONE), "jump_pre": rng.randint(0, 255),
              "jump_post": rng.randint(0, 255)}
    inputs = []
    for tag in rng.sample(range(256), 200):
        inputs.append({
            "tag": tag, "acc": _pick(rng, -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1),
            "v": _pick(rng, -32768, 32767), "i": _pick(rng, -32768, 32767),
            "ref": rng.choice([0, 0, 0, 1, 2, 255]), "pre": _pick(rng, 0, 255),
            "post": _pick(rng, 0, 255), "threshold": _pick(rng, -32768, 32767),
            "v_reset": _pick(rng, -32768, 32767), "v_rest": _pick(rng, -32768, 32767),
            "alpha_v": _pick(rng, 0, 65535), "alpha_i": _pick(rng, 0, 65535),
            "t_ref": rng.randint(0, 255),
        })
        if seed % 2 and rng.random() < 0.1:
            inputs.append(None)        # clocks without input: late reads follow the neuron
    got = _run_neuron_unit(dut, params, inputs, rng)
    fed = [a for a in inputs if a is not None]
    assert [g["tag"] for g in got] == [a["tag"] for a in fed]
    spikes = refractory = 0
    for a, g in zip(fed, got):
        assert _check_neuron(a, g, params), (a, g, params)
        spikes += g["spike"]
        refractory += not g["v_we"]
    assert 0 < spikes < len(fed) and 0 < refractory < len(fed)   # every outcome exercised


@pytest.mark.parametrize("input_register", [False, True])
@pytest.mark.parametrize("group", list(_LATE))
@pytest.mark.parametrize("delay,offset", [(0, 0), (2, 0), (1, 1)])
def test_neuron_unit_wrong_late_reads_are_caught(group, delay, offset, input_register):
    """A late operand read one clock early or late, or of the next neuron,
    changes results: the reference test above would catch a unit that asked
    for an operand at the wrong clock or with the wrong tag."""
    rng = random.Random(11)
    dut = NeuronUnit(18, 8, input_register=input_register)
    params = {"w_shift": 4, "a_plus": 200, "a_minus": 100, "alpha_pre": 30000,
              "alpha_post": 20000, "jump_pre": 50, "jump_post": 60}
    inputs = [{"tag": t, "acc": rng.randint(-4000, 4000), "v": rng.randint(-3000, 3000),
               "i": rng.randint(-3000, 3000), "ref": rng.choice([0, 0, 3]), "pre": rng.randint(0, 255),
               "post": rng.randint(0, 255), "threshold": rng.randint(-500, 500),
               "v_reset": rng.randint(-32768, 32767), "v_rest": rng.randint(-1000, 1000),
               "alpha_v": rng.randint(0, 65535), "alpha_i": rng.randint(0, 65535),
               "t_ref": rng.randint(1, 255)} for t in range(48)]
    right = _run_neuron_unit(dut, params, inputs, random.Random(5))
    assert all(_check_neuron(a, g, params) for a, g in zip(inputs, right))
    dut = NeuronUnit(18, 8, input_register=input_register)
    wrong = _run_neuron_unit(dut, params, inputs, random.Random(5), {group: (delay, offset)})
    bad = sum(not _check_neuron(a, g, params) for a, g in zip(inputs, wrong))
    assert bad >= len(inputs) // 8


@pytest.mark.parametrize("w_shift", [0, 1, 5, 15])
def test_neuron_unit_current_edges(w_shift):
    """Weight sums whose shifted value lies at the edge of the range the unit
    clamps it to, against currents that decay to nearly +-2**16 (alpha near 2.0)."""
    acc_bits = 18
    dut = NeuronUnit(acc_bits, 8)
    params = {"w_shift": w_shift, "a_plus": 3, "a_minus": 5, "alpha_pre": 1000,
              "alpha_post": 2000, "jump_pre": 9, "jump_post": 11}
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    accs = set()
    for edge in (1 << 15, 1 << 16, 1 << 17, 1 << 18):
        for base in (edge >> w_shift, -(edge >> w_shift)):
            accs.update(min(hi, max(lo, base + d)) for d in (-2, -1, 0, 1))
    inputs = []
    for acc in sorted(accs):
        for i, alpha_i in ((32767, 65535), (-32768, 65535), (-32768, 65534), (12345, 0)):
            inputs.append({"tag": len(inputs), "acc": acc, "v": 100, "i": i, "ref": 0,
                           "pre": 10, "post": 20, "threshold": 32767, "v_reset": 0,
                           "v_rest": -32768, "alpha_v": 65535, "alpha_i": alpha_i, "t_ref": 2})
    assert len(inputs) <= 256
    got = _run_neuron_unit(dut, params, inputs, random.Random(w_shift))
    assert len(got) == len(inputs)
    for a, g in zip(inputs, got):
        assert _check_neuron(a, g, params), (a, g, params)


def test_unit_latencies_keep_the_core_write_schedule():
    """The core writes d and q of neuron j and q of axon j+2 in one clock to
    three different amount memories (hdl/core.py, B >= 4 banks): that holds
    only while the trace unit is exactly two clocks shorter than the neuron unit."""
    assert NeuronUnit.LATENCY - TraceUnit.LATENCY == 2


@pytest.mark.parametrize("input_register", [False, True])
def test_trace_unit_matches_reference(input_register):
    rng = random.Random(3)
    dut = TraceUnit(8, input_register=input_register)
    params = {"alpha_pre": 30000, "jump_pre": 77, "a_plus": 201}
    inputs = [{"tag": t, "x": _pick(rng, 0, 255), "spike": rng.randint(0, 1)} for t in range(100)]
    got = [(g["tag"], g["x"], g["q"]) for g in
           _run_pipeline(dut, params, inputs, {"out": (dut.latency, ("tag", "x", "q"))})["out"]]
    want = []
    for a in inputs:
        x = min(255, decay_trace(a["x"], params["alpha_pre"]) + params["jump_pre"] * a["spike"])
        want.append((a["tag"], x, stdp_delta(params["a_plus"], x)))
    assert got == want


@pytest.mark.parametrize("weight_bits", [7, 4, 12])
def test_synapse_update_matches_spec(weight_bits):
    cfg = CoreConfig(4, 4, weight_bits)
    lo, hi = cfg.weight_range
    rng = random.Random(weight_bits)
    dut = SynapseUpdate(cfg)
    cases = []
    for _ in range(400):
        w_min, w_max = sorted((_pick(rng, lo, hi), _pick(rng, lo, hi)))
        cases.append((_pick(rng, lo, hi), rng.random() < 0.8, rng.choice([0, 1, 5, 255, rng.randint(0, 255)]),
                      rng.random() < 0.9, rng.random() < 0.5, w_min, w_max))
    got = []

    async def bench(ctx):
        for w, plastic, amount, en, pot, w_min, w_max in cases:
            ctx.set(dut.word, synapse_word(cfg, w, plastic))
            ctx.set(dut.amount, amount)
            ctx.set(dut.enable, en)
            ctx.set(dut.potentiate, pot)
            ctx.set(dut.w_min, w_min)
            ctx.set(dut.w_max, w_max)
            await ctx.delay(1e-7)
            got.append((ctx.get(dut.new_word), ctx.get(dut.changed)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    moved = 0
    for (w, plastic, amount, en, pot, w_min, w_max), (word, changed) in zip(cases, got):
        new = w
        if en and plastic:
            if pot:
                new = w if w >= w_max else min(w + amount, w_max)
            else:
                new = w if w <= w_min else max(w - amount, w_min)
        assert synapse_fields(cfg, word) == (new, plastic)
        assert changed == (new != w)
        moved += new != w
    assert moved > 50


@pytest.mark.parametrize("divisor", [1, 5, 8, 12, 255])
def test_const_divider(divisor):
    width = 16
    dut = ConstDivider(width, divisor)
    rng = random.Random(divisor)
    values = [0, 1, divisor, (1 << width) - 1] + [rng.randrange(1 << width) for _ in range(30)]
    got = []

    async def bench(ctx):
        for v in values:
            ctx.set(dut.start, 1)
            ctx.set(dut.dividend, v)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(dut.done)
            got.append((ctx.get(dut.quotient), ctx.get(dut.remainder)))

    _sim(dut, bench)
    assert got == [divmod(v, divisor) for v in values]


@pytest.mark.parametrize("divisor", [1, 256, 7])
def test_divider_with_held_dividend(divisor):
    """``held=True``: the dividend stays on the input until the result is taken."""
    width = 12
    dut = ConstDivider(width, divisor, held=True)
    values = [0, 1, divisor, (1 << width) - 1] + [random.Random(divisor).randrange(1 << width)
                                                   for _ in range(20)]
    got = []

    combinational = divisor & (divisor - 1) == 0

    async def bench(ctx):
        for v in values:
            ctx.set(dut.dividend, v)
            ctx.set(dut.start, 1)
            if combinational:
                await ctx.delay(1e-6)
                assert ctx.get(dut.done)
            else:
                await ctx.tick()
                ctx.set(dut.start, 0)
                await ctx.tick().until(dut.done)
            got.append((ctx.get(dut.quotient), ctx.get(dut.remainder)))

    if combinational:       # no register, no clock domain
        sim = Simulator(dut)
        sim.add_testbench(bench)
        sim.run()
    else:
        _sim(dut, bench)
    assert got == [divmod(v, divisor) for v in values]


@pytest.mark.parametrize("n,m,wb", [(256, 256, 7), (10, 3, 7), (5, 0, 15), (33, 17, 3)])
def test_geometry_row_and_column_access(n, m, wb):
    geo = Geometry(CoreConfig(n, m, wb))
    assert geo.width <= 16
    seen = set()
    rows = [geo.rec_row(i) for i in range(n)] + [geo.in_row(k) for k in range(m)]
    for r in rows:
        for j in range(n):
            b, a, lane = geo.locate(r, j)
            assert 0 <= a < geo.depth and 0 <= b < geo.banks and 0 <= lane < geo.lanes
            seen.add((b, a, lane))
        # a row access: word c of every bank shares one address and holds posts P*c .. P*c+P-1
        for c in range(geo.cols):
            posts = [j for j in range(c * geo.posts, min(n, (c + 1) * geo.posts))]
            assert {geo.locate(r, j)[1] for j in posts} <= {r * geo.cols + c}
            assert len({geo.locate(r, j)[0] for j in posts if j % geo.lanes == 0}) == \
                len([j for j in posts if j % geo.lanes == 0])
    assert len(seen) == len(rows) * n          # one slot per synapse
    # a column access: B consecutive rows of one post fall in B different banks
    for j in range(0, n, max(1, n // 7)):
        for kk in range(geo.row_groups):
            banks = {geo.locate(kk * geo.banks + e, j)[0] for e in range(geo.banks)}
            assert len(banks) == geo.banks
    if (n, m, wb) == (256, 256, 7):
        # the iCE40 UP5K organisation: 4 banks of 16k x 16 (one SPRAM each)
        assert (geo.banks, geo.depth, geo.width) == (4, 16384, 16)
