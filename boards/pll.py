"""PLL settings computed in Python, and the clock-generator gateware that uses them.

Three PLL families are covered:

* iCE40 ``SB_PLL40_PAD`` (simple feedback): ``f_out = f_in·(DIVF+1) / ((DIVR+1)·2**DIVQ)``;
  or ``SB_PLL40_2F_PAD`` with that output on port A (``GENCLK``) and half of it on
  port B (``GENCLK_HALF``): a core clock and a phase-aligned clock twice as fast;
* ECP5 ``EHXPLLL`` (feedback from CLKOP): ``f_out = f_in·CLKFB_DIV / CLKI_DIV``;
* Xilinx 7-series ``PLLE2_BASE``: ``f_out = f_in·CLKFBOUT_MULT / (DIVCLK_DIVIDE·CLKOUT0_DIVIDE)``.

Each ``solve_*`` function searches the divider space within the data-sheet
limits and returns the setting whose output is closest to the request (ties go
to the first found, in the same order the vendor-independent tools ``icepll``
and ``ecppll`` use, so the results match theirs).  The ``freq_hz`` property of
every setting recomputes the output from the dividers alone, which is what
the tests check against the claimed clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..errors import RangeError

__all__ = ["ICE40PLL", "ECP5PLL", "XilinxPLL", "solve_ice40", "solve_ecp5", "solve_xilinx",
           "ClockGenerator"]


@dataclass(frozen=True)
class ICE40PLL:
    """Divider setting of an iCE40 ``SB_PLL40_*`` in SIMPLE feedback mode.

    With ``double``, the PLL is an ``SB_PLL40_2F_PAD``: the dividers make the
    fast clock (port A, ``GENCLK``, :attr:`fast_hz`) and the core clock
    (:attr:`freq_hz`) is half of it (port B, ``GENCLK_HALF``), its rising edges
    on every other rising edge of the fast clock.
    """
    f_in: float
    divr: int
    divf: int
    divq: int
    double: bool = False

    # iCE40 sysCLOCK PLL limits (iCE40 LP/HX/UP data sheets, as used by icepll)
    PFD_RANGE = (10e6, 133e6)
    VCO_RANGE = (533e6, 1066e6)
    OUT_RANGE = (16e6, 275e6)

    @property
    def f_pfd(self) -> float:
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self) -> float:
        return self.f_pfd * (self.divf + 1)

    @property
    def genclk_hz(self) -> float:
        """The PLL's generated clock (the only output unless ``double``)."""
        return self.f_vco / (1 << self.divq)

    @property
    def freq_hz(self) -> float:
        """The core (``sync``) clock."""
        return self.genclk_hz / 2 if self.double else self.genclk_hz

    @property
    def fast_hz(self) -> float | None:
        """The clock at twice the core clock, or None without ``double``."""
        return self.genclk_hz if self.double else None

    @property
    def primitive(self) -> str:
        return "SB_PLL40_2F_PAD" if self.double else "SB_PLL40_PAD"

    @property
    def filter_range(self) -> int:
        # loop-filter setting by PFD frequency, from the iCE40 PLL usage guide
        f = self.f_pfd
        for rng, limit in enumerate((17e6, 26e6, 44e6, 66e6, 101e6), start=1):
            if f < limit:
                return rng
        return 6

    def params(self) -> dict:
        p = dict(p_FEEDBACK_PATH="SIMPLE", p_DIVR=self.divr, p_DIVF=self.divf,
                 p_DIVQ=self.divq, p_FILTER_RANGE=self.filter_range)
        if self.double:
            p.update(p_PLLOUT_SELECT_PORTA="GENCLK", p_PLLOUT_SELECT_PORTB="GENCLK_HALF")
        return p


