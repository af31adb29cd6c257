"""Plots of spike rasters and weights for NeuroCoreX runs.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot``: no display, no global backend switch, safe in scripts, tests and
servers (rendering goes through the Agg canvas).  Save a figure with
:func:`save`, or let a notebook show it.

Example
-------
>>> from neurocorex import plot
>>> fig = plot.raster(rec.spikes, inputs=x, title="run on model")   # doctest: +SKIP
>>> plot.save(fig, "out/raster.png")                                  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from .errors import NeuroCoreXError, ShapeError

__all__ = ["raster", "weights", "weight_evolution", "save"]


def _figure(figsize):
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _spikes2d(name, value):
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be a 2-D (steps, units) array of spikes, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise ShapeError(f"{name} must hold 0/1 spikes, got dtype {arr.dtype}")
        arr = arr != 0
    return arr


_SPAN_COLOURS = ("tab:orange", "tab:purple", "tab:green", "tab:cyan")


def _spans(ax, spans, t0, dt, legend):
    groups = spans if isinstance(spans, dict) else {None: spans or ()}
    for (label, group), colour in zip(groups.items(), _SPAN_COLOURS * 4):
        for n, (start, stop) in enumerate(group):
            ax.axvspan(t0 + start * dt, t0 + stop * dt, color=colour, alpha=0.2, lw=0,
                       label=label if (legend and n == 0 and label) else None)


def raster(spikes, inputs=None, *, t0: float = 0.0, dt: float = 1.0, spans=None,
           title: str | None = None, unit: str = "step", figsize=(9, 5), highlight=None):
    """Spike raster of the outputs, optionally above a raster of the inputs.

    Parameters
    ----------
    spikes : array (steps, N)
        Output spikes (e.g. ``Recording.spikes``).
    inputs : array (steps, M), optional
        Input spikes of the same run; drawn in a panel below the outputs.
    t0, dt : float
        Time of row 0 and time per row, for the x axis.
    spans : list of (start, stop), or dict of label -> list, optional
        Row intervals to shade (e.g. where a pattern was shown); a dict
        shades each group in its own colour and adds a legend.
    title : str, optional
    unit : str
        Label of the time unit.
    highlight : array of bool (M,), optional
        Input rows to draw in a second colour (e.g. the pattern's afferents).

    Returns
    -------
    matplotlib.figure.Figure
    """
    out = _spikes2d("spikes", spikes)
    panels = [("outputs", out)]
    if inputs is not None:
        inp = _spikes2d("inputs", inputs)
        if inp.shape[0] != out.shape[0]:
            raise ShapeError(f"inputs have {inp.shape[0]} steps but spikes have {out.shape[0]}")
        panels.append(("inputs", inp))
    ratios = [max(1.0, min(3.0, a.shape[1] / 8)) for _, a in panels]
    fig = _figure(figsize)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": ratios})[:, 0]
    for ax, (label, arr) in zip(axes, panels):
        t, n = np.nonzero(arr)
        ms = 6 if arr.shape[1] <= 16 else 2.5
        colors = np.full(len(n), "k", dtype=object)
        if label == "inputs" and highlight is not None:
            hl = np.asarray(highlight, bool)
            if hl.shape != (arr.shape[1],):
                raise ShapeError(f"highlight must have shape ({arr.shape[1]},), got {hl.shape}")
            colors = np.where(hl[n], "tab:blue", "0.55")
        elif label == "outputs":
            colors = np.full(len(n), "tab:red", dtype=object)
        ax.scatter(t0 + t * dt, n, s=ms, marker="|" if arr.shape[1] <= 16 else ".",
                   c=list(colors), linewidths=1.2)
        _spans(ax, spans, t0, dt, legend=label == "outputs")
        if label == "outputs" and isinstance(spans, dict):
            ax.legend(loc="upper right", fontsize="small")
        ax.set_ylabel(f"{label}\n(index)")
        ax.set_ylim(-0.5, arr.shape[1] - 0.5)
        if arr.shape[1] <= 16:
            ax.set_yticks(range(arr.shape[1]))
        ax.set_xlim(t0 - 0.5 * dt, t0 + (arr.shape[0] - 0.5) * dt)
    axes[-1].set_xlabel(f"time ({unit})")
    if title:
        axes[0].set_title(title)
    return fig


def weights(w, *, title: str | None = None, vmin=None, vmax=None, xlabel="post (neuron)",
            ylabel="pre (axon or neuron)", figsize=(5, 6), cmap=None, row_order=None,
            separators=()):
    """Heat map of a weight matrix ``w[pre, post]``.

    Parameters
    ----------
    w : array (pre, post)
        Integer or float weights, e.g. ``Device.read_weights()[1]``.
    vmin, vmax : float, optional
        Colour range; defaults to the data range (symmetric when it has both signs).
    row_order : array of int, optional
        Rows to show, in this order (e.g. pattern afferents first).
    separators : sequence of int
        Draw a horizontal line above each of these (displayed) rows.

    Returns
    -------
    matplotlib.figure.Figure
    """
    arr = np.asarray(w)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise ShapeError(f"weights must be a 2-D numeric (pre, post) array, got shape {arr.shape}")
    if row_order is not None:
        arr = arr[np.asarray(row_order)]
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
    if vmin is None and vmax is None and lo < 0 < hi:
        m = max(-lo, hi)
        lo, hi = -m, m
    vmin = lo if vmin is None else vmin
    vmax = hi if vmax is None else vmax
    if cmap is None:
        cmap = "RdBu_r" if vmin < 0 < vmax else "viridis"
    fig = _figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(arr, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, label="weight")
    for r in separators:
        ax.axhline(r - 0.5, color="w", lw=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if arr.shape[1] <= 16:
        ax.set_xticks(range(arr.shape[1]))
    if title:
        ax.set_title(title)
    return fig


def weight_evolution(times, history, *, groups=None, title: str | None = None,
                     unit: str = "step", figsize=(8, 4.5), max_lines: int = 60, colors=None):
    """Weights over time.

    Parameters
    ----------
    times : array (K,)
        Time of each snapshot.
    history : array (K, S)
        Snapshot ``k`` of ``S`` weights (e.g. one neuron's input column read back
        after each chunk of a run).
    groups : dict of str -> array of bool (S,), optional
        Named groups of weights.  Each group is drawn as thin lines (up to
        ``max_lines`` weights) and its mean as a thick line.  Without groups
        every weight is one thin line.
    colors : list of matplotlib colours, optional
        One per group.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = np.asarray(times, float)
    h = np.asarray(history, float)
    if h.ndim != 2 or h.shape[0] != t.shape[0]:
        raise ShapeError(f"history must have shape ({t.shape[0]}, S) to match times, got {h.shape}")
    if groups is None:
        groups = {"weights": np.ones(h.shape[1], bool)}
    fig = _figure(figsize)
    ax = fig.add_subplot()
    colors = list(colors or ["tab:blue", "tab:gray", "tab:red", "tab:green", "tab:purple", "tab:orange"])
    for (name, mask), c in zip(groups.items(), colors * (len(groups) // len(colors) + 1)):
        m = np.asarray(mask, bool)
        if m.shape != (h.shape[1],):
            raise ShapeError(f"group {name!r} must be a bool mask of shape ({h.shape[1]},)")
        cols = np.flatnonzero(m)
        if not len(cols):
            continue
        show = cols[np.linspace(0, len(cols) - 1, min(max_lines, len(cols))).astype(int)]
        ax.plot(t, h[:, show], color=c, lw=0.5, alpha=0.35)
        ax.plot(t, h[:, cols].mean(1), color=c, lw=2.5, label=f"{name} (mean of {len(cols)})")
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("weight")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def save(fig, path) -> str:
    """Write ``fig`` to ``path`` (format from the suffix), creating folders; returns the path."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise NeuroCoreXError(f"cannot write plot {path!r}: {e.strerror or e}") from None
    return path
