"""cocotb drivers for Amaranth ``lib.stream`` ports, as Amaranth's Verilog names them.

A stream member ``foo`` of a component becomes the ports ``foo__valid``,
``foo__ready`` and ``foo__payload`` (the payload layout packed into one
vector, first field in the low bits).  :class:`StreamBench` runs one clock
loop that serves every stream at once: each cycle it drives the inputs at the
falling edge, waits for the values to settle (``ReadOnly``) and records the
handshakes that the next rising edge will complete.  That works the same on
Verilator and Icarus, whatever is combinational inside the design.

Output streams can be throttled (``ready`` low at random) and input streams
can leave gaps (``valid`` low at random) to exercise back-pressure.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, FallingEdge, ReadOnly

__all__ = ["Packer", "StreamBench"]


class Packer:
    """Packs dicts into a ``data.StructLayout`` vector and back."""

    def __init__(self, layout):
        self.fields = [(name, field.offset, field.width) for name, field in layout]
        self.width = layout.size

    def pack(self, **values) -> int:
        word = 0
        for name, off, width in self.fields:
            word |= (int(values.get(name, 0)) & ((1 << width) - 1)) << off
        return word

    def unpack(self, word: int) -> dict:
        return {name: (word >> off) & ((1 << width) - 1) for name, off, width in self.fields}


class _In:
    def __init__(self, dut, name, layout, gap):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.packer = Packer(layout)
        self.gap = gap
        self.queue = deque()        # (word, event or None)
        self.driving = False


class _Out:
    def __init__(self, dut, name, layout, throttle):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.packer = Packer(layout)
        self.throttle = throttle
        self.items = deque()
        self.event = Event()
        self.ready_now = 0


class StreamBench:
    """Clock loop serving input and output streams of a DUT.

    Parameters
    ----------
    dut : cocotb handle
    inputs, outputs : dict name -> StructLayout
    rng : random.Random
        Source of the gaps and throttling.
    gap, throttle : float
        Probability that an idle input leaves a cycle empty / that an output
        is not ready in a cycle.
    """

    def __init__(self, dut, inputs: dict, outputs: dict, *, rng=None, gap=0.0, throttle=0.0):
        self.dut = dut
        self.rng = rng or random.Random(0)
        self.ins = {n: _In(dut, n, lay, gap) for n, lay in inputs.items()}
        self.outs = {n: _Out(dut, n, lay, throttle) for n, lay in outputs.items()}
        self.cycles = 0
        self._task = None

    def idle_inputs(self):
        """Drive every input stream idle and every output stream not ready."""
        for s in self.ins.values():
            s.valid.value = 0
            s.payload.value = 0
        for s in self.outs.values():
            s.ready.value = 0
            s.ready_now = 0

    def start(self):
        """Start the clock loop (a falling edge after the call is its first cycle)."""
        self.idle_inputs()
        self._task = cocotb.start_soon(self._loop())

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def send(self, name: str, **fields) -> Event:
        """Queue one transfer on input stream ``name``; the event fires once it is accepted."""
        s = self.ins[name]
        ev = Event()
        s.queue.append((s.packer.pack(**fields), ev))
        return ev

    async def recv(self, name: str) -> dict:
        """Next transfer on output stream ``name``."""
        s = self.outs[name]
        while not s.items:
            s.event.clear()
            await s.event.wait()
        return s.items.popleft()

    def pending(self, name: str) -> int:
        return len(self.outs[name].items)

    async def _loop(self):
        clk = self.dut.clk
        rng = self.rng
        done = []
        while True:
            await FallingEdge(clk)
            # transfers seen before the last rising edge are complete now
            for s in done:
                _, ev = s.queue.popleft()
                s.driving = False
                ev.set()
            for s in self.ins.values():
                if not s.driving:
                    if s.queue and (s.gap == 0 or rng.random() >= s.gap):
                        s.payload.value = s.queue[0][0]
                        s.valid.value = 1
                        s.driving = True
                    elif s in done:
                        s.valid.value = 0
            for s in self.outs.values():
                r = 1 if s.throttle == 0 or rng.random() >= s.throttle else 0
                if r != s.ready_now:
                    s.ready.value = r
                    s.ready_now = r
            # all inputs of this cycle are set: see what the next edge takes
            await ReadOnly()
            self.cycles += 1
            done = [s for s in self.ins.values() if s.driving and s.ready.value]
            for name, s in self.outs.items():
                if not s.valid.value.is_resolvable:
                    raise AssertionError(f"{name}__valid is {s.valid.value} at cycle {self.cycles}")
                if s.ready_now and s.valid.value:
                    s.items.append(s.packer.unpack(int(s.payload.value)))
                    s.event.set()
