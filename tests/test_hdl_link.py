"""The link gateware (deframer, command engine, framer) against the Python engine.

The gateware runs in Amaranth's simulator over a small stand-in core that
implements the core's stream contract (``neurocorex.regmap``); the Python
command engine (``neurocorex.sim.vboard.LinkEngine``) runs over the same
stand-in written in Python.  Both must send the same bytes.
"""

import random

import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from neurocorex.formats import CoreConfig
from neurocorex.hdl.engine import bus_layouts
from neurocorex.hdl.framing import Deframer as HdlDeframer
from neurocorex.hdl.top import LinkCore
from neurocorex.hdl.uart import RxByte
from neurocorex.protocol import (Op, Kind, Err, LinkCounter, Deframer, encode_frame, caps_payload,
                                 encode_step, decode_steps, END, ESC, slip_escape, crc16)
from neurocorex.regmap import Region, addr_bits, address
from neurocorex.sim.vboard import LinkEngine


# --- the stand-in core -------------------------------------------------------------------

class PyStandIn:
    """Python twin of :class:`StandInCore`: a word memory and a simple spike rule.

    Neuron ``j`` spikes in step ``t`` iff ``(j + t + acc) & mask == 0``, where
    ``acc`` sums ``index + 1`` over the step's input events and ``mask`` is the
    low 3 bits of the last word written to GLOBAL[0] (0: every neuron spikes).
    """

    def __init__(self, config):
        self.config = config
        self.mem = {}
        self.t = 0
        self.mask = 0
        self.mask_addr = address(config, Region.GLOBAL, 0)

    def read(self, addr):
        return self.mem.get(addr, 0)

    def write(self, addr, data):
        self.mem[addr] = data & 0xFFFFFFFF
        if addr == self.mask_addr:
            self.mask = data & 7

    def step(self, axons):
        acc = sum(k + 1 for k in axons)
        out = [j for j in range(self.config.neurons) if ((j + self.t + acc) & self.mask) == 0]
        self.t += 1
        return out


