"""The boards NeuroCoreX builds for: platform, clock, UART, LEDs, default core size.

Each :class:`Board` names its `amaranth-boards` platform, the PLL family and
its chosen core clock, the USB-UART bridge's highest rate, the LEDs used for
activity and error, the largest default ``N``/``M`` that fit, the Yosys and
nextpnr options its memories need, and the programmers that can load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import NeuroCoreXError, RangeError
from . import pll as _pll

__all__ = ["Board", "BOARDS", "get_board", "baud_divisor", "baud_error", "check_baud",
           "MAX_BAUD_ERROR"]

#: Largest relative error between the requested baud rate and the one the
#: clock divider produces; 8N1 framing tolerates about 4-5 % in total for
#: both ends, so each end may use at most half of it.
MAX_BAUD_ERROR = 0.02


def baud_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per UART bit: the nearest integer to ``clk_hz / baud``."""
    return max(1, round(clk_hz / baud))


def baud_error(clk_hz: float, baud: int) -> float:
    """Relative error of the bit rate the divider produces against ``baud``."""
    actual = clk_hz / baud_divisor(clk_hz, baud)
    return abs(actual - baud) / baud


def check_baud(clk_hz: float, baud: int, max_baud: int | None = None) -> int:
    """Return the divisor for ``baud`` at ``clk_hz`` or raise :class:`RangeError`.

    Refuses a rate above the board's USB bridge limit ``max_baud``, a rate
    whose divisor is below 4 clocks per bit (the receiver samples mid-bit),
    and a rate whose divider error exceeds :data:`MAX_BAUD_ERROR`.
    """
    if not isinstance(baud, int) or baud <= 0:
        raise RangeError(f"baud must be a positive integer, got {baud!r}")
    if max_baud is not None and baud > max_baud:
        raise RangeError(f"baud={baud} is out of range; the board's USB UART allows [1, {max_baud}]")
    div = baud_divisor(clk_hz, baud)
    if clk_hz / baud < 4:
        raise RangeError(f"baud={baud} is too fast for a {clk_hz / 1e6:g} MHz clock: "
                         f"at least 4 clocks per bit are needed (baud <= {int(clk_hz // 4)})")
    err = baud_error(clk_hz, baud)
    if err > MAX_BAUD_ERROR:
        actual = clk_hz / div
        raise RangeError(
            f"baud={baud} at a {clk_hz / 1e6:g} MHz clock divides by {div} and gives {actual:.0f} baud, "
            f"{err:.2%} off (allowed {MAX_BAUD_ERROR:.0%}); choose a baud rate near clk/n")
    return div


