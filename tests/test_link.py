"""Host side of the link: errors, retries, back-pressure, the serve command."""

import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import serial

import neurocorex as nx
from neurocorex.errors import DeviceError, LinkError, ProtocolError
from neurocorex.formats import CoreConfig
from neurocorex.link import ProtocolDevice
from neurocorex.protocol import END, Err, Kind, Op, Deframer, encode_frame
from neurocorex.sim.busmodel import BusCore
from neurocorex.sim.vboard import LinkEngine, VirtualBoard, serve_tcp_thread

CFG = CoreConfig(8, 4)


class EnginePort:
    """A pyserial-like port onto an in-process LinkEngine, with fault injection.

    ``corrupt_in(frame_no, data) -> data`` may alter a frame the host sends;
    ``corrupt_out(answer_no, data) -> data`` an answer frame the device sends.
    """

    def __init__(self, config=CFG, corrupt_in=None, corrupt_out=None):
        self.core = BusCore(config)
        self.buf = bytearray()
        self.n_in = self.n_out = 0
        self.corrupt_in, self.corrupt_out = corrupt_in, corrupt_out
        self.engine = LinkEngine(self.core, config, self._answer, max_frame=256)
        self.timeout = 0.01
        self.closed = False

    def _answer(self, data):
        if self.corrupt_out:
            data = self.corrupt_out(self.n_out, data)
        self.n_out += 1
        self.buf += data

    def write(self, data):
        data = bytes(data)
        if data != bytes((END,)):            # a lone END only flushes the line
            if self.corrupt_in:
                data = self.corrupt_in(self.n_in, data)
            self.n_in += 1
        self.engine.feed(data)
        return len(data)

    @property
    def in_waiting(self):
        return len(self.buf)

    def read(self, n=1):
        if not self.buf:
            time.sleep(self.timeout)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def close(self):
        self.closed = True


def flip(data, at=4):
    d = bytearray(data)
    d[at] ^= 0x10
    return bytes(d)


def small_net():
    net = nx.Network(neurons=CFG.neurons, inputs=CFG.inputs)
    net.w_shift = 4
    rng = np.random.default_rng(0)
    net.w_in = rng.integers(0, 60, (CFG.inputs, CFG.neurons))
    net.threshold = 300
    return net


def test_device_rejects_corrupt_commands_and_host_resends():
    port = EnginePort(corrupt_in=lambda k, d: flip(d) if k in (0, 2, 3) else d)
    dev = ProtocolDevice(port, timeout=1)
    dev.load(small_net())
    assert dev.stats["resent"] == 3
    c = dev.link_counters()
    assert c["crc_errors"] == 3 and c["frames_ok"] >= 5


def test_corrupt_answer_to_a_read_is_resent():
    port = EnginePort(corrupt_out=lambda k, d: flip(d, 6) if k == 3 else d)
    dev = ProtocolDevice(port, timeout=0.3)
    dev.load(small_net())
    w_rec, w_in = dev.read_weights()
    np.testing.assert_array_equal(w_in, small_net().w_in)
    assert dev.stats["bad_answers"] >= 1 and dev.stats["resent"] >= 1


def test_corrupt_spike_frame_is_an_error_not_a_silent_rerun():
    state = {}

    def corrupt(k, d):
        if Deframer(65535).feed(d)[0].body[:1] == bytes((Kind.SPIKES,)) and not state:
            state["hit"] = k
            return flip(d, 5)
        return d

    dev = ProtocolDevice(EnginePort(corrupt_out=corrupt), timeout=0.3)
    dev.load(small_net())
    with pytest.raises(LinkError, match="may have run"):
        dev.run(10, np.ones((10, CFG.inputs), bool))
    assert "hit" in state


def test_persistent_corruption_gives_up():
    dev = ProtocolDevice(EnginePort(), timeout=0.3, retries=2)
    dev.port.corrupt_in = lambda k, d: flip(d)
    with pytest.raises(LinkError, match="CRC"):
        dev.reset()
    assert dev.stats["resent"] == 2


class SilentPort(EnginePort):
    def __init__(self, answer_caps=True):
        super().__init__()
        self.mute = False

    def write(self, data):
        return len(data) if self.mute else super().write(data)


def test_timeout_names_the_command():
    port = SilentPort()
    dev = ProtocolDevice(port, timeout=0.2, retries=1)
    dev.load(small_net())
    port.mute = True
    t0 = time.monotonic()
    with pytest.raises(LinkError, match=r"READ: no answer within 0.2 s"):
        dev.read_weights()
    assert time.monotonic() - t0 < 3
    with pytest.raises(LinkError, match="not resent"):         # RUN is never repeated blindly
        dev.run(3)


class BrokenPort(EnginePort):
    def read(self, n=1):
        raise serial.SerialException("device reports readiness to read but returned no data")


def test_disconnect_is_a_link_error():
    port = EnginePort()
    dev = ProtocolDevice(port, timeout=0.2)
    dev.port = BrokenPort()
    with pytest.raises(LinkError, match="disconnected"):
        dev.counters()


def test_nak_becomes_protocol_error_with_code():
    dev = ProtocolDevice(EnginePort(), timeout=0.5)
    with pytest.raises(ProtocolError, match="unknown opcode") as e:
        dev._command(0x77, b"", idempotent=True)
    assert e.value.code == Err.OPCODE
    with pytest.raises(ProtocolError, match="bad arguments") as e:
        dev._command(Op.READ, bytes((0, 0, 0, 0, 0, 0)), idempotent=True)   # zero words
    assert e.value.code == Err.ARGS
    assert dev.link_counters()["arg_errors"] == 1