@dataclass(frozen=True)
class ECP5PLL:
    """Divider setting of an ECP5 ``EHXPLLL`` with CLKOP fed back."""
    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    PFD_RANGE = (3.125e6, 400e6)
    VCO_RANGE = (400e6, 800e6)

    @property
    def f_pfd(self) -> float:
        return self.f_in / self.clki_div

    @property
    def freq_hz(self) -> float:
        return self.f_pfd * self.clkfb_div

    @property
    def f_vco(self) -> float:
        return self.freq_hz * self.clkop_div

    def params(self) -> dict:
        mhz = f"{self.f_in / 1e6:g}"
        return dict(
            # loop-filter settings that Lattice's tools emit for every EHXPLLL
            a_FREQUENCY_PIN_CLKI=mhz, a_FREQUENCY_PIN_CLKOP=f"{self.freq_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=self.clkop_div,
            # CLKOP shifted by half a period, as the vendor tools do
            p_CLKOP_CPHASE=self.clkop_div // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKI_DIV=self.clki_div, p_CLKFB_DIV=self.clkfb_div)


@dataclass(frozen=True)
class XilinxPLL:
    """Divider setting of a 7-series ``PLLE2_BASE`` (speed grade -1/-1L limits)."""
    f_in: float
    mult: int
    divclk: int
    clkout_div: int

    PFD_RANGE = (19e6, 450e6)
    VCO_RANGE = (800e6, 1600e6)

    @property
    def f_pfd(self) -> float:
        return self.f_in / self.divclk

    @property
    def f_vco(self) -> float:
        return self.f_pfd * self.mult

    @property
    def freq_hz(self) -> float:
        return self.f_vco / self.clkout_div

    def params(self) -> dict:
        return dict(p_BANDWIDTH="OPTIMIZED", p_CLKIN1_PERIOD=round(1e9 / self.f_in, 3),
                    p_CLKFBOUT_MULT=self.mult, p_DIVCLK_DIVIDE=self.divclk,
                    p_CLKOUT0_DIVIDE=self.clkout_div, p_CLKOUT0_PHASE=0.0,
                    p_CLKOUT0_DUTY_CYCLE=0.5)


def _check_result(best, f_out, tol):
    if best is None:
        raise RangeError(f"no PLL setting reaches {f_out / 1e6:g} MHz")
    err = abs(best.freq_hz - f_out) / f_out
    if err > tol:
        raise RangeError(f"clock {f_out / 1e6:g} MHz is not reachable: the nearest PLL output is "
                         f"{best.freq_hz / 1e6:.4f} MHz ({err:.2%} off, allowed {tol:.2%})")
    return best


def solve_ice40(f_in: float, f_out: float, tol: float = 0.005, *, double: bool = False) -> ICE40PLL:
    """Closest ``SB_PLL40`` setting for ``f_out`` from ``f_in`` (Hz), within ``tol``.

    With ``double``, ``f_out`` is the core clock and the dividers make ``2·f_out``
    (see :class:`ICE40PLL`).
    """
    if double:
        s = solve_ice40(f_in, 2 * f_out, tol)
        return ICE40PLL(s.f_in, s.divr, s.divf, s.divq, double=True)
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not ICE40PLL.PFD_RANGE[0] <= f_pfd <= ICE40PLL.PFD_RANGE[1]:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not ICE40PLL.VCO_RANGE[0] <= f_vco <= ICE40PLL.VCO_RANGE[1]:
                continue
            for divq in range(1, 7):
                cand = ICE40PLL(f_in, divr, divf, divq)
                if not ICE40PLL.OUT_RANGE[0] <= cand.freq_hz <= ICE40PLL.OUT_RANGE[1]:
                    continue
                if best is None or abs(cand.freq_hz - f_out) < abs(best.freq_hz - f_out):
                    best = cand
    return _check_result(best, f_out, tol)


def solve_ecp5(f_in: float, f_out: float, tol: float = 0.005) -> ECP5PLL:
    """Closest ``EHXPLLL`` setting for ``f_out`` from ``f_in`` (Hz); among equal
    outputs the one whose VCO is nearest 600 MHz (the middle of its range)."""
    best = None
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if not ECP5PLL.PFD_RANGE[0] <= f_pfd <= ECP5PLL.PFD_RANGE[1]:
            continue
        for clkfb in range(1, 81):
            fout = f_pfd * clkfb
            # CLKOP_DIV only sets the VCO (fout·div): take the one nearest 600 MHz
            lo = max(1, -(-ECP5PLL.VCO_RANGE[0] // fout))
            hi = min(128, ECP5PLL.VCO_RANGE[1] // fout)
            if lo > hi:
                continue
            clkop = min(range(int(lo), int(hi) + 1), key=lambda d: abs(fout * d - 600e6))
            cand = ECP5PLL(f_in, clki, clkfb, clkop)
            if best is None:
                best = cand
                continue
            d_c, d_b = abs(cand.freq_hz - f_out), abs(best.freq_hz - f_out)
            if d_c < d_b - 1e-3 or (abs(d_c - d_b) <= 1e-3
                                    and abs(cand.f_vco - 600e6) < abs(best.f_vco - 600e6)):
                best = cand
    return _check_result(best, f_out, tol)


def solve_xilinx(f_in: float, f_out: float, tol: float = 0.005) -> XilinxPLL:
    """Closest ``PLLE2_BASE`` setting; among equal outputs the highest VCO (least jitter)."""
    best = None
    for divclk in range(1, 57):
        f_pfd = f_in / divclk
        if not XilinxPLL.PFD_RANGE[0] <= f_pfd <= XilinxPLL.PFD_RANGE[1]:
            continue
        for mult in range(2, 65):
            f_vco = f_pfd * mult
            if not XilinxPLL.VCO_RANGE[0] <= f_vco <= XilinxPLL.VCO_RANGE[1]:
                continue
            div = min(128, max(1, round(f_vco / f_out)))
            cand = XilinxPLL(f_in, mult, divclk, div)
            if best is None:
                best = cand
                continue
            d_c, d_b = abs(cand.freq_hz - f_out), abs(best.freq_hz - f_out)
            if d_c < d_b - 1e-3 or (abs(d_c - d_b) <= 1e-3 and cand.f_vco > best.f_vco):
                best = cand
    return _check_result(best, f_out, tol)


class ClockGenerator(Elaboratable):
    """Board clock → PLL → ``sync`` domain, held in reset until the PLL locks.

    It drives the clock and reset of ``sync`` and, when the setting has a fast
    output (an iCE40 ``double`` setting), the clock of ``fast_domain`` (no
    reset: see :class:`neurocorex.hdl.spram.DoublePumpedRAM`); the domains
    themselves are defined by the top-level that contains both this generator
    and the design.

    Parameters
    ----------
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"xilinx"``.
    setting : ICE40PLL or ECP5PLL or XilinxPLL
        The PLL dividers.
    clk_port : amaranth port
        The board oscillator pin, requested with ``dir="-"``.
    rst : Value or None
        Optional active-high external reset (already buffered).
    fast_domain : str
        Domain driven by the fast output, if the setting has one.
    """

    def __init__(self, family, setting, clk_port, rst=None, *, fast_domain="sync2x"):
        self.family = family
        self.setting = setting
        self.clk_port = clk_port
        self.rst = rst
        self.fast_domain = fast_domain
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        pll_clk = Signal()
        if self.family == "ice40" and getattr(self.setting, "double", False):
            # port A: GENCLK (the fast clock), port B: GENCLK_HALF (the core clock),
            # both from the same divider chain, so their rising edges line up
            fast_clk = Signal()
            m.submodules.pll = Instance(
                "SB_PLL40_2F_PAD", **self.setting.params(),
                i_PACKAGEPIN=self.clk_port.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBALA=fast_clk, o_PLLOUTGLOBALB=pll_clk, o_LOCK=self.locked)
            m.d.comb += ClockSignal(self.fast_domain).eq(fast_clk)
        elif self.family == "ice40":
            # SB_PLL40_PAD takes the pad itself: the PLL sits next to the clock input.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", **self.setting.params(),
                i_PACKAGEPIN=self.clk_port.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=pll_clk, o_LOCK=self.locked)
        elif self.family == "ecp5":
            m.submodules.clk_buf = clk_buf = io.Buffer("i", self.clk_port)
            m.submodules.pll = Instance(
                "EHXPLLL", **self.setting.params(),
                i_CLKI=clk_buf.i, i_CLKFB=pll_clk, i_RST=0, i_STDBY=0,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=pll_clk, o_LOCK=self.locked)
        elif self.family == "xilinx":
            m.submodules.clk_buf = clk_buf = io.Buffer("i", self.clk_port)
            fb, out = Signal(), Signal()
            m.submodules.pll = Instance(
                "PLLE2_BASE", **self.setting.params(),
                i_CLKIN1=clk_buf.i, i_CLKFBIN=fb, o_CLKFBOUT=fb, i_RST=0, i_PWRDWN=0,
                o_CLKOUT0=out, o_LOCKED=self.locked)
            m.submodules.bufg = Instance("BUFG", i_I=out, o_O=pll_clk)
        else:
            raise ValueError(f"unknown FPGA family {self.family!r}")
        m.d.comb += ClockSignal("sync").eq(pll_clk)
        rst = ~self.locked if self.rst is None else (~self.locked | self.rst)
        m.submodules.reset_sync = ResetSynchronizer(rst, domain="sync")
        # no explicit constraint on the PLL output: nextpnr and Vivado derive it
        # from the oscillator's constraint and the PLL dividers
        return m
