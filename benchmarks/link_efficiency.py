"""Bulk-upload efficiency of the UART link, measured in simulation.

The host's frames for loading a network (recorded from the real host code,
``neurocorex.link.ProtocolDevice``) are played bit by bit into the ``uart_rx``
pin of ``NeuroCoreTop`` (UART, frame codec, command engine and the real core)
in Amaranth's simulator.  As the host does, consecutive WRITE frames keep two
in flight (the device buffers one while it executes the other); any other
command waits for the previous answer.  The simulated host reacts at once.

Efficiency = payload bytes (the words written: weights, parameters) x 10 bit
times, over the bit times from the first start bit to the last stop bit of
the last acknowledgement: frame headers, CRC, length, escapes, delimiters,
acknowledgements and every idle bit time while the device works count as
overhead.

    python benchmarks/link_efficiency.py [--neurons 32 --inputs 32 --clk-hz 30e6 --baud 3e6]

The defaults are the iCEBreaker build: 30 MHz, 3 Mbaud (10 clocks per bit).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from amaranth.sim import Simulator

import neurocorex as nx
from neurocorex.formats import CoreConfig
from neurocorex.hdl.top import NeuroCoreTop
from neurocorex.link import ProtocolDevice
from neurocorex.protocol import END, Op, Deframer, Kind
from neurocorex.sim.busmodel import BusCore
from neurocorex.sim.vboard import LinkEngine


class RecordingPort:
    """pyserial-like port onto the Python engine that records what the host writes."""

    def __init__(self, config):
        self.buf = bytearray()
        self.frames = []
        self.engine = LinkEngine(BusCore(config), config, self.buf.extend)
        self.timeout = 0.01

    def write(self, data):
        if bytes(data) != bytes((END,)):
            self.frames.append(bytes(data))
        self.engine.feed(bytes(data))

    @property
    def in_waiting(self):
        return len(self.buf)

    def read(self, n=1):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def close(self):
        pass


def payload_of(frame: bytes) -> int:
    """Bytes of words a WRITE frame carries (0 for other commands)."""
    v = Deframer(65535).feed(frame)[0]
    return len(v.body) - 2 - 4 if v.body[0] == Op.WRITE else 0


def host_frames(config, seed=0):
    rng = np.random.default_rng(seed)
    net = nx.Network(neurons=config.neurons, inputs=config.inputs)
    net.w_rec = rng.integers(-64, 64, (config.neurons, config.neurons))
    net.w_in = rng.integers(-64, 64, (config.inputs, config.neurons))
    net.plastic_rec = rng.random((config.neurons, config.neurons)) < 0.5
    net.threshold = rng.integers(100, 1000, config.neurons)
    port = RecordingPort(config)
    dev = ProtocolDevice(port)
    port.frames.clear()
    dev.load(net)
    return port.frames


def simulate(config, frames, clk_hz, baud, core="real"):
    from neurocorex.hdl.core import Core
    if core == "real":
        core_obj = Core(config)
    else:
        import sys
        import os
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
        from test_hdl_link import StandInCore
        core_obj = StandInCore(config)
    top = NeuroCoreTop(config, clk_hz=clk_hz, baud=baud, core=core_obj)
    div = top.divisor
    result = {}
    state = {"acks": 0}
    is_write = [Deframer(65535).feed(f)[0].body[0] == Op.WRITE for f in frames]

    async def receiver(ctx):
        dfr = Deframer(65535)
        while True:
            await ctx.negedge(top.uart_tx)                     # start bit
            await ctx.tick().repeat(div // 2)
            byte = 0
            for i in range(8):
                await ctx.tick().repeat(div)
                byte |= ctx.get(top.uart_tx) << i
            await ctx.tick().repeat(div)                      # middle of the stop bit
            for v in dfr.feed(bytes((byte,))):
                if v.body and v.body[0] == Kind.NAK:
                    raise RuntimeError(f"device rejected a frame: {v.body.hex()}")
                if v.body and v.body[0] == Kind.ACK:
                    state["acks"] += 1

    async def host(ctx):
        ctx.set(top.uart_rx, 1)
        await ctx.tick().repeat(20)
        cycles = 0
        for i, frame in enumerate(frames):
            # like ProtocolDevice: consecutive WRITEs keep two frames in flight
            window = 2 if is_write[i] and i > 0 and is_write[i - 1] else 1
            while state["acks"] < i - window + 1:
                await ctx.tick()
                cycles += 1
            for b in frame:                                   # send, back to back
                for bit in [0] + [(b >> k) & 1 for k in range(8)] + [1]:
                    ctx.set(top.uart_rx, bit)
                    await ctx.tick().repeat(div)
                    cycles += div
        while state["acks"] < len(frames):
            await ctx.tick()
            cycles += 1
            if cycles > 50_000_000:
                raise RuntimeError("no answer from the device")
        # the last acknowledgement was taken in the middle of its stop bit
        result["cycles"] = cycles + div - div // 2
        result["divisor"] = div

    sim = Simulator(top)
    sim.add_clock(1 / clk_hz)
    sim.add_testbench(host)
    sim.add_testbench(receiver, background=True)
    sim.run()
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--neurons", type=int, default=32)
    p.add_argument("--inputs", type=int, default=32)
    p.add_argument("--clk-hz", type=float, default=30e6)
    p.add_argument("--baud", type=float, default=3e6)
    p.add_argument("--core", choices=("real", "standin"), default="real")
    args = p.parse_args(argv)
    config = CoreConfig(args.neurons, args.inputs)
    frames = host_frames(config)
    weights = [f for f in frames if payload_of(f) and
               Deframer(65535).feed(f)[0].body[2] in (0, 1)]       # W_REC / W_IN writes
    print(f"core N={config.neurons} M={config.inputs}, clk {args.clk_hz / 1e6:g} MHz, "
          f"{args.baud / 1e6:g} Mbaud")
    for name, fr in (("weights (bulk)", weights), ("whole load()", frames)):
        t0 = time.monotonic()
        r = simulate(config, fr, int(args.clk_hz), int(args.baud), args.core)
        payload = sum(payload_of(f) for f in fr)
        sent = sum(len(f) for f in fr)
        bit_times = r["cycles"] / r["divisor"]
        eff = payload * 10 / bit_times
        print(f"{name:15s}: {len(fr):3d} frames, payload {payload} B, sent {sent} B, "
              f"{bit_times:.0f} bit times -> efficiency {eff:.1%} of line rate "
              f"({payload / (bit_times / args.baud) / 1e3:.0f} kB/s)  [sim {time.monotonic() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
