"""Plots for the optimisation lessons, labelled in the notebook's language."""

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from course.i18n import message


def label(key: str) -> str:
    """An axis or title label in the notebook's language: the catalogue's ``plot.<key>``."""
    return message(f"plot.{key}")


def plot_loss_curves(histories: Mapping[str, Sequence[float]], *, log_scale: bool = True, ax=None):
    """Loss against step for several runs, one line each; returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, values in histories.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(len(values)), values, label=name)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel(label("step"))
    ax.set_ylabel(label("loss"))
    ax.set_title(label("loss_title"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def plot_trajectories(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    trajectories: Mapping[str, Sequence[Sequence[float]]],
    *,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    minimum: tuple[float, float] | None = None,
    levels: int = 25,
    ax=None,
):
    """Paths of (x, y) points drawn over the level lines of ``f(X, Y)``; returns the Axes.

    Points outside the window (a diverging run) are clipped by the axes limits.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    xs = np.linspace(*xlim, 200)
    ys = np.linspace(*ylim, 200)
    grid_x, grid_y = np.meshgrid(xs, ys)
    ax.contour(grid_x, grid_y, f(grid_x, grid_y), levels=levels, cmap="Greys", linewidths=0.6)
    for name, points in trajectories.items():
        points = np.asarray(points, dtype=float)
        ax.plot(points[:, 0], points[:, 1], ".-", label=name, markersize=3)
    first = np.asarray(next(iter(trajectories.values())), dtype=float)[0]
    ax.plot(*first, "ko", label=label("start"))
    if minimum is not None:
        ax.plot(*minimum, "r*", markersize=12, label=label("minimum"))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(label("contour_title"))
    ax.legend(loc="upper right", fontsize=8)
    return ax
