"""Per-strategy curves and what the report computes from them: summary, status, timings, pools."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from jaxal import metrics
from jaxal.reporting.runs import (
    PHASES,
    Run,
    _is_setting,
    flatten,
)

# --- per strategy curves -----------------------------------------------------


@dataclass
class Series:
    """One strategy of one run: the unit every figure and table compares."""

    run: Run
    strategy: str
    label: str
    rows: list[dict] = field(repr=False)

    def seed_curves(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per seed ``(labels, accuracy)`` sorted by labels."""
        by_seed: dict[int, dict[int, float]] = {}
        for r in self.rows:
            by_seed.setdefault(r["seed"], {})[r["num_labeled"]] = r["test_accuracy"]
        out = {}
        for seed in sorted(by_seed):
            pts = sorted(by_seed[seed].items())
            out[seed] = (
                np.array([p[0] for p in pts], np.float64),
                np.array([p[1] for p in pts], np.float64),
            )
        return out

    def mean_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels, mean, std)`` over the seeds that have each number of labels."""
        labels = sorted({r["num_labeled"] for r in self.rows})
        acc = [[r["test_accuracy"] for r in self.rows if r["num_labeled"] == n] for n in labels]
        return (
            np.array(labels, np.float64),
            np.array([np.mean(a) for a in acc]),
            np.array([np.std(a) for a in acc]),
        )


def make_series(runs: Sequence[Run]) -> list[Series]:
    """Every (run, strategy) that has rows; labels get the run name when runs > 1."""
    out = []
    for run in runs:
        for s in run.strategies:
            rows = [r for r in run.rows if r["strategy"] == s]
            if rows:
                label = s if len(runs) == 1 else f"{s} ({run.name})"
                out.append(Series(run, s, label, rows))
    return out


def _reference(series: Series, all_series: Sequence[Series]) -> Series | None:
    """The `random` curve a series is compared with: its own run's, else that of
    a run whose settings equal its run's (keys in ``_NOT_SETTINGS`` and
    ``strategy_params.*`` aside)."""
    randoms = [s for s in all_series if s.strategy == "random"]
    for s in randoms:
        if s.run is series.run:
            return s

    def settings(run):
        return {
            k: v
            for k, v in flatten(run.config).items()
            if _is_setting(k) and not k.startswith("strategy_params.")
        }

    for s in randoms:
        if settings(s.run) == settings(series.run):
            return s
    return None


# --- summary ------------------------------------------------------------------


def _mean_std(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std()), int(v.size)


def _tkey(t: float) -> str:
    return f"labels_to_{t:g}"


def summarize(all_series: Sequence[Series], targets: Sequence[float]) -> list[dict]:
    """One row per series: every summary metric, per seed then mean ± std.

    Columns: ``run, strategy, label, seeds, final_labels``;
    ``final_accuracy_{mean,std,rank}`` (each seed's last round);
    ``aulc_{mean,std,rank}`` (:func:`jaxal.metrics.normalized_aulc` per seed);
    per target ``t``: ``labels_to_t`` (on the mean curve, NaN = not reached) and
    its ``_rank``, and the per-seed ``labels_to_t_seed_{mean,std}`` over the
    ``labels_to_t_seeds_reached`` seeds that reach it; with a `random`
    reference: ``random_reference``, ``labeling_efficiency_{mean,std,seeds,rank}``
    and ``gain_over_random_{mean,std,seeds,rank}`` at each seed's final budget,
    against the same seed of the reference (seeds present in both).
    """
    out = []
    any_ref = False
    for s in all_series:
        curves = s.seed_curves()
        finals = [float(y[-1]) for _, y in curves.values()]
        final_labels = [float(x[-1]) for x, _ in curves.values()]
        row = {
            "run": s.run.name,
            "strategy": s.strategy,
            "label": s.label,
            "seeds": len(curves),
            "final_labels": (
                int(final_labels[0])
                if len(set(final_labels)) == 1
                else float(np.mean(final_labels))
            ),
        }
        m, sd, _ = _mean_std(finals)
        row.update(final_accuracy_mean=m, final_accuracy_std=sd)
        m, sd, _ = _mean_std([metrics.normalized_aulc(x, y) for x, y in curves.values()])
        row.update(aulc_mean=m, aulc_std=sd)
        mx, my, _ = s.mean_curve()
        for t in targets:
            k = _tkey(t)
            row[k] = metrics.labels_to_target(mx, my, t)
            m, sd, n = _mean_std([metrics.labels_to_target(x, y, t) for x, y in curves.values()])
            row.update({f"{k}_seed_mean": m, f"{k}_seed_std": sd, f"{k}_seeds_reached": n})
        ref = _reference(s, all_series)
        row["random_reference"] = ref.label if ref is not None else ""
        eff, gain = [], []
        if ref is not None:
            any_ref = True
            rc = ref.seed_curves()
            for seed, (x, y) in curves.items():
                if seed in rc:
                    rx, ry = rc[seed]
                    eff.append(metrics.labeling_efficiency(rx, ry, x[-1], y[-1]))
                    gain.append(metrics.gain_over_random(rx, ry, x[-1], y[-1]))
        for name, vals in (("labeling_efficiency", eff), ("gain_over_random", gain)):
            m, sd, n = _mean_std(vals)
            row.update({f"{name}_mean": m, f"{name}_std": sd, f"{name}_seeds": n})
        out.append(row)
    ranked = [("final_accuracy_mean", True), ("aulc_mean", True)]
    ranked += [(_tkey(t), False) for t in targets]
    if any_ref:
        ranked += [("labeling_efficiency_mean", True), ("gain_over_random_mean", True)]
    for key, higher in ranked:
        ranks = metrics.rank([r[key] for r in out], higher_is_better=higher)
        rank_key = key.removesuffix("_mean") + "_rank"
        for r, k in zip(out, ranks, strict=True):
            r[rank_key] = int(k)
    if not any_ref:
        drop = ("random_reference", "labeling_efficiency_", "gain_over_random_")
        out = [{k: v for k, v in r.items() if not k.startswith(drop)} for r in out]
    return out


# --- status, timings, pools -----------------------------------------------------


def _expected_rounds(run: Run) -> tuple[int | None, int | None]:
    """(rounds, final labels) the config asks for, from round 0's labels."""
    n0 = [r["num_labeled"] for r in run.rows if r["round"] == 0]
    if not n0:
        return None, None
    n0 = min(n0)
    k = int(run.config.get("query_size") or 0)
    budget, num_rounds = run.config.get("budget"), run.config.get("num_rounds")
    if budget is not None and k > 0:
        return 1 + max(0, math.ceil((int(budget) - n0) / k)), int(budget)
    if num_rounds is not None:
        return int(num_rounds) + 1, n0 + int(num_rounds) * k
    return None, None


def status_rows(runs: Sequence[Run]) -> list[dict]:
    """Per (run, strategy): complete / in progress / incomplete / not started."""
    out = []
    for run in runs:
        want_rounds, want_labels = _expected_rounds(run)
        want_seeds = run.expected_seeds
        for s in run.strategies:
            rows = [r for r in run.rows if r["strategy"] == s]
            seeds = sorted({r["seed"] for r in rows})
            per_seed = {sd: {r["round"] for r in rows if r["seed"] == sd} for sd in seeds}
            missing_seeds = [sd for sd in want_seeds if sd not in per_seed]
            detail = []
            if missing_seeds:
                detail.append(f"missing seeds {', '.join(map(str, missing_seeds))}")
            if want_rounds is not None:
                for sd in seeds:
                    lack = sorted(set(range(want_rounds)) - per_seed[sd])
                    if lack:
                        detail.append(f"seed {sd} lacks rounds {', '.join(map(str, lack))}")
            if not rows:
                state = "not started" if not run.done else "missing"
            elif detail:
                state = "in progress" if not run.done else "incomplete"
            else:
                state = "complete" if run.done else "in progress (rows complete, no DONE)"
            rounds_found = min((len(v) for v in per_seed.values()), default=0)
            out.append(
                {
                    "run": run.name,
                    "strategy": s,
                    "status": state,
                    "done_file": int(run.done),
                    "seeds_found": len(seeds),
                    "seeds_expected": len(want_seeds),
                    "rounds_found": rounds_found,
                    "rounds_expected": want_rounds if want_rounds is not None else "",
                    "labels_found": max((r["num_labeled"] for r in rows), default=0),
                    "labels_expected": want_labels if want_labels is not None else "",
                    "diverged_rows": sum(r.get("diverged", 0) for r in rows),
                    "detail": "; ".join(detail),
                }
            )
    return out


def time_rows(all_series: Sequence[Series]) -> list[dict]:
    """Per series: mean seconds per round of each phase (rounds ≥ 1 when there
    are any: round 0 includes compilation), round 0's total and the wall total.

    A row of ``results.csv`` holds the phase's wall time for all seeds ÷ S, so
    a round's time is the sum over its seed rows (``results.csv`` repeats the
    same share on every seed's row).
    """
    out = []
    for s in all_series:
        rounds = sorted({r["round"] for r in s.rows})
        per_round = {
            rd: {p: sum(r[p] for r in s.rows if r["round"] == rd) for p in PHASES} for rd in rounds
        }
        use = [rd for rd in rounds if rd >= 1] or rounds
        row = {"label": s.label, "rounds_averaged": len(use)}
        for p in PHASES:
            row[p] = float(np.mean([per_round[rd][p] for rd in use]))
        row["round_seconds"] = float(sum(row[p] for p in PHASES))
        row["round0_seconds"] = float(sum(per_round[0].values())) if 0 in per_round else ""
        row["wall_seconds"] = float(sum(sum(v.values()) for v in per_round.values()))
        out.append(row)
    return out


def _load_pool_labels(run: Run, cache: dict) -> tuple[np.ndarray | None, str]:
    """The pool's labels ``y_train`` of a run's dataset, or ``(None, why not)``."""
    if (run.config.get("python_objects") or {}).get("dataset"):
        return None, f"{run.name}: the dataset was given from Python, not by name"
    saved = run.config.get("dataset") or {}
    name = str(saved.get("name"))
    from jaxal.data import BUNDLED

    if not (name in BUNDLED or name.startswith("npz:")):
        return None, (
            f"{run.name}: dataset {name!r} is neither bundled ({', '.join(BUNDLED)}) "
            "nor npz:PATH; its labels are not loaded for a report"
        )
    key = json.dumps(saved, sort_keys=True)
    if key not in cache:
        from jaxal import data

        cfg = data.default_config()
        try:
            for k, v in saved.items():
                if k in cfg:
                    cfg[k] = v
            cache[key] = (np.asarray(data.load(cfg).y_train), "")
        except Exception as e:  # a note in the report, not a crash
            cache[key] = (None, f"{run.name}: could not load dataset {name!r}: {e}")
    return cache[key]


def _final_sets(s: Series) -> dict[int, np.ndarray] | None:
    """Per seed, the final labeled pool indices (``None``: no labeled_indices.npz)."""
    ind = s.run.indices
    if ind is None or f"{s.strategy}/order" not in ind:
        return None
    order = ind[f"{s.strategy}/order"]
    return {int(sd): order[i][order[i] >= 0] for i, sd in enumerate(ind["seeds"])}


def class_rows(all_series: Sequence[Series], notes: list[str]) -> tuple[list[dict], int]:
    """Per series: class fractions of the acquired labels (rounds ≥ 1), mean over
    seeds, plus one ``pool`` row per dataset; and the number of classes."""
    cache: dict = {}
    out, num_classes, pools_done = [], 0, set()
    for s in all_series:
        ind = s.run.indices
        if ind is None or f"{s.strategy}/order" not in ind:
            why = (
                f"{s.run.name}: no labeled_indices.npz (written when the run finishes)"
                if ind is None
                else f"{s.label}: not in labeled_indices.npz"
            )
            if why not in notes:
                notes.append(why)
            continue
        y, why = _load_pool_labels(s.run, cache)
        if y is None:
            if why not in notes:
                notes.append(why)
            continue
        order, rnd = ind[f"{s.strategy}/order"], ind[f"{s.strategy}/round"]
        if order.size and order.max() >= y.size:
            notes.append(f"{s.label}: pool indices beyond the dataset's {y.size} points")
            continue
        c = max(int(y.max()) + 1, num_classes)
        num_classes = c
        fracs, counts = [], []
        for i in range(order.shape[0]):
            pick = order[i][(order[i] >= 0) & (rnd[i] >= 1)]
            if pick.size:
                fracs.append(np.bincount(y[pick], minlength=c)[:c] / pick.size)
                counts.append(pick.size)
        if not fracs:
            notes.append(f"{s.label}: no labels acquired after the initial pool")
            continue
        dkey = json.dumps(s.run.config.get("dataset"), sort_keys=True)
        if dkey not in pools_done:
            pools_done.add(dkey)
            pool_name = "pool" if len(pools_done) == 1 else f"pool ({s.run.name})"
            out.append(
                {"label": pool_name, "acquired_per_seed": int(y.size), "fractions": _frac(y, c)}
            )
        out.append(
            {
                "label": s.label,
                "acquired_per_seed": float(np.mean(counts)),
                "fractions": np.mean(fracs, axis=0),
            }
        )
    for r in out:
        r["fractions"] = np.pad(r["fractions"], (0, num_classes - len(r["fractions"])))
    return out, num_classes


def _frac(y: np.ndarray, c: int) -> np.ndarray:
    return np.bincount(y, minlength=c)[:c] / max(1, y.size)


def overlap_matrix(all_series: Sequence[Series]) -> tuple[list[str], np.ndarray]:
    """Mean over shared seeds of the Jaccard index ``|A ∩ B| / |A ∪ B|`` of the
    final labeled sets, for every pair of series with labeled_indices.npz."""
    sets = [(s.label, _final_sets(s)) for s in all_series]
    sets = [(lab, d) for lab, d in sets if d is not None]
    n = len(sets)
    mat = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            a, b = sets[i][1], sets[j][1]
            vals = []
            for seed in sorted(set(a) & set(b)):
                union = np.union1d(a[seed], b[seed]).size
                inter = np.intersect1d(a[seed], b[seed]).size
                vals.append(inter / union if union else 1.0)
            if vals:
                mat[i, j] = float(np.mean(vals))
    return [lab for lab, _ in sets], mat
