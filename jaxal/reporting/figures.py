"""The report's figures (matplotlib, Agg)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

from jaxal.reporting.analysis import (
    Series,
)
from jaxal.reporting.runs import (
    PHASES,
    _is_setting,
    differing_keys,
    flatten,
)

# --- figures ----------------------------------------------------------------------


def _plt():
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colors(n: int) -> list:
    """``n`` distinct colours, as in the run's own plot (``report.strategy_colours``)."""
    from jaxal.report import strategy_colours

    return strategy_colours(n)


def _facets(all_series: Sequence[Series]) -> tuple[list[tuple[str, list[Series]]], list[str]]:
    """Series grouped by the settings in which their runs differ (one group if none)."""
    runs = list(dict.fromkeys(id(s.run) for s in all_series))
    by_id = {id(s.run): s.run for s in all_series}
    keys = [k for k in differing_keys([by_id[i].config for i in runs]) if _is_setting(k)]
    if not keys:
        return [("", list(all_series))], []
    groups: dict[tuple, list[Series]] = {}
    for s in all_series:
        flat = flatten(s.run.config)
        groups.setdefault(tuple(flat.get(k, "—") for k in keys), []).append(s)
    out = []
    for values, members in groups.items():
        parts = [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
        title = ", ".join(parts[:3]) + (", …" if len(parts) > 3 else "")
        out.append((title, members))
    return out, keys


def _save(fig, path: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _plt().close(fig)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return data


def plot_learning_curves(path: str, all_series: Sequence[Series]) -> tuple[bytes, list[str]]:
    """Mean ± std accuracy (%) over seeds vs labels; faceted when settings differ."""
    from matplotlib.ticker import PercentFormatter

    plt = _plt()
    groups, keys = _facets(all_series)
    if keys:  # the same strategy gets the same colour in every facet
        names = list(dict.fromkeys(s.strategy for s in all_series))
        color_of = dict(zip(names, colors(len(names)), strict=True))
        pick = lambda s: color_of[s.strategy]
    else:
        color_of = dict(zip([s.label for s in all_series], colors(len(all_series)), strict=True))
        pick = lambda s: color_of[s.label]
    ncol = min(3, len(groups))
    nrow = math.ceil(len(groups) / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(5.2 * ncol, 3.8 * nrow), dpi=100, squeeze=False, sharey=True
    )
    handles = {}
    for ax, (title, members) in zip(axes.flat, groups, strict=False):
        for s in members:
            x, mean, std = s.mean_curve()
            c = pick(s)
            (line,) = ax.plot(x, 100 * mean, marker="o", ms=3, color=c, label=s.label)
            ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), color=c, alpha=0.18)
            handles[s.strategy if keys else s.label] = line
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("number of labeled points")
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
    fig.tight_layout()
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        title="strategy" if keys else None,
    )
    return _save(fig, path), keys


def plot_time_split(path: str, rows: Sequence[dict]) -> bytes:
    """Stacked bars: mean seconds per round of each phase, per series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(rows) + 2), 3.8), dpi=100)
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for p, c in zip(PHASES, colors(len(PHASES)), strict=True):
        v = np.array([r[p] for r in rows])
        ax.bar(x, v, bottom=bottom, color=c, label=p.removesuffix("_seconds"))
        bottom += v
    ax.set_xticks(x, [r["label"] for r in rows], rotation=30 if len(rows) > 3 else 0, ha="right")
    ax.set_ylabel("seconds per round (mean over rounds ≥ 1)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def _heatmap(path: str, mat: np.ndarray, rows: list[str], cols: list[str], xlabel: str, cbar):
    """``mat`` as an annotated heatmap; ``cbar="%"``: fractions shown as percentages."""
    plt = _plt()
    pct = cbar == "%"
    shown = 100 * mat if pct else mat
    # colour scale: 0 .. the largest percentage; a Jaccard index is always 0 .. 1
    hi = (float(np.nanmax(shown)) if np.isfinite(shown).any() else 0.0) if pct else 1.0
    hi = hi or 1.0
    fig, ax = plt.subplots(
        figsize=(max(4.5, 0.55 * len(cols) + 3), max(2.5, 0.4 * len(rows) + 1.5)), dpi=100
    )
    im = ax.imshow(shown, cmap="viridis", aspect="auto", vmin=0, vmax=hi)
    tilt = sum(len(c) + 2 for c in cols) > 40
    ax.set_xticks(
        range(len(cols)), cols, rotation=35 if tilt else 0, ha="right" if tilt else "center"
    )
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    if mat.size <= 400:
        for (i, j), v in np.ndenumerate(shown):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.0f}" if pct else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > 0.6 * hi else "white",
                )
    fig.colorbar(im, ax=ax, label="% of acquired labels" if pct else "Jaccard index")
    fig.tight_layout()
    return _save(fig, path)
