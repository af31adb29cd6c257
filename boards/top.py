"""Board top-level: PLL clock, reset, UART pins and LEDs around the NeuroCoreX design."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Module

from ..hdl.spram import FAST_DOMAIN
from amaranth.lib import io, wiring

from ..errors import NeuroCoreXError
from .pll import ClockGenerator

__all__ = ["BoardTop", "make_design", "led_ports"]


def make_design(config, *, clk_hz, baud, board_name, stand_in=False, fast_link=False,
                **core_flags):
    """The design to place on a board: the full top, the UART echo stand-in
    (``stand_in`` true), or the core driven by a pseudo-random source
    (``stand_in="core"``, :class:`~neurocorex.boards.standin.CoreExerciser`).

    ``core_flags`` (a board's :attr:`~neurocorex.boards.targets.Board.core_flags`)
    say how the core is built (:func:`board_core`).  With ``spram``, the
    core's synapse banks are marked ``ram_style = "huge"`` so that they map
    to iCE40 single-port RAM (SB_SPRAM256KA); with ``dual_port``
    they get separate read and write ports (ECP5 and 7-series block RAM); with
    ``double_pump`` each is a single-port RAM in the ``sync2x`` domain (twice
    the core clock) used as a dual-port bank (:mod:`neurocorex.hdl.spram`), and
    the stand-in's memory is one too; with ``bank_slice`` (and ``dual_port``)
    each bank is built from memories that many bits wide
    (:mod:`neurocorex.hdl.sliced`), with ``bank_block`` also split into
    registered memories of that many words; ``banks`` is the number of synapse banks.
    ``fast_link`` builds the full top's link for a fast clock
    (:class:`~neurocorex.hdl.top.NeuroCoreTop`).
    """
    if stand_in == "core":
        from .standin import CoreExerciser
        return CoreExerciser(config, clk_hz=clk_hz, baud=baud, board=board_name, **core_flags)
    if stand_in:
        from .standin import UARTEcho
        return UARTEcho(config, clk_hz=clk_hz, baud=baud, board=board_name,
                        double_pump=core_flags.get("double_pump", False),
                        pump_schedule=core_flags.get("pump_schedule", "middle"))
    try:
        from ..hdl.top import NeuroCoreTop
    except ModuleNotFoundError as e:
        if e.name not in ("neurocorex.hdl.top",):
            raise
        raise NeuroCoreXError("the full design neurocorex.hdl.top is not available in this "
                              "checkout; build the flow-check design with --stand-in") from None
    core = board_core(config, **core_flags)
    return NeuroCoreTop(config, clk_hz=int(clk_hz), baud=baud, board=board_name or "sim", core=core,
                        fast_link=fast_link)


def board_core(config, *, spram=False, dual_port=False, double_pump=False,
               pump_schedule="middle", bank_slice=None, bank_block=None, **kw):
    """The core as a board's full design instantiates it (the flags as in
    :func:`make_design`; ``kw`` goes to :class:`~neurocorex.hdl.core.Core`).
    With ``double_pump`` its banks are in the ``sync2x`` domain, which the
    design around it must define."""
    from ..hdl.core import Core
    if double_pump:
        from ..hdl.spram import DOUBLE_PUMPED_CORE, double_pumped_banks
        return Core(config, bank_memory=double_pumped_banks(schedule=pump_schedule),
                    **DOUBLE_PUMPED_CORE, **kw)
    if bank_slice and dual_port:
        from ..hdl.sliced import sliced_banks
        return Core(config, dual_port=True, bank_memory=sliced_banks(bank_slice, bank_block),
                    **kw)
    return Core(config, dual_port=dual_port,
                synapse_attrs={"ram_style": "huge"} if spram else None, **kw)


def led_ports(design):
    """Bits of the design's LED outputs, in signature order.

    Every ``Out`` member whose name starts with ``led`` (or is ``status``) drives
    board LEDs; its bits are taken in order.  The first board LED is meant for
    activity and the second for errors, so designs list those first.
    """
    bits = []
    for name, member in design.signature.members.items():
        if member.is_port and member.flow == wiring.Out and (name.startswith("led") or name == "status"):
            sig = getattr(design, name)
            bits.extend((f"{name}[{k}]" if len(sig) > 1 else name, sig[k]) for k in range(len(sig)))
    return bits


class BoardTop(Elaboratable):
    """Clock generator, UART and LED wiring of one board around ``design``.

    Parameters
    ----------
    board : Board
        Target board (:mod:`neurocorex.boards.targets`).
    pll : PLL setting
        From ``board.solve_pll``; a setting with a fast output (``double``) also
        clocks the ``sync2x`` domain at twice the core clock.
    design : wiring.Component
        Has ``uart_rx`` (In 1), ``uart_tx`` (Out 1) and LED outputs (see :func:`led_ports`).
    """

    def __init__(self, board, pll, design):
        self.board = board
        self.pll = pll
        self.design = design
        #: (design LED name, board LED) pairs, filled during elaboration
        self.led_map = []

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        if getattr(self.pll, "double", False):
            # no reset: the RAM schedule in it runs from power-up (hdl/spram.py)
            m.domains += ClockDomain(FAST_DOMAIN, reset_less=True)
        b = self.board
        clk = platform.request(b.clk_in, 0, dir="-")
        rst = None
        if b.rst is not None:
            m.submodules.rst_buf = rst_buf = io.Buffer("i", platform.request(b.rst, 0, dir="-"))
            rst = rst_buf.i
        m.submodules.clkgen = ClockGenerator(b.family, self.pll, clk, rst, fast_domain=FAST_DOMAIN)
        m.submodules.design = d = self.design

        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [d.uart_rx.eq(rx_buf.i), tx_buf.o.eq(d.uart_tx)]

        self.led_map = []
        for (name, bit), (res, num) in zip(led_ports(d), b.leds):
            buf = io.Buffer("o", platform.request(res, num, dir="-"))
            m.submodules[f"led_{res}_{num}"] = buf
            m.d.comb += buf.o.eq(bit)
            self.led_map.append((name, f"{res}{num}"))
        return m
