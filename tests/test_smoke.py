import numpy as np

import neurocorex as nx


def test_model_runs_and_reads_back():
    net = nx.Network(neurons=4, inputs=2)
    net.w_shift = 6
    net.w_in = [[63, 0, 0, 0], [0, 0, 0, 0]]
    with nx.connect("model", neurons=4, inputs=2) as core:
        core.load(net)
        rec = core.run(3, inputs=np.array([[1, 0], [1, 0], [0, 0]], bool))
        assert rec.spikes.shape == (3, 4)
        w_rec, w_in = core.read_weights()
        assert (w_in == net.w_in).all()
        state = core.read_state()
        assert set(state) >= {"v", "i", "ref", "pre_trace", "post_trace", "input_trace"}
