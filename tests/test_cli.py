"""The ``neurocorex`` command line, run as a user runs it: the installed script."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neurocorex as nx


def _script():
    here = Path(sys.executable).parent / "neurocorex"
    found = str(here) if here.exists() else shutil.which("neurocorex")
    assert found, "the neurocorex console script is not installed (pip install -e .)"
    return found


def cli(*args, cwd=None):
    return subprocess.run([_script(), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def assert_user_error(r, pattern):
    """Status 2, one line on stderr naming the problem, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_info_prints_key_value_lines():
    r = cli("info", "--device", "model")
    assert r.returncode == 0, r.stderr
    pairs = {}
    for line in r.stdout.strip().splitlines():
        m = re.fullmatch(r"([a-z_]+): (.+)", line)
        assert m, line
        pairs[m[1]] = m[2]
    assert pairs["device"] == "model"
    assert int(pairs["neurons"]) == 256 and int(pairs["inputs"]) == 256
    assert int(pairs["weight_bits"]) == 7
    assert pairs["version"] == nx.__version__


@pytest.fixture
def files(tmp_path):
    net = nx.Network(6, 3)
    rng = np.random.default_rng(11)
    net.w_shift = 5
    net.w_in = rng.integers(0, 64, (3, 6))
    net.w_rec = rng.integers(-30, 30, (6, 6))
    net.plastic_rec = True
    net.plastic_in = True
    net.stdp = nx.STDPSettings(enabled=True, a_plus=30, a_minus=32, jump_pre=100, jump_post=100,
                               w_min=-64, w_max=63)
    net.stdp.set_taus(10.0, 10.0)
    net.save(tmp_path / "net.npz")
    inputs = rng.random((50, 3)) < 0.3
    np.savez(tmp_path / "in.npz", inputs=inputs)
    return net, inputs, tmp_path


def test_run_writes_spikes_and_weights(files):
    net, inputs, d = files
    r = cli("run", d / "net.npz", "--device", "model", "--steps", 50, "--inputs", d / "in.npz",
            "--out", d / "out.npz")
    assert r.returncode == 0, r.stderr
    assert "steps: 50" in r.stdout
    with nx.connect("model", neurons=6, inputs=3) as dev:       # the same run in process
        dev.load(net)
        rec = dev.run(50, inputs)
        w_rec, w_in = dev.read_weights()
    with np.load(d / "out.npz") as z:
        assert set(z.files) == {"format_version", "spikes", "w_rec", "w_in"}
        assert int(z["format_version"]) == 1
        assert z["spikes"].dtype == bool and z["spikes"].shape == (50, 6)
        assert (z["spikes"] == rec.spikes).all()
        assert (z["w_rec"] == w_rec).all() and (z["w_in"] == w_in).all()
    assert rec.spikes.sum() > 0 and not (w_rec == net.w_rec).all()   # the run did something
    assert f"spikes: {int(rec.spikes.sum())}" in r.stdout


def test_run_without_inputs(files):
    net, _, d = files
    r = cli("run", d / "net.npz", "--steps", 10, "--out", d / "out.npz")
    assert r.returncode == 0, r.stderr
    with np.load(d / "out.npz") as z:
        assert z["spikes"].shape == (10, 6) and not z["spikes"].any()   # no input, no activity
        assert (z["w_rec"] == net.w_rec).all()


def test_user_errors_are_one_line_with_status_2(files):
    net, inputs, d = files
    (d / "junk.npz").write_bytes(b"not a zip")
    np.save(d / "bare.npy", inputs)
    np.savez(d / "noinputs.npz", spikes=inputs)
    np.savez(d / "wrongshape.npz", inputs=inputs[:, :2])
    run = ("run", d / "net.npz", "--steps", 50)
    out = ("--out", d / "out.npz")
    cases = [
        (("run", d / "missing.npz", "--steps", 5, *out), r"missing\.npz.*does not exist"),
        (("run", d / "junk.npz", "--steps", 5, *out), r"junk\.npz.*not a readable \.npz"),
        ((*run, "--inputs", d / "nofile.npz", *out), r"inputs file .*nofile\.npz.* does not exist"),
        ((*run, "--inputs", d / "bare.npy", *out), r"inputs file .*bare\.npy.* not an \.npz archive"),
        ((*run, "--inputs", d / "noinputs.npz", *out), r"no array named 'inputs'"),
        ((*run, "--inputs", d / "wrongshape.npz", *out), r"inputs must have shape \(50, 3\)"),
        (("run", d / "net.npz", "--steps", -3, *out), r"steps.*\[0, 2147483647\]"),
        ((*run, "--out", d / "no" / "such" / "dir.npz"), r"cannot write"),
        ((*run, "--device", "nonsense", *out), r"'nonsense'"),
        (("run", d / "net.npz", *out), r"required.*--steps"),
        (("run", d / "net.npz", "--steps", "abc", *out), r"--steps.*invalid int value: 'abc'"),
        (("frobnicate",), r"invalid choice: 'frobnicate'"),
    ]
    for args, pattern in cases:
        r = cli(*args)
        assert_user_error(r, pattern)
        assert not (d / "out.npz").exists(), args     # nothing written on an error
