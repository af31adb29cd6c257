"""neurocorex.plot: figures without a display, checked for what they draw."""

from __future__ import annotations

import numpy as np
import pytest

from neurocorex import plot
from neurocorex.errors import ShapeError


def _offsets(fig, ax_index):
    ax = fig.axes[ax_index]
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])


def test_raster_draws_every_spike_at_its_time_and_index(tmp_path):
    rng = np.random.default_rng(0)
    out = rng.random((50, 3)) < 0.2
    inp = rng.random((50, 20)) < 0.1
    fig = plot.raster(out, inp, t0=100, dt=2, spans=[(5, 10)], title="t")
    pts = _offsets(fig, 0)
    t, n = np.nonzero(out)
    assert sorted(map(tuple, pts)) == sorted(zip(100 + 2.0 * t, n.astype(float)))
    assert len(_offsets(fig, 1)) == inp.sum()
    path = plot.save(fig, tmp_path / "sub" / "r.png")
    data = open(path, "rb").read()
    assert data[:4] == b"\x89PNG" and len(data) > 3000


def test_raster_highlight_colours_rows():
    inp = np.zeros((10, 4), bool)
    inp[2, 1] = inp[3, 2] = True
    fig = plot.raster(np.zeros((10, 1), bool), inp, highlight=[False, True, False, False])
    coll = [c for c in fig.axes[1].collections if len(c.get_offsets())][0]
    colours = coll.get_facecolors()
    assert len(colours) == 2 and not np.allclose(colours[0], colours[1])


def test_weights_heatmap_holds_the_matrix_in_row_order():
    w = np.arange(12).reshape(4, 3) - 5
    fig = plot.weights(w, row_order=[3, 2, 1, 0], separators=[2])
    img = fig.axes[0].images[0]
    assert (np.asarray(img.get_array()) == w[::-1]).all()
    lo, hi = img.get_clim()
    assert lo == -hi == -6            # symmetric range for signed weights


def test_weight_evolution_plots_group_means():
    times = np.array([0, 10, 20])
    hist = np.array([[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]], float)
    fig = plot.weight_evolution(times, hist, groups={"a": [1, 1, 0, 0], "b": [0, 0, 1, 1]})
    means = [l for l in fig.axes[0].lines if l.get_linewidth() > 2]
    assert len(means) == 2
    assert np.allclose(means[0].get_ydata(), [1.5, 2.5, 3.5])
    assert np.allclose(means[1].get_ydata(), [3.5, 4.5, 5.5])


def test_bad_shapes_raise_shape_error():
    with pytest.raises(ShapeError, match="spikes"):
        plot.raster(np.zeros(5))
    with pytest.raises(ShapeError, match="steps"):
        plot.raster(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ShapeError, match="highlight"):
        plot.raster(np.zeros((5, 2)), np.zeros((5, 3)), highlight=[True])
    with pytest.raises(ShapeError, match="weights"):
        plot.weights(np.zeros(3))
    with pytest.raises(ShapeError, match="history"):
        plot.weight_evolution([0, 1], np.zeros((3, 2)))


def test_figures_render_on_agg_without_pyplot():
    import sys
    fig = plot.raster(np.eye(4, dtype=bool))
    assert fig.canvas.__class__.__name__ == "FigureCanvasAgg"
    if "matplotlib.pyplot" in sys.modules:     # pyplot's figure manager never sees ours
        import matplotlib.pyplot as plt
        assert all(plt.figure(n) is not fig for n in plt.get_fignums())


def test_save_reports_unwritable_path():
    from neurocorex.errors import NeuroCoreXError
    with pytest.raises(NeuroCoreXError, match="cannot write plot"):
        plot.save(plot.weights(np.eye(2)), "/proc/no/such/dir/x.png")
