"""Cost to reach a target accuracy and the classes of the acquired labels.

Two analyses of finished (or running) workdirs from Riahi, Raymond &
Giard-Leroux, *Active Learning of Deep Neural Networks* (IFT780 report,
Université de Sherbrooke, 2021; ``/work/shared/papers/sherbrooke-ift780-report.txt``):

**Cost model** (§3.5.2.1 "Cost Analyses", eqs. 3.1-3.2, pp. 12-13; Table 4.3,
p. 24). With C_L the cost of labeling one item, C_T the cost of training the
model for one round (E epochs), K the number of active-learning rounds trained
until the stopping criterion (a target accuracy) is met, n_start labels per
class at the start and a fixed labeling rate η,

    cost = C_L · n_start · nb_classes + K · C_T + Σ_{i=1}^{K-1} C_L · η     (3.1)
         = C_L · (n_start · nb_classes + K · λ + (K - 1) · η)   with C_T = λ · C_L   (3.2)

(no labels are requested after the K-th round). The first and last terms are
the labels the K-th model trains on, so for any labeling schedule (variable k
too) :func:`total_cost` is ``C_L · (labels + λ · K)``. The report takes
C_L = 1 minute, λ ∈ {15, 30, 60} (:data:`REPORT_LAMBDAS`) and accuracy goals
0.35 (SqueezeNet 1.1, CIFAR-10) and 0.80 (ResNet18, EMNIST) on the 2nd
validation split (Table 3.6); its K are 1 and 11 (SqueezeNet, pretrained or
not: n_start 100 × 10 classes, η 100) and 3 and 7 (ResNet18: 50 × 62 classes,
η 1000), e.g. 1000 + 11 · 15 + 10 · 100 = 2165 (:func:`report_cost`).

Here the target is met at the first round whose mean over seeds of ``metric``
(default ``test_accuracy``; any column of ``results.csv``, e.g. a
2nd-validation accuracy) is >= the target; the mean is over the seeds that
have that round (with AL-level stopping, the seeds still running). The same
is computed per seed and averaged over the seeds that reach the target.

**Class labeling analysis** (§3.5.3.1; Figures 4.15-4.18): the classes the
expert was asked to label, per strategy, against random sampling; the report
shows the top-10 classes as pie charts, here grouped bars
(:func:`plot_class_distribution`). Counts come from ``labeled_indices.npz``
(``<label>/order``, ``<label>/round``) and the pool's labels (bundled and
``npz:`` datasets are loaded as ``jaxal report`` does; others need
``pool_labels``).

This lives beside the other ``jaxal report`` analyses (not in a study folder)
because both analyses apply to any jaxal workdir.

Command line::

    python -m jaxal.reporting.cost RUN_DIR [RUN_DIR ...] --out DIR \\
        --targets 0.35 [--lambdas 15,30,60] [--c_l 1] [--metric test_accuracy] [--top 10]

writes ``cost.md``, ``cost.csv``, ``class_counts.md``, ``class_counts.csv`` and
``class_distribution.png`` into ``DIR``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jaxal.reporting.analysis import Series, _load_pool_labels, make_series
from jaxal.reporting.runs import USAGE_EXIT, ReportError, Run, _run_names, load_run
from jaxal.reporting.tables import Table

REPORT_LAMBDAS = (15.0, 30.0, 60.0)  # Table 4.3
NOT_REACHED = "not reached"


def report_cost(n_start: int, num_classes: int, eta: int, k: int, lam: float, c_l: float = 1.0):
    """Eq. 3.2 of the report, literally: fixed labeling rate ``eta``, ``k`` rounds."""
    return c_l * (n_start * num_classes + k * lam + (k - 1) * eta)


def total_cost(labels: float, rounds_trained: float, lam: float, c_l: float = 1.0) -> float:
    """``C_L · labels + λ · C_L · rounds_trained`` (eq. 3.2 for any schedule)."""
    return c_l * (labels + lam * rounds_trained)


# --- reaching a target ------------------------------------------------------------


@dataclass(frozen=True)
class Reached:
    """Where a curve first reaches the target (``round`` is 0-based; None: never)."""

    round: int | None
    labels: float  # labels the model of that round trained on (mean over seeds)
    accuracy: float  # the metric there

    @property
    def rounds_trained(self) -> int | None:
        return None if self.round is None else self.round + 1


def _column(rows: Sequence[dict], metric: str) -> None:
    if rows and metric not in rows[0]:
        have = ", ".join(k for k in rows[0] if k.endswith("accuracy"))
        raise ReportError(f"results.csv has no column {metric!r} (accuracy columns: {have})")


def first_round_reaching(rows: Sequence[dict], target: float, metric: str = "test_accuracy"):
    """The first round whose mean over seeds of ``metric`` is >= ``target``.

    ``rows`` are one strategy's ``results.csv`` rows (``round``, ``num_labeled``
    and ``metric``); non-finite values are left out of the mean.
    """
    _column(rows, metric)
    for rd in sorted({r["round"] for r in rows}):
        sub = [r for r in rows if r["round"] == rd]
        acc = [float(r[metric]) for r in sub if math.isfinite(float(r[metric]))]
        if acc and float(np.mean(acc)) >= target:
            labels = float(np.mean([r["num_labeled"] for r in sub]))
            return Reached(rd, labels, float(np.mean(acc)))
    return Reached(None, float("nan"), float("nan"))


def cost_rows(
    all_series: Sequence[Series],
    targets: Sequence[float],
    lambdas: Sequence[float] = REPORT_LAMBDAS,
    c_l: float = 1.0,
    metric: str = "test_accuracy",
) -> list[dict]:
    """One row per (target, series): the round, labels and cost at which the
    mean curve reaches the target (``"not reached"`` otherwise), and the same
    per seed (mean over the seeds that reach it, ``seeds_reached``)."""
    out = []
    for t in targets:
        for s in all_series:
            got = first_round_reaching(s.rows, t, metric)
            row = {
                "target": float(t),
                "metric": metric,
                "strategy": s.label,
                "seeds": len({r["seed"] for r in s.rows}),
                "round": NOT_REACHED if got.round is None else got.round,
                "rounds_trained": NOT_REACHED if got.round is None else got.rounds_trained,
                "labels": NOT_REACHED if got.round is None else got.labels,
                "accuracy": NOT_REACHED if got.round is None else got.accuracy,
            }
            for lam in lambdas:
                row[f"cost_lambda_{lam:g}"] = (
                    NOT_REACHED
                    if got.round is None
                    else total_cost(got.labels, got.rounds_trained, lam, c_l)
                )
            per_seed = [
                first_round_reaching([r for r in s.rows if r["seed"] == sd], t, metric)
                for sd in sorted({r["seed"] for r in s.rows})
            ]
            hit = [p for p in per_seed if p.round is not None]
            row["seeds_reached"] = len(hit)
            for lam in lambdas:
                costs = [total_cost(p.labels, p.rounds_trained, lam, c_l) for p in hit]
                row[f"cost_lambda_{lam:g}_seed_mean"] = (
                    float(np.mean(costs)) if costs else NOT_REACHED
                )
                row[f"cost_lambda_{lam:g}_seed_std"] = float(np.std(costs)) if costs else ""
            out.append(row)
    return out


def _fmt(v, fmt: str) -> str:
    return v if isinstance(v, str) else f"{v:{fmt}}"


def cost_table(rows: Sequence[dict], lambdas: Sequence[float], c_l: float = 1.0) -> Table:
    """The cost rows as a table: strategies × λ, per target."""
    cols = ["target", "strategy", "rounds K", "labels"] + [f"λ = {lam:g}" for lam in lambdas]
    cells = []
    for r in rows:
        c = [f"{r['target']:g}", r["strategy"], _fmt(r["rounds_trained"], "d")]
        c.append(_fmt(r["labels"], ".0f" if _integral(r["labels"]) else ".1f"))
        for lam in lambdas:
            v = r[f"cost_lambda_{lam:g}"]
            cell = _fmt(v, ".0f" if _integral(v) else ".1f")
            if not isinstance(v, str):
                n, s = r["seeds_reached"], r["seeds"]
                cell += f" (seeds: {r[f'cost_lambda_{lam:g}_seed_mean']:.0f}, {n}/{s})"
            c.append(cell)
        cells.append(c)
    metric = rows[0]["metric"] if rows else "test_accuracy"
    note = (
        f"Cost = C_L · (labels + λ · K), C_L = {c_l:g} (Sherbrooke report eq. 3.2): K = rounds "
        f"trained until the mean over seeds of {metric} first reaches the target, labels = "
        "those the K-th model trained on. In brackets: the mean of the per-seed costs over "
        "the seeds that reach the target."
    )
    return Table("cost", "Cost to reach the target accuracy", cols, cells, list(rows), note)


def _integral(v) -> bool:
    return not isinstance(v, str) and float(v).is_integer()


# --- classes of the acquired labels ------------------------------------------------


def class_counts(
    run: Run,
    strategy: str,
    pool_labels: np.ndarray,
    include_initial: bool = False,
) -> np.ndarray:
    """``int64[S, C]``: per seed of ``labeled_indices.npz``, how many labels of
    each class ``strategy`` acquired (rounds >= 1; with ``include_initial`` also
    the initial pool, round 0)."""
    ind = run.indices
    if ind is None or f"{strategy}/order" not in ind:
        raise ReportError(f"{run.name}: no {strategy!r} in labeled_indices.npz")
    y = np.asarray(pool_labels).astype(np.int64).ravel()
    order, rnd = ind[f"{strategy}/order"], ind[f"{strategy}/round"]
    if order.size and order.max() >= y.size:
        raise ReportError(f"{run.name}: pool indices beyond the {y.size} pool labels given")
    c = int(y.max()) + 1 if y.size else 0
    first = 0 if include_initial else 1
    return np.stack(
        [
            np.bincount(y[o[(o >= 0) & (r >= first)]], minlength=c)
            for o, r in zip(order, rnd, strict=True)
        ]
    )


def class_count_rows(
    all_series: Sequence[Series],
    pool_labels: np.ndarray | None = None,
    include_initial: bool = False,
    notes: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """``{series label: int64[S, C]}`` for every series whose labels can be had
    (the others are named in ``notes``)."""
    notes = [] if notes is None else notes
    cache: dict = {}
    out = {}
    for s in all_series:
        y = pool_labels
        if y is None:
            y, why = _load_pool_labels(s.run, cache)
            if y is None:
                notes.append(why)
                continue
        try:
            out[s.label] = class_counts(s.run, s.strategy, y, include_initial)
        except ReportError as e:
            notes.append(str(e))
    width = max((v.shape[1] for v in out.values()), default=0)
    return {k: np.pad(v, ((0, 0), (0, width - v.shape[1]))) for k, v in out.items()}


def class_table(counts: dict[str, np.ndarray], class_names: Sequence[str] | None = None) -> Table:
    """Mean count (over seeds) and fraction of each class's acquired labels."""
    raw, cells = [], []
    for label, m in counts.items():
        mean = m.mean(axis=0)
        total = mean.sum()
        for c in np.argsort(-mean, kind="stable"):
            name = class_names[c] if class_names is not None else str(c)
            frac = float(mean[c] / total) if total else 0.0
            raw.append(
                {
                    "strategy": label,
                    "class": name,
                    "mean_count": float(mean[c]),
                    "std_count": float(m[:, c].std()),
                    "fraction": frac,
                }
            )
            cells.append([label, name, f"{mean[c]:.1f}", f"{100 * frac:.1f}"])
    note = "Labels acquired per class, mean over seeds, classes by decreasing count."
    return Table(
        "class_counts",
        "Classes of the acquired labels",
        ["strategy", "class", "mean count", "% of acquired"],
        cells,
        raw,
        note,
    )


