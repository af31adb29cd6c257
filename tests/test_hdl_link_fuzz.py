"""Fuzzing the link gateware in Amaranth simulation.

Hostile traffic (random bytes, truncated frames, flipped bits, wrong lengths,
unknown opcodes, frames at and past the maximum length) goes to the gateware
over the stand-in core; after each burst the device must answer a valid query,
its error counters must have counted every rejected frame, and a readback must
show that nothing changed.  Every answer is also compared byte for byte with
the Python engine.
"""

import random

import pytest

from neurocorex.formats import CoreConfig
from neurocorex.protocol import END, Op

from test_hdl_link import LinkBench, check, cmd, frames_of
from test_protocol import FuzzState, fuzz_items, expected_counts, check_counters, link_counters

CFG = CoreConfig(neurons=8, inputs=4)
MAX_FRAME = 64


def pieces(data):
    """Split at END so that each piece is answered before the next is sent."""
    out, cur = [], bytearray()
    for b in data:
        cur.append(b)
        if b == END:
            out.append(bytes(cur))
            cur = bytearray()
    if cur:
        out.append(bytes(cur))
    return out


def fuzz_plan(total_bytes, seed, config, max_frame):
    """Items to send (each answered before the next) and the checks on their answers."""
    rng = random.Random(seed)
    state = FuzzState(config, max_frame, rng)
    items = list(state.setup_frames())
    checks = []
    sent = 0
    while sent < total_bytes:
        before = len(items)
        items.append(cmd(Op.COUNTERS, 3))
        burst = fuzz_items(state, rng.randrange(1, 12))
        for data, *_ in burst:
            items += pieces(data)
            sent += len(data)
        caps = len(items)
        items.append(cmd(Op.CAPS, 4))
        after = len(items)
        items.append(cmd(Op.COUNTERS, 5))
        rb = len(items)
        items += state.readback_frames()
        checks.append((before, caps, after, expected_counts(burst), rb, len(items)))
    return state, items, checks, sent


def verify(state, answers, checks, caps_bytes):
    for before, caps, after, exp, rb, end in checks:
        kind, seq, rest = frames_of(answers[caps])[0]
        assert rest[1:] == caps_bytes                              # a valid query is answered
        check_counters(link_counters(answers[before]), link_counters(answers[after]), exp)
        data = b"".join(frames_of(a)[0][2][1:] for a in answers[rb:end])
        assert list(data) == state.w_rec                           # nothing changed


@pytest.mark.parametrize("fast", [False, True], ids=["link", "fast-link"])
def test_fuzz_gateware_short(fast, monkeypatch):
    """Amaranth simulation of the link over the stand-in core, also as the
    ULX3S builds it (``fast_link``)."""
    monkeypatch.setattr(LinkBench, "fast_link", fast)
    state, items, checks, sent = fuzz_plan(2_500, 3, CFG, MAX_FRAME)
    answers, eng, _ = check(CFG, items, max_frame=MAX_FRAME, gap=3, settle=8, max_wait=5000)
    verify(state, answers, checks, eng.caps)
    assert sent >= 2_500


@pytest.mark.slow
def test_fuzz_rtl_million_bytes():
    """The whole top level (UART, link, real core) compiled by Verilator, a
    million bytes of hostile traffic at the pins; each piece must get exactly
    the Python engine's answer."""
    from neurocorex.link import open_rtl_serial
    from neurocorex.protocol import MAX_FRAME as TOP_FRAME
    from neurocorex.sim.busmodel import BusCore
    from neurocorex.sim.vboard import LinkEngine
    try:
        port = open_rtl_serial(CFG, timeout=20)
    except Exception as e:            # no Verilator here
        pytest.skip(f"RTL simulator unavailable: {e}")
    out = bytearray()
    eng = LinkEngine(BusCore(CFG), CFG, out.extend, max_frame=TOP_FRAME, clk_hz=port.clk_hz,
                     baud=port.baudrate, board="sim")
    state, items, checks, sent = fuzz_plan(1_000_000, 4, CFG, TOP_FRAME)
    answers = []
    try:
        for k, it in enumerate(items):
            out.clear()
            eng.feed(it)
            port.write(it)
            got = port.read(len(out)) if out else b""
            assert got == bytes(out), f"item {k}: {it[:20].hex()}: rtl {got.hex()} engine {bytes(out).hex()}"
            answers.append(got)
        port.timeout = 0.2
        assert port.read(1) == b""                                 # nothing extra
    finally:
        port.close()
    verify(state, answers, checks, eng.caps)
    assert sent >= 1_000_000
