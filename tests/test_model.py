"""The golden model against docs/spec.md.

Two kinds of check:

* hand-computed cases, one per rule of the spec, on networks of 1 to 4
  neurons; the arithmetic is written out in the comments;
* property checks on random networks against ``ScalarCore`` below, a slow,
  loop-based re-implementation of spec.md §3 written from the text alone.  It
  uses Python integers and :class:`fractions.Fraction` for the rounding rules
  and imports nothing from the model or from ``formats``' arithmetic helpers.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from neurocorex.formats import CoreConfig, decay, decay_trace, stdp_delta
from neurocorex.sim.model import CoreModel

ONE = 32768      # alpha = 1.0 in 1.15 fixed point
HALF = 16384     # alpha = 0.5


def _has_numba():
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True, params=["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not _has_numba(), reason="Numba is not installed"))])
def backend(request, monkeypatch):
    """Every test runs on both implementations of the step."""
    monkeypatch.setenv("NEUROCOREX_MODEL_BACKEND", request.param)
    return request.param


# -- helpers -------------------------------------------------------------------------

def make_core(n, m, *, weight_bits=7, threshold=32767, v_reset=0, v_rest=0, alpha_v=0,
              alpha_i=0, t_ref=0, w_shift=0, **stdp):
    """A CoreModel with the given per-neuron parameters (scalars or lists)."""
    md = CoreModel(CoreConfig(n, m, weight_bits))
    assert md.backend == os.environ["NEUROCOREX_MODEL_BACKEND"]
    for k, v in dict(threshold=threshold, v_reset=v_reset, v_rest=v_rest, alpha_v=alpha_v,
                     alpha_i=alpha_i, t_ref=t_ref).items():
        md.params[k][:] = v
    md.globals["w_shift"] = w_shift
    md.stdp.update(stdp)
    return md


def run_inputs(md, rows):
    """Step once per row of input spikes; return the spike rows."""
    return [md.step(np.array(r, bool)).copy() for r in rows]


# -- arithmetic primitives (spec §2) -----------------------------------------------------

def test_decay_rounds_toward_zero_both_signs():
    # x*alpha/2^15 with alpha = 0.5
    assert decay(7, HALF) == 3          # 3.5 -> 3
    assert decay(-7, HALF) == -3        # -3.5 -> -3 (floor would give -4)
    assert decay(3, HALF) == 1          # 1.5 -> 1
    assert decay(-3, HALF) == -1        # -1.5 -> -1
    assert decay(-1, HALF) == 0         # -0.5 -> 0 (floor would give -1 forever)
    assert decay(-32768, 1) == -1       # exactly -1.0
    assert decay(-32767, 1) == 0        # -0.99997 -> 0
    assert decay(32767, 1) == 0         # 0.99997 -> 0
    for x in (-32768, -1, 0, 1, 32767):
        assert decay(x, ONE) == x       # alpha = 1.0 is the identity
        assert decay(x, 0) == 0         # alpha = 0 forgets everything
    # the numpy path gives the same
    xs = np.array([7, -7, 3, -3, -1, -32768, -32767, 32767])
    al = np.array([HALF, HALF, HALF, HALF, HALF, 1, 1, 1])
    assert decay(xs, al).tolist() == [3, -3, 1, -1, 0, -1, 0, 0]


def test_decay_trace_floors_and_stdp_delta_rounds_half_up():
    assert decay_trace(25, HALF) == 12          # 12.5 -> 12
    assert decay_trace(255, 32767) == 254       # 254.992 -> 254
    assert decay_trace(255, ONE) == 255
    assert stdp_delta(64, 100) == 25            # 6400/256 = 25.0 -> (25.0 + .5) floored = 25
    assert stdp_delta(32, 100) == 13            # 3200/256 = 12.5 -> 13 (half up)
    assert stdp_delta(64, 12) == 3              # 768/256 = 3.0 -> 3
    assert stdp_delta(64, 25) == 6              # 1600/256 = 6.25 -> 6
    assert stdp_delta(1, 100) == 0              # 0.39 -> 0
    assert stdp_delta(0, 255) == 0
    assert stdp_delta(255, 255) == 254          # 65025/256 = 254.0 -> 254


# -- decay inside the neuron (spec §3 phase 3) ------------------------------------------------

@pytest.mark.parametrize("v_rest", [0, 100, -100])
def test_membrane_leak_rounds_toward_rest_from_both_sides(v_rest):
    # alpha_v = 0.5, no input, I = 0:  u = V - V_rest, V <- V_rest + trunc(u/2)
    # u: 7 -> 3 -> 1 -> 0 -> 0  and  -7 -> -3 -> -1 -> 0 -> 0
    for u0, expect in ((7, [3, 1, 0, 0]), (-7, [-3, -1, 0, 0])):
        md = make_core(1, 0, alpha_v=HALF, v_rest=v_rest)
        md.v[:] = v_rest + u0
        vs = []
        for _ in range(4):
            md.step()
            vs.append(int(md.v[0]))
        assert vs == [v_rest + e for e in expect]


def test_current_decay_rounds_toward_zero_and_drives_v():
    # alpha_i = 0.5, alpha_v = 0, V_rest = 0: I <- trunc(I/2), V <- I
    for i0, expect in ((7, [3, 1, 0]), (-7, [-3, -1, 0])):
        md = make_core(1, 0, alpha_i=HALF)
        md.i[:] = i0
        seen = []
        for _ in range(3):
            md.step()
            seen.append((int(md.i[0]), int(md.v[0])))
        assert seen == [(e, e) for e in expect]


def test_alpha_one_means_no_leak_and_alpha_zero_forgets():
    # alpha_v = alpha_i = 1.0: I stays 9, V accumulates it: -5 + 9 = 4, 13, 22
    md = make_core(1, 0, alpha_v=ONE, alpha_i=ONE)
    md.v[:] = -5
    md.i[:] = 9
    vs = []
    for _ in range(3):
        md.step()
        vs.append(int(md.v[0]))
        assert md.i[0] == 9
    assert vs == [4, 13, 22]
    # alpha_v = alpha_i = 0: V = V_rest + I_new = 50 + (3 << 2) = 62 whatever V and I were
    md = make_core(1, 1, v_rest=50, w_shift=2)
    md.w_in[0, 0] = 3
    md.v[:] = 1000
    md.i[:] = -1000
    md.step([1])
    assert (md.i[0], md.v[0]) == (12, 62)


# -- integration and delivery (spec §3 phase 1) ------------------------------------------------

def test_integration_delivers_spikes_next_step_with_w_shift():
    # neuron 0 is driven by axon 0: acc = 20 << 2 = 80 = threshold -> spike in step 0.
    # its spike reaches both neurons in step 1: acc_0 = -3 << 2 = -12, acc_1 = 7 << 2 = 28.
    md = make_core(2, 1, threshold=[80, 32767], w_shift=2)
    md.w_in[0] = [20, 0]
    md.w_rec[0] = [-3, 7]
    s0, s1, s2 = run_inputs(md, [[1], [0], [0]])
    assert s0.tolist() == [True, False]
    assert s1.tolist() == [False, False]
    assert s2.tolist() == [False, False]
    md = make_core(2, 1, threshold=[80, 32767], w_shift=2)
    md.w_in[0] = [20, 0]
    md.w_rec[0] = [-3, 7]
    md.step([1])
    assert md.i.tolist() == [80, 0]
    md.step([0])
    assert md.i.tolist() == [-12, 28]      # alpha_i = 0: I = acc
    assert md.v.tolist() == [-12, 28]
    md.step([1])                            # recurrent nothing, input 20<<2 on neuron 0
    assert md.i.tolist() == [80, 0]


def test_recurrent_and_input_sum_in_one_step():
    # step 1: R = {0}, K = {0, 1}: acc_1 = (5 + 11 + (-4)) << 1 = 24
    md = make_core(2, 2, threshold=[10, 32767], w_shift=1)
    md.w_in[:, 0] = [10, 0]
    md.w_in[:, 1] = [11, -4]
    md.w_rec[0, 1] = 5
    md.step([1, 0])          # neuron 0: 10 << 1 = 20 >= 10 -> spikes; neuron 1: 11 << 1 = 22
    assert md.i.tolist() == [20, 22]
    md.step([1, 1])
    assert md.i[1] == 24


# -- saturation (spec §2 sat16) ---------------------------------------------------------------

def test_current_saturates_both_directions():
    # w = 63 << 8 = 16128 per axon spike, alpha_i = 1.0;  V_rest = -32768 keeps V below threshold
    md = make_core(1, 3, alpha_i=ONE, v_rest=-32768, w_shift=8)
    md.w_in[:, 0] = 63
    got = []
    for row in ([1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 1]):
        md.step(row)
        got.append(int(md.i[0]))
    # 16128, 32256, sat(48384) = 32767, sat(32767 + 3*16128) = 32767
    assert got == [16128, 32256, 32767, 32767]
    # saturation is not sticky: a negative weight brings it down by exactly 1 << 8
    md.w_in[1, 0] = -1
    md.step([0, 1, 0])
    assert md.i[0] == 32767 - 256
    # negative: -64 << 8 = -16384 per spike
    md = make_core(1, 3, alpha_i=ONE, w_shift=8)
    md.w_in[:, 0] = -64
    md.step([1, 1, 0])                     # -32768 exactly
    assert md.i[0] == -32768
    md.step([1, 1, 1])                     # sat(-32768 - 49152) = -32768
    assert md.i[0] == -32768
    assert md.v[0] == -32768               # V = sat(0 + 0 - 32768)


def test_membrane_saturates_low():
    # V_rest = -32768, V = -32768 (u = 0), I = -64 << 8 = -16384:
    # V = sat(-32768 + 0 - 16384) = -32768 (16-bit wrap-around would give +16384)
    md = make_core(1, 1, v_rest=-32768, alpha_v=ONE, w_shift=8)
    md.w_in[0, 0] = -64
    md.v[:] = -32768
    s = md.step([1])
    assert md.v[0] == -32768 and not s[0]


def test_membrane_saturates_high_and_then_fires():
    # V = 30000, I = 63 << 8 = 16128, no leak: sat(46128) = 32767 >= theta = 32767 -> spike.
    # (A wrap-around would give 46128 - 65536 = -19408 and no spike.)
    md = make_core(1, 1, alpha_v=ONE, v_reset=-5, w_shift=8)
    md.w_in[0, 0] = 63
    md.v[:] = 30000
    assert md.step([1])[0]
    assert md.v[0] == -5


def test_u_saturates_both_directions():
    # up: V = 32767, V_rest = -32768: u = sat(65535) = 32767, trunc(32767/2) = 16383,
    #     V = -32768 + 16383 = -16385   (without the clamp: -32768 + 32767 = -1)
    md = make_core(1, 0, v_rest=-32768, alpha_v=HALF)
    md.v[:] = 32767
    md.step()
    assert md.v[0] == -16385
    # down: V = -32768, V_rest = 32767: u = sat(-65535) = -32768, trunc(-16384) = -16384,
    #       V = 32767 - 16384 = 16383 < theta = 32767   (without the clamp: 0)
    md = make_core(1, 0, v_rest=32767, alpha_v=HALF)
    md.v[:] = -32768
    assert not md.step()[0]
    assert md.v[0] == 16383


# -- threshold and refractory period ---------------------------------------------------------

def test_threshold_compare_is_greater_or_equal():
    # both neurons get V = 10; theta = 10 fires, theta = 11 does not
    md = make_core(2, 1, threshold=[10, 11])
    md.w_in[0] = [10, 10]
    assert md.step([1]).tolist() == [True, False]
    # a negative threshold below rest fires every step with T_ref = 0
    md = make_core(1, 0, threshold=-5, v_reset=-100)
    assert all(md.step()[0] for _ in range(3))      # V = 0 + trunc(0) + 0 = 0 >= -5
    md = make_core(1, 0, threshold=-5, v_rest=-10)
    assert not any(md.step()[0] for _ in range(3))  # V = -10 < -5


def test_refractory_hold_countdown_and_current_update():
    # drive = 63 << 8 = 16128 >> theta; alpha_v = 0.5 would pull V_reset = -7 to -3 if not held
    md = make_core(1, 1, threshold=1000, v_reset=-7, alpha_v=HALF, t_ref=2, w_shift=8)
    md.w_in[0, 0] = 63
    inputs = [1, 0, 1, 1, 1, 1, 1, 1]
    got = []
    for x in inputs:
        s = md.step([x])
        got.append((bool(s[0]), int(md.v[0]), int(md.ref[0]), int(md.i[0])))
    assert got == [
        (True, -7, 2, 16128),    # step 0: fires, V <- V_reset, ref <- T_ref
        (False, -7, 1, 0),       # step 1: held; I still updates (no input -> 0)
        (False, -7, 0, 16128),   # step 2: held, last refractory step
        (True, -7, 2, 16128),    # step 3: V = 0 + trunc(-7/2) + 16128 -> fires
        (False, -7, 1, 16128),
        (False, -7, 0, 16128),
        (True, -7, 2, 16128),
        (False, -7, 1, 16128),
    ]


def test_t_ref_zero_fires_every_step_and_t_ref_max():
    md = make_core(1, 1, threshold=1000, v_reset=-7, w_shift=8)
    md.w_in[0, 0] = 63
    spikes = [bool(md.step([1])[0]) for _ in range(5)]
    assert spikes == [True] * 5
    assert md.ref[0] == 0
    # T_ref = 255: fires in step 0, then cannot fire in steps 1..255, fires in step 256
    md = make_core(1, 1, threshold=1000, t_ref=255, w_shift=8)
    md.w_in[0, 0] = 63
    out = md.run(300, np.ones((300, 1), bool))
    assert np.flatnonzero(out[:, 0]).tolist() == [0, 256]


# -- STDP -------------------------------------------------------------------------------------

STDP_ON = dict(enabled=1, alpha_pre=HALF, alpha_post=HALF, jump_pre=100, jump_post=100,
               w_min=-64, w_max=63)


def _dep_core(w0, **stdp):
    """N=1, M=2: axon 0 drives the neuron (63 << 5 = 2016 >= 1000), axon 1 is the plastic
    synapse under test (30 << 5 = 960 < 1000 does not fire it)."""
    st = dict(STDP_ON, a_plus=0, a_minus=64)
    st.update(stdp)
    md = make_core(1, 2, threshold=1000, w_shift=5, **st)
    md.w_in[:, 0] = [63, w0]
    md.plastic_in[1, 0] = True
    return md


def test_depression_uses_post_trace_of_previous_step():
    md = _dep_core(30)
    md.step([1, 0])            # neuron fires; y = 0*... + 100 = 100
    assert md.post_trace[0] == 100
    assert md.w_in[0, 0] == 63  # not plastic
    md.step([0, 1])
    # pre event of axon 1: d = round_half_up(64 * 100 / 256) = 25; W = 30 - 25 = 5.
    # (with this step's decayed trace y = 50 it would be 13 and W = 17)
    assert md.w_in[1, 0] == 5
    assert md.i[0] == 960       # integration used the weight of the step's start (30 << 5)
    assert md.post_trace[0] == 50
    md.step([0, 1])
    # integration now sees 5 << 5 = 160; d = round(64*50/256 = 12.5) = 13; W = 5 - 13 = -8
    assert md.i[0] == 160
    assert md.w_in[1, 0] == -8


def test_recurrent_pair_potentiates_then_depresses_with_masks():
    # Both neurons fire in step 0 (axon 0, not plastic); T_ref = 1 keeps them silent in step 1.
    # A+ = 32, A- = 64, jumps 100, alpha 0.5.  W_rec[1,0] is not plastic.
    md = make_core(2, 1, threshold=1000, t_ref=1, w_shift=5, a_plus=32, a_minus=64, **STDP_ON)
    md.w_in[0] = [63, 63]
    md.w_rec[:] = [[0, 10], [-20, 5]]
    md.plastic_rec[:] = [[True, True], [False, True]]
    assert md.step([1]).tolist() == [True, True]
    # step 0, phase 5: q_p = round(32 * x_p / 256) with x_p = 100 after phase 4 -> 12.5 -> 13
    assert md.w_rec.tolist() == [[13, 23], [-20, 18]]
    assert md.step([0]).tolist() == [False, False]
    # step 1, phase 1 with the weights of the step's start: acc_0 = (13 - 20) << 5 = -224,
    # acc_1 = (23 + 18) << 5 = 1312 (>= theta, but refractory: no spike, V held at 0)
    assert md.i.tolist() == [-224, 1312]
    assert md.v.tolist() == [0, 0]
    # phase 2: R = {0, 1}, d_j = round(64 * 100 / 256) = 25 for both posts
    assert md.w_rec.tolist() == [[13 - 25, 23 - 25], [-20, 18 - 25]]
    md.step([0])                # no pre events, no post spikes: nothing moves
    assert md.w_rec.tolist() == [[-12, -2], [-20, -7]]


def test_potentiation_uses_pre_trace_after_phase_4():
    # N=1, M=2: axon 0 drives (not plastic), axon 1 -> neuron is plastic, A+ = 64, A- = 0
    md = make_core(1, 2, threshold=1000, w_shift=5, a_plus=64, a_minus=0, **STDP_ON)
    md.w_in[:, 0] = [63, 0]
    md.plastic_in[1, 0] = True
    md.step([1, 1])
    # both axons and the neuron spike together: x_1 = 0 + 100 after phase 4,
    # q = round(64*100/256) = 25  (the trace before phase 4 was 0: W would stay 0)
    assert md.input_trace.tolist() == [100, 100]
    assert md.w_in[1, 0] == 25
    md.step([0, 0])            # x_1 = 50
    md.step([0, 0])            # x_1 = 25
    md.step([1, 0])            # fires; x_1 = floor(25/2) = 12; q = round(64*12/256 = 3.0) = 3
    assert md.input_trace[1] == 12
    assert md.w_in[1, 0] == 28  # (with the trace before phase 4, 25: q = 6 and W = 31)


def test_recurrent_potentiation_from_every_pre_source():
    # neuron 0 fires at step 0 (axon 0), neuron 1 at step 2 (axon 1); all W_rec plastic, A+ = 64
    md = make_core(2, 2, threshold=1000, w_shift=5, a_plus=64, a_minus=0, **STDP_ON)
    md.w_in[:] = [[63, 0], [0, 63]]
    md.plastic_rec[:] = True
    md.step([1, 0])
    # posts = {0}: q_p = round(64 * x_p / 256), x = [100, 0] -> W_rec[:,0] += [25, 0]
    assert md.w_rec.tolist() == [[25, 0], [0, 0]]
    md.step([0, 0])
    # R = {0}: acc_0 = 25 << 5 = 800 < 1000; A- = 0 so no depression; x = [50, 0]
    assert md.i.tolist() == [800, 0]
    md.step([0, 1])
    # posts = {1}: x = [25, 100] -> q = [round(6.25) = 6, 25]
    assert md.w_rec.tolist() == [[25, 6], [0, 25]]


@pytest.mark.parametrize("w0, w_min, w_max, a_minus, expect", [
    (30, 10, 63, 64, 10),     # 30 - 25 = 5 stops at w_min = 10
    (10, 10, 63, 64, 10),     # at w_min: no movement
    (-5, 10, 63, 64, -5),     # set below w_min by the user: not pulled up, not pushed down
    (50, -64, 40, 64, 25),    # above w_max: depression moves it down as usual
    (50, -64, 40, 1, 50),     # d = round(100/256) = 0: unchanged, not clamped to w_max
    (-64, -64, 63, 64, -64),  # at the bottom of the weight range
])
def test_depression_bounds(w0, w_min, w_max, a_minus, expect):
    md = _dep_core(w0, w_min=w_min, w_max=w_max, a_minus=a_minus)
    md.w_in[0, 0] = 63
    md.step([1, 0])
    md.step([0, 1])
    assert md.w_in[1, 0] == expect


@pytest.mark.parametrize("w0, w_min, w_max, a_plus, expect", [
    (50, -64, 63, 64, 63),    # 50 + 25 = 75 stops at w_max = 63
    (63, -64, 63, 64, 63),    # at w_max: no movement
    (50, -64, 40, 64, 50),    # set above w_max: not pulled down, not pushed up
    (-20, 0, 63, 64, 5),      # below w_min: potentiation moves it up as usual
    (-20, 0, 63, 1, -20),     # q = 0: unchanged, not clamped to w_min
])
def test_potentiation_bounds(w0, w_min, w_max, a_plus, expect):
    md = make_core(1, 2, threshold=1000, w_shift=5, a_minus=0,
                   **dict(STDP_ON, a_plus=a_plus, w_min=w_min, w_max=w_max))
    md.w_in[:, 0] = [63, w0]
    md.plastic_in[1, 0] = True
    md.step([1, 1])            # q = round(a_plus * 100 / 256)
    assert md.w_in[1, 0] == expect


def test_bounds_default_to_weight_range_of_narrow_weights():
    # weight_bits = 4: weights in [-8, 7]; the model's default bounds are that range
    md = CoreModel(CoreConfig(1, 2, 4))
    assert (md.stdp["w_min"], md.stdp["w_max"]) == (-8, 7)
    md.params["threshold"][:] = 100
    md.params["alpha_v"][:] = 0
    md.globals["w_shift"] = 5
    md.stdp.update(enabled=1, a_plus=255, jump_pre=255, alpha_pre=0)
    md.w_in[:, 0] = [7, 0]
    md.plastic_in[1, 0] = True
    md.step([1, 1])            # q = round(255*255/256 = 254.0) = 254 -> min(0 + 254, 7) = 7
    assert md.w_in[1, 0] == 7


def test_plasticity_mask_per_input_synapse():
    # N=1, M=3, all three axons spike with the neuron: q = 25 on the plastic ones only
    md = make_core(1, 3, threshold=1000, w_shift=5, a_plus=64, a_minus=64, **STDP_ON)
    md.w_in[:, 0] = [20, 20, 20]        # (60 << 5) = 1920 >= 1000
    md.plastic_in[:, 0] = [True, False, True]
    md.step([1, 1, 1])
    assert md.w_in[:, 0].tolist() == [45, 20, 45]
    md.step([1, 1, 1])
    # step 1: pre events with y = 100: d = 25 -> [20, 20, 20]; the neuron fires again
    # (acc uses [45, 20, 45]); x = 50 + 100 = 150 -> q = round(64*150/256 = 37.5) = 38
    assert md.w_in[:, 0].tolist() == [58, 20, 58]


def test_learning_off_keeps_weights_but_updates_traces():
    st = dict(STDP_ON, enabled=0)
    md = make_core(2, 1, threshold=1000, t_ref=1, w_shift=5, a_plus=32, a_minus=64, **st)
    md.w_in[0] = [63, 63]
    md.w_rec[:] = [[0, 10], [-20, 5]]
    md.plastic_rec[:] = [[True, True], [False, True]]
    md.plastic_in[:] = True
    md.step([1])
    assert md.w_rec.tolist() == [[0, 10], [-20, 5]]
    assert md.w_in.tolist() == [[63, 63]]
    assert md.pre_trace.tolist() == [100, 100] and md.post_trace.tolist() == [100, 100]
    # switching learning on: the traces of the learning-off step are used
    md.stdp["enabled"] = 1
    md.step([0])
    # R = {0, 1}, d = round(64*100/256) = 25 on the plastic synapses
    assert md.w_rec.tolist() == [[-25, -15], [-20, -20]]


# -- traces (spec §3 phase 4) -------------------------------------------------------------------

def test_trace_decay_jump_and_saturation():
    # neuron driven by axon 0 whenever the axon spikes; learning off
    md = make_core(1, 1, threshold=1000, w_shift=8, alpha_pre=HALF, jump_pre=100,
                   alpha_post=ONE, jump_post=200)
    md.w_in[0, 0] = 63
    pre, post, inp = [], [], []
    for x in [1, 0, 0, 0, 0, 0, 0, 0]:
        md.step([x])
        pre.append(int(md.pre_trace[0])); post.append(int(md.post_trace[0]))
        inp.append(int(md.input_trace[0]))
    assert pre == [100, 50, 25, 12, 6, 3, 1, 0]    # floor at every halving
    assert inp == pre                              # input traces use alpha_pre / jump_pre
    assert post == [200] * 8                       # alpha 1.0: no decay
    for _ in range(3):
        md.step([1])
        pre.append(int(md.pre_trace[0])); post.append(int(md.post_trace[0]))
    # pre: 0 + 100, 50 + 100 = 150, 75 + 100 = 175; post: min(255, 200 + 200) = 255, 255, 255
    assert pre[-3:] == [100, 150, 175]
    assert post[-3:] == [255, 255, 255]


def test_trace_alpha_zero_and_max_jump():
    md = make_core(1, 1, threshold=1000, w_shift=8, alpha_pre=0, jump_pre=255,
                   alpha_post=32767, jump_post=255)
    md.w_in[0, 0] = 63
    md.step([1])
    assert (md.pre_trace[0], md.post_trace[0], md.input_trace[0]) == (255, 255, 255)
    md.step([1])               # post: min(255, floor(255*32767/2^15) + 255) = 255
    assert (md.pre_trace[0], md.post_trace[0]) == (255, 255)
    md.step([0])               # pre: alpha 0 -> 0; post: 254
    assert (md.pre_trace[0], md.post_trace[0], md.input_trace[0]) == (0, 254, 0)


# -- counters and reset --------------------------------------------------------------------------

def test_counters():
    md = make_core(3, 2, threshold=1000, w_shift=5)
    md.w_in[0] = [63, 63, 0]
    run_inputs(md, [[1, 1], [0, 1], [0, 0]])
    # step 0: |R|=0, |K|=2 -> 6 events, neurons 0 and 1 fire
    # step 1: |R|=2, |K|=1 -> 9 events, no spikes (W_rec = 0)
    # step 2: nothing
    assert md.counters.as_dict() == {"steps": 3, "spikes": 2, "input_spikes": 3, "syn_events": 15}


def test_reset_state_keeps_configuration_and_drops_pending_spikes():
    md = make_core(2, 1, threshold=[80, 32767], v_reset=3, alpha_i=ONE, alpha_v=ONE,
                   t_ref=4, w_shift=2, a_plus=10, **STDP_ON)
    md.w_in[0] = [20, 1]
    md.w_rec[0] = [-3, 7]
    md.plastic_rec[0, 1] = True
    md.step([1])                           # neuron 0 fires; its spike is pending
    w_rec, w_in = md.w_rec.copy(), md.w_in.copy()
    params = {k: v.copy() for k, v in md.params.items()}
    stdp = dict(md.stdp)
    assert md.spikes[0] and md.ref[0] == 4 and md.pre_trace[0] == 100
    md.reset_state()
    for k in ("v", "i", "ref", "pre_trace", "post_trace", "input_trace"):
        assert not getattr(md, k).any(), k
    assert not md.spikes.any()
    assert md.counters.as_dict() == {"steps": 0, "spikes": 0, "input_spikes": 0, "syn_events": 0}
    assert (md.w_rec == w_rec).all() and (md.w_in == w_in).all()
    assert md.plastic_rec[0, 1] and md.stdp == stdp
    assert all((md.params[k] == params[k]).all() for k in params)
    md.step([0])
    assert md.i.tolist() == [0, 0]         # the pending spike was dropped (else I_1 = 7 << 2)
    assert md.counters.syn_events == 0


# -- the slow reference -----------------------------------------------------------------------

def _sat16(x):
    return max(-32768, min(32767, x))


def _scale_trunc(x, alpha):
    """x * alpha / 2^15, truncated toward zero (exact rational arithmetic)."""
    return int(Fraction(x * alpha, 2 ** 15))


def _scale_floor(x, alpha):
    return math.floor(Fraction(x * alpha, 2 ** 15))


def _round_half_up(a, x):
    return math.floor(Fraction(a * x, 256) + Fraction(1, 2))


class ScalarCore:
    """spec.md §3 with loops over Python ints, one neuron and one synapse at a time."""

    def __init__(self, md: CoreModel):
        # copy the configuration and state of a CoreModel into plain lists
        self.N, self.M = md.config.neurons, md.config.inputs
        self.w_rec = [[int(v) for v in row] for row in md.w_rec]
        self.w_in = [[int(v) for v in row] for row in md.w_in]
        self.p_rec = [[bool(v) for v in row] for row in md.plastic_rec]
        self.p_in = [[bool(v) for v in row] for row in md.plastic_in]
        self.par = {k: [int(v) for v in a] for k, a in md.params.items()}
        self.st = {k: int(v) for k, v in md.stdp.items()}
        self.w_shift = int(md.globals["w_shift"])
        self.v = [int(v) for v in md.v]
        self.i = [int(v) for v in md.i]
        self.ref = [int(v) for v in md.ref]
        self.x = [int(v) for v in md.pre_trace]
        self.y = [int(v) for v in md.post_trace]
        self.xin = [int(v) for v in md.input_trace]
        self.s = [bool(v) for v in md.spikes]
        self.count = dict(md.counters.as_dict())

    def step(self, inp):
        N, M, st, par = self.N, self.M, self.st, self.par
        R = [i for i in range(N) if self.s[i]]
        K = [k for k in range(M) if inp[k]]
        # 1. integration with the weights of the step's start
        acc = []
        for j in range(N):
            total = 0
            for i in R:
                total += self.w_rec[i][j]
            for k in K:
                total += self.w_in[k][j]
            acc.append(total * 2 ** self.w_shift)
        # 2. depression with y of step t-1
        if st["enabled"]:
            for j in range(N):
                d = _round_half_up(st["a_minus"], self.y[j])
                for rows, w, p in ((R, self.w_rec, self.p_rec), (K, self.w_in, self.p_in)):
                    for r in rows:
                        if p[r][j] and w[r][j] > st["w_min"]:
                            w[r][j] = max(w[r][j] - d, st["w_min"])
        # 3. neurons
        out = [False] * N
        for j in range(N):
            self.i[j] = _sat16(_scale_trunc(self.i[j], par["alpha_i"][j]) + acc[j])
            if self.ref[j] > 0:
                self.ref[j] -= 1
                continue
            u = _sat16(self.v[j] - par["v_rest"][j])
            v = _sat16(par["v_rest"][j] + _scale_trunc(u, par["alpha_v"][j]) + self.i[j])
            if v >= par["threshold"][j]:
                out[j] = True
                v = par["v_reset"][j]
                self.ref[j] = par["t_ref"][j]
            self.v[j] = v
        # 4. traces
        jp, jq = st["jump_pre"], st["jump_post"]
        for j in range(N):
            self.x[j] = min(255, _scale_floor(self.x[j], st["alpha_pre"]) + (jp if out[j] else 0))
            self.y[j] = min(255, _scale_floor(self.y[j], st["alpha_post"]) + (jq if out[j] else 0))
        for k in range(M):
            self.xin[k] = min(255, _scale_floor(self.xin[k], st["alpha_pre"]) + (jp if inp[k] else 0))
        # 5. potentiation with the new pre traces
        if st["enabled"]:
            for j in range(N):
                if not out[j]:
                    continue
                for w, p, tr, n_src in ((self.w_rec, self.p_rec, self.x, N),
                                        (self.w_in, self.p_in, self.xin, M)):
                    for src in range(n_src):
                        q = _round_half_up(st["a_plus"], tr[src])
                        if p[src][j] and w[src][j] < st["w_max"]:
                            w[src][j] = min(w[src][j] + q, st["w_max"])
        self.s = out
        self.count["steps"] += 1
        self.count["spikes"] += sum(out)
        self.count["input_spikes"] += len(K)
        self.count["syn_events"] += (len(R) + len(K)) * N
        return out

    def snapshot(self):
        return dict(w_rec=self.w_rec, w_in=self.w_in, v=self.v, i=self.i, ref=self.ref,
                    pre_trace=self.x, post_trace=self.y, input_trace=self.xin, spikes=self.s,
                    counters=self.count)


def _model_snapshot(md):
    return dict(w_rec=md.w_rec.tolist(), w_in=md.w_in.tolist(), v=md.v.tolist(), i=md.i.tolist(),
                ref=md.ref.tolist(), pre_trace=md.pre_trace.tolist(), post_trace=md.post_trace.tolist(),
                input_trace=md.input_trace.tolist(), spikes=md.spikes.tolist(),
                counters=md.counters.as_dict())


def random_core(rng, n, m, weight_bits=7, extreme=False):
    """A random CoreModel with random parameters, STDP settings and state."""
    md = CoreModel(CoreConfig(n, m, weight_bits))
    lo, hi = md.config.weight_range
    md.w_rec[:] = rng.integers(lo, hi + 1, (n, n))
    md.w_in[:] = rng.integers(lo, hi + 1, (m, n))
    md.plastic_rec[:] = rng.random((n, n)) < 0.7
    md.plastic_in[:] = rng.random((m, n)) < 0.7
    alphas = lambda k: np.where(rng.random(k) < 0.2, rng.choice([0, 1, ONE - 1, ONE], k),  # noqa: E731
                                rng.integers(0, ONE + 1, k))
    p = md.params
    if extreme:
        p["threshold"][:] = rng.integers(-32768, 32768, n)
        p["v_reset"][:] = rng.integers(-32768, 32768, n)
        p["v_rest"][:] = rng.integers(-32768, 32768, n)
    else:
        p["threshold"][:] = rng.integers(-200, 3000, n)
        p["v_reset"][:] = rng.integers(-1000, 500, n)
        p["v_rest"][:] = rng.integers(-500, 500, n)
    p["alpha_v"][:] = alphas(n)
    p["alpha_i"][:] = alphas(n)
    p["t_ref"][:] = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 256 if extreme else 6, n))
    md.globals["w_shift"] = int(rng.integers(0, 9))
    w_min, w_max = sorted(rng.integers(lo, hi + 1, 2).tolist())
    md.stdp.update(enabled=int(rng.random() < 0.8), a_plus=int(rng.integers(0, 256)),
                   a_minus=int(rng.integers(0, 256)), alpha_pre=int(alphas(1)[0]),
                   alpha_post=int(alphas(1)[0]), jump_pre=int(rng.integers(0, 256)),
                   jump_post=int(rng.integers(0, 256)), w_min=w_min, w_max=w_max)
    # a random state, so that saturation and refractory corners are reached at once
    md.v[:] = rng.integers(-32768, 32768, n)
    md.i[:] = rng.integers(-32768, 32768, n)
    md.ref[:] = np.where(rng.random(n) < 0.3, rng.integers(0, 256, n), 0)
    md.pre_trace[:] = rng.integers(0, 256, n)
    md.post_trace[:] = rng.integers(0, 256, n)
    md.input_trace[:] = rng.integers(0, 256, m)
    md.spikes[:] = rng.random(n) < 0.3
    return md


@pytest.mark.parametrize("seed", range(40))
def test_model_matches_scalar_reference_on_random_networks(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    m = int(rng.integers(0, 6))
    wb = int(rng.choice([2, 4, 7, 7, 7, 9]))
    md = random_core(rng, n, m, wb, extreme=seed % 4 == 0)
    ref = ScalarCore(md)
    density = rng.random()
    for t in range(60):
        x = rng.random(m) < density
        if rng.random() < 0.05:                     # learning switched at run time
            md.stdp["enabled"] ^= 1
            ref.st["enabled"] ^= 1
        s_model = md.step(x)
        s_ref = ref.step(x.tolist())
        assert s_model.tolist() == s_ref, f"spikes differ at step {t}"
        assert _model_snapshot(md) == ref.snapshot(), f"state differs at step {t}"


def test_model_matches_scalar_reference_on_a_larger_network():
    rng = np.random.default_rng(1234)
    md = random_core(rng, 24, 16)
    md.stdp["enabled"] = 1
    md.params["threshold"][:] = rng.integers(200, 1500, 24)
    md.globals["w_shift"] = 3
    ref = ScalarCore(md)
    inputs = rng.random((80, 16)) < 0.2
    spikes = 0
    for t in range(80):
        s = md.step(inputs[t])
        assert s.tolist() == ref.step(inputs[t].tolist())
        spikes += int(s.sum())
    assert _model_snapshot(md) == ref.snapshot()
    assert spikes > 20            # the comparison exercised spiking and learning


def test_run_equals_repeated_step():
    rng = np.random.default_rng(7)
    a = random_core(rng, 5, 3)
    rng = np.random.default_rng(7)
    b = random_core(rng, 5, 3)
    inputs = np.random.default_rng(8).random((50, 3)) < 0.4
    out = a.run(50, inputs)
    for t in range(50):
        assert (b.step(inputs[t]) == out[t]).all()
    assert _model_snapshot(a) == _model_snapshot(b)


def test_without_numba_the_numpy_step_is_used(monkeypatch):
    import neurocorex.sim.model as model_mod
    monkeypatch.setattr(model_mod, "_KERNEL", False)       # as if `import numba` had failed
    md = make_core(1, 1, threshold=10)
    md.w_in[0, 0] = 10
    assert md.step([1])[0]
    assert md.backend == "numpy"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_model_matches_scalar_reference_long_runs(seed):
    """Longer runs on medium networks, learning on, with moderate activity."""
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(20, 48)), int(rng.integers(0, 32))
    md = random_core(rng, n, m)
    md.stdp["enabled"] = 1
    md.params["threshold"][:] = rng.integers(300, 2000, n)
    md.globals["w_shift"] = int(rng.integers(1, 5))
    ref = ScalarCore(md)
    inputs = rng.random((400, m)) < 0.1
    for t in range(400):
        assert md.step(inputs[t]).tolist() == ref.step(inputs[t].tolist()), f"step {t}"
    assert _model_snapshot(md) == ref.snapshot()
