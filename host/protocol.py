"""The NeuroCoreX link protocol: frames, opcodes, error codes and layouts.

This module is the single definition of the wire format.  The gateware
(:mod:`neurocorex.hdl.framing`, :mod:`neurocorex.hdl.engine`), the Python
command engine of the virtual board (:mod:`neurocorex.sim.vboard`), the host
codec (:mod:`neurocorex.link`) and ``docs/spec.md`` §5 all follow it.

Frame
-----
On the wire a frame is SLIP-delimited (``END`` bytes around it, ``END`` and
``ESC`` inside escaped).  Decoded, it is::

    body (op, seq, payload...) | length: u16 LE = len(body) | CRC-16: u16 BE

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over body and
length; appended big-endian, the CRC over the whole decoded frame is 0.
The length sits behind the body so that a sender can stream a frame whose
size it learns only at the end (spike output).

Commands are ``op, seq, payload``; every command frame is answered with an
``ACK`` (``ACK, seq, op, data...``) or a ``NAK`` (``NAK, seq, op, code``).
``RUN`` additionally streams ``SPIKES`` frames (``SPIKES, seq, records...``)
before its ``ACK``.  All multi-byte integers are little-endian unless stated.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .formats import CoreConfig, NEURON_PARAMS, NEURON_STATE, STDP_FIELDS, GLOBAL_FIELDS
from .regmap import Region, Counter

__all__ = [
    "PROTOCOL_VERSION", "END", "ESC", "ESC_END", "ESC_ESC", "MAX_FRAME", "MIN_FRAME",
    "TRAILER_BYTES", "Op", "Kind", "Err", "LinkCounter", "CAPS_FIELDS", "BOARD_ID_MAX",
    "ERROR_TEXT", "LINK_ERRORS", "crc16", "crc16_update", "slip_escape", "encode_frame",
    "Deframer", "Verdict", "word_bytes", "region_size", "WRITABLE", "READABLE",
    "index_bytes", "bitmap_bytes", "encode_step", "decode_steps", "step_record_size",
    "caps_payload", "parse_caps", "ResetFlag", "max_body", "max_payload",
]

#: Version reported by CAPS; bumped on any incompatible change of this module.
PROTOCOL_VERSION = 1

# --- SLIP delimiting ------------------------------------------------------------------

END = 0xC0        #: frame delimiter
ESC = 0xDB        #: escape: the next byte is ESC_END (for END) or ESC_ESC (for ESC)
ESC_END = 0xDC
ESC_ESC = 0xDD

#: Default largest decoded frame (body + length + CRC) a device buffers.
MAX_FRAME = 1024
#: length (2) + CRC (2) behind the body
TRAILER_BYTES = 4
#: shortest valid decoded frame: op, seq, length, CRC
MIN_FRAME = 2 + TRAILER_BYTES


def max_body(max_frame: int = MAX_FRAME) -> int:
    """Largest body (op, seq, payload) of a frame."""
    return max_frame - TRAILER_BYTES


def max_payload(max_frame: int = MAX_FRAME) -> int:
    """Largest command payload (after op and seq)."""
    return max_frame - MIN_FRAME


class Op(enum.IntEnum):
    """Command opcodes (first body byte of a host → device frame)."""
    CAPS = 0x01        #: () → caps_payload
    WRITE = 0x10       #: region u8, start u24, words → ()
    READ = 0x11        #: region u8, start u24, count u16 → words
    WRITE_MASK = 0x12  #: region u8 (W_REC/W_IN), start u24, count u16, bits (LSB first) → ()
    RUN = 0x20         #: steps u16, step records → SPIKES frames, then steps u16
    RESET = 0x30       #: flags u8 (ResetFlag) → ()
    COUNTERS = 0x40    #: () → LinkCounter words u32, then regmap.Counter words u32


class Kind(enum.IntEnum):
    """First body byte of a device → host frame."""
    ACK = 0x80     #: seq, op, data
    NAK = 0x81     #: seq, op, code (Err)
    SPIKES = 0x90  #: seq, step records (output of RUN)


class Err(enum.IntEnum):
    """Error codes of a NAK.  0 is not an error."""
    OK = 0
    CRC = 1        #: CRC mismatch
    LENGTH = 2     #: shorter than MIN_FRAME, or length field ≠ body length
    TOO_LONG = 3   #: more than max_frame decoded bytes
    FRAMING = 4    #: bad SLIP escape or a UART stop bit missing
    OVERRUN = 5    #: frame arrived while the device was busy; not stored
    OPCODE = 6     #: unknown opcode
    ARGS = 7       #: payload does not fit the command (size, region, range)


ERROR_TEXT = {
    Err.CRC: "CRC mismatch (frame corrupted on the line)",
    Err.LENGTH: "length field does not match the frame",
    Err.TOO_LONG: "frame longer than the device buffer",
    Err.FRAMING: "framing error (bad escape or UART stop bit)",
    Err.OVERRUN: "input overrun: frame arrived while the device was busy",
    Err.OPCODE: "unknown opcode",
    Err.ARGS: "bad arguments (size, region or index range)",
}

#: Errors of the link itself: the frame was discarded unseen, so resending is safe.
LINK_ERRORS = frozenset({Err.CRC, Err.LENGTH, Err.TOO_LONG, Err.FRAMING, Err.OVERRUN})


class LinkCounter(enum.IntEnum):
    """Counters of the link, first in the COUNTERS answer (u32 each, wrapping)."""
    FRAMES_OK = 0        #: frames with good framing, length and CRC
    CRC_ERRORS = 1
    LENGTH_ERRORS = 2    #: Err.LENGTH and Err.TOO_LONG
    FRAMING_ERRORS = 3
    OVERRUNS = 4
    OPCODE_ERRORS = 5
    ARG_ERRORS = 6
    DROPPED_REPLIES = 7  #: NAKs not sent because rejected frames arrived faster than replies drain


#: Link counter bumped for each verdict of the deframer.
VERDICT_COUNTER = {
    Err.OK: LinkCounter.FRAMES_OK, Err.CRC: LinkCounter.CRC_ERRORS,
    Err.LENGTH: LinkCounter.LENGTH_ERRORS, Err.TOO_LONG: LinkCounter.LENGTH_ERRORS,
    Err.FRAMING: LinkCounter.FRAMING_ERRORS, Err.OVERRUN: LinkCounter.OVERRUNS,
}


class ResetFlag(enum.IntFlag):
    STATE = 1          #: regmap CONTROL write: V, I, ref, traces, pending spikes, core counters
    CORE_COUNTERS = 2  #: regmap COUNTER write: clears the core's counters
    LINK_COUNTERS = 4  #: clears the LinkCounter values


# --- CRC -------------------------------------------------------------------------------

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16_update(crc: int, byte: int) -> int:
    """One byte of CRC-16/CCITT-FALSE (MSB first)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    for b in data:
        crc = crc16_update(crc, b)
    return crc


