"""The virtual board: the link protocol served over TCP or a pseudo-terminal.

:class:`LinkEngine` is the Python command engine: the same frames and the
same answers as the gateware engine (:mod:`neurocorex.hdl.engine`), over any
core with the :class:`~neurocorex.sim.busmodel.BusCore` interface
(``read``, ``write``, ``step``).  :func:`serve_tcp` and :func:`serve_pty`
expose it (or the simulated RTL) to any serial client.
"""

from __future__ import annotations

import os
import select
import socket
import threading

from ..errors import LinkError
from ..formats import CoreConfig
from ..protocol import (Op, Kind, Err, LinkCounter, VERDICT_COUNTER, WRITABLE, READABLE,
                        Deframer, encode_frame, word_bytes, region_size, max_body, index_bytes,
                        bitmap_bytes, use_bitmap, BITMAP_TAG, caps_payload, check_config,
                        MAX_FRAME)
from ..regmap import Region, Counter, index_bits

__all__ = ["LinkEngine", "VirtualBoard", "serve_tcp", "serve_tcp_thread", "serve_pty"]


class _Reject(Exception):
    pass


class LinkEngine:
    """Python command engine of the link over a bus-level core.

    Parameters
    ----------
    core : BusCore-like
        ``read(addr)``, ``write(addr, data)``, ``step(axons) -> spiking neurons``.
    config : CoreConfig
    write : callable(bytes)
        Called with every frame the engine sends; may block (back-pressure:
        the engine, and so the core, waits).
    max_frame, clk_hz, baud, board :
        What the engine reports in CAPS.
    """

    def __init__(self, core, config: CoreConfig, write, *, max_frame: int = MAX_FRAME,
                 clk_hz: int = 0, baud: int = 0, board: str = "vboard"):
        check_config(config, max_frame)
        self.core = core
        self.config = config
        self.write = write
        self.max_frame = max_frame
        self.caps = caps_payload(config, max_frame=max_frame, clk_hz=clk_hz, baud=baud, board=board)
        self.deframer = Deframer(max_frame)
        self.counters = [0] * len(LinkCounter)

    def _bump(self, c):
        self.counters[c] = (self.counters[c] + 1) & 0xFFFFFFFF

    def _addr(self, region, index):
        return (int(region) << index_bits(self.config)) | index

    def feed(self, data: bytes) -> None:
        """Take bytes from the line; answer every frame they complete."""
        for v in self.deframer.feed(data):
            self._bump(VERDICT_COUNTER[v.status])
            if v.status != Err.OK:
                self._send(bytes((Kind.NAK, v.seq, v.op, v.status)))
                continue
            try:
                self._execute(v.op, v.seq, v.body[2:])
            except _Reject as e:
                err = e.args[0]
                self._bump(LinkCounter.OPCODE_ERRORS if err == Err.OPCODE else LinkCounter.ARG_ERRORS)
                self._send(bytes((Kind.NAK, v.seq, v.op, err)))

    def _send(self, body: bytes):
        self.write(encode_frame(body))

    def _ack(self, op, seq, data=b""):
        self._send(bytes((Kind.ACK, seq, op)) + data)

    # -- commands -------------------------------------------------------------------------

    def _execute(self, op, seq, p: bytes):
        cfg = self.config
        P = len(p)

        def need(cond):
            if not cond:
                raise _Reject(Err.ARGS)

        if op == Op.CAPS:
            need(P == 0)
            self._ack(op, seq, self.caps)
        elif op == Op.WRITE:
            need(P >= 4)
            region, start = p[0], int.from_bytes(p[1:4], "little")
            need(region in [int(r) for r in WRITABLE])
            w = word_bytes(cfg, region)
            d = P - 4
            need(d % w == 0 and d // w >= 1 and start + d // w <= region_size(cfg, region))
            for k in range(d // w):
                val = int.from_bytes(p[4 + k * w:4 + (k + 1) * w], "little")
                self.core.write(self._addr(region, start + k), val)
            self._ack(op, seq)
        elif op == Op.READ:
            need(P == 6)
            region, start = p[0], int.from_bytes(p[1:4], "little")
            count = p[4] | (p[5] << 8)
            need(region in [int(r) for r in READABLE])
            w = word_bytes(cfg, region)
            need(count >= 1 and count * w <= max_body(self.max_frame) - 3
                 and start + count <= region_size(cfg, region))
            out = bytearray()
            mask = (1 << 8 * w) - 1
            for k in range(count):
                out += (self.core.read(self._addr(region, start + k)) & mask).to_bytes(w, "little")
            self._ack(op, seq, bytes(out))
        elif op == Op.WRITE_MASK:
            need(P >= 6)
            region, start = p[0], int.from_bytes(p[1:4], "little")
            count = p[4] | (p[5] << 8)
            need(region in (Region.W_REC, Region.W_IN) and count >= 1
                 and P == 6 + (count + 7) // 8 and start + count <= region_size(cfg, region))
            wb = cfg.weight_bits
            for k in range(count):
                a = self._addr(region, start + k)
                bit = (p[6 + k // 8] >> (k % 8)) & 1
                word = self.core.read(a)
                self.core.write(a, (word & ~(1 << wb)) | (bit << wb))
            self._ack(op, seq)
        elif op == Op.RUN:
            need(P >= 2)
            self._run(op, seq, p)
        elif op == Op.RESET:
            need(P == 1 and p[0] < 8)
            if p[0] & 1:
                self.core.write(self._addr(Region.CONTROL, 0), 0)
            if p[0] & 2:
                self.core.write(self._addr(Region.COUNTER, 0), 0)
            if p[0] & 4:
                self.counters = [0] * len(LinkCounter)
            self._ack(op, seq)
        elif op == Op.COUNTERS:
            need(P == 0)
            out = b"".join(c.to_bytes(4, "little") for c in self.counters)
            out += b"".join((self.core.read(self._addr(Region.COUNTER, c)) & 0xFFFFFFFF).to_bytes(4, "little")
                            for c in Counter)
            self._ack(op, seq, out)
        else:
            raise _Reject(Err.OPCODE)

    def _parse_run(self, p: bytes):
        """Step records of a RUN payload, checked as the gateware checks them."""
        M = self.config.inputs
        ib, nb = index_bytes(M), bitmap_bytes(M)
        steps = p[0] | (p[1] << 8)
        pos, out = 2, []
        while pos < len(p):
            if len(p) - pos < 2:
                raise _Reject(Err.ARGS)
            h = p[pos] | (p[pos + 1] << 8)
            pos += 2
            if h == BITMAP_TAG:
                if len(p) - pos < nb:
                    raise _Reject(Err.ARGS)
                bm = p[pos:pos + nb]
                out.append([i for i in range(M) if (bm[i >> 3] >> (i & 7)) & 1])
                pos += nb
            else:
                if h > M or len(p) - pos < h * ib:
                    raise _Reject(Err.ARGS)
                idx = [int.from_bytes(p[pos + k * ib:pos + (k + 1) * ib], "little") for k in range(h)]
                pos += h * ib
                if any(i >= M for i in idx) or any(b <= a for a, b in zip(idx, idx[1:])):
                    raise _Reject(Err.ARGS)
                out.append(idx)
        if len(out) != steps:
            raise _Reject(Err.ARGS)
        return out

    def _run(self, op, seq, p):
        records = self._parse_run(p)
        N = self.config.neurons
        ib, nb = index_bytes(N), bitmap_bytes(N)
        limit = max_body(self.max_frame)
        frame = None
        for axons in records:
            spikes = self.core.step(axons)
            if use_bitmap(len(spikes), N):
                bm = bytearray(nb)
                for j in spikes:
                    bm[j >> 3] |= 1 << (j & 7)
                rec = bytes((0xFF, 0xFF)) + bytes(bm)
            else:
                rec = len(spikes).to_bytes(2, "little") + b"".join(j.to_bytes(ib, "little") for j in spikes)
            if frame is not None and len(frame) + len(rec) > limit:
                self._send(bytes(frame))
                frame = None
            if frame is None:
                frame = bytearray((Kind.SPIKES, seq))
            frame += rec
        if frame is not None:
            self._send(bytes(frame))
        self._ack(op, seq, len(records).to_bytes(2, "little"))


# --- serving --------------------------------------------------------------------------------

class VirtualBoard:
    """A board behind a byte pipe: the Python engine over the golden model, or the RTL.

    ``handle(data)`` takes bytes from the host; answers go to ``sink`` (set per
    connection).  For the RTL backend the bytes pass to an ``RTLSerial``.
    """

    def __init__(self, backend: str = "model", config: CoreConfig | None = None, *,
                 max_frame: int = MAX_FRAME, baud: int = 3_000_000, board: str = "vboard", **rtl_kw):
        self.config = config or CoreConfig()
        self.backend = backend
        self.sink = None
        if backend == "model":
            from .busmodel import BusCore
            self.core = BusCore(self.config)
            self.engine = LinkEngine(self.core, self.config, self._out, max_frame=max_frame,
                                     clk_hz=0, baud=baud, board=board)
            self.serial = None
        elif backend == "rtl":
            from ..link import open_rtl_serial
            self.serial = open_rtl_serial(self.config, **rtl_kw)
            self.engine = None
        else:
            from ..errors import DeviceError
            raise DeviceError(f"unknown backend {backend!r}; use 'model' or 'rtl'")
        self.lock = threading.Lock()

    def _out(self, data: bytes):
        if self.sink is not None:
            self.sink(data)

    def handle(self, data: bytes) -> None:
        with self.lock:
            if self.engine is not None:
                self.engine.feed(data)
            else:
                self.serial.write(data)

    def poll(self) -> None:
        """Move bytes the RTL has sent to the sink (RTL backend only)."""
        if self.serial is None:
            return
        with self.lock:
            n = self.serial.in_waiting
            data = self.serial.read(n) if n else b""
        if data:
            self._out(data)

    def close(self):
        if self.serial is not None:
            self.serial.close()


def _serve_conn(board: VirtualBoard, conn: socket.socket, stop: threading.Event, sndbuf=None):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if sndbuf:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    board.sink = conn.sendall          # blocks when the client does not read: back-pressure
    try:
        while not stop.is_set():
            r, _, _ = select.select([conn], [], [], 0.01 if board.serial else 0.2)
            if r:
                data = conn.recv(65536)
                if not data:
                    break
                board.handle(data)
            board.poll()
    except (ConnectionError, OSError):
        pass
    finally:
        board.sink = None
        conn.close()


def serve_tcp(board: VirtualBoard, port: int = 0, *, host: str = "127.0.0.1", ready=None,
              stop: threading.Event | None = None, once: bool = False, sndbuf: int | None = None) -> None:
    """Serve ``board`` to one TCP client at a time (state persists across clients).

    ``ready(port)`` is called once listening; ``stop`` ends the loop; ``sndbuf``
    shrinks the socket's send buffer (the board then waits sooner for a slow client).
    """
    stop = stop or threading.Event()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1)
    try:
        if ready:
            ready(srv.getsockname()[1])
        while not stop.is_set():
            r, _, _ = select.select([srv], [], [], 0.2)
            if not r:
                continue
            conn, _ = srv.accept()
            _serve_conn(board, conn, stop, sndbuf)
            if once:
                break
    finally:
        srv.close()


def serve_tcp_thread(board: VirtualBoard, port: int = 0, *, timeout: float = 10.0, **kwargs):
    """Run :func:`serve_tcp` in a daemon thread; return ``(port, stop)``.

    ``stop()`` ends the server and joins the thread.  ``kwargs`` go to
    :func:`serve_tcp` (``host``, ``once``, ``sndbuf``).
    """
    stop_event = threading.Event()
    ports = []
    listening = threading.Event()

    def on_ready(p):
        ports.append(p)
        listening.set()

    t = threading.Thread(target=serve_tcp, args=(board, port),
                         kwargs=dict(ready=on_ready, stop=stop_event, **kwargs), daemon=True)
    t.start()
    if not listening.wait(timeout):
        stop_event.set()
        raise LinkError(f"the virtual board did not start listening within {timeout:g} s")

    def stop():
        stop_event.set()
        t.join(5)
    return ports[0], stop


def serve_pty(board: VirtualBoard, *, ready=None, stop: threading.Event | None = None) -> None:
    """Serve ``board`` on a pseudo-terminal; ``ready(path)`` gets the slave's path."""
    import tty
    stop = stop or threading.Event()
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def sink(data):
        view = memoryview(data)
        while view:
            select.select([], [master], [])
            n = os.write(master, view)
            view = view[n:]

    board.sink = sink
    try:
        if ready:
            ready(path)
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.01 if board.serial else 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:          # no client has the slave open
                    data = b""
                if data:
                    board.handle(data)
            board.poll()
    finally:
        os.close(master)
        os.close(slave)
