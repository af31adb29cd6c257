"""The link gateware driving the real core, against the Python engine over BusCore.

A network with STDP is loaded by frames, run with input spikes and read back;
the gateware (command engine + ``neurocorex.hdl.core.Core`` in Amaranth's
simulator) must answer every frame with the same bytes as the Python engine
over the golden model.
"""

import numpy as np
import pytest

from neurocorex.formats import CoreConfig, NEURON_PARAMS, STDP_FIELDS, NEURON_STATE
from neurocorex.protocol import Op, Kind, LinkCounter, encode_step, decode_steps, word_bytes
from neurocorex.regmap import Region, Counter, synapse_word
from neurocorex.sim.busmodel import BusCore

from test_hdl_link import LinkBench, check, cmd, write_cmd, read_cmd, frames_of


def without_cycle_counters(answer):
    """Decoded frames, with the core's clock-cycle counters (the model has no clock) zeroed."""
    out = []
    for kind, seq, rest in frames_of(answer):
        if kind == Kind.ACK and rest[0] == Op.COUNTERS:
            k = 1 + 4 * (len(LinkCounter) + Counter.LAST_STEP_CYCLES)
            rest = rest[:k] + bytes(len(rest) - k)
        out.append((kind, seq, rest))
    return out


@pytest.mark.parametrize("board", [None, "ulx3s"], ids=["default", "ulx3s"])
def test_real_core_load_run_learn_readback(board, monkeypatch):
    """Also as the ULX3S builds it: its core (eight sliced dual-port banks,
    early rows, accumulators in LUT RAM) and its ``fast_link``."""
    from neurocorex.boards.targets import get_board
    from neurocorex.boards.top import board_core
    cfg = CoreConfig(neurons=6, inputs=4)
    if board is None:
        core = board_core(cfg)
    else:
        core = board_core(cfg, **get_board(board).core_flags)
        monkeypatch.setattr(LinkBench, "fast_link", get_board(board).fast_link)
    rng = np.random.default_rng(5)
    n, m = cfg.neurons, cfg.inputs
    w_rec = [synapse_word(cfg, int(w), bool(p)) for w, p in
             zip(rng.integers(-20, 30, n * n), rng.random(n * n) < 0.5)]
    w_in = [synapse_word(cfg, int(w), bool(p)) for w, p in
            zip(rng.integers(0, 60, m * n), rng.random(m * n) < 0.5)]
    params = {"threshold": rng.integers(200, 600, n), "v_reset": np.zeros(n, int),
              "v_rest": np.zeros(n, int), "alpha_v": np.full(n, 30000), "alpha_i": np.full(n, 20000),
              "t_ref": rng.integers(0, 3, n)}
    pwords = [int(x) & 0xFFFF for f in NEURON_PARAMS for x in params[f.name]]
    stdp = {"enabled": 1, "a_plus": 40, "a_minus": 30, "alpha_pre": 28000, "alpha_post": 28000,
            "jump_pre": 100, "jump_post": 100, "w_min": -50, "w_max": 60}
    swords = [stdp[f.name] & 0xFFFF for f in STDP_FIELDS]
    steps = [sorted(rng.choice(m, rng.integers(0, m + 1), replace=False).tolist()) for _ in range(24)]

    def run(seq, chunk):
        return cmd(Op.RUN, seq, len(chunk).to_bytes(2, "little")
                   + b"".join(encode_step(s, m) for s in chunk))

    items = [write_cmd(1, cfg, Region.W_REC, 0, w_rec, 1),
             write_cmd(2, cfg, Region.W_IN, 0, w_in, 1),
             write_cmd(3, cfg, Region.PARAM, 0, pwords, 2),
             write_cmd(4, cfg, Region.GLOBAL, 0, [3], 1),
             write_cmd(5, cfg, Region.STDP, 0, swords, 2),
             cmd(Op.RESET, 6, b"\x01"),
             run(7, steps[:12]), run(8, steps[12:]),
             read_cmd(9, Region.W_REC, 0, n * n),
             read_cmd(10, Region.W_IN, 0, m * n),
             read_cmd(11, Region.STATE, 0, len(NEURON_STATE) * n),
             read_cmd(12, Region.INPUT_TRACE, 0, m),
             read_cmd(13, Region.COUNTER, 0, 4),
             cmd(Op.COUNTERS, 14)]
    answers, _, _ = check(cfg, items, max_frame=128, py_core=BusCore(cfg), hw_core=core,
                          gap=1, max_wait=50_000, normalize=without_cycle_counters)
    spikes = []
    for a in answers[6:8]:
        for kind, _, rest in frames_of(a):
            if kind == Kind.SPIKES:
                spikes += decode_steps(rest, n)
    assert len(spikes) == 24 and sum(map(len, spikes)) > 0     # the network did something
    learned = frames_of(answers[8])[0][2][1:]
    assert list(learned) != [w & 0xFF for w in w_rec]          # and STDP changed weights
    assert word_bytes(cfg, Region.W_REC) == 1