# --- frames ----------------------------------------------------------------------------

def slip_escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b == END:
            out += bytes((ESC, ESC_END))
        elif b == ESC:
            out += bytes((ESC, ESC_ESC))
        else:
            out.append(b)
    return bytes(out)


def frame_trailer(body: bytes) -> bytes:
    n = len(body)
    head = bytes(body) + bytes((n & 0xFF, (n >> 8) & 0xFF))
    c = crc16(head)
    return head[len(body):] + bytes((c >> 8, c & 0xFF))


def encode_frame(body: bytes) -> bytes:
    """``END + escaped(body + length + CRC) + END``."""
    return bytes((END,)) + slip_escape(bytes(body) + frame_trailer(body)) + bytes((END,))


@dataclass
class Verdict:
    """One delimited frame as the deframer judged it."""
    status: Err
    op: int        #: first decoded byte (0 if none)
    seq: int       #: second decoded byte (0 if none)
    body: bytes    #: op, seq, payload (valid only when status is OK)


class Deframer:
    """Reference deframer: SLIP, length and CRC checks, bit for bit as the gateware.

    Feed bytes; every ``END`` that closes a non-empty frame yields a
    :class:`Verdict`.  Errors are judged in this order: overrun, framing, too
    long, too short, CRC, length field.  A byte after a bad escape is discarded.
    """

    def __init__(self, max_frame: int = MAX_FRAME):
        self.max_frame = max_frame
        self._reset()

    def _reset(self):
        self.buf = bytearray()
        self.count = 0
        self.crc = CRC_INIT
        self.esc = False
        self.seen = False
        self.bad = False
        self.overrun = False

    def _byte(self, b: int):
        if self.count < self.max_frame:
            self.buf.append(b)
        self.crc = crc16_update(self.crc, b)
        self.count = min(self.count + 1, self.max_frame + 1)

    def feed(self, data: bytes, *, error=False, busy=False) -> list[Verdict]:
        """Decode ``data``; ``error`` marks the bytes as received with a bad stop
        bit and ``busy`` as arriving while the frame buffer is taken."""
        out = []
        for b in data:
            if b == END:
                if self.seen:
                    out.append(self._verdict())
                self._reset()
                continue
            self.seen = True
            self.bad |= error
            self.overrun |= busy
            if self.esc:
                self.esc = False
                if b == ESC_END:
                    self._byte(END)
                elif b == ESC_ESC:
                    self._byte(ESC)
                else:
                    self.bad = True
            elif b == ESC:
                self.esc = True
            else:
                self._byte(b)
        return out

    def _verdict(self) -> Verdict:
        n = self.count
        op = self.buf[0] if n >= 1 else 0
        seq = self.buf[1] if n >= 2 else 0
        if self.overrun:
            st = Err.OVERRUN
        elif self.bad or self.esc:
            st = Err.FRAMING
        elif n > self.max_frame:
            st = Err.TOO_LONG
        elif n < MIN_FRAME:
            st = Err.LENGTH
        elif self.crc != 0:
            st = Err.CRC
        elif self.buf[n - 4] | (self.buf[n - 3] << 8) != n - TRAILER_BYTES:
            st = Err.LENGTH
        else:
            st = Err.OK
        body = bytes(self.buf[:n - TRAILER_BYTES]) if st == Err.OK else b""
        return Verdict(st, op, seq, body)


