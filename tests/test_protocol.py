"""The protocol codec (``neurocorex.protocol``) and the Python command engine
(``neurocorex.sim.vboard.LinkEngine``), including fuzzing of the link."""

import random

import numpy as np
import pytest

from neurocorex.formats import CoreConfig
from neurocorex.protocol import (END, ESC, Op, Kind, Err, LinkCounter, Deframer, encode_frame,
                                 crc16, slip_escape, encode_step, decode_steps, step_record_size,
                                 caps_payload, parse_caps, max_payload, region_size, MIN_FRAME)
from neurocorex.regmap import Region
from neurocorex.sim.busmodel import BusCore
from neurocorex.sim.vboard import LinkEngine


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE check value


@pytest.mark.parametrize("seed", range(5))
def test_frames_roundtrip_and_resync(seed):
    rng = random.Random(seed)
    bodies = [bytes(rng.choice([END, ESC, 0, rng.randrange(256)]) for _ in range(rng.randrange(2, 200)))
              for _ in range(20)]
    garbage = bytes(rng.randrange(256) for _ in range(100)).replace(bytes((END,)), b"")
    stream = garbage + b"".join(encode_frame(b) for b in bodies)
    vs = Deframer(1024).feed(stream)
    assert vs[0].status != Err.OK                 # the garbage before the first END
    assert [v.body for v in vs[1:]] == bodies
    assert all(v.status == Err.OK for v in vs[1:])
    for b in bodies:     # the escaped frame never holds END inside
        assert END not in encode_frame(b)[1:-1]


def test_deframer_classifies():
    body = bytes((Op.CAPS, 7))
    good = encode_frame(body)
    d = Deframer(16)
    assert d.feed(good)[0].status == Err.OK
    long = encode_frame(body + b"abc")
    assert d.feed(long[:-3] + bytes((END,)))[0].status == Err.CRC
    assert d.feed(bytes((END, 1, 2, 3, END)))[0].status == Err.LENGTH
    assert d.feed(bytes((END, 1, ESC, 5, 2, END)))[0].status == Err.FRAMING
    assert d.feed(bytes((END, 1, 2, ESC, END)))[0].status == Err.FRAMING
    assert d.feed(bytes((END,)) + bytes(17) + bytes((END,)))[0].status == Err.TOO_LONG
    assert d.feed(bytes((END, END, END))) == []   # empty frames are idle line
    head = body + (3).to_bytes(2, "little")
    wrong = bytes((END,)) + slip_escape(head + crc16(head).to_bytes(2, "big")) + bytes((END,))
    v = d.feed(wrong)[0]
    assert (v.status, v.op, v.seq) == (Err.LENGTH, Op.CAPS, 7)
    # exactly max_frame decoded bytes is accepted
    big = bytes((Op.WRITE, 1)) + bytes(16 - MIN_FRAME)
    assert Deframer(16).feed(encode_frame(big))[0].status == Err.OK
    assert Deframer(15).feed(encode_frame(big))[0].status == Err.TOO_LONG


