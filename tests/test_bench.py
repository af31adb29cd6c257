"""`neurocorex bench`'s board section: steps/s from each board's own synapse RAM."""

import json

from neurocorex import bench
from neurocorex.boards.targets import BOARDS
from neurocorex.formats import CoreConfig


def _report(root, board, **fields):
    d = root / "build" / board
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps({"design": "neurocorex", **fields}))


def test_board_rows_use_the_boards_ram_and_size(tmp_path, monkeypatch):
    # the real benchmark scripts, fake build reports
    monkeypatch.setattr(bench, "_ROOT", tmp_path)
    (tmp_path / "benchmarks").symlink_to(bench.Path(bench.__file__).resolve().parent.parent / "benchmarks")
    assert BOARDS["icebreaker"].double_pump
    _report(tmp_path, "icebreaker", neurons=16, inputs=8, clk_mhz=30, fmax_mhz=31.0)
    _report(tmp_path, "stand-in-board", neurons=16, inputs=8, clk_mhz=30, fmax_mhz=99.0)
    out = bench.bench_boards(rows={}, quick=True)
    assert "stand-in-board_neurons" not in out          # not a known board: ignored
    assert out["icebreaker_synapse_ram"] == "double-pumped, 4 banks"
    mod = bench._script("core_cycles")
    for learn in (False, True):
        want = mod.measure(CoreConfig(16, 8), 0.05, learn, steps=4, warmup=20, ram="double-pumped")
        tag = f"5pct_stdp_{'on' if learn else 'off'}"
        assert out[f"icebreaker_cycles_per_step_{tag}"] == round(want["cycles"])
        assert out[f"icebreaker_steps_per_s_{tag}"] == round(30e6 / want["cycles"])
    # the ULX3S's core: dual-port with registered block reads, eight banks, the
    # next step's rows during the pass
    ulx = BOARDS["ulx3s"]
    assert (ulx.dual_port, ulx.banks, ulx.overlap_rows) == (True, 8, True)
    _report(tmp_path, "ulx3s", neurons=16, inputs=8, clk_mhz=57.142857, fmax_mhz=60.0)
    out = bench.bench_boards(rows={}, quick=True)
    assert out["ulx3s_synapse_ram"] == "dual-registered, 8 banks, overlap_rows"
    want = mod.measure(CoreConfig(16, 8), 0.05, False, steps=4, warmup=20, ram="dual-registered",
                       banks=8, overlap=True)
    assert out["ulx3s_cycles_per_step_5pct_stdp_off"] == round(want["cycles"])
    # (the flags matter here: each of them changes the cycles)
    plain = mod.measure(CoreConfig(16, 8), 0.05, False, steps=4, warmup=20, ram="dual")
    assert plain["cycles"] != want["cycles"]
    unregistered = mod.measure(CoreConfig(16, 8), 0.05, False, steps=4, warmup=20, ram="dual",
                               banks=8, overlap=True)
    assert unregistered["cycles"] < want["cycles"]             # (one more pipeline stage)
    # double-pumped cycles are dual-port cycles without the units' input registers
    single = mod.measure(CoreConfig(16, 8), 0.05, True, steps=4, warmup=20, ram="single")
    assert out["icebreaker_cycles_per_step_5pct_stdp_on"] <= round(single["cycles"])
