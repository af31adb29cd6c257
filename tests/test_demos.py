"""The learning demos: they must learn, not only run (fixed seeds, model device)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import neurocorex as nx
from neurocorex import demos


def _png_ok(path):
    assert os.path.exists(path), path
    with open(path, "rb") as fh:
        head = fh.read(8)
    assert head == b"\x89PNG\r\n\x1a\n", path
    assert os.path.getsize(path) > 5000, (path, os.path.getsize(path))


# -- STDP pattern detection -----------------------------------------------------------------

@pytest.fixture(scope="module")
def stdp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stdp")
    return demos.run_stdp("model", seed=0, out=str(out), learn_steps=24000, test_steps=8000,
                          progress=False, quiet=True)


def test_stdp_learns_selectivity(stdp_run):
    r = stdp_run
    before, after = r["before"], r["after"]
    # after learning: fires for the pattern, not in the noise, not for a look-alike pattern
    assert after["hit_rate"] >= 0.85, after
    assert after["false_alarms_per_1000"] <= 0.5, after
    assert after["distractor_rate"] <= 0.15, after
    # and this is learnt: the untrained neuron neither finds the pattern reliably nor
    # tells it from the distractor
    assert before["hit_rate"] <= 0.6, before
    assert after["hit_rate"] - before["hit_rate"] >= 0.3
    assert before["distractor_rate"] - after["distractor_rate"] >= 0.2, (before, after)


def test_stdp_weights_move_to_the_pattern(stdp_run):
    r, task = stdp_run, stdp_run["task"]
    w0, w1 = r["weights_before"][:, 0], r["weights_after"][:, 0]
    pat = np.isin(np.arange(task.inputs), task.afferents)
    assert abs(w0[pat].mean() - w0[~pat].mean()) < 3          # no head start
    assert w1[~pat].mean() < 0.5 * w0[~pat].mean()             # noise afferents depressed
    # the afferents that fire first in the pattern go to the maximum weight
    early = task.afferents[task.offsets <= 1]
    assert (w1[early] >= 55).mean() >= 0.8, w1[early]
    assert w1[pat].max() == 63 and (w1 >= 55).sum() <= len(task.afferents)
    times, hist = r["history"]
    assert times[0] == 0 and times[-1] == r["learn_steps"]
    assert hist.shape == (len(times), task.inputs)
    assert (hist[-1] == w1).all()


def test_stdp_plots_written(stdp_run):
    assert len(stdp_run["files"]) == 5
    for f in stdp_run["files"]:
        _png_ok(f)


def test_stdp_task_hides_the_pattern_in_rates():
    task = demos.make_pattern_task(seed=3)
    x, starts, dis = task.stream(20000, distractors=True)
    assert len(starts) > 20 and len(dis) > 20
    rates = x.mean(0)
    pat = np.isin(np.arange(task.inputs), task.afferents)
    # each afferent keeps the same mean rate: counting spikes does not find the pattern
    assert abs(rates[pat].mean() - rates[~pat].mean()) < 0.002
    assert abs(rates.mean() - task.rate) < 0.002
    # but each insertion repeats the same spike timing (within the jitter)
    s = starts[0]
    for k, off in zip(task.afferents, task.offsets):
        assert x[max(0, s + off - 1):s + off + 2, k].any()


def test_stdp_score_counts_hits_and_false_alarms():
    task = demos.make_pattern_task(seed=0)
    steps = 1000
    starts, dis = np.array([100, 500]), np.array([300])
    sp = np.zeros((steps, 2), bool)
    sp[105, 0] = True            # neuron 0 hits pattern 1
    sp[800, 0] = True            # and one false alarm
    sp[302, 1] = True            # neuron 1 fires for the distractor only
    s = task.score(sp, starts, dis)
    assert s["hit_rate"].tolist() == [0.5, 0.0]
    assert s["distractor_rate"].tolist() == [0.0, 1.0]
    free = steps - 3 * (task.width + 5)
    assert s["false_alarms_per_1000"][0] == pytest.approx(1000 / free)
    assert s["false_alarms_per_1000"][1] == 0


def test_stdp_bad_settings_raise_range_error():
    with pytest.raises(nx.RangeError, match="afferents"):
        demos.make_pattern_task(inputs=10, afferents=11)
    with pytest.raises(nx.RangeError, match="rate"):
        demos.make_pattern_task(rate=1.5)
    with pytest.raises(nx.RangeError, match="gap"):
        demos.make_pattern_task(gap=(5, 5))
    with pytest.raises(nx.RangeError, match="learn_steps"):
        demos.run_stdp(learn_steps=0, out=None, quiet=True)


# -- digits ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return demos.run_digits("model", seed=0, out=str(out), progress=False, quiet=True)


def test_digits_accuracy_on_model(digits_run):
    r = digits_run
    assert r["test"] == 450 and len(r["predictions"]) == 450
    assert r["accuracy"] >= 0.90, r["accuracy"]
    # the spiking network is close to the quantised linear classifier it runs
    assert abs(r["accuracy"] - r["quantised_accuracy"]) <= 0.03
    w = r["network"].w_in
    assert w.min() >= -64 and w.max() <= 63 and np.abs(w).max() == 63


def test_digits_plots_written(digits_run):
    assert len(digits_run["files"]) == 3
    for f in digits_run["files"]:
        _png_ok(f)


def test_digit_encoding_counts_pixel_values():
    img = np.arange(64) % 17
    x = demos.encode_digit(img, repeats=2)
    assert x.shape == (32, 64)
    assert (x[:16].sum(0) == img).all() and (x[16:] == x[:16]).all()


def test_digits_spiking_matches_integer_logits():
    """With a threshold no neuron reaches, V after one presentation is the integer logit."""
    xtr, ytr, xte, yte = demos.load_digits_split(0)
    w_q = demos.quantise_weights(demos.train_digits(xtr[:400], ytr[:400], iters=50))
    net = demos.digits_network(w_q, threshold=32767)
    with demos.open_for("model", net) as dev:
        dev.load(net)
        for img in xte[:3]:
            dev.reset()
            dev.run(16, demos.encode_digit(img), progress=False)
            v = dev.read_state()["v"]
            assert (v == np.clip(img @ w_q, -32768, 32767)).all()


@pytest.mark.slow          # the first run builds the Verilator model (about a minute)
def test_digits_same_predictions_on_rtl():
    """A few test digits on the simulated RTL give the model's predictions exactly."""
    net = nx.Network(10, 64)
    try:
        dev = demos.open_for("rtl", net)
    except nx.NeuroCoreXError as e:
        pytest.skip(f"rtl device unavailable: {e}")
    dev.close()
    r = demos.run_digits("rtl", seed=0, subset=4, threshold=1000, progress=False, quiet=True)
    assert r["compared"] == 4
    assert r["agree"] == 4, (r["device_predictions"], r["predictions"][:4])


