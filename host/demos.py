"""Learning demos that run on any device: ``neurocorex demo``.

Two demos, both written against the :class:`~neurocorex.device.Device` API
only (``load``, ``set_learning``, ``run``, ``reset``, ``read_weights``), so
they run unchanged on the golden model, the simulated RTL or a board.

``stdp``
    A repeated spatiotemporal spike pattern hidden in Poisson noise, in the
    style of Masquelier, Guyonneau & Thorpe (2008).  An output neuron with
    on-chip STDP learns to fire when the pattern is shown and stays silent
    otherwise.  See :func:`run_stdp`.
``digits``
    scikit-learn's 8x8 digits, 64 rate-coded inputs to 10 output neurons with
    weights trained off-chip and quantised to the core's 7-bit weights.  See
    :func:`run_digits`.

``docs/demos.md`` gives the measured figures and the commands.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import NeuroCoreXError, RangeError
from .network import Network

__all__ = ["PatternTask", "make_pattern_task", "stdp_network", "run_stdp",
           "load_digits_split", "train_digits", "quantise_weights", "digits_network",
           "encode_digit", "classify", "run_digits", "open_for"]


def open_for(device: str, net: Network):
    """Open ``device`` for ``net``: the model and the RTL are sized to the network.

    Ports and URLs are opened as they are; :meth:`Device.load` then checks that
    the network fits.
    """
    from .device import connect
    if device in ("model", "rtl"):
        return connect(device, neurons=net.neurons, inputs=net.inputs,
                       weight_bits=net.config.weight_bits)
    return connect(device)


def _progress(total, desc, enabled):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr)


# =====================================================================================
# STDP: a repeated spatiotemporal pattern in Poisson noise
# =====================================================================================

@dataclass
class PatternTask:
    """Input streams of the pattern-detection task.

    Every afferent fires as a Poisson process of ``rate`` spikes per step.  At
    random times a fixed spatiotemporal pattern is inserted: each of its
    ``afferents`` fires once, at its own fixed offset within ``width`` steps
    (up to ``jitter`` steps early or late; each spike dropped with
    probability ``drop``), and is otherwise silent inside the pattern.
    Outside the patterns their rate is lowered so that every afferent has the
    same mean rate: counting spikes per afferent does not reveal the pattern.

    Test streams can also hold a *distractor*: a second pattern with the same
    structure (as many afferents, the same offsets' spread) drawn on other
    afferents, that the network never learns.  A neuron that reacted to any
    burst of input would fire for it as well.
    """
    inputs: int
    afferents: np.ndarray          # indices of the pattern's afferents
    offsets: np.ndarray            # their spike times within the pattern (steps)
    distractor: np.ndarray         # afferents of the distractor pattern
    distractor_offsets: np.ndarray
    width: int
    rate: float
    gap: tuple
    jitter: int
    drop: float
    seed: int
    rng: np.random.Generator = field(repr=False, default=None)

    def stream(self, steps: int, distractors: bool = False):
        """A fresh stream.

        Returns ``(inputs (steps, M) bool, starts, distractor_starts)``; with
        ``distractors`` every other insertion (at random) is the distractor.
        """
        rng = self.rng
        starts, kinds, t = [], [], int(rng.integers(*self.gap))
        while t + self.width + self.jitter < steps:
            starts.append(t)
            kinds.append(bool(distractors and rng.random() < 0.5))
            t += self.width + int(rng.integers(*self.gap))
        starts, kinds = np.array(starts, np.int64), np.array(kinds, bool)
        # per afferent: how many insertions silence it and give it its one spike
        shown = np.zeros(self.inputs)
        shown[self.afferents] += (~kinds).sum()
        shown[self.distractor] += kinds.sum()
        outside = np.maximum(steps - shown * self.width, 1)
        rate = np.clip((self.rate * steps - shown * (1.0 - self.drop)) / outside, 0.0, 1.0)
        x = rng.random((steps, self.inputs)) < rate
        for s, is_d in zip(starts, kinds):
            aff, off = (self.distractor, self.distractor_offsets) if is_d else (self.afferents, self.offsets)
            x[s:s + self.width, aff] = False
            keep = rng.random(len(aff)) >= self.drop
            tt = s + off + rng.integers(-self.jitter, self.jitter + 1, len(aff))
            x[np.clip(tt[keep], 0, steps - 1), aff[keep]] = True
        return x, starts[~kinds], starts[kinds]

    def score(self, spikes, starts, distractor_starts=(), margin: int = 5):
        """Hit rate and false alarms of each output neuron.

        A *hit* is at least one spike from the pattern's start to ``margin``
        steps after its end.  False alarms are the spikes outside all pattern
        windows, per 1000 steps, and the fraction of pattern-free windows of
        the pattern's length that hold a spike; ``distractor_rate`` is the
        fraction of distractor patterns that drew a spike.

        Returns
        -------
        dict of arrays (one value per neuron): ``hit_rate``,
        ``false_alarms_per_1000``, ``false_alarm_windows``, ``distractor_rate``.
        """
        spikes = np.asarray(spikes, bool)
        steps, n = spikes.shape
        win = self.width + margin
        inside = np.zeros(steps, bool)
        for s in list(starts) + list(distractor_starts):
            inside[s:s + win] = True

        def rate(ss):
            return np.array([spikes[s:s + win].any(0) for s in ss]).mean(0) if len(ss) else np.zeros(n)
        fa = spikes[~inside].sum(0) / max((~inside).sum(), 1) * 1000.0
        n_win = steps // win
        blocks = spikes[:n_win * win].reshape(n_win, win, n)
        clean = ~inside[:n_win * win].reshape(n_win, win).any(1)
        faw = blocks[clean].any(1).mean(0) if clean.any() else np.zeros(n)
        return {"hit_rate": rate(starts), "false_alarms_per_1000": fa,
                "false_alarm_windows": faw, "distractor_rate": rate(distractor_starts)}


def make_pattern_task(seed: int = 0, inputs: int = 100, afferents: int = 30, width: int = 10,
                      rate: float = 0.02, gap=(60, 180), jitter: int = 1, drop: float = 0.0):
    """Draw a pattern and a distractor (which afferents, at which offsets).

    A pattern's ``afferents`` fire at offsets spread evenly over ``width``
    steps, in a random order.
    """
    from .formats import check_int
    check_int("inputs", inputs, 1, 4096)
    check_int("afferents", afferents, 1, inputs)
    check_int("width", width, 1, 10_000)
    check_int("jitter", jitter, 0, 100)
    if not (isinstance(rate, (int, float)) and 0.0 < rate < 1.0):
        raise RangeError(f"rate must lie in (0, 1) spikes per step, got {rate!r}")
    if not (isinstance(drop, (int, float)) and 0.0 <= drop < 1.0):
        raise RangeError(f"drop must lie in [0, 1), got {drop!r}")
    if len(gap) != 2 or not 1 <= gap[0] < gap[1]:
        raise RangeError(f"gap must be (low, high) steps with 1 <= low < high, got {gap!r}")
    rng = np.random.default_rng(seed)
    spread = np.arange(afferents) * width // afferents
    aff = rng.permutation(inputs)[:afferents]
    offsets = rng.permutation(spread)
    dis = rng.permutation(inputs)[:afferents]
    dis_off = rng.permutation(spread)
    return PatternTask(inputs, aff, offsets, dis, dis_off, width, rate, tuple(gap), jitter, drop,
                       seed, rng)


def stdp_network(inputs: int = 100, neurons: int = 1, seed: int = 0, threshold: int = 3500,
                 w_init=(5, 20), inhibition: int = -64, tau_pre: float = 17.0,
                 tau_post: float = 30.0, tau_mem: float = 10.0, refractory: float = 30.0,
                 w_shift: int = 3) -> Network:
    """The learning network: ``neurons`` LIF neurons, plastic input synapses.

    Integer settings, all within the core's formats: weights start uniform in
    ``w_init`` and learn within ``[0, 63]``; ``w_shift = 3`` (a weight adds
    ``8·w`` to the current); τ_mem = 10 steps, no synaptic current memory,
    30-step refractory period; STDP with ``A+ = A- = 1`` and saturating
    traces (``jump = 255``), so a pre spike up to 11 steps before (or with) a
    post spike adds 1 and a pre spike up to 20 steps after it subtracts 1
    (τ_pre = 17, τ_post = 30 steps).  The longer depression window makes
    uncorrelated inputs lose weight; with several neurons, ``inhibition`` is
    the recurrent weight between them (lateral inhibition).
    """
    rng = np.random.default_rng(seed + 7919)
    net = Network(neurons, inputs)
    net.w_shift = w_shift
    net.set_neurons(tau_mem=tau_mem, tau_syn=1e-3, refractory=refractory, v_reset=0.0, v_rest=0.0)
    net.threshold = threshold
    net.w_in = rng.integers(w_init[0], w_init[1], (inputs, neurons))
    net.plastic_in = True
    net.w_rec = np.where(np.eye(neurons, dtype=bool), 0, inhibition)
    s = net.stdp
    s.a_plus, s.a_minus = 1, 1
    s.set_taus(tau_pre, tau_post)
    s.jump_pre = s.jump_post = 255
    s.w_min, s.w_max = 0, 63
    return net


def run_stdp(device: str = "model", seed: int = 0, out: str | None = "out",
             learn_steps: int = 24000, test_steps: int = 12000, snapshot: int = 400,
             threshold: int = 3500, w_init=(5, 20), task=None, network=None,
             progress: bool | None = None, quiet: bool = False) -> dict:
    """Run the pattern-learning demo on ``device``; return the figures.

    Steps: load the network; measure hit rate and false alarms with learning
    off on a test stream; learn with STDP on a fresh stream of ``learn_steps``
    steps, reading the weights back every ``snapshot`` steps; measure again
    on the same test stream.  With ``out`` set, PNGs are written there.

    Returns
    -------
    dict with ``before`` and ``after`` (hit rate, false alarms and distractor
    rate of the output neuron, see :meth:`PatternTask.score`),
    ``learn_steps``, ``learn_seconds``, ``pattern_shown`` (times the pattern
    appeared while learning), ``settled_step`` (the first weight snapshot by
    which 90 % of the total weight change was done), ``weights_before`` /
    ``weights_after``, ``history`` (snapshot steps, input weights of neuron 0),
    ``files`` and the ``task``.
    """
    from .formats import check_int
    check_int("learn_steps", learn_steps, 1, 2**31 - 1)
    check_int("test_steps", test_steps, 100, 2**31 - 1)
    check_int("snapshot", snapshot, 1, 2**31 - 1)
    if progress is None:
        progress = sys.stderr.isatty()
    task = make_pattern_task(seed, **(task or {}))
    net = stdp_network(task.inputs, seed=seed, threshold=threshold, w_init=w_init, **(network or {}))
    x_test, starts_test, dis_test = task.stream(test_steps, distractors=True)
    x_learn, starts_learn, _ = task.stream(learn_steps)
    res = {"device": device, "seed": seed, "task": task}
    with open_for(device, net) as dev:
        dev.load(net)
        dev.set_learning(False)
        w_before = dev.read_weights()[1]
        rec_before = dev.run(test_steps, x_test, progress=False).spikes
        res["before"] = {k: float(v[0]) for k, v in task.score(rec_before, starts_test, dis_test).items()}

        dev.reset()
        dev.set_learning(True)
        times, history = [0], [w_before[:, 0].copy()]
        bar = _progress(learn_steps, f"STDP learning on {device}", progress)
        t0 = time.perf_counter()
        for a in range(0, learn_steps, snapshot):
            b = min(learn_steps, a + snapshot)
            dev.run(b - a, x_learn[a:b], progress=False)
            history.append(dev.read_weights()[1][:, 0].copy())
            times.append(b)
            if bar:
                bar.update(b - a)
        learn_s = time.perf_counter() - t0
        if bar:
            bar.close()

        dev.set_learning(False)
        dev.reset()
        rec_after = dev.run(test_steps, x_test, progress=False).spikes
        w_after = dev.read_weights()[1]
        res["after"] = {k: float(v[0]) for k, v in task.score(rec_after, starts_test, dis_test).items()}
    times, history = np.array(times), np.array(history)
    # learning time: the first snapshot after which 90 % of the total weight change is done
    left = np.abs(history - history[-1]).sum(1)
    settled = int(times[np.flatnonzero(left <= 0.1 * max(left[0], 1))[0]])
    res.update(learn_steps=learn_steps, learn_seconds=learn_s, pattern_shown=len(starts_learn),
               settled_step=settled,
               weights_before=w_before, weights_after=w_after,
               history=(times, history), files=[])
    if out:
        res["files"] = _stdp_plots(out, task, x_test, starts_test, dis_test, rec_before, rec_after,
                                   w_before, w_after, res["history"])
    if not quiet:
        _stdp_summary(res)
    return res


def _stdp_plots(out, task, x, starts, dis, before, after, w_before, w_after, history):
    from . import plot
    files = []
    # a window holding a few patterns, the same one before and after learning
    span = 1000
    first = int(min(starts[0], dis[0] if len(dis) else starts[0])) - 40 if len(starts) else 0
    a = max(0, min(first, x.shape[0] - span))
    b = a + span
    spans = {"pattern": [(s - a, s - a + task.width) for s in starts if a <= s < b],
             "distractor": [(s - a, s - a + task.width) for s in dis if a <= s < b]}
    hl = np.zeros(task.inputs, bool)
    hl[task.afferents] = True
    for name, rec in (("before", before), ("after", after)):
        fig = plot.raster(rec[a:b], x[a:b], t0=a, spans=spans, highlight=hl,
                          title=f"{name} learning: output spikes (top) and input spikes "
                                f"(pattern afferents in blue)")
        files.append(plot.save(fig, os.path.join(out, f"stdp_raster_{name}.png")))
    # rows: pattern afferents by their offset in the pattern, then the others
    order = np.concatenate([task.afferents[np.argsort(task.offsets, kind="stable")],
                            np.setdiff1d(np.arange(task.inputs), task.afferents)])
    k = len(task.afferents)
    for name, w in (("before", w_before), ("after", w_after)):
        fig = plot.weights(w, row_order=order, vmin=0, vmax=63, separators=[k], figsize=(4, 6),
                           title=f"input weights {name} learning",
                           ylabel=f"afferent (first {k}: pattern, by spike time)",
                           xlabel="output neuron")
        files.append(plot.save(fig, os.path.join(out, f"stdp_weights_{name}.png")))
    times, hist = history
    idx = np.arange(task.inputs)
    third = max(1, task.width // 3)
    grp = {f"pattern afferents, first {third} steps":
           np.isin(idx, task.afferents[task.offsets < third]),
           "pattern afferents, later": np.isin(idx, task.afferents[task.offsets >= third]),
           "other afferents": ~np.isin(idx, task.afferents)}
    fig = plot.weight_evolution(times, hist, groups=grp, title="input weights during STDP learning",
                                colors=["tab:blue", "tab:cyan", "tab:gray"])
    files.append(plot.save(fig, os.path.join(out, "stdp_weight_evolution.png")))
    return files


def _stdp_summary(r):
    b, a = r["before"], r["after"]
    print(f"STDP pattern demo on {r['device']} (seed {r['seed']}): "
          f"{r['task'].inputs} afferents, pattern of {len(r['task'].afferents)} afferents "
          f"over {r['task'].width} steps in Poisson noise")
    for name, d in (("before learning", b), ("after learning: ", a)):
        print(f"  {name} hit rate {d['hit_rate']:.2f}, false alarms "
              f"{d['false_alarms_per_1000']:.2f} per 1000 steps ({d['false_alarm_windows']:.1%} of "
              f"pattern-free windows), distractor pattern {d['distractor_rate']:.2f}")
    print(f"  learning: {r['learn_steps']} steps ({r['pattern_shown']} pattern presentations), "
          f"90% of the weight change done by step {r['settled_step']}, {r['learn_seconds']:.1f} s wall time")
    for f in r["files"]:
        print(f"  wrote {f}")


# =====================================================================================
# Digits: sklearn 8x8 digits, weights trained off-chip
# =====================================================================================

#: Steps per presentation of a digit: a pixel value p (0..16) gives p spikes in 16 steps.
DIGIT_STEPS = 16


def load_digits_split(seed: int = 0, test: int = 450):
    """The 1797 digits as integer pixels 0..16, split into train and test sets."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NeuroCoreXError("the digits demo needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    x = d.data.astype(np.int64)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    te, tr = perm[:test], perm[test:]
    return x[tr], y[tr], x[te], y[te]


def train_digits(x, y, iters: int = 600, lr: float = 0.5, l2: float = 1e-3):
    """Multinomial logistic regression without bias, by full-batch gradient descent.

    Inputs are scaled to [0, 1] (pixel / 16); returns float weights (64, 10).
    """
    xf = np.asarray(x, float) / 16.0
    yy = np.eye(10)[np.asarray(y)]
    w = np.zeros((xf.shape[1], 10))
    for _ in range(iters):
        z = xf @ w
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        w -= lr * (xf.T @ (p - yy) / len(xf) + l2 * w)
    return w


def quantise_weights(w, weight_bits: int = 7):
    """Scale so the largest magnitude is the largest positive weight, then round."""
    hi = (1 << (weight_bits - 1)) - 1
    scale = hi / max(np.abs(w).max(), 1e-12)
    return np.clip(np.rint(w * scale), -hi - 1, hi).astype(np.int64)


def digits_network(w_q, threshold: int = 1000) -> Network:
    """64 inputs → 10 non-leaky integrate-and-fire neurons with weights ``w_q``.

    α_V = 1 (no leak), no synaptic current memory, no refractory period,
    reset to 0, ``w_shift = 0``: over one presentation a neuron integrates
    exactly the quantised logit and fires once per ``threshold`` of it.
    """
    net = Network(10, 64)
    net.w_shift = 0
    net.w_in = w_q
    net.alpha_v = 32768
    net.alpha_i = 0
    net.t_ref = 0
    net.v_reset = 0
    net.v_rest = 0
    net.threshold = threshold
    return net


def encode_digit(img, repeats: int = 1):
    """Rate code: pixel value p (0..16) fires p times in 16 steps, evenly spread."""
    p = np.asarray(img, np.int64)[None, :]
    t = np.arange(DIGIT_STEPS)[:, None]
    s = ((t + 1) * p) // DIGIT_STEPS > (t * p) // DIGIT_STEPS
    return np.tile(s, (repeats, 1))


def _decide(spikes):
    """Most spikes wins; ties go to the earliest first spike, then the lowest index."""
    cnt = spikes.sum(0)
    first = np.where(spikes.any(0), spikes.argmax(0), 1 << 30)
    return int(np.lexsort((np.arange(spikes.shape[1]), first, -cnt))[0])


def classify(dev, images, repeats: int = 1, progress: bool = False, desc: str = "digits"):
    """Classify ``images`` on an open device that holds a digits network."""
    preds = np.empty(len(images), np.int64)
    steps = DIGIT_STEPS * repeats
    bar = _progress(len(images) * steps, desc, progress)
    for n, img in enumerate(images):
        dev.reset()
        preds[n] = _decide(dev.run(steps, encode_digit(img, repeats), progress=False).spikes)
        if bar:
            bar.update(steps)
    if bar:
        bar.close()
    return preds


def run_digits(device: str = "model", seed: int = 0, subset: int | None = None,
               threshold: int | None = None, out: str | None = None,
               progress: bool | None = None, quiet: bool = False) -> dict:
    """Train off-chip, run the test set on the model, and optionally on ``device``.

    The threshold is chosen on the training set (on the model) from a few
    candidates.  The whole test set runs on the golden model; when ``device``
    is not ``"model"`` the first ``subset`` test digits (default 20) also run
    on ``device`` and its predictions are compared with the model's.

    Returns
    -------
    dict: ``accuracy`` (model, full test set), ``float_accuracy`` and
    ``quantised_accuracy`` (numpy, no spikes), ``threshold``, ``predictions``,
    ``labels``, and with another device ``device_predictions``,
    ``device_accuracy``, ``agree`` (count) and ``compared``.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    xtr, ytr, xte, yte = load_digits_split(seed)
    t0 = time.perf_counter()
    w = train_digits(xtr, ytr)
    w_q = quantise_weights(w)
    res = {"device": device, "seed": seed, "train": len(ytr), "test": len(yte),
           "float_accuracy": float(((xte / 16.0) @ w).argmax(1).__eq__(yte).mean()),
           "quantised_accuracy": float((xte @ w_q).argmax(1).__eq__(yte).mean()),
           "train_seconds": time.perf_counter() - t0}
    if threshold is None:      # pick on (part of) the training set, on the model
        best = None
        for thr in (500, 1000, 2000):
            net = digits_network(w_q, thr)
            with open_for("model", net) as dev:
                dev.load(net)
                acc = float((classify(dev, xtr[:300]) == ytr[:300]).mean())
            if best is None or acc > best[1]:
                best = (thr, acc)
        threshold = best[0]
    net = digits_network(w_q, threshold)
    res["threshold"] = threshold
    res["network"] = net
    t0 = time.perf_counter()
    with open_for("model", net) as dev:
        dev.load(net)
        pred = classify(dev, xte, progress=progress, desc="digits on model")
    res["model_seconds"] = time.perf_counter() - t0
    res.update(predictions=pred, labels=yte, accuracy=float((pred == yte).mean()),
               steps=len(yte) * DIGIT_STEPS)
    if device != "model":
        k = min(len(yte), 20 if subset is None else subset)
        t0 = time.perf_counter()
        with open_for(device, net) as dev:
            dev.load(net)
            dpred = classify(dev, xte[:k], progress=progress, desc=f"digits on {device}")
        res.update(device_predictions=dpred, compared=k, agree=int((dpred == pred[:k]).sum()),
                   device_accuracy=float((dpred == yte[:k]).mean()),
                   device_seconds=time.perf_counter() - t0)
    elif subset is not None:
        res["compared"] = 0
    if out:
        res["files"] = _digits_plots(out, net, xte, yte, pred)
    if not quiet:
        _digits_summary(res)
    return res


def _digits_plots(out, net, xte, yte, pred):
    from . import plot
    fig = plot.weights(net.w_in, title="digits: quantised input weights (64 pixels x 10 classes)",
                       xlabel="class (output neuron)", ylabel="pixel")
    files = [plot.save(fig, os.path.join(out, "digits_weights.png"))]
    # the same weights as one 8x8 map per output neuron
    fig = plot._figure((11, 2.0))
    axes = fig.subplots(1, 10)
    for c, ax in enumerate(axes):
        im = ax.imshow(net.w_in[:, c].reshape(8, 8), cmap="RdBu_r", vmin=-64, vmax=64)
        ax.set_title(f"neuron {c}", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="weight")
    fig.suptitle("digits: input weights of each output neuron as an 8x8 image")
    files.append(plot.save(fig, os.path.join(out, "digits_weight_maps.png")))
    with open_for("model", net) as dev:
        dev.load(net)
        rows, ins = [], []
        for img in xte[:8]:
            dev.reset()
            x = encode_digit(img)
            rows.append(dev.run(len(x), x, progress=False).spikes)
            ins.append(x)
    spikes, inputs = np.concatenate(rows), np.concatenate(ins)
    spans = [(i * DIGIT_STEPS, (i + 1) * DIGIT_STEPS) for i in range(0, 8, 2)]
    fig = plot.raster(spikes, inputs, spans=spans,
                      title="digits: 8 test digits, 16 steps each; predicted "
                            + " ".join(str(p) for p in pred[:8]) + ", true "
                            + " ".join(str(t) for t in yte[:8]))
    files.append(plot.save(fig, os.path.join(out, "digits_raster.png")))
    return files


def _digits_summary(r):
    print(f"digits demo (seed {r['seed']}): {r['train']} training / {r['test']} test images, "
          f"64 inputs -> 10 neurons, threshold {r['threshold']}")
    print(f"  off-chip: float {r['float_accuracy']:.3f}, quantised 7-bit {r['quantised_accuracy']:.3f}")
    print(f"  spiking on model: test accuracy {r['accuracy']:.3f} "
          f"({r['steps']} steps, {r['model_seconds']:.1f} s)")
    if r.get("compared"):
        print(f"  on {r['device']}: {r['agree']}/{r['compared']} predictions identical to the model's, "
              f"accuracy {r['device_accuracy']:.3f} on that subset ({r['device_seconds']:.1f} s)")
    for f in r.get("files", []):
        print(f"  wrote {f}")


# =====================================================================================
# command line
# =====================================================================================

def _demo_args(p):
    from .cli import device_args
    p.add_argument("which", nargs="?", default="stdp", choices=("stdp", "digits"),
                   help="stdp: pattern learning (default); digits: 8x8 digit classification")
    device_args(p)
    p.add_argument("--out", "-o", default="out", help="folder for the PNGs (default: %(default)s)")
    p.add_argument("--seed", "-s", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--subset", type=int, default=None,
                   help="digits: test images to run on a device other than the model "
                        "and compare with the model (default 20)")
    p.add_argument("--no-plots", action="store_true", help="do not write PNGs")


def _demo(args):
    out = None if args.no_plots else args.out
    if args.subset is not None and args.subset < 1:
        raise NeuroCoreXError(f"--subset must be >= 1, got {args.subset}")
    if args.which == "digits":
        r = run_digits(args.device, seed=args.seed, subset=args.subset, out=out)
        return 0 if r.get("agree", 0) == r.get("compared", 0) else 1
    run_stdp(args.device, seed=args.seed, out=out)
    return 0


def _register():
    from .cli import COMMANDS
    COMMANDS["demo"] = ("learning demos: STDP pattern detection (default) or digits",
                        _demo_args, _demo)


_register()