def test_write_mask_and_readbacks():
    dev = ProtocolDevice(EnginePort(), timeout=0.5)
    net = small_net()
    dev.load(net)
    bits = np.random.default_rng(3).random(CFG.neurons * CFG.neurons) < 0.5
    from neurocorex.regmap import Region
    dev.write_mask(Region.W_REC, 0, bits)
    p_rec, p_in = dev.read_plastic()
    np.testing.assert_array_equal(p_rec.ravel(), bits)
    assert not p_in.any()
    np.testing.assert_array_equal(dev.read_weights()[1], net.w_in)   # weights untouched
    assert dev.read_params()["threshold"][0] == 300
    assert dev.read_stdp()["w_max"] == net.stdp.w_max


def test_rtl_without_harness_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "neurocorex.sim.rtl", None)
    with pytest.raises(DeviceError, match="rtl"):
        nx.connect("rtl", neurons=4, inputs=2)


def test_unreachable_url_is_a_link_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(LinkError, match="cannot open"):
        nx.connect(f"socket://127.0.0.1:{port}")
    with pytest.raises(DeviceError, match="unknown option"):
        nx.connect(f"socket://127.0.0.1:{port}", bogus=1)


class SlowSocketPort:
    """A client that reads at most ``chunk`` bytes every ``delay`` seconds."""

    def __init__(self, port, chunk=256, delay=0.004):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        self.sock.connect(("127.0.0.1", port))
        self.chunk, self.delay, self.timeout = chunk, delay, 0.05

    def write(self, data):
        self.sock.sendall(data)

    @property
    def in_waiting(self):
        return 0

    def read(self, n=1):
        time.sleep(self.delay)
        self.sock.settimeout(self.timeout)
        try:
            return self.sock.recv(min(self.chunk, max(n, self.chunk)))
        except socket.timeout:
            return b""

    def close(self):
        self.sock.close()


def test_max_activity_with_a_slow_reader_loses_no_spike():
    """Every neuron spikes in every step; the reader is slow, so the board's
    engine blocks on the socket (back-pressure) and nothing is dropped."""
    cfg = CoreConfig(256, 8)
    board = VirtualBoard("model", cfg)
    blocked = []
    port, stop = serve_tcp_thread(board, sndbuf=4096)
    dev = ProtocolDevice(SlowSocketPort(port), timeout=10)
    sink = board.sink

    def timed_sink(data):
        t0 = time.monotonic()
        sink(data)
        blocked.append(time.monotonic() - t0)

    board.sink = timed_sink
    net = nx.Network(neurons=256, inputs=8)
    net.threshold = -32768            # V >= threshold always: every neuron, every step
    dev.load(net)
    steps = 1500
    rec = dev.run(steps)
    dev.close()
    stop()
    assert rec.spikes.all()
    assert rec.counters["spikes"] == steps * 256
    assert sum(blocked) > 0.2          # the engine spent its time waiting for the reader


def _start_serve(args):
    proc = subprocess.Popen([sys.executable, "-m", "neurocorex", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line


def test_serve_command_tcp():
    proc, line = _start_serve(["--port", "0", "--once", "-N", "16", "-M", "4"])
    try:
        m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, line + proc.stderr.read()
        net = small_net()
        inp = np.random.default_rng(1).random((30, 4)) < 0.5
        with nx.connect(f"socket://127.0.0.1:{m.group(1)}", timeout=10) as dev:
            assert dev.info()["neurons"] == 16 and dev.info()["board"] == "vboard"
            dev.load(net)
            a = dev.run(30, inp)
        ref = nx.connect("model", neurons=16, inputs=4)
        ref.load(net)
        np.testing.assert_array_equal(a.spikes, ref.run(30, inp).spikes)
        assert proc.wait(10) == 0           # --once: exits after the client left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_rtl_backend():
    """The simulated RTL behind a TCP port gives the model's spikes."""
    try:
        from neurocorex.sim.verilog import verilator_executable
        verilator_executable()
    except Exception as e:
        pytest.skip(f"no RTL simulator: {e}")
    proc, line = _start_serve(["--backend", "rtl", "--port", "0", "--once", "-N", "8", "-M", "4"])
    try:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
        net = small_net()
        inp = np.random.default_rng(2).random((25, 4)) < 0.5
        with nx.connect(f"socket://127.0.0.1:{m.group(1)}", timeout=60) as dev:
            assert dev.info()["board"] == "sim"
            dev.load(net)
            a = dev.run(25, inp)
        ref = nx.connect("model", neurons=8, inputs=4)
        ref.load(net)
        np.testing.assert_array_equal(a.spikes, ref.run(25, inp).spikes)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_pty():
    proc, line = _start_serve(["--pty", "-N", "8", "-M", "4"])
    try:
        m = re.fullmatch(r"serving model on (/dev/\S+)\n", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
        with nx.connect(m.group(1), timeout=10) as dev:
            dev.load(small_net())
            rec = dev.run(20, np.ones((20, 4), bool))
            assert rec.counters["steps"] == 20
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_rejects_a_busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        out = subprocess.run([sys.executable, "-m", "neurocorex", "serve", "--port",
                              str(s.getsockname()[1])], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and "cannot listen" in out.stderr and "Traceback" not in out.stderr
    finally:
        s.close()


def test_encode_frame_used_by_the_host_is_the_protocols():
    assert encode_frame(b"\x01\x02")[0] == END and encode_frame(b"\x01\x02")[-1] == END
