"""Devices behind the link protocol: serial ports, pyserial URLs and the simulated RTL.

:func:`open_device` is what :func:`neurocorex.connect` calls for every device
name other than ``"model"``.  :class:`ProtocolDevice` implements the
:class:`~neurocorex.device.Device` primitives with the frames of
:mod:`neurocorex.protocol`.
"""

from __future__ import annotations

import time

import numpy as np

from .device import Device
from .errors import DeviceError, LinkError, ProtocolError
from .formats import CoreConfig, NEURON_PARAMS, NEURON_STATE, STDP_FIELDS, GLOBAL_FIELDS
from .protocol import (Op, Kind, Err, LinkCounter, ERROR_TEXT, LINK_ERRORS, ResetFlag, Deframer,
                       encode_frame, word_bytes, max_payload, max_body, encode_step,
                       decode_steps, parse_caps, END)
from .regmap import Region, Counter, synapse_word, synapse_fields

__all__ = ["ProtocolDevice", "open_device", "open_rtl_serial", "DEFAULT_BAUD"]

DEFAULT_BAUD = 3_000_000
#: the host accepts answers of any size a device may send
_HOST_MAX_FRAME = 65535


def open_rtl_serial(config: CoreConfig, **kwargs):
    """A pyserial-like byte pipe to the simulated RTL (``neurocorex.sim.rtl.RTLSerial``)."""
    try:
        from .sim.rtl import RTLSerial
    except ModuleNotFoundError as e:
        if e.name not in ("neurocorex.sim.rtl",):
            raise DeviceError(f"the 'rtl' device cannot start: {e}") from None
        raise DeviceError("the 'rtl' device needs the RTL simulation harness "
                          "(neurocorex.sim.rtl), which is not installed in this tree") from None
    return RTLSerial(config, **kwargs)


def open_device(device: str, *, timeout: float = 5.0, retries: int = 3, baud: int = DEFAULT_BAUD,
                neurons: int | None = None, inputs: int | None = None,
                weight_bits: int | None = None, **kwargs) -> "ProtocolDevice":
    """Open ``device``: ``"rtl"``, a serial port path or a pyserial URL.

    For a real port or URL the shape comes from the device's CAPS answer;
    ``neurons``/``inputs`` (if given) must match it.  For ``"rtl"`` they choose
    the simulated core's shape.
    """
    if device == "rtl":
        d = CoreConfig()
        config = CoreConfig(neurons if neurons is not None else d.neurons,
                            inputs if inputs is not None else d.inputs,
                            weight_bits if weight_bits is not None else d.weight_bits)
        port = open_rtl_serial(config, **kwargs)
        port.timeout = 0.05           # the device polls; its own deadline decides
        try:
            return ProtocolDevice(port, name="rtl", timeout=timeout, retries=retries)
        except Exception:
            port.close()
            raise
    if kwargs:
        raise DeviceError(f"unknown option(s) for device {device!r}: {', '.join(sorted(kwargs))}")
    import serial
    try:
        port = serial.serial_for_url(device, baudrate=baud, timeout=0.05)
    except (serial.SerialException, ValueError, OSError) as e:
        raise LinkError(f"cannot open {device!r}: {e}") from None
    dev = ProtocolDevice(port, name=device, timeout=timeout, retries=retries)
    for key, want in (("neurons", neurons), ("inputs", inputs), ("weight_bits", weight_bits)):
        if want is not None and want != getattr(dev.config, key):
            dev.close()
            raise DeviceError(f"device {device!r} has {key}={getattr(dev.config, key)}, not {want}")
    return dev


