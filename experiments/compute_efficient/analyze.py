"""Summarise compute-efficient AL runs (experiments/compute_efficient/config.py).

    python experiments/compute_efficient/analyze.py RUN_DIR [RUN_DIR ...] [--out DIR]

Reads each workdir's ``results.csv`` and writes to ``DIR`` (default: the first
run's ``analysis/``):

* ``summary.md`` / ``summary.csv``: per run and strategy --
  final test accuracy and normalised area under the learning curve (each seed's
  value is already the mean over the ``train.retrains`` replicas), mean ± std
  over seeds; the paired (same seed) differences from the acquisition function
  on the whole pool ("full") and from random; the spread between replicas (mean
  over rounds of the std over the R replicas); pool points scored per
  acquisition round (the ``scored`` column, mean over acquisition rounds) and in
  all; seconds of scoring per round (the median over acquisition rounds after the
  first two, which include compilation; ``score_seconds`` is per lane); and the
  compute saved against "full": ``1 - scored / full's scored`` and
  ``1 - seconds / full's seconds``;
* ``curves.png``: mean test accuracy over seeds against labels, one panel per run.

The "full" baseline of a run is its strategy named like the acquisition function
(``entropy(source=mc)``, ``variation_ratios``); "random" is ``random``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

FULL = ("entropy(source=mc)", "variation_ratios", "entropy", "least_confidence(source=mc)")


def read_rows(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "results.csv")) as f:
        return list(csv.DictReader(f))


def _num(v, default=float("nan")) -> float:
    return float(v) if v not in ("", None) else default


def _by_seed(rows, strategy):
    """``{seed: rows of the strategy sorted by round}``."""
    out: dict[int, list] = {}
    for r in rows:
        if r["strategy"] == strategy:
            out.setdefault(int(r["seed"]), []).append(r)
    return {s: sorted(v, key=lambda r: int(r["round"])) for s, v in sorted(out.items())}


def _aulc(rs) -> float:
    x = np.array([_num(r["num_labeled"]) for r in rs])
    y = np.array([_num(r["test_accuracy"]) for r in rs])
    if len(x) < 2:
        return float(y[0])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def strategy_stats(rows, strategy) -> dict:
    """Per-seed metrics of one strategy (arrays over seeds) and its compute."""
    seeds = _by_seed(rows, strategy)
    final = np.array([_num(rs[-1]["test_accuracy"]) for rs in seeds.values()])
    aulc = np.array([_aulc(rs) for rs in seeds.values()])
    rep_cols = sorted(k for k in rows[0] if k.startswith("test_accuracy_r"))
    spread = np.nan
    if rep_cols:
        stds = [np.std([_num(r[c]) for c in rep_cols]) for rs in seeds.values() for r in rs]
        spread = float(np.mean(stds))
    acq = [r for rs in seeds.values() for r in rs if int(r["queried"]) > 0]
    scored = np.array([_num(r.get("scored"), 0.0) for r in acq])
    late = [r for r in acq if int(r["round"]) >= 2]
    seconds = float(np.median([_num(r["score_seconds"]) for r in late])) if late else np.nan
    per_seed_total = scored.sum() / max(len(seeds), 1)
    first = [_num(r.get("scored"), 0.0) for r in acq if int(r["round"]) == 0]
    later = [_num(r.get("scored"), 0.0) for r in acq if int(r["round"]) > 0]
    return {
        "seeds": list(seeds),
        "final": final,
        "aulc": aulc,
        "replica_std": spread,
        "scored_round0": float(np.mean(first)) if first else np.nan,
        "scored_later": float(np.mean(later)) if later else np.nan,
        "scored_total": float(per_seed_total),
        "score_seconds": seconds,
        "score_seconds_total": float(
            sum(_num(r["score_seconds"]) for r in acq) / max(len(seeds), 1)
        ),
    }


def _pm(a) -> str:
    a = np.asarray(a, float)
    return f"{100 * a.mean():.2f} ± {100 * a.std():.2f}"


def _diff(a, b) -> str:
    if b is None:
        return ""
    d = 100 * (np.asarray(a) - np.asarray(b))
    return f"{d.mean():+.2f} ± {d.std():.2f}"


def summarise(run_dir: str) -> list[dict]:
    rows = read_rows(run_dir)
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    stats = {s: strategy_stats(rows, s) for s in strategies}
    full = next((s for s in FULL if s in stats), None)
    out = []
    for s in strategies:
        st = stats[s]
        f = stats.get(full) if full else None
        rnd = stats.get("random")
        saved_pts = saved_sec = ""
        if f is not None and s != "random" and f["scored_total"] > 0:
            saved_pts = f"{100 * (1 - st['scored_total'] / f['scored_total']):.0f} %"
            saved_sec = f"{100 * (1 - st['score_seconds'] / f['score_seconds']):.0f} %"
        out.append(
            {
                "run": os.path.basename(os.path.normpath(run_dir)),
                "strategy": s,
                "final accuracy %": _pm(st["final"]),
                "vs full": _diff(st["final"], f["final"]) if f and s != full else "",
                "vs random": _diff(st["final"], rnd["final"]) if rnd and s != "random" else "",
                "AULC %": _pm(st["aulc"]),
                "AULC vs full": _diff(st["aulc"], f["aulc"]) if f and s != full else "",
                "AULC vs random": _diff(st["aulc"], rnd["aulc"]) if rnd and s != "random" else "",
                "replica std %": f"{100 * st['replica_std']:.2f}",
                "scored r0": f"{st['scored_round0']:.0f}",
                "scored/round later": f"{st['scored_later']:.0f}",
                "scored total": f"{st['scored_total']:.0f}",
                "score s/round": f"{st['score_seconds']:.3f}",
                "saved: points": saved_pts,
                "saved: seconds": saved_sec,
            }
        )
    return out


def write(table: list[dict], out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    keys = list(table[0])
    with open(os.path.join(out_dir, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(table)
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in table]
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(run_dirs, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(run_dirs), figsize=(6 * len(run_dirs), 4), squeeze=False)
    for ax, run_dir in zip(axes[0], run_dirs, strict=True):
        rows = read_rows(run_dir)
        for s in dict.fromkeys(r["strategy"] for r in rows):
            seeds = _by_seed(rows, s)
            x = [_num(r["num_labeled"]) for r in next(iter(seeds.values()))]
            y = np.mean([[_num(r["test_accuracy"]) for r in rs] for rs in seeds.values()], 0)
            ax.plot(x, 100 * y, marker="o", ms=3, label=s)
        ax.set_title(os.path.basename(os.path.normpath(run_dir)))
        ax.set_xlabel("labels")
        ax.set_ylabel("test accuracy % (mean over seeds and replicas)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    out = args.out or os.path.join(args.runs[0], "analysis")
    table = [row for run in args.runs for row in summarise(run)]
    write(table, out)
    plot(args.runs, out)
    with open(os.path.join(out, "summary.md")) as f:
        sys.stdout.write(f.read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