@dataclass(frozen=True)
class Board:
    """One supported board.

    Attributes
    ----------
    name : str
        Name used on the command line (``--board``).
    title : str
        Human-readable board and FPGA name.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"xilinx"``.
    platform_path : str
        ``module:Class`` of its amaranth-boards platform.
    clk_in : str
        Oscillator resource name; ``clk_in_hz`` its frequency.
    clk_hz : float
        Default core clock made by the PLL.
    baud, max_baud : int
        Default UART rate and the USB bridge's highest rate.
    bridge : str
        USB-UART bridge chip.
    leds : tuple
        ``(resource, number)`` of the LEDs: activity first, error second, then others.
    neurons, inputs : int
        Default (largest fitting) core size.
    bitstream : str
        Bitstream file name in the build directory.
    programmers : tuple
        ``(tool, argv...)`` in order of preference; ``{bitstream}`` is substituted.
    install_hint : str
        What to install when no programmer is found.
    spram : bool
        The FPGA has single-port RAMs (iCE40 SPRAM) for memories marked
        ``ram_style = "huge"``.
    dual_port : bool
        The block RAMs have a read and a write port, which the core's synapse
        banks use (one clock per read-modify-write instead of two).
    double_pump : bool
        The synapse banks are single-port RAMs (iCE40 SPRAM) run at twice the
        core clock from a second PLL output, one read and one write per core
        clock (:class:`neurocorex.hdl.spram.DoublePumpedRAM`), so the core uses
        them as dual-port banks.  ``clk_hz`` stays the core clock.
    pump_schedule : str
        Where the double-pumped RAM reads in the core cycle: ``"middle"`` or
        ``"edge"`` (:data:`neurocorex.hdl.spram.SCHEDULES`, docs/boards.md).
    banks : int
        Synapse banks of the core (``Core(banks=...)``): each read or write
        moves ``banks`` words, so more banks make rows and columns shorter.
    bank_slice : int or None
        Build each dual-port synapse bank from memories this many bits wide
        (:class:`neurocorex.hdl.sliced.SlicedRAM`): a shallower read
        multiplexer over the block RAMs.
    bank_block : int or None
        With ``bank_slice``: split each slice into memories of this many
        words (one block RAM each) whose read data is registered before the
        multiplexer (``SlicedRAM(block_depth=...)``): the bank output stage
        moves in front of the multiplexer, next to the block RAMs.
    overlap_rows : bool
        The core integrates the next step's recurrent rows during the neuron
        pass (``Core(overlap_rows=True)``), in a second set of accumulator
        memories.
    accumulator_attrs : dict or None
        Attributes of the core's accumulator memories, e.g.
        ``{"ram_style": "distributed"}`` to keep them out of the block RAMs.
    fast_link : bool
        Build the link for a fast clock (:class:`~neurocorex.hdl.top.NeuroCoreTop`).
    overrides : dict
        Toolchain overrides for ``platform.prepare``.
    toolchain : str
        ``"open"`` (Yosys + nextpnr from PyPI) or ``"vivado"``.
    """
    name: str
    title: str
    family: str
    platform_path: str
    clk_in: str
    clk_in_hz: float
    clk_hz: float
    baud: int
    max_baud: int
    bridge: str
    leds: tuple
    neurons: int
    inputs: int
    bitstream: str
    programmers: tuple
    install_hint: str
    rst: str | None = None
    spram: bool = False
    dual_port: bool = False
    double_pump: bool = False
    pump_schedule: str = "middle"
    banks: int = 4
    bank_slice: int | None = None
    bank_block: int | None = None
    overlap_rows: bool = False
    accumulator_attrs: dict | None = None
    fast_link: bool = False
    overrides: dict = field(default_factory=dict)
    toolchain: str = "open"

    @property
    def core_flags(self) -> dict:
        """How the board builds its core: the keyword arguments of
        :func:`neurocorex.boards.top.board_core` (and ``make_design``)."""
        return {"spram": self.spram, "dual_port": self.dual_port,
                "double_pump": self.double_pump, "pump_schedule": self.pump_schedule,
                "banks": self.banks, "bank_slice": self.bank_slice,
                "bank_block": self.bank_block,
                "overlap_rows": self.overlap_rows,
                "accumulator_attrs": self.accumulator_attrs}

    def core_flags_with(self, banks: int | None = None) -> dict:
        """:attr:`core_flags` with ``banks`` synapse banks instead of the
        board's when it is given."""
        flags = self.core_flags
        if banks is not None:
            flags["banks"] = banks
        return flags

    def platform(self):
        import importlib
        mod, cls = self.platform_path.split(":")
        return getattr(importlib.import_module(mod), cls)()

    def solve_pll(self, clk_hz: float | None = None):
        clk_hz = self.clk_hz if clk_hz is None else clk_hz
        if self.double_pump:
            if self.family != "ice40":
                raise NeuroCoreXError(f"{self.name}: a doubled clock is only made for iCE40 PLLs")
            return _pll.solve_ice40(self.clk_in_hz, clk_hz, double=True)
        solver = {"ice40": _pll.solve_ice40, "ecp5": _pll.solve_ecp5,
                  "xilinx": _pll.solve_xilinx}[self.family]
        return solver(self.clk_in_hz, clk_hz)


BOARDS: dict[str, Board] = {}


def _add(board: Board):
    BOARDS[board.name] = board