# --- regions: word sizes on the wire ---------------------------------------------------

#: Regions a WRITE may target; READ may also read the counters.
WRITABLE = (Region.W_REC, Region.W_IN, Region.PARAM, Region.STATE, Region.INPUT_TRACE,
            Region.STDP, Region.GLOBAL)
READABLE = WRITABLE + (Region.COUNTER,)


def word_bytes(config: CoreConfig, region: Region) -> int:
    """Bytes per word of ``region`` on the wire (1, 2 or 4; a power of two)."""
    region = Region(region)
    if region in (Region.W_REC, Region.W_IN):
        return 1 if config.synapse_bits <= 8 else 2
    return {Region.PARAM: 2, Region.STATE: 2, Region.INPUT_TRACE: 1, Region.STDP: 2,
            Region.GLOBAL: 1, Region.COUNTER: 4, Region.CONTROL: 1}[region]


def region_size(config: CoreConfig, region: Region) -> int:
    """Number of words in ``region`` (the mapped index range)."""
    n, m = config.neurons, config.inputs
    return {Region.W_REC: n * n, Region.W_IN: m * n, Region.PARAM: len(NEURON_PARAMS) * n,
            Region.STATE: len(NEURON_STATE) * n, Region.INPUT_TRACE: m,
            Region.STDP: len(STDP_FIELDS), Region.GLOBAL: len(GLOBAL_FIELDS),
            Region.COUNTER: len(Counter), Region.CONTROL: 1}[Region(region)]


# --- step records (RUN inputs and SPIKES output) ---------------------------------------

#: Record header value that announces a bitmap instead of a sparse list.
BITMAP_TAG = 0xFFFF


def index_bytes(size: int) -> int:
    """Bytes of one index in a sparse list of ``size`` possible indices."""
    return 1 if size <= 256 else 2


def bitmap_bytes(size: int) -> int:
    return (size + 7) // 8


def use_bitmap(count: int, size: int) -> bool:
    """A record is a bitmap when the sparse list would be longer."""
    return count * index_bytes(size) > bitmap_bytes(size)


def step_record_size(count: int, size: int) -> int:
    return 2 + (bitmap_bytes(size) if use_bitmap(count, size) else count * index_bytes(size))