def plot_class_distribution(
    path: str,
    counts: dict[str, np.ndarray],
    reference: str | None = "random",
    top: int = 10,
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """Grouped bars: for each strategy other than ``reference``, its ``top``
    classes by mean acquired count, with the reference's counts of the same
    classes beside them (the report's Figures 4.15-4.18). Returns the strategies
    drawn."""
    from jaxal.reporting.figures import _plt, colors

    plt = _plt()
    ref = counts.get(reference) if reference is not None else None
    shown = [k for k in counts if k != reference] or list(counts)
    if not shown:
        raise ReportError("no strategy has class counts to plot")
    fig, axes = plt.subplots(
        len(shown), 1, figsize=(max(6.0, 0.7 * top + 2), 2.8 * len(shown)), squeeze=False
    )
    col = colors(2)
    for ax, label in zip(axes[:, 0], shown, strict=True):
        mean = counts[label].mean(axis=0)
        pick = np.argsort(-mean, kind="stable")[:top]
        names = [class_names[c] if class_names is not None else str(c) for c in pick]
        pos = np.arange(len(pick))
        width = 0.4 if ref is not None and label != reference else 0.8
        ax.bar(
            pos - (width / 2 if width < 0.8 else 0), mean[pick], width, label=label, color=col[0]
        )
        if ref is not None and label != reference:
            ax.bar(pos + width / 2, ref.mean(axis=0)[pick], width, label=reference, color=col[1])
        ax.set_xticks(pos, names)
        ax.set_ylabel("labels acquired\n(mean over seeds)")
        ax.set_title(f"{label}: top {len(pick)} classes")
        ax.legend(frameon=False)
    axes[-1, 0].set_xlabel("class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return shown


# --- command line -------------------------------------------------------------------


def analyse(
    run_dirs: Sequence[str],
    out_dir: str,
    targets: Sequence[float],
    lambdas: Sequence[float] = REPORT_LAMBDAS,
    c_l: float = 1.0,
    metric: str = "test_accuracy",
    top: int = 10,
    pool_labels: np.ndarray | None = None,
    include_initial: bool = False,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Both analyses of the runs into ``out_dir``; returns the paths and notes."""
    runs = [load_run(p, n) for p, n in zip(run_dirs, _run_names(run_dirs), strict=True)]
    all_series = make_series(runs)
    if not all_series:
        raise ReportError("no results.csv rows in the given workdirs")
    os.makedirs(out_dir, exist_ok=True)
    notes: list[str] = []
    written = []
    table = cost_table(cost_rows(all_series, targets, lambdas, c_l, metric), lambdas, c_l)
    table.write(out_dir)
    written += [os.path.join(out_dir, "cost.md"), os.path.join(out_dir, "cost.csv")]
    counts = class_count_rows(all_series, pool_labels, include_initial, notes)
    if counts:
        class_table(counts, class_names).write(out_dir)
        png = os.path.join(out_dir, "class_distribution.png")
        ref = "random" if "random" in counts else None
        plot_class_distribution(png, counts, ref, top, class_names)
        written += [os.path.join(out_dir, f"class_counts.{e}") for e in ("md", "csv")] + [png]
    return {"written": written, "notes": notes, "cost": table}


def _floats(text: str) -> list[float]:
    try:
        out = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one number")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxal.reporting.cost",
        description="Cost to reach a target accuracy (C_L · (labels + λ · rounds)) and the "
        "classes of the acquired labels, for jaxal workdirs.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--targets", type=_floats, required=True, help="e.g. 0.35 or 0.8,0.9")
    parser.add_argument("--lambdas", type=_floats, default=list(REPORT_LAMBDAS))
    parser.add_argument("--c_l", type=float, default=1.0, help="cost of one label (C_L)")
    parser.add_argument("--metric", default="test_accuracy", help="results.csv column")
    parser.add_argument("--top", type=int, default=10, help="classes per strategy in the plot")
    parser.add_argument("--pool_labels", default=None, help=".npy of the pool's labels")
    parser.add_argument("--include_initial", action="store_true", help="count round 0 too")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    y = np.load(args.pool_labels) if args.pool_labels else None
    try:
        got = analyse(
            args.run_dirs,
            args.out,
            args.targets,
            args.lambdas,
            args.c_l,
            args.metric,
            args.top,
            y,
            args.include_initial,
        )
    except ReportError as e:
        print(f"jaxal cost: error: {e}", file=sys.stderr)
        return USAGE_EXIT
    for n in got["notes"]:
        print(f"jaxal cost: note: {n}")
    print(got["cost"].markdown())
    print("jaxal cost: wrote " + ", ".join(got["written"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