class StandInCore(wiring.Component):
    """Gateware twin of :class:`PyStandIn`; stalls its bus every other cycle."""

    def __init__(self, config):
        self.config = config
        lay = bus_layouts(config)
        super().__init__({"bus": In(stream.Signature(lay["bus"])),
                          "bus_resp": Out(stream.Signature(lay["bus_resp"])),
                          "events": In(stream.Signature(lay["events"])),
                          "spikes": Out(stream.Signature(lay["spikes"]))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.mem = mem = Memory(shape=32, depth=1 << addr_bits(cfg), init=[])
        wp, rp = mem.write_port(), mem.read_port()
        pending = Signal()
        was_write = Signal()
        toggle = Signal()
        m.d.sync += toggle.eq(~toggle)
        m.d.comb += [rp.addr.eq(self.bus.payload.addr),
                     self.bus.ready.eq(~pending & toggle),
                     self.bus_resp.valid.eq(pending),
                     self.bus_resp.payload.rdata.eq(Mux(was_write, 0, rp.data))]
        mask = Signal(3)
        with m.If(self.bus.valid & self.bus.ready):
            m.d.sync += [pending.eq(1), was_write.eq(self.bus.payload.write)]
            with m.If(self.bus.payload.write):
                m.d.comb += [wp.addr.eq(self.bus.payload.addr), wp.data.eq(self.bus.payload.wdata),
                             wp.en.eq(1)]
                with m.If(self.bus.payload.addr == address(cfg, Region.GLOBAL, 0)):
                    m.d.sync += mask.eq(self.bus.payload.wdata[:3])
        with m.If(self.bus_resp.valid & self.bus_resp.ready):
            m.d.sync += pending.eq(0)

        t = Signal(16)
        acc = Signal(16)
        j = Signal(range(cfg.neurons + 1))
        with m.FSM():
            with m.State("COLLECT"):
                m.d.comb += self.events.ready.eq(1)
                with m.If(self.events.valid):
                    with m.If(self.events.payload.end):
                        m.d.sync += j.eq(0)
                        m.next = "EMIT"
                    with m.Else():
                        m.d.sync += acc.eq(acc + self.events.payload.index + 1)
            with m.State("EMIT"):
                fire = ((j + t + acc)[:3] & mask) == 0
                with m.If(j == cfg.neurons):
                    m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.end.eq(1)]
                    with m.If(self.spikes.ready):
                        m.d.sync += [t.eq(t + 1), acc.eq(0)]
                        m.next = "COLLECT"
                with m.Else():
                    m.d.comb += [self.spikes.valid.eq(fire), self.spikes.payload.index.eq(j)]
                    with m.If(~fire | self.spikes.ready):
                        m.d.sync += j.eq(j + 1)
        return m


class LinkBench(wiring.Component):
    """LinkCore wired to the stand-in core."""

    fast_link = False           # set for each test by the fixture below

    def __init__(self, config, caps, max_frame, core=None):
        self.core = core
        self.config = config
        self.caps = caps
        self.max_frame = max_frame
        super().__init__({"rx": In(stream.Signature(RxByte, always_ready=True)),
                          "tx": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = LinkCore(self.config, caps=self.caps, max_frame=self.max_frame,
                                            fast_link=self.fast_link)
        m.submodules.core = core = self.core if self.core is not None else StandInCore(self.config)
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        wiring.connect(m, link.bus, core.bus)
        wiring.connect(m, core.bus_resp, link.bus_resp)
        wiring.connect(m, link.events, core.events)
        wiring.connect(m, core.spikes, link.spikes)
        return m


# --- harness ----------------------------------------------------------------------------------

def reference(config, items, *, max_frame, board="bench", core=None):
    """Expected answer bytes of each item from the Python engine over ``core``
    (default: a PyStandIn)."""
    out = bytearray()
    core = core if core is not None else PyStandIn(config)
    eng = LinkEngine(core, config, out.extend, max_frame=max_frame, clk_hz=1_000_000, baud=250_000,
                     board=board)
    answers = []
    for it in items:
        n = len(out)
        eng.feed(it)
        answers.append(bytes(out[n:]))
    return answers, eng, core


class Harness(wiring.Component):
    """Stimulus and capture in gateware, so that simulation runs without a
    Python testbench step per clock.

    Sends the items' bytes to the link (one byte, then ``gap`` idle cycles),
    waits after each item until ``expect[i]`` answer bytes (cumulative) have
    arrived or ``max_wait`` cycles passed, then ``settle`` cycles more.  The
    reader takes a byte only every ``tx_every`` cycles.
    """

    def __init__(self, config, caps, max_frame, items, expect, *, gap, tx_every, settle, max_wait,
                 slack=256, core=None):
        self.core = core
        self.config, self.caps, self.max_frame = config, caps, max_frame
        self.data = b"".join(items)
        self.ends = [sum(len(x) for x in items[:i + 1]) for i in range(len(items))]
        self.expect = expect
        self.gap, self.tx_every, self.settle, self.max_wait = gap, tx_every, settle, max_wait
        self.out_depth = (expect[-1] if expect else 0) + slack
        super().__init__({"done": Out(1), "out_count": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bench = bench = LinkBench(self.config, self.caps, self.max_frame, self.core)
        m.submodules.inp = inp = Memory(shape=8, depth=max(1, len(self.data)), init=self.data)
        m.submodules.ends = ends = Memory(shape=32, depth=len(self.ends), init=self.ends)
        m.submodules.expect = expect = Memory(shape=32, depth=len(self.ends), init=self.expect)
        m.submodules.out = self.out_mem = out = Memory(shape=8, depth=self.out_depth, init=[])
        ip, ep, xp = inp.read_port(), ends.read_port(domain="comb"), expect.read_port(domain="comb")
        op = out.write_port()
        pos = Signal(32)
        item = Signal(range(len(self.ends) + 1))
        wait = Signal(32)
        rc = Signal(range(max(2, self.tx_every)))
        m.d.comb += [ip.addr.eq(pos), ep.addr.eq(item), xp.addr.eq(item)]
        m.d.sync += rc.eq(Mux(rc == self.tx_every - 1, 0, rc + 1))
        m.d.comb += bench.tx.ready.eq(rc == 0)
        with m.If(bench.tx.valid & bench.tx.ready):
            m.d.sync += self.out_count.eq(self.out_count + 1)
            with m.If(self.out_count < self.out_depth):
                m.d.comb += [op.addr.eq(self.out_count), op.data.eq(bench.tx.payload), op.en.eq(1)]
        with m.FSM():
            with m.State("ADDR"):
                with m.If(item == len(self.ends)):
                    m.next = "DONE"
                with m.Elif(pos == ep.data):
                    m.d.sync += wait.eq(0)
                    m.next = "WAIT"
                with m.Else():
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [bench.rx.valid.eq(1), bench.rx.payload.data.eq(ip.data)]
                m.d.sync += [pos.eq(pos + 1), wait.eq(0)]
                m.next = "GAP"
            with m.State("GAP"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait >= self.gap - 1):
                    m.next = "ADDR"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait + 1)
                with m.If((self.out_count >= xp.data) | (wait >= self.max_wait)):
                    m.d.sync += wait.eq(0)
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait >= self.settle):
                    m.d.sync += item.eq(item + 1)
                    m.next = "ADDR"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m


def simulate(config, items, answers, caps, *, max_frame, gap=2, tx_every=1, settle=60,
             max_wait=20_000, core=None):
    """Run the items through the gateware; return its answer bytes split like ``answers``."""
    expect = []
    total = 0
    for a in answers:
        total += len(a)
        expect.append(total)
    dut = Harness(config, caps, max_frame, items, expect, gap=gap, tx_every=tx_every,
                  settle=settle, max_wait=max_wait, core=core)
    result = {}

    async def tb(ctx):
        await ctx.tick().until(dut.done)
        n = ctx.get(dut.out_count)
        result["n"] = n
        result["data"] = bytes(ctx.get(dut.out_mem.data[i]) for i in range(min(n, dut.out_depth)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    data = result["data"]
    got, pos = [], 0
    for a in answers[:-1]:
        got.append(data[pos:pos + len(a)])
        pos += len(a)
    got.append(data[pos:])
    return got


def check(config, items, *, max_frame=64, py_core=None, hw_core=None, normalize=None, **kw):
    """Both engines answer ``items`` alike; ``normalize(answer)`` may mask what may differ."""
    answers, eng, core = reference(config, items, max_frame=max_frame, core=py_core)
    got = simulate(config, items, answers, eng.caps, max_frame=max_frame, core=hw_core, **kw)
    for k, (g, a) in enumerate(zip(got, answers)):
        if normalize is not None:
            g, a = normalize(g), normalize(a)
        assert g == a, f"item {k} ({items[k][:16].hex()}...): gateware sent {g.hex()}, engine {a.hex()}"
    return answers, eng, core


def frames_of(data):
    """Decode answer bytes into (kind, seq, rest) tuples."""
    out = []
    for v in Deframer(65535).feed(data):
        assert v.status == Err.OK
        out.append((v.body[0], v.body[1], v.body[2:]))
    return out


def cmd(op, seq, payload=b""):
    return encode_frame(bytes((op, seq)) + bytes(payload))


def write_cmd(seq, config, region, start, words, w):
    return cmd(Op.WRITE, seq, bytes((region,)) + start.to_bytes(3, "little")
               + b"".join(int(x).to_bytes(w, "little") for x in words))


def read_cmd(seq, region, start, count):
    return cmd(Op.READ, seq, bytes((region,)) + start.to_bytes(3, "little") + count.to_bytes(2, "little"))


CFG = CoreConfig(neurons=12, inputs=10)


# --- tests ---------------------------------------------------------------------------------

@pytest.fixture(autouse=True, params=[False, True], ids=["link", "fast-link"])
def fast_link(request, monkeypatch):
    """Every test runs with the link as the iCEBreaker builds it and as the
    ULX3S does (``fast_link``: the frame buffer read in two clocks, the
    engine's tail and aux writes registered)."""
    monkeypatch.setattr(LinkBench, "fast_link", request.param)
    return request.param


def test_caps_counters_reset():
    items = [cmd(Op.CAPS, 1), cmd(Op.COUNTERS, 2), cmd(Op.RESET, 3, b"\x07"), cmd(Op.COUNTERS, 4)]
    answers, eng, _ = check(CFG, items)
    kind, seq, rest = frames_of(answers[0])[0]
    assert (kind, seq, rest[0]) == (Kind.ACK, 1, Op.CAPS)
    assert rest[1:] == caps_payload(CFG, max_frame=64, clk_hz=1_000_000, baud=250_000, board="bench")
    # after clearing, only the COUNTERS frame itself has been counted
    words = frames_of(answers[3])[0][2][1:]
    assert int.from_bytes(words[0:4], "little") == 1
    assert sum(int.from_bytes(words[4 * i:4 * i + 4], "little") for i in range(1, 8)) == 0


def test_link_counter_carries_into_higher_bytes():
    # 257 RESETs (nothing to clear) and the COUNTERS frame: the good-frame
    # counter passes 255, so the aux updater's carry reaches its second byte
    items = [cmd(Op.RESET, k & 0xFF, b"\x00") for k in range(257)] + [cmd(Op.COUNTERS, 9)]
    answers, _, _ = check(CFG, items)
    words = frames_of(answers[-1])[0][2][1:]
    assert int.from_bytes(words[0:4], "little") == 258


def test_write_read_mask_roundtrip():
    rng = random.Random(1)
    n, m = CFG.neurons, CFG.inputs
    w_rec = [rng.randrange(256) for _ in range(n * n)]
    items = []
    # chunks of a bulk write: at most (max_payload - 4) one-byte words each
    for k in range(0, n * n, 50):
        items.append(write_cmd(10 + k, CFG, Region.W_REC, k, w_rec[k:k + 50], 1))
    params = [rng.randrange(65536) for _ in range(6 * n)]
    items.append(write_cmd(1, CFG, Region.PARAM, 0, params[:24], 2))
    items.append(write_cmd(2, CFG, Region.STDP, 3, [0x1234, 0xFFFF], 2))
    items.append(write_cmd(3, CFG, Region.W_IN, m * n - 1, [0xC0], 1))
    bits = [rng.random() < 0.5 for _ in range(37)]
    packed = bytearray(5)
    for i, b in enumerate(bits):
        packed[i >> 3] |= b << (i & 7)
    items.append(cmd(Op.WRITE_MASK, 4, bytes((Region.W_REC,)) + (5).to_bytes(3, "little")
                     + (37).to_bytes(2, "little") + bytes(packed)))
    items.append(read_cmd(5, Region.W_REC, 0, 50))
    items.append(read_cmd(6, Region.PARAM, 0, 24))
    items.append(read_cmd(7, Region.STDP, 0, 9))
    items.append(read_cmd(8, Region.W_IN, m * n - 1, 1))
    items.append(read_cmd(9, Region.COUNTER, 0, 6))
    answers, _, core = check(CFG, items)
    # the readback is what was written (the stand-in stores words)
    data = frames_of(answers[-5])[0][2][1:]
    expect = list(w_rec[:50])
    for i, b in enumerate(bits):
        expect[5 + i] = (expect[5 + i] & ~(1 << CFG.weight_bits)) | (b << CFG.weight_bits)
    assert list(data) == expect
    data = frames_of(answers[-4])[0][2][1:]
    assert [int.from_bytes(data[2 * i:2 * i + 2], "little") for i in range(24)] == params[:24]


def run_payload(steps):
    return len(steps).to_bytes(2, "little") + b"".join(encode_step(s, CFG.inputs) for s in steps)


def test_run_sparse_bitmap_and_frame_splitting():
    rng = random.Random(2)
    steps = []
    while True:      # as many steps as one RUN frame of max_frame=64 holds
        s = sorted(rng.sample(range(CFG.inputs), rng.choice([0, 0, 0, 1, 2, 5, 10])))
        if len(run_payload(steps + [s])) > 58:
            break
        steps.append(s)
    assert len(steps) >= 15
    items = [write_cmd(1, CFG, Region.GLOBAL, 0, [1], 1),    # mask 1: every other neuron
             cmd(Op.RUN, 2, run_payload(steps)),
             write_cmd(3, CFG, Region.GLOBAL, 0, [0], 1),    # mask 0: all spike (bitmaps)
             cmd(Op.RUN, 4, run_payload(steps)),
             write_cmd(5, CFG, Region.GLOBAL, 0, [7], 1),
             cmd(Op.RUN, 6, run_payload([[]] * 3 + [list(range(CFG.inputs))]))]
    answers, _, _ = check(CFG, items)
    kinds = [f[0] for f in frames_of(answers[1])]
    assert kinds.count(Kind.SPIKES) >= 2 and kinds[-1] == Kind.ACK    # split over frames


def test_rejected_frames_change_nothing():
    good = write_cmd(9, CFG, Region.W_REC, 0, range(20), 1)
    body = bytes((Op.WRITE, 9)) + bytes((Region.W_REC,)) + (0).to_bytes(3, "little") + bytes(range(20))
    flipped = bytearray(good)
    flipped[10] ^= 0x04
    head = body + (len(body) + 1).to_bytes(2, "little")           # good CRC, wrong length
    wrong_len = bytes((END,)) + slip_escape(head + crc16(head).to_bytes(2, "big")) + bytes((END,))
    bad_esc = bytes((END, Op.CAPS, 1, ESC, 0x01, END))
    items = [
        write_cmd(1, CFG, Region.W_REC, 0, [5] * 20, 1),
        good[:len(good) // 2] + bytes((END,)),         # truncated: CRC
        good[:4] + bytes((END,)),                      # truncated below the minimum: length
        bytes(flipped),                                # bit flip: CRC
        wrong_len,                                     # length field (CRC also wrong)
        bad_esc,                                       # framing
        cmd(0x55, 2),                                  # unknown opcode
        write_cmd(3, CFG, Region.COUNTER, 0, [1], 4),  # not writable
        write_cmd(4, CFG, Region.W_REC, CFG.neurons ** 2 - 1, [1, 2], 1),   # past the end
        cmd(Op.WRITE, 5, bytes((Region.PARAM,)) + bytes(3) + bytes(3)),     # misaligned
        read_cmd(6, Region.W_REC, 0, 0),               # zero count
        cmd(Op.RUN, 7, b"\x02\x00" + encode_step([1], CFG.inputs)),         # steps mismatch
        cmd(Op.RUN, 8, b"\x01\x00\x02\x00\x03\x01"),   # indices not increasing
        cmd(Op.RESET, 9, b"\x08"),
        bytes((END,)) + bytes(70) + bytes((END,)),     # longer than max_frame
        cmd(Op.CAPS, 10, b"\x00"),
        read_cmd(11, Region.W_REC, 0, 20),
        cmd(Op.COUNTERS, 12),
    ]
    answers, eng, core = check(CFG, items)
    codes = [frames_of(a)[0] for a in answers[1:16]]
    assert [c[0] for c in codes] == [Kind.NAK] * 15
    assert [c[2][1] for c in codes] == [Err.CRC, Err.LENGTH, Err.CRC, Err.LENGTH, Err.FRAMING, Err.OPCODE,
                                        Err.ARGS, Err.ARGS, Err.ARGS, Err.ARGS, Err.ARGS, Err.ARGS,
                                        Err.ARGS, Err.TOO_LONG, Err.ARGS]
    assert frames_of(answers[16])[0][2][1:] == bytes([5] * 20)     # nothing was overwritten
    ctr = frames_of(answers[17])[0][2][1:]
    c = [int.from_bytes(ctr[4 * i:4 * i + 4], "little") for i in range(len(LinkCounter))]
    assert c[LinkCounter.CRC_ERRORS] == 2 and c[LinkCounter.LENGTH_ERRORS] == 3
    assert c[LinkCounter.FRAMING_ERRORS] == 1 and c[LinkCounter.OPCODE_ERRORS] == 1
    assert c[LinkCounter.ARG_ERRORS] == 8 and c[LinkCounter.FRAMES_OK] == 1 + 1 + 8 + 2


def test_max_activity_slow_reader_loses_nothing():
    """Every neuron spikes in every step; the reader takes one byte in 7 cycles."""
    items = [write_cmd(1, CFG, Region.GLOBAL, 0, [0], 1)] + \
        [cmd(Op.RUN, 2 + k, run_payload([[0, 3]] * 14)) for k in range(3)]
    answers, _, _ = check(CFG, items, tx_every=7)
    recs = []
    for kind, seq, rest in frames_of(b"".join(answers[1:])):
        if kind == Kind.SPIKES:
            recs += decode_steps(rest, CFG.neurons)
    assert recs == [list(range(CFG.neurons))] * 42


def test_next_frame_may_arrive_while_one_executes():
    """The frame ring (64 bytes here) is given back word by word as a WRITE
    executes, so a frame sent right behind another is stored and executed.  A
    READ keeps its frame until its answer is out; a frame that does not fit
    beside it in the meantime is rejected as an overrun."""
    words = list(range(50))
    a = write_cmd(1, CFG, Region.W_REC, 0, words, 1)          # 60 decoded bytes each
    b = write_cmd(2, CFG, Region.W_REC, 50, words, 1)
    check(CFG, [a + b, read_cmd(4, Region.W_REC, 0, 55)], gap=10, tx_every=30)
    # the third frame: the Python engine never overruns, so its answer is written out here
    r = read_cmd(5, Region.W_REC, 0, 50)
    c = write_cmd(3, CFG, Region.W_REC, 100, [9] * 50, 1)
    answers, eng, _ = reference(CFG, [r, cmd(Op.COUNTERS, 6)], max_frame=64)
    overrun = encode_frame(bytes((Kind.NAK, 3, Op.WRITE, Err.OVERRUN)))
    got = simulate(CFG, [r + c, cmd(Op.COUNTERS, 6)], [answers[0] + overrun, b"x" * 200],
                   eng.caps, max_frame=64, tx_every=50, max_wait=20_000)
    assert got[0] == answers[0] + overrun
    ctr = frames_of(got[1])[0][2][1:]
    assert int.from_bytes(ctr[4 * LinkCounter.OVERRUNS:4 * LinkCounter.OVERRUNS + 4], "little") == 1
    # ... and nothing of it was written
    assert frames_of(simulate(CFG, [r + c, read_cmd(7, Region.W_REC, 100, 1)],
                              [answers[0] + overrun, b"x" * 20], eng.caps, max_frame=64,
                              tx_every=50, max_wait=20_000)[1])[0][2][1:] == bytes(1)


def test_top_level_at_the_pins(fast_link):
    """NeuroCoreTop: a CAPS frame as UART bits on uart_rx, the answer decoded
    from uart_tx; the LEDs light up."""
    from neurocorex.hdl.top import NeuroCoreTop
    top = NeuroCoreTop(CFG, clk_hz=4_000_000, baud=1_000_000, board="pins",
                       core=StandInCore(CFG), max_frame=64, fast_link=fast_link)
    div = top.divisor
    frame = cmd(Op.CAPS, 9)
    got = bytearray()
    seen = {}

    async def host(ctx):
        await ctx.tick().repeat(10)
        for b in frame:
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                ctx.set(top.uart_rx, bit)
                await ctx.tick().repeat(div)
        seen["activity"] = ctx.get(top.led_activity)
        while len(Deframer(255).feed(bytes(got))) < 1:
            for _ in range(5000):
                if not ctx.get(top.uart_tx):
                    break
                await ctx.tick()
            else:
                raise AssertionError("no answer on uart_tx")
            await ctx.tick().repeat(div // 2)
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(div)
                byte |= ctx.get(top.uart_tx) << i
            await ctx.tick().repeat(div)
            got.append(byte)

    sim = Simulator(top)
    sim.add_clock(1 / 4e6)
    sim.add_testbench(host)
    sim.run()
    kind, seq, rest = frames_of(bytes(got))[0]
    assert (kind, seq, rest[0]) == (Kind.ACK, 9, Op.CAPS)
    assert rest[1:] == caps_payload(CFG, max_frame=64, clk_hz=4_000_000, baud=1_000_000, board="pins")
    assert seen["activity"] == 1


def test_link_counters_carry_past_a_byte():
    """The link counters are kept byte by byte; 300 rejected frames of each of
    two kinds carry into the second byte of two counters.  The frames come
    slowly enough that no answer is dropped."""
    short = bytes((0x55, END)) * 300                   # LENGTH
    bad_crc = (bytes(6) + bytes((END,))) * 300          # CRC
    assert crc16(bytes(6)) != 0
    items = [cmd(Op.RESET, 1, b"\x04"), short, bad_crc, cmd(Op.COUNTERS, 2)]
    answers, _, _ = check(CFG, items, gap=14, max_wait=200_000)
    words = frames_of(answers[3])[0][2][1:]
    c = [int.from_bytes(words[4 * i:4 * i + 4], "little") for i in range(len(LinkCounter))]
    assert c[LinkCounter.LENGTH_ERRORS] == 300 and c[LinkCounter.CRC_ERRORS] == 300
    assert c[LinkCounter.FRAMES_OK] == 1


@pytest.mark.parametrize("latency", [0, 3])
def test_deframer_refuses_other_read_latencies(latency):
    with pytest.raises(ValueError, match=f"read_latency must be 1 or 2, not {latency}"):
        HdlDeframer(64, read_latency=latency)