def encode_step(indices, size: int) -> bytes:
    """One step record: ``u16 count`` + indices, or ``u16 0xFFFF`` + bitmap (LSB first),
    whichever is shorter (the list on a tie).  ``indices`` must be distinct, in ``[0, size)``."""
    idx = sorted(int(i) for i in indices)
    if use_bitmap(len(idx), size):
        bm = bytearray(bitmap_bytes(size))
        for i in idx:
            bm[i >> 3] |= 1 << (i & 7)
        return bytes((0xFF, 0xFF)) + bytes(bm)
    ib = index_bytes(size)
    out = bytearray((len(idx) & 0xFF, len(idx) >> 8))
    for i in idx:
        out += i.to_bytes(ib, "little")
    return bytes(out)


def decode_steps(data: bytes, size: int) -> list[list[int]]:
    """Split concatenated step records; raise ValueError when malformed.

    Bitmap bits at or above ``size`` are ignored, as the device does.
    """
    out, pos, ib, nb = [], 0, index_bytes(size), bitmap_bytes(size)
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("truncated step record header")
        h = data[pos] | (data[pos + 1] << 8)
        pos += 2
        if h == BITMAP_TAG:
            if pos + nb > len(data):
                raise ValueError("truncated bitmap")
            bm = data[pos:pos + nb]
            out.append([i for i in range(size) if (bm[i >> 3] >> (i & 7)) & 1])
            pos += nb
        else:
            if h > size or pos + h * ib > len(data):
                raise ValueError("bad sparse record")
            idx = [int.from_bytes(data[pos + k * ib:pos + (k + 1) * ib], "little") for k in range(h)]
            if any(i >= size for i in idx):
                raise ValueError("index out of range")
            out.append(idx)
            pos += h * ib
    return out


# --- capabilities ----------------------------------------------------------------------

#: CAPS answer after the op echo: (name, bytes), then the board id (u8 length + ASCII).
CAPS_FIELDS = (("version", 1), ("neurons", 2), ("inputs", 2), ("weight_bits", 1),
               ("max_frame", 2), ("clk_hz", 4), ("baud", 4))
BOARD_ID_MAX = 16


def caps_payload(config: CoreConfig, *, max_frame: int, clk_hz: int, baud: int, board: str) -> bytes:
    """The bytes a device answers to CAPS (after ``ACK, seq, op``)."""
    bid = board.encode("ascii")
    if len(bid) > BOARD_ID_MAX:
        raise ValueError(f"board id {board!r} longer than {BOARD_ID_MAX} characters")
    vals = {"version": PROTOCOL_VERSION, "neurons": config.neurons, "inputs": config.inputs,
            "weight_bits": config.weight_bits, "max_frame": max_frame, "clk_hz": int(clk_hz),
            "baud": int(baud)}
    out = bytearray()
    for name, nb in CAPS_FIELDS:
        out += int(vals[name]).to_bytes(nb, "little")
    return bytes(out) + bytes((len(bid),)) + bid


def parse_caps(data: bytes) -> dict:
    out, pos = {}, 0
    for name, nb in CAPS_FIELDS:
        if pos + nb > len(data):
            raise ValueError("CAPS answer too short")
        out[name] = int.from_bytes(data[pos:pos + nb], "little")
        pos += nb
    if pos >= len(data) or pos + 1 + data[pos] != len(data):
        raise ValueError("CAPS answer has a bad board id")
    out["board"] = data[pos + 1:].decode("ascii", "replace")
    return out


def check_config(config: CoreConfig, max_frame: int) -> None:
    """Raise ValueError when ``max_frame`` cannot hold what the protocol needs."""
    need = 2 + step_record_size(config.neurons, config.neurons)
    need = max(need, 2 + 2 + step_record_size(config.inputs, config.inputs),
               3 + 4 * (len(LinkCounter) + len(Counter)),
               3 + len(caps_payload(config, max_frame=max_frame, clk_hz=0, baud=0, board="x" * 16)))
    if max_body(max_frame) < need:
        raise ValueError(f"max_frame={max_frame} too small for N={config.neurons}, "
                         f"M={config.inputs}: needs a body of {need} bytes")
    if max_frame > 65535:
        raise ValueError("max_frame must be below 65536")


def ceil_log2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0