class ProtocolDevice(Device):
    """A core reached through the link protocol over a pyserial-like port.

    Parameters
    ----------
    port : object
        ``write(bytes)``, ``read(n)`` (returns what arrived within its timeout),
        ``in_waiting``, ``close()``.
    name : str
        Shown in messages and ``info()``.
    timeout : float
        Seconds of silence after which a command is considered lost.
    retries : int
        Resends of a command the device rejected as corrupted, or (for commands
        that may be repeated safely) that timed out or whose answer was corrupted.
    """

    def __init__(self, port, *, name: str = "serial", timeout: float = 5.0, retries: int = 3):
        self.port = port
        self.name = name
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._seq = 0
        self._deframer = Deframer(_HOST_MAX_FRAME)
        self._pending = []
        self.stats = {"resent": 0, "bad_answers": 0, "stale_answers": 0}
        self.max_frame = 64
        try:
            self._raw_write(bytes((END,)))
            caps = parse_caps(self._command(Op.CAPS, b"", idempotent=True))
        except Exception:
            self._close_port()
            raise
        if caps["version"] != _protocol_version():
            self._close_port()
            raise DeviceError(f"{name}: protocol version {caps['version']} is not supported "
                              f"(this host speaks {_protocol_version()})")
        self.caps = caps
        self.max_frame = caps["max_frame"]
        super().__init__(CoreConfig(caps["neurons"], caps["inputs"], caps["weight_bits"]))

    # -- transport ---------------------------------------------------------------------

    def _close_port(self):
        try:
            self.port.close()
        except Exception:
            pass

    def close(self):
        self._close_port()

    def _raw_write(self, data: bytes):
        try:
            self.port.write(data)
            flush = getattr(self.port, "flush", None)
            if flush:
                flush()
        except Exception as e:
            raise LinkError(f"{self.name}: write failed ({e}); device disconnected?") from None

    def _read_some(self) -> bytes:
        try:
            n = self.port.in_waiting
            data = self.port.read(max(1, n))
        except Exception as e:
            raise LinkError(f"{self.name}: read failed ({e}); device disconnected?") from None
        return data

    def _next_frame(self, deadline_s: float):
        """Next judged frame from the device, or None after ``deadline_s`` of silence."""
        last = time.monotonic()
        while not self._pending:
            data = self._read_some()
            if data:
                last = time.monotonic()
                self._pending.extend(self._deframer.feed(data))
            elif time.monotonic() - last > deadline_s:
                return None
        return self._pending.pop(0)

    def _command(self, op: int, payload: bytes = b"", *, idempotent: bool, on_spikes=None) -> bytes:
        """Send one command and return the data of its ACK.

        Link-level rejections (the device discarded the frame unseen) are
        always resent; timeouts and corrupted answers only when ``idempotent``.
        """
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        frame = encode_frame(bytes((op, seq)) + bytes(payload))
        attempts = 0
        got_data = False
        while True:
            self._raw_write(frame)
            why = None
            while why is None:
                v = self._next_frame(self.timeout)
                if v is None:
                    why = f"no answer within {self.timeout:g} s"
                    break
                if v.status != Err.OK:
                    self.stats["bad_answers"] += 1
                    why = f"corrupted answer ({ERROR_TEXT.get(v.status, v.status)})"
                    break
                kind, vseq, body = v.body[0], v.body[1], v.body[2:]
                if vseq != seq:
                    self.stats["stale_answers"] += 1
                    continue
                if kind == Kind.SPIKES:
                    if on_spikes is None:
                        raise LinkError(f"{self.name}: unexpected spike frame for {_opname(op)}")
                    got_data = True
                    on_spikes(body)
                    continue
                if not body or body[0] != op:
                    self.stats["bad_answers"] += 1
                    why = "answer for another command"
                    break
                if kind == Kind.ACK:
                    return bytes(body[1:])
                if kind == Kind.NAK:
                    code = body[1] if len(body) > 1 else None
                    if code in LINK_ERRORS and not got_data:
                        why = f"device rejected the frame: {ERROR_TEXT[Err(code)]}"
                        break
                    text = ERROR_TEXT.get(Err(code), "unknown error") if code in set(Err) else "unknown error"
                    raise ProtocolError(f"{self.name}: {_opname(op)} failed: {text} (code {code})", code)
                self.stats["bad_answers"] += 1
                why = f"unknown answer kind 0x{kind:02x}"
                break
            resend_safe = (why.startswith("device rejected") or idempotent) and not got_data
            if attempts >= self.retries or not resend_safe:
                raise LinkError(f"{self.name}: {_opname(op)}: {why}"
                                + ("" if resend_safe else "; not resent (the command may have run)"))
            attempts += 1
            self.stats["resent"] += 1
            # drain what is in flight, then start clean
            self._pending.clear()
            self._raw_write(bytes((END,)))

    def _command_pipelined(self, op: int, payloads) -> None:
        """Send commands that may run in any order and be repeated (WRITE of disjoint
        ranges), keeping two in flight: the device buffers a frame while it
        executes the previous one, so the line does not idle between frames."""
        window = 2
        todo = [bytes(p) for p in payloads]
        pending = {}                       # seq -> [frame, attempts]
        while todo or pending:
            while todo and len(pending) < window:
                self._seq = (self._seq + 1) & 0xFF
                frame = encode_frame(bytes((op, self._seq)) + todo.pop(0))
                pending[self._seq] = [frame, 0]
                self._raw_write(frame)
            v = self._next_frame(self.timeout)
            why, retry = None, []
            if v is None:
                why, retry = f"no answer within {self.timeout:g} s", list(pending)
            elif v.status != Err.OK:
                self.stats["bad_answers"] += 1
                continue                    # the lost answer shows as a timeout
            else:
                kind, vseq, body = v.body[0], v.body[1], v.body[2:]
                if vseq not in pending or not body or body[0] != op:
                    self.stats["stale_answers"] += 1
                    continue
                if kind == Kind.ACK:
                    del pending[vseq]
                    continue
                code = body[1] if kind == Kind.NAK and len(body) > 1 else None
                if code not in LINK_ERRORS:
                    text = ERROR_TEXT.get(Err(code), "unknown error") if code in set(Err) else "bad answer"
                    raise ProtocolError(f"{self.name}: {_opname(op)} failed: {text} (code {code})", code)
                why, retry = f"device rejected the frame: {ERROR_TEXT[Err(code)]}", [vseq]
            for q in retry:
                frame, attempts = pending[q]
                if attempts >= self.retries:
                    raise LinkError(f"{self.name}: {_opname(op)}: {why}")
                pending[q][1] += 1
                self.stats["resent"] += 1
                self._raw_write(bytes((END,)) + frame)

    # -- bulk access ----------------------------------------------------------------------

    def _write_payloads(self, region: Region, start: int, words) -> list[bytes]:
        """WRITE payloads for ``words`` from ``start``: as few frames as fit, of even size
        (so that each frame's execution hides behind the next one's transfer)."""
        w = word_bytes(self.config, region)
        per = (max_payload(self.max_frame) - 4) // w
        words = [int(x) & ((1 << 8 * w) - 1) for x in words]
        if not words:
            return []
        frames = -(-len(words) // per)
        per = -(-len(words) // frames)
        return [bytes((int(region),)) + (start + k).to_bytes(3, "little")
                + b"".join(x.to_bytes(w, "little") for x in words[k:k + per])
                for k in range(0, len(words), per)]

    def write_words(self, region: Region, start: int, words) -> None:
        """Write ``words`` (ints) into ``region`` from index ``start`` (chunked)."""
        self._command_pipelined(Op.WRITE, self._write_payloads(region, start, words))

    def read_words(self, region: Region, start: int, count: int) -> list[int]:
        """Read ``count`` words of ``region`` from ``start`` (zero-extended)."""
        w = word_bytes(self.config, region)
        per = (max_body(self.max_frame) - 3) // w
        out = []
        for k in range(0, count, per):
            n = min(per, count - k)
            data = self._command(Op.READ, bytes((int(region),)) + (start + k).to_bytes(3, "little")
                                 + n.to_bytes(2, "little"), idempotent=True)
            if len(data) != n * w:
                raise LinkError(f"{self.name}: READ answered {len(data)} bytes, expected {n * w}")
            out += [int.from_bytes(data[i * w:(i + 1) * w], "little") for i in range(n)]
        return out

    def write_mask(self, region: Region, start: int, bits) -> None:
        """Set the plasticity bits of consecutive synapses without touching weights."""
        bits = [bool(b) for b in bits]
        per = (max_payload(self.max_frame) - 6) * 8
        for k in range(0, len(bits), per):
            chunk = bits[k:k + per]
            packed = bytearray((len(chunk) + 7) // 8)
            for i, b in enumerate(chunk):
                packed[i >> 3] |= b << (i & 7)
            self._command(Op.WRITE_MASK, bytes((int(region),)) + (start + k).to_bytes(3, "little")
                          + len(chunk).to_bytes(2, "little") + bytes(packed), idempotent=True)

    def link_counters(self) -> dict:
        """Link counters (frames, CRC errors, overruns, ...) and the core's counters."""
        data = self._command(Op.COUNTERS, b"", idempotent=True)
        words = [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(len(data) // 4)]
        out = {c.name.lower(): words[c] for c in LinkCounter}
        out.update({"core_" + c.name.lower(): words[len(LinkCounter) + c] for c in Counter})
        return out

    def reset_link_counters(self):
        self._command(Op.RESET, bytes((ResetFlag.LINK_COUNTERS,)), idempotent=True)

    # -- Device primitives ---------------------------------------------------------------

    @staticmethod
    def _fields_words(fields, values, n):
        out = []
        for f in fields:
            out += [int(x) for x in np.broadcast_to(np.asarray(values[f.name]), (n,))]
        return out

    def _write_params(self, params):
        self.write_words(Region.PARAM, 0, self._fields_words(NEURON_PARAMS, params, self.config.neurons))

    def _write_globals(self, values):
        self.write_words(Region.GLOBAL, 0, [int(values[f.name]) for f in GLOBAL_FIELDS])

    def _write_stdp(self, values):
        self.write_words(Region.STDP, 0, [int(values[f.name]) for f in STDP_FIELDS])

    def _write_weights(self, w_rec, plastic_rec, w_in, plastic_in):
        c = self.config
        payloads = []
        for region, w, p in ((Region.W_REC, w_rec, plastic_rec), (Region.W_IN, w_in, plastic_in)):
            w = np.asarray(w).ravel()
            p = np.asarray(p).ravel()
            payloads += self._write_payloads(region, 0, [synapse_word(c, int(a), bool(b))
                                                         for a, b in zip(w, p)])
        self._command_pipelined(Op.WRITE, payloads)

    def _read_synapses(self, region, rows):
        c = self.config
        words = self.read_words(region, 0, rows * c.neurons)
        w = np.zeros(rows * c.neurons, np.int64)
        p = np.zeros(rows * c.neurons, bool)
        for k, word in enumerate(words):
            w[k], p[k] = synapse_fields(c, word)
        return w.reshape(rows, c.neurons), p.reshape(rows, c.neurons)

    def _read_weights(self):
        w_rec, _ = self._read_synapses(Region.W_REC, self.config.neurons)
        w_in, _ = self._read_synapses(Region.W_IN, self.config.inputs)
        return w_rec, w_in

    def read_plastic(self):
        """Return the plasticity masks ``(plastic_rec, plastic_in)`` of the whole core."""
        _, p_rec = self._read_synapses(Region.W_REC, self.config.neurons)
        _, p_in = self._read_synapses(Region.W_IN, self.config.inputs)
        return p_rec, p_in

    def read_params(self) -> dict:
        """Per-neuron parameters as the core holds them."""
        n = self.config.neurons
        words = self.read_words(Region.PARAM, 0, len(NEURON_PARAMS) * n)
        return {f.name: _signed(np.array(words[k * n:(k + 1) * n], np.int64), f.bits, f.signed)
                for k, f in enumerate(NEURON_PARAMS)}

    def read_stdp(self) -> dict:
        words = self.read_words(Region.STDP, 0, len(STDP_FIELDS))
        out = {}
        for f, x in zip(STDP_FIELDS, words):
            if f.name in ("w_min", "w_max"):
                out[f.name] = int(_signed(np.int64(x), self.config.weight_bits, True))
            else:
                out[f.name] = int(x)
        return out

    def _read_state(self):
        n, m = self.config.neurons, self.config.inputs
        words = self.read_words(Region.STATE, 0, len(NEURON_STATE) * n)
        out = {f.name: _signed(np.array(words[k * n:(k + 1) * n], np.int64), f.bits, f.signed)
               for k, f in enumerate(NEURON_STATE)}
        out["input_trace"] = np.array(self.read_words(Region.INPUT_TRACE, 0, m) if m else [], np.int64)
        return out

    def _reset_state(self):
        self._command(Op.RESET, bytes((ResetFlag.STATE,)), idempotent=True)

    def _run(self, inputs):
        c = self.config
        inputs = np.asarray(inputs, bool)
        steps = inputs.shape[0]
        out = np.zeros((steps, c.neurons), bool)
        limit = max_payload(self.max_frame)
        t = 0
        while t < steps:
            payload = bytearray(2)
            t0 = t
            while t < steps and t - t0 < 0xFFFF:
                rec = encode_step(np.flatnonzero(inputs[t]), c.inputs)
                if len(payload) + len(rec) > limit:
                    break
                payload += rec
                t += 1
            payload[0:2] = (t - t0).to_bytes(2, "little")
            got = []

            def on_spikes(body, got=got):
                try:
                    got.extend(decode_steps(body, c.neurons))
                except ValueError as e:
                    raise LinkError(f"{self.name}: malformed spike frame ({e})") from None

            data = self._command(Op.RUN, bytes(payload), idempotent=False, on_spikes=on_spikes)
            n = int.from_bytes(data[:2], "little")
            if n != t - t0 or len(got) != n:
                raise LinkError(f"{self.name}: RUN of {t - t0} steps answered {n} steps and "
                                f"{len(got)} spike records")
            for k, idx in enumerate(got):
                out[t0 + k, idx] = True
        return out

    def _counters(self):
        data = self._command(Op.COUNTERS, b"", idempotent=True)
        base = 4 * len(LinkCounter)
        words = {c: int.from_bytes(data[base + 4 * c:base + 4 * c + 4], "little") for c in Counter}
        return {"steps": words[Counter.STEPS], "spikes": words[Counter.SPIKES],
                "input_spikes": words[Counter.INPUT_SPIKES], "syn_events": words[Counter.SYN_EVENTS],
                "last_step_cycles": words[Counter.LAST_STEP_CYCLES],
                "busy_cycles": words[Counter.BUSY_CYCLES]}

    def _info(self):
        return {"backend": "link", "board": self.caps["board"], "clk_hz": self.caps["clk_hz"],
                "baud": self.caps["baud"], "protocol": self.caps["version"],
                "max_frame": self.caps["max_frame"]}


def _opname(op):
    return Op(op).name if op in set(Op) else f"opcode 0x{op:02x}"


def _signed(x, bits, signed):
    x = np.asarray(x, np.int64) & ((1 << bits) - 1)
    if signed:
        x = np.where(x >> (bits - 1), x - (1 << bits), x)
    return x


def _protocol_version():
    from .protocol import PROTOCOL_VERSION
    return PROTOCOL_VERSION
