"""RTLSerial: a pyserial-like port onto a Verilated design, at the UART pins."""

import os
import sys
import time

import numpy as np
import pytest

from neurocorex.errors import RangeError, UnsupportedError
from neurocorex.formats import CoreConfig
from neurocorex.sim.rtl import RTLSerial, RTLSerialError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "cocotb"))
from standins import EchoTop  # noqa: E402

BAUD_DIV = 4


@pytest.fixture
def echo():
    with RTLSerial(CoreConfig(4, 2), baud_div=BAUD_DIV, top=EchoTop, timeout=10) as port:
        yield port


def test_echo_roundtrip_and_bit_timing():
    idle = 2000
    echo = RTLSerial(CoreConfig(4, 2), baud_div=BAUD_DIV, top=EchoTop, timeout=10, idle_cycles=idle)
    data = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    assert echo.write(data) == len(data)
    assert echo.read(len(data)) == data
    echo.close()
    # 10 bit times per byte, back to back; the echo adds one frame of latency
    # and the harness runs `idle` clocks before the first write and after the
    # last activity (the io slices round both up by at most 256).
    frame = 10 * BAUD_DIV
    assert echo.stats["bytes_out"] == len(data)
    assert echo.stats["framing_errors"] == 0
    assert len(data) * frame <= echo.cycles <= (len(data) + 2) * frame + 2 * (idle + 256) + 8


def test_read_timeout_and_buffers(echo):
    echo.timeout = 0.3
    t0 = time.monotonic()
    assert echo.read(1) == b""
    assert time.monotonic() - t0 >= 0.29
    echo.write(b"abc")
    deadline = time.monotonic() + 10
    while echo.in_waiting < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert echo.in_waiting == 3
    echo.timeout = 0
    assert echo.read(2) == b"ab"
    echo.reset_input_buffer()
    assert echo.in_waiting == 0 and echo.read(5) == b""
    echo.timeout = 10
    echo.write(b"xyz\nrest")
    assert echo.read_until(b"\n") == b"xyz\n"
    assert echo.read(4) == b"rest"


def test_sleeps_when_idle_and_wakes():
    echo = RTLSerial(CoreConfig(4, 2), baud_div=BAUD_DIV, top=EchoTop, timeout=10, idle_cycles=5000)
    echo.write(b"1")
    assert echo.read(1) == b"1"
    time.sleep(0.5)                     # the simulation goes to sleep here
    echo.write(b"2")
    assert echo.read(1) == b"2"
    echo.close()
    assert echo.stats["sleeps"] >= 1


def test_closed_port_raises(echo):
    echo.close()
    with pytest.raises(RTLSerialError):
        echo.write(b"x")


def test_bad_arguments():
    with pytest.raises(RangeError, match="baud_div"):
        RTLSerial(CoreConfig(4, 2), baud_div=1, top=EchoTop)
    with pytest.raises(UnsupportedError, match="backend"):
        RTLSerial(CoreConfig(4, 2), backend="nope", top=EchoTop)


def test_real_top_answers_caps_at_the_pins():
    """The full design, through its pins only: garbage, then a CAPS request, is answered."""
    pytest.importorskip("neurocorex.hdl.top")
    from neurocorex.protocol import Deframer, Err, Kind, Op, encode_frame, parse_caps
    config = CoreConfig(8, 4)          # the shape the host device tests build too
    with RTLSerial(config, baud_div=4, timeout=20) as port:
        port.write(b"\x00\xffnoise\xdb")          # resynchronised by the next frame
        port.write(encode_frame(bytes((Op.CAPS, 7))))
        dfr, got = Deframer(), []
        deadline = time.monotonic() + 60
        while not any(v.status == Err.OK and v.body[1] == 7 for v in got):
            assert time.monotonic() < deadline, f"no CAPS answer; frames so far: {got}"
            got += dfr.feed(port.read(1))
    ans = [v for v in got if v.status == Err.OK and v.body[1] == 7][-1]
    assert ans.body[0] == Kind.ACK and ans.body[2] == Op.CAPS
    caps = parse_caps(ans.body[3:])
    assert (caps["neurons"], caps["inputs"], caps["weight_bits"]) == (8, 4, 7)
    assert caps["clk_hz"] == 4 * caps["baud"] == 4 * port.baudrate