@pytest.mark.slow          # the first run builds the Verilator model (about a minute)
def test_stdp_same_learning_on_rtl():
    """A short STDP run on the simulated RTL learns bit for bit what the model learns."""
    try:
        demos.open_for("rtl", demos.stdp_network()).close()
    except nx.NeuroCoreXError as e:
        pytest.skip(f"rtl device unavailable: {e}")
    kw = dict(seed=0, out=None, learn_steps=2000, test_steps=1000, snapshot=500,
              progress=False, quiet=True)
    rtl, model = demos.run_stdp("rtl", **kw), demos.run_stdp("model", **kw)
    assert (rtl["history"][1] == model["history"][1]).all()
    assert (rtl["weights_after"] == model["weights_after"]).all()
    assert (rtl["weights_after"] != rtl["weights_before"]).any()     # it did learn something
    assert rtl["after"] == model["after"] and rtl["before"] == model["before"]


# -- command line --------------------------------------------------------------------------------

def test_cli_demo_registered():
    from neurocorex import cli
    cli.build_parser()
    assert cli.COMMANDS["demo"][2] is demos._demo


def test_cli_demo_stdp_end_to_end(tmp_path):
    """``neurocorex demo`` (what ``make demo`` runs), as a user runs it."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    script = Path(sys.executable).parent / "neurocorex"
    script = str(script) if script.exists() else shutil.which("neurocorex")
    r = subprocess.run([script, "demo", "--out", str(tmp_path / "png"), "--seed", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "after learning:  hit rate" in r.stdout and "wall time" in r.stdout
    hit = float(r.stdout.split("after learning:  hit rate")[1].split(",")[0])
    assert hit >= 0.85, r.stdout
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == ["stdp_raster_after.png", "stdp_raster_before.png", "stdp_weight_evolution.png",
                    "stdp_weights_after.png", "stdp_weights_before.png"]


def test_cli_demo_rejects_bad_subset(capsys):
    from neurocorex import cli
    assert cli.main(["demo", "digits", "--subset", "0", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "--subset" in err and "Traceback" not in err
