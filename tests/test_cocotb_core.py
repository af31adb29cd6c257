"""The core's Verilog on Verilator and Icarus, bit-exact against the golden model.

Each case converts ``Core(config)`` to Verilog (cached), builds it for the
simulator with ``cocotb_tools.runner`` (cached per Verilog text) and runs
``tests/cocotb/core_tb.py`` on a few random networks.  The default run takes
two small networks per simulator; ``-m slow`` adds 24 more.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from neurocorex.formats import CoreConfig
from neurocorex.sim.verilog import (build_lock, cache_dir, iverilog_executable, prune_cache,
                                    strip_build, verilator_env, verilog_file)

HERE = Path(__file__).parent / "cocotb"
sys.path.insert(0, str(HERE))

SIMULATORS = ["verilator", "icarus"]


def _design(kind):
    if kind == "regfile":
        from standins import RegfileCore
        return RegfileCore
    if kind == "board":
        # the core as a board builds it: board_core(config, **Board.core_flags)
        from neurocorex.boards.top import board_core
        return board_core
    from neurocorex.hdl.core import Core
    return Core


def run_cocotb(sim, config, seeds, steps, tmp_path, monkeypatch, kind="core", extra_env=None,
               core_options=None, case_options=None):
    """Run core_tb's two tests; ``core_options`` go to the design's constructor,
    ``case_options`` to ``random_case``."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner
    import cocotb_tools.config
    import cocotb_tools.runner as runner_mod

    verilog = verilog_file(_design(kind), config, **(core_options or {}))
    if sim == "verilator":
        for k, v in verilator_env().items():
            if k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS"):
                monkeypatch.setenv(k, v)
        # the machine is shared: compile with at most 2 jobs
        monkeypatch.setattr(runner_mod, "MAX_PARALLEL_BUILD_JOBS",
                            int(os.environ.get("NEUROCOREX_JOBS", "2")))
    else:
        iverilog_executable()
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3"]
    else:
        # Amaranth's combinational blocks start from a variable initialiser
        # (`reg x = 0`); under -g2012 (the runner's default) that initialiser
        # raises no event at time 0 and the outputs stay X.  Verilog-2005 does.
        build_args = ["-g2005"]
    # the executable links the cocotb libraries of this environment by path
    key = hashlib.sha256(verilog.read_bytes() + str(cocotb_tools.config.libs_dir).encode()
                         + " ".join(build_args).encode()).hexdigest()[:20]
    build_dir = cache_dir() / "cocotb" / sim / key
    runner = get_runner(sim)
    stamp = build_dir / "built.ok"
    # The runner always re-runs Verilator and make (minutes); a finished build
    # of the same Verilog is reused instead.  Icarus checks its own timestamps.
    with build_lock("verilator" if sim == "verilator" else "icarus"):
        cached = sim == "verilator" and stamp.exists()
        if cached:
            monkeypatch.setattr(runner, "_build_command", lambda: [])
        build_dir.mkdir(parents=True, exist_ok=True)
        os.utime(build_dir)                       # recently used: kept by prune_cache
        runner.build(sources=[verilog], hdl_toplevel="top", build_dir=build_dir,
                     build_args=build_args, timescale=("1ns", "1ps"),
                     log_file=None if cached else build_dir / "build.log")
        if sim == "verilator" and not cached:
            # the executable is all the tests need; the objects are ~100 MB
            strip_build(build_dir, keep=("top", "build.log"))
        stamp.write_text("ok\n")
        prune_cache(build_dir.parent)
    results = tmp_path / "results.xml"
    env = {"NCX_CONFIG": f"{config.neurons},{config.inputs},{config.weight_bits}",
           "NCX_SEEDS": ",".join(map(str, seeds)), "NCX_STEPS": str(steps),
           "NCX_DESIGN": "regfile" if kind == "regfile" else "core",
           # only the test's own modules get pytest's assertion rewriting (by
           # default cocotb rewrites every module imported, numba included, which
           # costs seconds); the small networks run fastest on the numpy model
           "COCOTB_REWRITE_ASSERTION_FILES": "core_tb.py streams.py",
           "NEUROCOREX_MODEL_BACKEND": "numpy",
           "NCX_CASE_OPTIONS": json.dumps(case_options or {}),
           **(extra_env or {})}
    runner.test(test_module="core_tb", hdl_toplevel="top", build_dir=build_dir,
                test_dir=tmp_path, extra_env=env, results_xml=str(results),
                timescale=("1ns", "1ps"), log_file=tmp_path / "sim.log")
    tests, failed = get_results(results)
    log = (tmp_path / "sim.log").read_text(errors="replace")
    assert tests == 2 and failed == 0, log[-6000:]
    return log


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_streams_plumbing_standin(sim, tmp_path, monkeypatch):
    """The stream drivers on a trivial design: readback and event echo, with back-pressure.

    (On Verilator only in the slow set: its build costs a minute and the core
    tests exercise the same drivers there.)
    """
    log = run_cocotb(sim, CoreConfig(8, 12), [3], 25, tmp_path, monkeypatch, kind="regfile")
    assert "regfile_plumbing passed" in log or "PASS" in log


