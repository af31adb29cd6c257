"""The full design simulated at the pins: a serial port made of RTL.

:class:`RTLSerial` is a pyserial-like object whose other end is the Verilog of
``neurocorex.hdl.top.NeuroCoreTop`` compiled by Verilator, driven **only**
through its ``uart_rx``/``uart_tx`` pins with real 8N1 bit timing.  The host
link speaks its frames over it exactly as over a USB-serial adapter, so
``connect("rtl")`` exercises the whole gateware: UART, frame codec, command
engine and core.

Contract (what the link relies on)
----------------------------------
``RTLSerial(config=CoreConfig(), *, baud_div=4, backend="verilator", timeout=None,
write_timeout=None, idle_cycles=2**20, top=None, log=None)``

``baud_div`` is the number of clocks per UART bit (4 .. 65535; the top's
receiver needs at least 4); ``top`` replaces ``NeuroCoreTop`` by another
class with the same constructor and pins; ``log`` receives build messages
(default: stderr).

* ``write(data) -> int``: queues every byte at once (never blocks for long,
  never drops); the simulation shifts them onto ``uart_rx`` back to back,
  ``baud_div`` clocks per bit, 10 bits per byte, like a real UART with no flow
  control.  Returns ``len(data)``.
* ``read(size=1) -> bytes``: bytes decoded from ``uart_tx``.  Waits until
  ``size`` bytes arrived or ``timeout`` seconds (wall clock) passed; ``timeout=None``
  waits forever, ``0`` returns what is there.  A short result means timeout.
* ``in_waiting`` (bytes ready to read), ``out_waiting`` (always 0),
  ``timeout`` and ``write_timeout`` (settable), ``baudrate`` (nominal, the
  link may ignore it), ``port`` (``"rtl"``), ``is_open``.
* ``flush()`` (no-op: writes are handed over at once), ``reset_input_buffer()``
  (drops unread bytes), ``reset_output_buffer()`` (no-op), ``close()`` and the
  context manager.  ``close()`` stops the simulator process; afterwards
  ``cycles`` holds the number of clock cycles simulated and ``stats`` the
  harness counters (``cycles``, ``bytes_in``, ``bytes_out``,
  ``framing_errors``, ``sleeps``).  ``clk_hz`` is the simulated clock rate
  (``baudrate * baud_div``), to turn cycles into device time.
* The design comes out of reset when the object is created, so it is in the
  same state as a freshly configured board.  Creating the first object for
  a given ``config``/``baud_div`` builds the simulator (for N=256 on this
  machine: 4-17 s of Verilog conversion plus 35-75 s of Verilator, depending
  on load); later ones find the cached build in ``~/.cache/neurocorex`` (or
  ``$NEUROCOREX_CACHE``) in well under a second.
* The simulated clock runs while bytes are being sent or received and for
  ``idle_cycles`` clocks after the last activity; then the simulation sleeps
  until the host writes again.  A design that computes silently for longer
  than that (no UART traffic) would be paused, so the default is generous.
* Errors: a simulator that dies, or use after ``close()``, raises
  :class:`RTLSerialError` (a :class:`neurocorex.errors.LinkError` and a
  ``serial.SerialException``); a failed build raises
  :class:`neurocorex.errors.DeviceError` with the compiler's output; a
  missing Verilator raises :class:`~neurocorex.sim.verilog.ToolNotFound`
  (also a ``DeviceError``); bad arguments raise ``RangeError`` /
  ``UnsupportedError`` naming the argument.

The top level is built as ``NeuroCoreTop(config, clk_hz=baud * baud_div,
baud=baud, board="sim")`` so that the design's own divisor equals
``baud_div``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import serial

from ..errors import LinkError, UnsupportedError
from ..formats import CoreConfig, check_int
from .verilog import verilog_file, verilator_build

__all__ = ["RTLSerial", "RTLSerialError", "HARNESS_DIR", "build_simulator"]

HARNESS_DIR = Path(__file__).parent / "harness"
_HARNESS = HARNESS_DIR / "uart_main.cpp"

#: Verilator options of the harness build (``$NEUROCOREX_VERILATOR_FLAGS`` adds more).
#: Every register has an initial value in Amaranth's Verilog, so X handling can be "fast".
HARNESS_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast")

#: Nominal line rate given to the top level; only the divisor matters in simulation.
SIM_BAUD = 1_000_000


class RTLSerialError(LinkError, serial.SerialException):
    """The RTL simulator failed or went away."""


def _default_top():
    from ..hdl.top import NeuroCoreTop
    return NeuroCoreTop


def build_simulator(config: CoreConfig, *, baud_div: int = 4, top=None, log=None) -> Path:
    """Build (or find in the cache) the Verilator executable of the top level.

    Parameters
    ----------
    config : CoreConfig
        Shape of the core.
    baud_div : int
        Clocks per UART bit, 4 .. 65535.
    top : type, optional
        Component class with the pins of ``NeuroCoreTop`` (default: that class).
    log : callable, optional
        Called with a progress message when a build is needed.

    Returns
    -------
    Path
        The harness executable.
    """
    baud_div = check_int("baud_div", baud_div, 4, 65535)
    top = top or _default_top()
    v = verilog_file(top, config, clk_hz=SIM_BAUD * baud_div, baud=SIM_BAUD, board="sim")
    flags = list(HARNESS_FLAGS) + os.environ.get("NEUROCOREX_VERILATOR_FLAGS", "").split()
    busy = _busy_port(v)
    if busy:
        flags += ["-CFLAGS", f"-DNCX_BUSY_PORT={busy}"]
    return verilator_build([v], "top", [_HARNESS], exe="ncx_uart", flags=tuple(flags),
                           cflags="-O2", log=log, before=log and (lambda: log(
                               f"building the RTL simulator for N={config.neurons}, "
                               f"M={config.inputs} (first time only) ...")))


def _busy_port(verilog: Path) -> str | None:
    """Name of a one-bit ``busy`` status output of the top level, if it has one."""
    for name in ("busy",):
        if re.search(rf"^\s*output\s+{name}\s*;", verilog.read_text(), re.M):
            return name
    return None


class RTLSerial:
    """A pyserial-like port connected to the simulated RTL of the full design.

    Parameters
    ----------
    config : CoreConfig, optional
        Shape of the core (default N=256, M=256).
    baud_div : int
        Clocks per UART bit in simulation (4 .. 65535); small is fast.
    backend : str
        ``"verilator"`` (the only one implemented).
    timeout : float or None
        Read timeout in seconds, as in pyserial.
    idle_cycles : int
        Clocks the simulation keeps running after the last UART activity.
    top : type, optional
        Top-level component class (default ``neurocorex.hdl.top.NeuroCoreTop``).
    log : callable, optional
        Receives progress messages (a build); default prints to stderr.

    See the module docstring for the exact contract.
    """

    port = "rtl"

    def __init__(self, config: CoreConfig | None = None, *, baud_div: int = 4,
                 backend: str = "verilator", timeout: float | None = None,
                 write_timeout: float | None = None, idle_cycles: int = 1 << 20, top=None, log=None):
        if backend != "verilator":
            raise UnsupportedError(f"backend={backend!r} is not available; allowed: 'verilator'")
        self.config = config if config is not None else CoreConfig()
        self.baud_div = check_int("baud_div", baud_div, 4, 65535)
        idle_cycles = check_int("idle_cycles", idle_cycles, 1, 1 << 62)
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.baudrate = SIM_BAUD
        self.clk_hz = SIM_BAUD * self.baud_div
        self.cycles: int | None = None
        self.stats: dict = {}
        if log is None:
            def log(msg):
                print(msg, file=sys.stderr, flush=True)
        self._exe = build_simulator(self.config, baud_div=self.baud_div, top=top, log=log)

        self._buf = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [str(self._exe), "--baud-div", str(self.baud_div), "--idle-cycles", str(idle_cycles)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0)
        self._reader = threading.Thread(target=self._pump, name="rtl-serial-reader", daemon=True)
        self._reader.start()
        self.is_open = True

    # -- background reader --------------------------------------------------------------

    def _pump(self):
        fd = self._proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._cond.notify_all()

    def _check_alive(self):
        if not self.is_open:
            raise RTLSerialError("the RTL serial port is closed")
        if self._proc.poll() is not None:
            raise RTLSerialError(f"the RTL simulator exited with status {self._proc.returncode}: "
                                 f"{self._stderr_text()[-2000:]}")

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    # -- pyserial API -------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        with self._cond:
            return len(self._buf)

    @property
    def out_waiting(self) -> int:
        return 0

    def write(self, data) -> int:
        self._check_alive()
        data = bytes(data)
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, OSError) as e:
            raise RTLSerialError(f"the RTL simulator is gone: {e}; {self._stderr_text()[-2000:]}") from None
        return len(data)

    def flush(self) -> None:
        pass

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise RTLSerialError("the RTL serial port is closed")
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._cond:
            while len(self._buf) < size and not self._eof:
                if deadline is None:
                    self._cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            out = bytes(self._buf[:size])
            del self._buf[:size]
        if not out and size and self._eof and self._proc.poll() not in (None, 0):
            self._check_alive()
        return out

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        out = bytearray()
        while size is None or len(out) < size:
            c = self.read(1)
            if not c:
                break
            out += c
            if out.endswith(expected):
                break
        return bytes(out)

    def reset_input_buffer(self) -> None:
        with self._cond:
            self._buf.clear()

    def reset_output_buffer(self) -> None:
        pass

    def close(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        self._proc.stdout.close()
        text = self._stderr_text()
        self._stderr.close()
        for line in text.splitlines():
            if line.startswith("ncx-harness "):
                self.stats = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
                self.cycles = self.stats.get("cycles")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return (f"RTLSerial(neurons={self.config.neurons}, inputs={self.config.inputs}, "
                f"baud_div={self.baud_div}, open={self.is_open})")
