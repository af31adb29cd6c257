"""The host API on every device: the golden model in process, the virtual board
over a socket (Python engine over the golden model) and the simulated RTL over
its UART pins.  Every device must give the model's results bit for bit.
"""


import numpy as np
import pytest

import neurocorex as nx
from neurocorex.errors import DeviceError, RangeError, ShapeError

N, M = 8, 4          # core shape of every device under test (small: the RTL is built for it)


def _serve_device():
    from neurocorex.formats import CoreConfig
    from neurocorex.sim.vboard import VirtualBoard, serve_tcp_thread
    port, stop = serve_tcp_thread(VirtualBoard("model", CoreConfig(N, M)))
    dev = nx.connect(f"socket://127.0.0.1:{port}", timeout=10)

    def close():
        dev.close()
        stop()
    return dev, close


def _rtl_device():
    try:
        import neurocorex.sim.rtl  # noqa: F401
    except ModuleNotFoundError as e:
        pytest.skip(f"the rtl device needs neurocorex.sim.rtl ({e})")
    try:
        from neurocorex.sim.verilog import ToolNotFound
    except ImportError:
        ToolNotFound = ()
    try:
        dev = nx.connect("rtl", neurons=N, inputs=M, timeout=60)
    except ToolNotFound as e:
        pytest.skip(f"no RTL simulator: {e}")
    return dev, dev.close


@pytest.fixture(scope="module", params=["model", "serve", "rtl"])
def device(request):
    if request.param == "model":
        dev = nx.connect("model", neurons=N, inputs=M)
        close = dev.close
    elif request.param == "serve":
        dev, close = _serve_device()
    else:
        dev, close = _rtl_device()
    yield dev
    close()


def reference():
    return nx.connect("model", neurons=N, inputs=M)


def make_net(seed, neurons=N, inputs=M, stdp=False):
    rng = np.random.default_rng(seed)
    net = nx.Network(neurons=neurons, inputs=inputs)
    net.w_shift = 4
    net.w_in = rng.integers(0, 50, (inputs, neurons))
    net.w_rec = rng.integers(-25, 15, (neurons, neurons))
    net.threshold = rng.integers(300, 700, neurons)
    net.t_ref = rng.integers(0, 3, neurons)
    net.alpha_v = 30000
    net.alpha_i = 24000
    if stdp:
        net.plastic_in = rng.random((inputs, neurons)) < 0.7
        net.plastic_rec = rng.random((neurons, neurons)) < 0.5
        net.stdp.enabled = True
        net.stdp.a_plus, net.stdp.a_minus = 60, 50
        net.stdp.alpha_pre = net.stdp.alpha_post = 28000
        net.stdp.jump_pre = net.stdp.jump_post = 120
        net.stdp.w_min, net.stdp.w_max = -40, 60
    return net


def inputs_for(seed, steps, inputs=M, p=0.3):
    return np.random.default_rng(seed).random((steps, inputs)) < p


def same_run(dev, ref, net, steps, inp):
    dev.load(net)
    ref.load(net)
    a, b = dev.run(steps, inp), ref.run(steps, inp)
    assert a.spikes.shape == (steps, net.neurons)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    for k in ("steps", "spikes", "input_spikes", "syn_events"):
        assert a.counters[k] == b.counters[k], k
    return a


def test_load_run_with_inputs(device):
    rec = same_run(device, reference(), make_net(1), 80, inputs_for(2, 80))
    assert 0 < rec.spikes.sum() < rec.spikes.size        # neither silent nor saturated


def test_smaller_network_is_padded(device):
    net = make_net(3, neurons=5, inputs=3)
    rec = same_run(device, reference(), net, 40, inputs_for(4, 40, inputs=3))
    assert rec.spikes.shape == (40, 5)
    w_rec, w_in = device.read_weights()
    np.testing.assert_array_equal(w_rec, net.w_rec)
    np.testing.assert_array_equal(w_in, net.w_in)


def test_read_weights_and_state(device):
    ref = reference()
    net = make_net(5)
    same_run(device, ref, net, 33, inputs_for(6, 33))
    for a, b in zip(device.read_weights(), ref.read_weights()):
        np.testing.assert_array_equal(a, b)
    sa, sb = device.read_state(), ref.read_state()
    assert set(sa) == set(sb) == {"v", "i", "ref", "pre_trace", "post_trace", "input_trace"}
    for k in sb:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert np.any(sa["v"] != 0) and np.any(sa["pre_trace"] != 0)
    device.reset()
    assert all(not np.any(v) for v in device.read_state().values())


def test_stdp_changes_weights_like_the_model(device):
    ref = reference()
    net = make_net(7, stdp=True)
    same_run(device, ref, net, 120, inputs_for(8, 120, p=0.4))
    (ra, ia), (rb, ib) = device.read_weights(), ref.read_weights()
    np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(ia, ib)
    assert np.any(ra != net.w_rec) and np.any(ia != net.w_in)        # learning happened


def test_set_learning(device):
    ref = reference()
    net = make_net(9, stdp=True)
    for d in (device, ref):
        d.load(net)
        d.set_learning(False)
    inp = inputs_for(10, 50, p=0.4)
    a, b = device.run(50, inp), ref.run(50, inp)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    w_off = device.read_weights()
    np.testing.assert_array_equal(w_off[0], net.w_rec)               # frozen
    for d in (device, ref):
        d.set_learning(True)
    a, b = device.run(50, inp), ref.run(50, inp)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    for x, y in zip(device.read_weights(), ref.read_weights()):
        np.testing.assert_array_equal(x, y)
    assert np.any(device.read_weights()[1] != net.w_in)


def test_bad_input_is_refused_and_the_device_still_works(device):
    net = make_net(11)
    device.load(net)
    with pytest.raises(ShapeError, match="shape"):
        device.run(5, np.zeros((5, M + 3), bool))
    with pytest.raises(ShapeError, match="boolean"):
        device.run(2, np.full((2, M), 2))
    with pytest.raises(RangeError, match="steps"):
        device.run(-1)
    with pytest.raises(DeviceError, match="neurons"):
        device.load(make_net(12, neurons=N + 1))
    with pytest.raises(ShapeError):
        device.load("not a network")
    same_run(device, reference(), net, 20, inputs_for(13, 20))