@pytest.mark.parametrize("sim", SIMULATORS)
def test_core_matches_golden_model(sim, tmp_path, monkeypatch):
    """Two small random networks per simulator."""
    pytest.importorskip("neurocorex.hdl.core")
    run_cocotb(sim, CoreConfig(6, 5, 7), [11, 12], 40, tmp_path, monkeypatch)


def test_comparison_reports_a_wrong_reference(tmp_path, monkeypatch):
    """The comparison is not vacuous: a reference with another w_shift is reported."""
    pytest.importorskip("neurocorex.hdl.core")
    log = run_cocotb("verilator", CoreConfig(6, 5, 7), [13], 20, tmp_path, monkeypatch,
                     extra_env={"NCX_CORRUPT_REFERENCE": "1"})
    assert "mismatch reported as it should be" in log


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_overlap_rows_core_matches_golden_model(sim, tmp_path, monkeypatch):
    """``Core(overlap_rows=True)``: learning off, synapse writes between steps."""
    pytest.importorskip("neurocorex.hdl.core")
    run_cocotb(sim, CoreConfig(20, 5, 7), [21, 22], 30, tmp_path, monkeypatch,
               core_options={"overlap_rows": True},
               case_options={"learning": False, "rewrites": 0.3})


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_ulx3s_core_matches_golden_model(sim, tmp_path, monkeypatch):
    """The core as the ULX3S builds it (eight dual-port banks of 8-bit slices
    split into registered block memories, early rows, LUT-RAM accumulators),
    with 16-word blocks so that this small network's banks span several."""
    pytest.importorskip("neurocorex.hdl.core")
    from neurocorex.boards.targets import get_board
    flags = {**get_board("ulx3s").core_flags, "bank_block": 16}
    run_cocotb(sim, CoreConfig(20, 5, 7), [23, 24], 30, tmp_path, monkeypatch, kind="board",
               core_options=flags, case_options={"learning": None, "rewrites": 0.3})


SLOW_CASES = [
    (CoreConfig(8, 8, 7), list(range(100, 108))),
    (CoreConfig(12, 4, 5), list(range(200, 208))),
    (CoreConfig(5, 16, 8), list(range(300, 308))),
]


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("config,seeds", SLOW_CASES,
                         ids=[f"N{c.neurons}M{c.inputs}W{c.weight_bits}" for c, _ in SLOW_CASES])
def test_core_matches_golden_model_many(sim, config, seeds, tmp_path, monkeypatch):
    """24 random networks per simulator, three core shapes."""
    pytest.importorskip("neurocorex.hdl.core")
    run_cocotb(sim, config, seeds, 60, tmp_path, monkeypatch)
