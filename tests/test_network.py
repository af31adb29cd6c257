"""The Network API and the model device, called the way a user calls them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import neurocorex as nx
from neurocorex.errors import DeviceError, NeuroCoreXError, RangeError, ShapeError
from neurocorex.formats import CoreConfig
from neurocorex.sim.model import CoreModel

DOCS = Path(__file__).resolve().parent.parent / "docs"


def snapshot(net):
    """Every field of a network, as plain Python values, to check that nothing changed."""
    return dict(w_rec=net.w_rec.tolist(), w_in=net.w_in.tolist(), plastic_rec=net.plastic_rec.tolist(),
                plastic_in=net.plastic_in.tolist(), w_shift=net.w_shift,
                params={k: getattr(net, k).tolist() for k in nx.Network._PARAMS},
                stdp=vars(net.stdp).copy(), dt=net.dt, v_scale=net.v_scale)


# -- physical units -------------------------------------------------------------------------

def test_defaults_follow_the_discretisation_rule():
    net = nx.Network(3, 2)
    # tau_mem = 20 ms, dt = 1: 32768 * exp(-1/20) = 31169.89 -> 31170
    # tau_syn = 5 ms:          32768 * exp(-1/5)  = 26828.14 -> 26828
    assert net.alpha_v.tolist() == [31170] * 3
    assert net.alpha_i.tolist() == [26828] * 3
    assert net.threshold.tolist() == [1024] * 3          # 1.0 * v_scale
    assert net.t_ref.tolist() == [0] * 3
    assert (net.stdp.w_min, net.stdp.w_max) == (-64, 63)


def test_set_neurons_quantises_and_reports_the_error():
    net = nx.Network(2, 0)
    err = net.set_neurons(tau_mem=10.0)
    # 32768 * exp(-0.1) = 29649.55 -> 29650; relative error 0.45 / 29649.55
    assert net.alpha_v.tolist() == [29650, 29650]
    exact = 32768 * math.exp(-0.1)
    assert err == pytest.approx(abs(29650 - exact) / exact, rel=1e-9)
    assert abs(29650 - exact) <= 0.5                    # at most 2^-16 of 1.0 (spec §4)
    err = net.set_neurons(threshold=0.5004)
    # 0.5004 * 1024 = 512.41 -> 512; (0.5 - 0.5004) / 0.5004 = 7.99e-4
    assert net.threshold.tolist() == [512, 512]
    assert err == pytest.approx(0.0004 / 0.5004, rel=1e-9)
    assert net.set_neurons(tau_syn=math.inf) == 0.0
    assert net.alpha_i.tolist() == [32768, 32768]         # no leak


def test_set_neurons_with_dt_subset_and_refractory():
    net = nx.Network(3, 0, dt=0.5, v_scale=100)
    # the default tau_mem is 20 steps = 10 ms: 32768 * exp(-0.05) = 31169.89 -> 31170
    assert net.alpha_v.tolist() == [31170] * 3
    net.set_neurons(tau_mem=5.0, refractory=2.4, v_reset=-0.5, neurons=[0, 2])
    # dt/tau = 0.1: 32768 * exp(-0.1) = 29649.55 -> 29650; 2.4 / 0.5 = 4.8 -> 5 steps
    assert net.alpha_v.tolist() == [29650, 31170, 29650]
    assert net.t_ref.tolist() == [5, 0, 5]
    assert net.v_reset.tolist() == [-50, 0, -50]
    net.set_neurons(threshold=[0.1, 0.2], neurons=slice(0, 2))
    assert net.threshold.tolist() == [10, 20, 100]


def test_set_weights_quantises_and_reports_absolute_error():
    net = nx.Network(2, 1)
    net.w_shift = 4                                      # 1.0 = 1024 / 16 = 64 weight units
    err = net.set_weights(rec=[[0.5, 0.51], [-0.25, 0.0]], inputs=[[0.984375, -1.0]])
    assert net.w_rec.tolist() == [[32, 33], [-16, 0]]   # 0.51 * 64 = 32.64 -> 33
    assert net.w_in.tolist() == [[63, -64]]
    assert err == pytest.approx(abs(33 / 64 - 0.51), rel=1e-9)
    # at most half a unit: 2^(w_shift-1) / v_scale
    assert err <= 2 ** 3 / 1024


def test_alpha_tau_helpers_invert_each_other():
    for tau in (2.0, 5.0, 20.0, 100.0):
        a = nx.alpha_from_tau(tau)
        assert abs(nx.tau_from_alpha(a) - tau) / tau < 2 ** -16 * math.exp(1 / tau) * tau + 1e-12
    assert nx.alpha_from_tau(math.inf) == 32768
    assert nx.tau_from_alpha(32768) == math.inf


# -- bad input: an exception naming the field and its range, and nothing changed ----------------

BAD_ASSIGNMENTS = [
    ("w_rec", np.full((3, 3), 64), RangeError, r"w_rec.*\[-64, 63\]"),
    ("w_rec", np.full((3, 3), -65), RangeError, r"w_rec.*\[-64, 63\]"),
    ("w_rec", np.zeros((3, 2)), ShapeError, r"w_rec.*\(3, 3\)"),
    ("w_rec", np.full((3, 3), np.nan), RangeError, r"w_rec.*NaN.*\[-64, 63\]"),
    ("w_rec", np.full((3, 3), np.inf), RangeError, r"w_rec.*\[-64, 63\]"),
    ("w_rec", np.full((3, 3), 1.5), RangeError, r"w_rec.*integers in \[-64, 63\]"),
    ("w_rec", [[1, 2], [3]], ShapeError, r"w_rec.*\(3, 3\)"),
    ("w_rec", "abc", ShapeError, r"w_rec.*numeric"),
    ("w_in", np.zeros((3, 2)), ShapeError, r"w_in.*\(2, 3\)"),
    ("w_in", np.full((2, 3), 100), RangeError, r"w_in.*\[-64, 63\]"),
    ("plastic_rec", np.full((3, 3), 2), ShapeError, r"plastic_rec.*0/1"),
    ("plastic_in", np.full((2, 3), np.nan), ShapeError, r"plastic_in.*0/1"),
    ("plastic_in", np.ones((3, 3), bool), ShapeError, r"plastic_in.*\(2, 3\)"),
    ("threshold", 40000, RangeError, r"threshold.*\[-32768, 32767\]"),
    ("v_reset", [0, 0, -40000], RangeError, r"v_reset.*\[-32768, 32767\]"),
    ("v_rest", [0, 0], ShapeError, r"v_rest.*\(3,\)"),
    ("alpha_v", 40000, RangeError, r"alpha_v.*\[0, 32768\]"),
    ("alpha_i", -1, RangeError, r"alpha_i.*\[0, 32768\]"),
    ("t_ref", [1, 2, 256], RangeError, r"t_ref.*\[0, 255\]"),
    ("t_ref", np.nan, RangeError, r"t_ref.*NaN.*\[0, 255\]"),
    ("w_shift", 9, RangeError, r"w_shift.*\[0, 8\]"),
    ("w_shift", 1.5, RangeError, r"w_shift.*\[0, 8\]"),
    ("w_shift", float("nan"), RangeError, r"w_shift.*\[0, 8\]"),
    ("dt", -1.0, RangeError, r"dt must be a positive number"),
    ("dt", float("inf"), RangeError, r"dt must be a positive number"),
    ("v_scale", 0, RangeError, r"v_scale.*\[1, 32767\]"),
    ("v_scale", 100.5, RangeError, r"v_scale.*\[1, 32767\]"),
]


@pytest.mark.parametrize("field, value, exc, pattern", BAD_ASSIGNMENTS,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(BAD_ASSIGNMENTS)])
def test_bad_assignment_raises_and_changes_nothing(field, value, exc, pattern):
    net = nx.Network(3, 2)
    net.w_rec = np.arange(9).reshape(3, 3)
    before = snapshot(net)
    with pytest.raises(exc, match=pattern):
        setattr(net, field, value)
    assert snapshot(net) == before


BAD_SET_NEURONS = [
    (dict(tau_mem=float("nan")), RangeError, r"tau_mem.*\(0, inf\]"),
    (dict(tau_syn=-1.0), RangeError, r"tau_syn.*\(0, inf\]"),
    (dict(tau_mem=0.0), RangeError, r"tau_mem.*\(0, inf\]"),
    (dict(threshold=40.0), RangeError, r"threshold.*\[-32, 31.999\]"),
    (dict(threshold=float("nan")), RangeError, r"threshold.*NaN.*\[-32, 31.999\]"),
    (dict(v_reset=-33.0), RangeError, r"v_reset.*\[-32, 31.999\]"),
    (dict(refractory=300.0), RangeError, r"refractory.*\[0, 255\]"),
    (dict(refractory=-1.0), RangeError, r"refractory.*\[0, 255\]"),
    (dict(refractory=float("nan")), RangeError, r"refractory.*\[0, 255\]"),
    (dict(threshold=[1.0, 2.0], neurons=[0, 1, 2]), ShapeError, r"neurons.*\[0, 2\]"),
    (dict(threshold=1.0, neurons=[5]), ShapeError, r"neurons.*\[0, 2\]"),
    # a valid change together with an invalid one: neither is applied
    (dict(tau_mem=7.0, threshold=99.0), RangeError, r"threshold"),
]


@pytest.mark.parametrize("kwargs, exc, pattern", BAD_SET_NEURONS)
def test_bad_set_neurons_raises_and_changes_nothing(kwargs, exc, pattern):
    net = nx.Network(3, 2)
    before = snapshot(net)
    with pytest.raises(exc, match=pattern):
        net.set_neurons(**kwargs)
    assert snapshot(net) == before


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(rec=np.full((3, 3), 0.1)), RangeError, r"w_rec.*\[-0.0625, 0.0615234\]"),
    (dict(rec=np.full((3, 3), np.nan)), RangeError, r"w_rec.*NaN.*\[-0.0625, 0.0615234\]"),
    (dict(rec=np.zeros((2, 3))), ShapeError, r"w_rec.*\(3, 3\)"),
    # a valid w_rec with an invalid w_in: neither is applied
    (dict(rec=np.full((3, 3), 0.01), inputs=np.full((2, 3), -1.0)), RangeError, r"w_in"),
])
def test_bad_set_weights_raises_and_changes_nothing(kwargs, exc, pattern):
    net = nx.Network(3, 2)
    before = snapshot(net)
    with pytest.raises(exc, match=pattern):
        net.set_weights(**kwargs)
    assert snapshot(net) == before


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(neurons=0), r"neurons.*\[1, 4096\]"),
    (dict(neurons=5000), r"neurons.*\[1, 4096\]"),
    (dict(neurons=2.5), r"neurons.*\[1, 4096\]"),
    (dict(neurons=3, inputs=-1), r"inputs.*\[0, 4096\]"),
    (dict(neurons=3, weight_bits=1), r"weight_bits.*\[2, 15\]"),
    (dict(neurons=3, dt=0.0), r"dt.*positive"),
    (dict(neurons=3, dt=float("nan")), r"dt.*positive"),
    (dict(neurons=3, v_scale=0), r"v_scale.*\[1, 32767\]"),
])
def test_bad_network_shape(kwargs, pattern):
    with pytest.raises(RangeError, match=pattern):
        nx.Network(**kwargs)


@pytest.mark.parametrize("field, value, pattern", [
    ("a_plus", 300, r"stdp.a_plus.*\[0, 255\]"),
    ("a_minus", -1, r"stdp.a_minus.*\[0, 255\]"),
    ("alpha_pre", float("nan"), r"stdp.alpha_pre.*\[0, 32768\]"),
    ("jump_post", 256, r"stdp.jump_post.*\[0, 255\]"),
    ("w_max", 64, r"stdp.w_max.*\[-64, 63\]"),
    ("enabled", "yes", r"stdp.enabled.*\[0, 1\]"),
    ("w_min", 40, r"w_min=40 must not exceed stdp.w_max=30"),
])
def test_bad_stdp_settings_are_caught_before_loading(field, value, pattern):
    net = nx.Network(3, 2)
    net.stdp.w_max = 30
    setattr(net.stdp, field, value)
    with pytest.raises(RangeError, match=pattern):
        net.validate()
    with nx.connect("model", neurons=3, inputs=2) as dev:
        with pytest.raises(RangeError, match=pattern):
            dev.load(net)
        assert dev.net is None                     # nothing was loaded


# -- files ---------------------------------------------------------------------------------

def _full_network():
    rng = np.random.default_rng(3)
    net = nx.Network(5, 3, weight_bits=9, dt=0.25, v_scale=2000)
    net.w_rec = rng.integers(-256, 256, (5, 5))
    net.w_in = rng.integers(-256, 256, (3, 5))
    net.plastic_rec = rng.random((5, 5)) < 0.5
    net.plastic_in = rng.random((3, 5)) < 0.5
    net.set_neurons(tau_mem=rng.uniform(2, 30, 5), tau_syn=3.0, threshold=rng.uniform(0.5, 2, 5),
                    v_reset=-0.1, v_rest=0.05, refractory=[0, 0.25, 0.5, 1, 2])
    net.w_shift = 3
    net.stdp = nx.STDPSettings(enabled=True, a_plus=12, a_minus=14, jump_pre=90, jump_post=80,
                               w_min=-200, w_max=255)
    net.stdp.set_taus(20.0, 25.0, dt=0.25)
    return net


def test_save_load_round_trip(tmp_path):
    net = _full_network()
    path = tmp_path / "net.npz"
    net.save(path)
    back = nx.Network.load(path)
    assert snapshot(back) == snapshot(net)
    assert back.config == net.config
    assert back.stdp.enabled is True


def test_saved_keys_are_the_documented_ones(tmp_path):
    net = _full_network()
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz") as z:
        keys = set(z.files)
        assert int(z["format_version"]) == 1
        assert z["w_rec"].shape == (5, 5) and z["plastic_in"].dtype == bool
    doc = (DOCS / "file-formats.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", doc, re.M))
    assert keys <= documented, f"undocumented keys: {sorted(keys - documented)}"
    assert {"spikes", "format_version"} <= documented


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_load_rejects_unreadable_files(tmp_path):
    good = tmp_path / "good.npz"
    _full_network().save(good)
    with np.load(good) as z:
        d = {k: z[k] for k in z.files}
    cases = []
    cases.append((tmp_path / "missing.npz", "does not exist"))
    cases.append((_write(tmp_path / "empty.npz", b""), "not a readable .npz"))
    cases.append((_write(tmp_path / "junk.npz", b"hello, world"), "not a readable .npz"))
    np.save(tmp_path / "bare.npy", np.zeros(3))
    cases.append((tmp_path / "bare.npy", "not an .npz archive"))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    cases.append((tmp_path / "other.npz", "no format_version"))
    np.savez(tmp_path / "v2.npz", **dict(d, format_version=2))
    cases.append((tmp_path / "v2.npz", "format_version 2; this library reads version 1"))
    np.savez(tmp_path / "nokey.npz", **{k: v for k, v in d.items() if k != "alpha_i"})
    cases.append((tmp_path / "nokey.npz", "lacks the key 'alpha_i'"))
    np.savez(tmp_path / "range.npz", **dict(d, t_ref=np.full(5, 300)))
    cases.append((tmp_path / "range.npz", r"t_ref.*\[0, 255\]"))
    np.savez(tmp_path / "shape.npz", **dict(d, w_in=np.zeros((5, 5), int)))
    cases.append((tmp_path / "shape.npz", r"w_in.*\(3, 5\)"))
    np.savez(tmp_path / "scalar.npz", **dict(d, neurons=np.arange(3)))
    cases.append((tmp_path / "scalar.npz", "malformed"))
    cases.append((tmp_path, "not a readable .npz"))     # a directory
    for path, pattern in cases:
        with pytest.raises(NeuroCoreXError, match=pattern):
            nx.Network.load(path)


# -- the model device ---------------------------------------------------------------------------

def _small_net():
    net = nx.Network(3, 2)
    net.w_shift = 5
    net.w_in = [[63, 10, 0], [0, 40, 63]]
    net.w_rec = [[0, 20, -10], [5, 0, 30], [-40, 0, 0]]
    net.set_neurons(tau_mem=10.0, tau_syn=3.0, threshold=1.0, refractory=1.0)
    net.plastic_rec = True
    net.plastic_in = [[False, True, True], [True, True, False]]
    net.stdp = nx.STDPSettings(enabled=True, a_plus=40, a_minus=30, jump_pre=120, jump_post=120,
                               w_min=-64, w_max=63)
    net.stdp.set_taus(10.0, 12.0)
    return net


def _reference_run(net, inputs):
    """The same network on a bare CoreModel of exactly its size."""
    md = CoreModel(CoreConfig(net.neurons, net.inputs, net.config.weight_bits))
    img = net.validate()
    md.w_rec[:], md.w_in[:] = img["w_rec"], img["w_in"]
    md.plastic_rec[:], md.plastic_in[:] = img["plastic_rec"], img["plastic_in"]
    for k, v in img["params"].items():
        md.params[k][:] = v
    md.globals.update(img["globals"])
    md.stdp.update(img["stdp"])
    return md, md.run(len(inputs), inputs)


def test_model_device_load_run_read_back_padded():
    net = _small_net()
    rng = np.random.default_rng(5)
    inputs = rng.random((60, 2)) < 0.3
    md, spikes = _reference_run(net, inputs)
    before = snapshot(net)
    # a core larger than the network: padded with silent neurons and axons
    with nx.connect("model", neurons=8, inputs=4) as dev:
        assert dev.info()["neurons"] == 8
        dev.load(net)
        rec = dev.run(60, inputs)
        assert rec.spikes.shape == (60, 3) and rec.steps == 60
        assert (rec.spikes == spikes).all()
        assert rec.spikes.sum() > 5
        w_rec, w_in = dev.read_weights()
        assert (w_rec == md.w_rec).all() and (w_in == md.w_in).all()
        assert not (w_rec == net.w_rec).all()         # STDP did change weights
        state = dev.read_state()
        for k in ("v", "i", "ref", "pre_trace", "post_trace"):
            assert (state[k] == getattr(md, k)).all(), k
            assert state[k].shape == (3,)
        assert (state["input_trace"] == md.input_trace).all() and state["input_trace"].shape == (2,)
        c = dev.counters()
        assert c["steps"] == 60 and c["spikes"] == int(spikes.sum())
        assert c["input_spikes"] == int(inputs.sum())
        assert np.allclose(rec.rates(), spikes.mean(axis=0))
    assert snapshot(net) == before                     # the user's network is untouched


def test_set_learning_and_reset():
    net = _small_net()
    inputs = np.random.default_rng(6).random((40, 2)) < 0.3
    with nx.connect("model", neurons=3, inputs=2) as dev:
        dev.load(net)
        dev.set_learning(False)
        assert net.stdp.enabled is True                # the device's copy changed, not the network
        dev.run(40, inputs)
        w_rec, w_in = dev.read_weights()
        assert (w_rec == net.w_rec).all() and (w_in == net.w_in).all()
        dev.reset()
        s = dev.read_state()
        assert all(not s[k].any() for k in s)
        assert dev.counters()["steps"] == 0
        dev.set_learning(True)
        dev.run(40, inputs)
        assert not (dev.read_weights()[0] == net.w_rec).all()


def test_device_rejects_bad_use_and_keeps_its_state():
    net = _small_net()
    with pytest.raises(DeviceError, match="'nonsense'"):          # unknown name or no such port
        nx.connect("nonsense")
    with pytest.raises(DeviceError, match="device must be"):
        nx.connect("")
    with pytest.raises(DeviceError, match="unknown option 'neuron'.*neurons, inputs, weight_bits"):
        nx.connect("model", neuron=3)
    with pytest.raises(RangeError, match=r"neurons.*\[1, 4096\]"):
        nx.connect("model", neurons=0)
    with nx.connect("model", neurons=3, inputs=2) as dev:
        with pytest.raises(DeviceError, match="no network loaded"):
            dev.run(3)
        with pytest.raises(DeviceError, match="no network loaded"):
            dev.read_weights()
        with pytest.raises(ShapeError, match="takes a Network"):
            dev.load("net.npz")
        dev.load(net)
        dev.run(5, np.ones((5, 2), bool))
        w_before, state_before = dev.read_weights(), dev.read_state()
        with pytest.raises(DeviceError, match="needs 4 neurons and 2 inputs.*has 3 and 2"):
            dev.load(nx.Network(4, 2))
        with pytest.raises(DeviceError, match="weight_bits=9.*has 7"):
            dev.load(nx.Network(3, 2, weight_bits=9))
        with pytest.raises(ShapeError, match=r"inputs must have shape \(3, 2\)"):
            dev.run(3, np.zeros((3, 5), bool))
        with pytest.raises(ShapeError, match=r"inputs must have shape \(4, 2\)"):
            dev.run(4, np.zeros((3, 2), bool))
        with pytest.raises(ShapeError, match="boolean"):
            dev.run(3, np.full((3, 2), np.nan))
        with pytest.raises(ShapeError, match=r"inputs must have shape \(2, 2\)"):
            dev.run(2, [[1, 0], [1]])
        with pytest.raises(RangeError, match=r"steps.*\[0, 2147483647\]"):
            dev.run(-1)
        with pytest.raises(RangeError, match="steps"):
            dev.run(2.5)
        assert dev.counters()["steps"] == 5            # no step was run by the bad calls
        w_after, state_after = dev.read_weights(), dev.read_state()
        assert all((a == b).all() for a, b in zip(w_before, w_after))
        assert all((state_before[k] == state_after[k]).all() for k in state_before)
        assert dev.net is net