@pytest.mark.parametrize("size", [0, 1, 7, 8, 100, 256, 257, 1000])
def test_step_records(size):
    rng = np.random.default_rng(size)
    steps = [sorted(rng.choice(size, k, replace=False).tolist()) if size else []
             for k in ([0, 1, size // 3, size] if size else [0, 0])]
    data = b"".join(encode_step(s, size) for s in steps)
    assert decode_steps(data, size) == steps
    for s in steps:      # the shorter of list and bitmap
        n = len(encode_step(s, size))
        ib = 1 if size <= 256 else 2
        assert n == step_record_size(len(s), size) == 2 + min(len(s) * ib, (size + 7) // 8)
    with pytest.raises(ValueError):
        decode_steps(b"\x05", size)


def test_caps_roundtrip():
    cfg = CoreConfig(100, 30, 9)
    caps = parse_caps(caps_payload(cfg, max_frame=512, clk_hz=48_000_000, baud=3_000_000,
                                   board="icebreaker"))
    assert caps == {"version": 1, "neurons": 100, "inputs": 30, "weight_bits": 9, "max_frame": 512,
                    "clk_hz": 48_000_000, "baud": 3_000_000, "board": "icebreaker"}


# --- fuzzing --------------------------------------------------------------------------------------

def cmd(op, seq, payload=b""):
    return encode_frame(bytes((op, seq)) + bytes(payload))


def chunks(data):
    """Non-empty END-separated pieces (what the deframer judges)."""
    return [c for c in data.split(bytes((END,))) if c]


class FuzzState:
    """Known core contents, to build frames that must not change them."""

    def __init__(self, config, max_frame, rng):
        self.config, self.max_frame, self.rng = config, max_frame, rng
        n = config.neurons
        self.w_rec = [rng.randrange(256) for _ in range(n * n)]

    def setup_frames(self):
        per = max_payload(self.max_frame) - 4
        return [cmd(Op.WRITE, 1, bytes((Region.W_REC,)) + k.to_bytes(3, "little")
                    + bytes(self.w_rec[k:k + per])) for k in range(0, len(self.w_rec), per)]

    def readback_frames(self):
        per = self.max_frame - 4 - 3
        return [cmd(Op.READ, 2, bytes((Region.W_REC,)) + k.to_bytes(3, "little")
                    + min(per, len(self.w_rec) - k).to_bytes(2, "little"))
                for k in range(0, len(self.w_rec), per)]


def fuzz_items(state, n_items):
    """Pieces of hostile traffic, each ending in END, with what the device must count:
    ``(bytes, rejected_chunks, opcode_errors, arg_errors, good_frames)``."""
    rng = state.rng
    mf = state.max_frame
    out = []
    for _ in range(n_items):
        kind = rng.randrange(8)
        seq = rng.randrange(256)
        valid = cmd(Op.READ, seq, bytes((Region.W_REC,)) + bytes(3) + (1).to_bytes(2, "little"))
        if kind == 0:                                   # random bytes
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) + bytes((END,))
            out.append((data, len(chunks(data)), 0, 0, 0))
        elif kind == 1:                                 # truncated
            data = valid[:rng.randrange(2, len(valid) - 1)] + bytes((END,))
            out.append((data, len(chunks(data)), 0, 0, 0))
        elif kind == 2:                                 # one bit flipped
            data = bytearray(valid)
            data[rng.randrange(1, len(data) - 1)] ^= 1 << rng.randrange(8)
            data = bytes(data)
            out.append((data, len(chunks(data)), 0, 0, 0))
        elif kind == 3:                                 # wrong length field, good CRC
            body = bytes((Op.CAPS, seq)) + bytes(rng.randrange(4))
            head = body + ((len(body) + rng.choice([-2, -1, 1, 5])) & 0xFFFF).to_bytes(2, "little")
            data = bytes((END,)) + slip_escape(head + crc16(head).to_bytes(2, "big")) + bytes((END,))
            out.append((data, 1, 0, 0, 0))
        elif kind == 4:                                 # unknown opcode
            op = rng.choice([x for x in range(256) if x not in set(Op)])
            out.append((cmd(op, seq, bytes(rng.randrange(8))), 0, 1, 0, 1))
        elif kind == 5:                                 # known opcode, bad arguments
            region = rng.choice([Region.COUNTER, Region.CONTROL, 9, 15, 200])
            out.append((cmd(Op.WRITE, seq, bytes((region,)) + bytes(4)), 0, 0, 1, 1))
        elif kind == 6:                                 # maximum length: rejected command, then one byte more
            filler = bytes(mf - MIN_FRAME - 4)
            at_max = cmd(Op.WRITE, seq, bytes((Region.COUNTER,)) + bytes(3) + filler)
            over = cmd(Op.WRITE, seq, bytes((Region.W_REC,)) + bytes(3) + filler + b"\x01")
            out.append((at_max, 0, 0, 1, 1))
            out.append((over, 1, 0, 0, 0))
        else:                                           # maximum length good WRITE of what is there
            per = max_payload(mf) - 4
            k = rng.randrange(0, max(1, len(state.w_rec) - per + 1))
            words = state.w_rec[k:k + per]
            out.append((cmd(Op.WRITE, seq, bytes((Region.W_REC,)) + k.to_bytes(3, "little")
                            + bytes(words)), 0, 0, 0, 1))
    return out


def link_counters(answer):
    vs = Deframer(65535).feed(answer)
    assert len(vs) == 1 and vs[0].status == Err.OK and vs[0].body[0] == Kind.ACK
    data = vs[0].body[3:]
    return [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(len(LinkCounter))]


def expected_counts(items):
    rejected = sum(x[1] for x in items)
    return {"rejected": rejected, "opcode": sum(x[2] for x in items),
            "args": sum(x[3] for x in items), "ok": sum(x[4] for x in items)}


def check_counters(before, after, exp):
    d = [a - b for a, b in zip(after, before)]
    link_rejects = (d[LinkCounter.CRC_ERRORS] + d[LinkCounter.LENGTH_ERRORS]
                    + d[LinkCounter.FRAMING_ERRORS] + d[LinkCounter.OVERRUNS])
    assert link_rejects == exp["rejected"]
    assert d[LinkCounter.OPCODE_ERRORS] == exp["opcode"]
    assert d[LinkCounter.ARG_ERRORS] == exp["args"]
    assert d[LinkCounter.FRAMES_OK] == exp["ok"] + 2          # + the CAPS and COUNTERS queries
    assert d[LinkCounter.DROPPED_REPLIES] == 0


def fuzz_python_engine(total_bytes, seed, config=CoreConfig(8, 4), max_frame=64):
    rng = random.Random(seed)
    out = bytearray()
    core = BusCore(config)
    eng = LinkEngine(core, config, out.extend, max_frame=max_frame)
    state = FuzzState(config, max_frame, rng)
    for f in state.setup_frames():
        eng.feed(f)
    sent = 0
    while sent < total_bytes:
        out.clear()
        eng.feed(cmd(Op.COUNTERS, 3))
        before = link_counters(bytes(out))
        items = fuzz_items(state, rng.randrange(1, 30))
        burst = b"".join(x[0] for x in items)
        sent += len(burst)
        out.clear()
        eng.feed(burst)                               # all at once, back to back
        answers = Deframer(65535).feed(bytes(out))
        assert all(v.status == Err.OK for v in answers)
        exp = expected_counts(items)
        naks = [v for v in answers if v.body[0] == Kind.NAK]
        assert len(naks) == exp["rejected"] + exp["opcode"] + exp["args"]   # every frame answered
        out.clear()
        eng.feed(cmd(Op.CAPS, 4))                      # a valid query is answered
        v = Deframer(65535).feed(bytes(out))[0]
        assert v.body[:3] == bytes((Kind.ACK, 4, Op.CAPS)) and v.body[3:] == eng.caps
        out.clear()
        eng.feed(cmd(Op.COUNTERS, 5))
        check_counters(before, link_counters(bytes(out)), exp)
        # nothing changed in the core
        assert core.model.w_rec.size == len(state.w_rec)
        got = [int(x) for x in (core.model.w_rec.ravel() & 0x7F) | (core.model.plastic_rec.ravel() << 7)]
        assert got == state.w_rec
        out.clear()
        for f in state.readback_frames():
            eng.feed(f)
        data = b"".join(v.body[3:] for v in Deframer(65535).feed(bytes(out)))
        assert list(data) == state.w_rec
    return sent


def test_fuzz_python_engine_short():
    assert fuzz_python_engine(60_000, seed=1) >= 60_000


@pytest.mark.slow
def test_fuzz_python_engine_million_bytes():
    assert fuzz_python_engine(1_000_000, seed=2) >= 1_000_000


def test_regions_cover_the_regmap():
    cfg = CoreConfig(5, 3)
    assert region_size(cfg, Region.W_REC) == 25 and region_size(cfg, Region.W_IN) == 15


def test_spec_section_5_matches_the_protocol_module():
    import re
    from pathlib import Path
    text = Path(__file__).resolve().parent.parent.joinpath("docs", "spec.md").read_text()
    sec = text[text.index("## 5. Link protocol"):]
    ops = {int(v, 16): n for v, n in re.findall(r"^\| (0x[0-9A-F]{2}) \| ([A-Z_]+) \|", sec, re.M)}
    assert ops == {int(o): o.name for o in Op}
    kinds = {int(v, 16): n for n, v in re.findall(r"^\| ([A-Z]+) \| (0x[0-9A-F]{2}) \|", sec, re.M)}
    assert kinds == {int(k): k.name for k in Kind}
    errs = {int(v): n for v, n in re.findall(r"^\| (\d) \| ([A-Z_]+) \|", sec, re.M)}
    assert errs == {int(e): e.name for e in Err if e != Err.OK}
    table = sec[sec.index("| link counter |"):]
    ctrs = {int(v): n for n, v in re.findall(r"^\| ([A-Z_]+) \((\d)\) \|", table, re.M)}
    assert ctrs == {int(c): c.name for c in LinkCounter}
    from neurocorex.protocol import CAPS_FIELDS, ResetFlag
    assert "CRC-16/CCITT-FALSE" in sec and "0xC0" in sec and "0xDB" in sec
    assert all(f.value in (1, 2, 4) for f in ResetFlag)
    assert [n for n, _ in CAPS_FIELDS] == ["version", "neurons", "inputs", "weight_bits",
                                           "max_frame", "clk_hz", "baud"]