_add(Board(
    name="icebreaker", title="iCEBreaker (iCE40 UP5K-SG48)", family="ice40",
    platform_path="amaranth_boards.icebreaker:ICEBreakerPlatform",
    clk_in="clk12", clk_in_hz=12e6, clk_hz=30e6,
    # FT2232H: 3 Mbaud = 12 MHz / 4 exactly on the host side
    baud=3_000_000, max_baud=12_000_000, bridge="FT2232H",
    leds=(("led_g", 0), ("led_r", 0)),
    neurons=256, inputs=256, bitstream="top.bin",
    programmers=(("iceprog", "{bitstream}"),
                 ("openFPGALoader", "-b", "ice40_generic", "{bitstream}")),
    install_hint="iceprog (Debian: apt install fpga-icestorm) or openFPGALoader "
                 "(Debian: apt install openfpgaloader)",
    # -spram: single-port memories marked ram_style=huge go to SB_SPRAM256KA (their
    # initial values are removed first, see build.py); -dsp: multipliers go to the
    # SB_MAC16 blocks instead of LUTs; -device u: ABC maps the logic with the
    # UltraPlus's LUT and wire delays (the default, the HX's, are about half
    # of them: mapped for those the core clock reached 27.0 MHz, for these
    # 31.0-31.5 MHz over three placer seeds)
    overrides=dict(synth_opts="-spram -dsp -device u"), spram=True,
    # the SPRAMs at 60 MHz serve a read and a write per 30 MHz core clock
    # (SB_PLL40_2F_PAD: GENCLK and GENCLK_HALF; docs/boards.md)
    double_pump=True,
))

_add(Board(
    name="ulx3s", title="ULX3S 85F (ECP5 LFE5U-85F)", family="ecp5",
    platform_path="amaranth_boards.ulx3s:ULX3S_85F_Platform",
    # 25 MHz * 16 / 5 = 80 MHz: the full design reaches 80.06 MHz (seed 1) and
    # 81.07 MHz (seed 3) built for it (docs/boards.md)
    clk_in="clk25", clk_in_hz=25e6, clk_hz=80e6,
    # FT231X tops out at 3 Mbaud: 80 MHz / 27, 1.2 % slow (75 MHz, 25 MHz * 3,
    # would divide exactly: --clk-mhz 75)
    baud=3_000_000, max_baud=3_000_000, bridge="FT231X",
    leds=tuple(("led", k) for k in range(8)),
    neurons=512, inputs=192, bitstream="top.bit",
    programmers=(("openFPGALoader", "-b", "ulx3s", "{bitstream}"),
                 ("fujprog", "{bitstream}")),
    install_hint="openFPGALoader (Debian: apt install openfpgaloader) or fujprog",
    # ECP5 has no SPRAM: memories marked for it on iCE40 go to EBR here
    overrides=dict(script_after_read="setattr -unset ram_style a:ram_style=huge"),
    dual_port=True,
    # eight banks: rows and columns take half the clocks of four (the
    # potentiation columns dominate a step with learning on); each bank as
    # two 8-bit memories, mapped as 2048 x 9 blocks: 11-way read multiplexers
    # over the bank's 22 block RAMs (hdl/sliced.py), each block's read data
    # registered before them (the bank output stage next to the block RAMs)
    banks=8, bank_slice=8, bank_block=2048,
    # the next step's recurrent rows during the neuron pass (learning off); the
    # two accumulator sets in LUT RAM: the banks leave too few block RAMs
    overlap_rows=True, accumulator_attrs={"ram_style": "distributed"},
    # the link's frame buffer read through a second register (its block RAM's
    # 5.8 ns output no longer feeds the command engine's logic), the engine's
    # ring tail and aux writes from registers, FIFOs between link and core
    fast_link=True,
))

_add(Board(
    name="arty_a7", title="Arty A7-35T (Artix-7 XC7A35T)", family="xilinx",
    platform_path="amaranth_boards.arty_a7:ArtyA7_35Platform",
    clk_in="clk100", clk_in_hz=100e6, clk_hz=60e6, rst="rst",
    # FT2232HQ; 60 MHz / 20 is exact (not timed: Vivado is not installed here)
    baud=3_000_000, max_baud=12_000_000, bridge="FT2232HQ",
    leds=tuple(("led", k) for k in range(4)),
    neurons=256, inputs=256, bitstream="top.bit",
    programmers=(("openFPGALoader", "-b", "arty_a7_35t", "{bitstream}"),),
    install_hint="openFPGALoader (Debian: apt install openfpgaloader)",
    toolchain="vivado", dual_port=True,
))


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise NeuroCoreXError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None
