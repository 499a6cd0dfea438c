"""Analyse an architecture sweep (experiments/architectures/config.py).

    python experiments/architectures/analyze.py ROOT [ROOT ...] [--out DIR]

Reads every finished unit ``ROOT/<unit>/`` (``config.json``, ``results.csv``,
``DONE``) -- one architecture, with or without pretraining, all strategies and
seeds -- and writes to ``DIR`` (default ``ROOT/analysis``, the first ROOT):

* ``summary.md`` / ``summary.csv``: per setting (dataset, augmentation),
  architecture, pretraining and strategy: final test accuracy, **labeling
  efficiency** and **gain in test accuracy over random** (the feature-space
  paper's two metrics, §3.1; :func:`jaxal.metrics.efficiency_curve`,
  :func:`jaxal.metrics.gain_curve`), each computed per seed against the same
  seed's random curve *without* pretraining of the same architecture -- the
  longest one, i.e. the sweep's random-only reference unit when present (the
  dashed reference of the paper's Figs. 2-3; "random + pretraining" is then a
  strategy like the others), averaged over the acquisition rounds 1..R
  (round 0 is the shared initial pool), then mean ± std over seeds. In rounds
  where random's curve never reaches the strategy's accuracy the efficiency
  is its lower bound, random's last labels / the strategy's labels
  (``beyond="bound"``); their count is listed (``beyond``, rounds x seeds) and
  the efficiency is then marked ``≥``;
* ``best.md``: the best strategy per architecture by each metric (the paper's
  question: does it change with the architecture?);
* ``rounds.csv``: both metrics per round (mean over seeds);
* ``architectures[_<setting>].png``: one figure per setting, labeling
  efficiency (top) and gain over random in percentage points (bottom), bars
  per architecture x strategy, hatched with pretraining (the layout of the
  paper's Figs. 2 and 3), error bars = std over seeds.
"""

from __future__ import annotations

import argparse
import csv
import glob
import importlib.util
import os
import sys

import numpy as np

from jaxal import metrics
from jaxal.reporting import load_run

HERE = os.path.dirname(os.path.abspath(__file__))


def _study():
    spec = importlib.util.spec_from_file_location(
        "architectures_config", os.path.join(HERE, "config.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def setting_of(cfg: dict) -> str:
    """``<dataset>`` or ``<dataset>+aug`` (random crops / flips on)."""
    aug = (cfg.get("train") or {}).get("augment") or {}
    on = bool(aug.get("crop_padding")) or bool(aug.get("flip"))
    return str(cfg["dataset"]["name"]) + ("+aug" if on else "")


def load_units(roots) -> list[dict]:
    """Every finished unit under ``roots`` as ``{setting, arch, pretrain, run}``."""
    study = _study()
    units = []
    for root in roots:
        for cfg_path in sorted(glob.glob(os.path.join(root, "*", "config.json"))):
            path = os.path.dirname(cfg_path)
            run = load_run(path)
            if not run.done:
                print(f"skipping unfinished unit {path}", file=sys.stderr)
                continue
            cfg = run.config
            units.append(
                {
                    "setting": setting_of(cfg),
                    "arch": study.arch_name(cfg),
                    "pretrain": (cfg.get("train") or {}).get("init_from") == "pretrain",
                    "run": run,
                }
            )
    return units


def seed_curves(run, strategy: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per seed ``(labels, test accuracy)`` of one strategy of a unit."""
    by_seed: dict[int, dict[int, float]] = {}
    for r in run.rows:
        if r["strategy"] == strategy:
            by_seed.setdefault(int(r["seed"]), {})[int(r["num_labeled"])] = r["test_accuracy"]
    return {
        s: (np.array(sorted(p), np.float64), np.array([p[k] for k in sorted(p)], np.float64))
        for s, p in by_seed.items()
    }


def _ms(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def analyse(units: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(summary rows, per-round rows)``; see the module docstring."""
    summary, per_round = [], []
    refs: dict[tuple, dict] = {}  # (setting, arch) -> per seed the longest random curve
    for u in units:
        if u["pretrain"]:
            continue
        ref = refs.setdefault((u["setting"], u["arch"]), {})
        for seed, c in seed_curves(u["run"], "random").items():
            if seed not in ref or c[0][-1] > ref[seed][0][-1]:
                ref[seed] = c
    for u in sorted(units, key=lambda u: (u["setting"], u["arch"], u["pretrain"])):
        ref = refs.get((u["setting"], u["arch"]))
        if not ref:
            print(
                f"no random run without pretraining for {u['arch']} on {u['setting']}: "
                f"skipping {u['run'].path}",
                file=sys.stderr,
            )
            continue
        for strategy in u["run"].strategies:
            curves = seed_curves(u["run"], strategy)
            if not curves or (strategy == "random" and not u["pretrain"]):
                continue  # random against itself: 1 and 0 by definition
            eff, gain, final, beyond, rounds_eff, rounds_gain = [], [], [], 0, [], []
            for seed, (x, y) in curves.items():
                if seed not in ref:
                    continue
                rx, ry = ref[seed]
                e = metrics.efficiency_curve(rx, ry, x, y, beyond="bound")
                g = metrics.gain_curve(rx, ry, x, y)
                beyond += int(np.sum(np.isnan(metrics.efficiency_curve(rx, ry, x, y)[1:])))
                eff.append(np.mean(e[1:]) if len(e) > 1 else np.nan)
                gain.append(np.nanmean(g[1:]) if np.isfinite(g[1:]).any() else np.nan)
                final.append(y[-1])
                rounds_eff.append(e)
                rounds_gain.append(g)
            if not final:
                continue
            name = strategy + (" + pretraining" if u["pretrain"] else "")
            (em, es), (gm, gs), (fm, fs) = _ms(eff), _ms(gain), _ms(final)
            summary.append(
                {
                    "setting": u["setting"],
                    "architecture": u["arch"],
                    "pretraining": int(u["pretrain"]),
                    "strategy": strategy,
                    "name": name,
                    "final_accuracy": fm,
                    "final_accuracy_std": fs,
                    "efficiency": em,
                    "efficiency_std": es,
                    "gain": gm,
                    "gain_std": gs,
                    "beyond": beyond,
                    "rounds": len(curves[next(iter(curves))][0]) - 1,
                    "seeds": len(final),
                }
            )
            x = curves[next(iter(curves))][0]
            n = min(len(a) for a in rounds_eff)
            for i in range(n):
                per_round.append(
                    {
                        "setting": u["setting"],
                        "architecture": u["arch"],
                        "pretraining": int(u["pretrain"]),
                        "strategy": strategy,
                        "round": i,
                        "num_labeled": int(x[i]),
                        "efficiency": _ms([a[i] for a in rounds_eff])[0],
                        "gain": _ms([a[i] for a in rounds_gain])[0],
                    }
                )
    return summary, per_round


def _pm(m, s, scale=1.0, fmt=".2f") -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m * scale:{fmt}} ± {s * scale:{fmt.lstrip('+')}}"


def summary_markdown(rows: list[dict]) -> str:
    out = []
    for setting in sorted({r["setting"] for r in rows}):
        out += [
            f"### {setting}",
            "",
            "| architecture | strategy | final accuracy % | labeling efficiency | "
            "gain over random (pp) | beyond |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in (r for r in rows if r["setting"] == setting):
            out.append(
                f"| {r['architecture']} | {r['name']} | "
                f"{_pm(r['final_accuracy'], r['final_accuracy_std'], 100, '.1f')} | "
                f"{'≥ ' if r['beyond'] else ''}{_pm(r['efficiency'], r['efficiency_std'])} | "
                f"{_pm(r['gain'], r['gain_std'], 100, '+.1f')} | "
                f"{r['beyond']}/{r['rounds'] * r['seeds']} |"
            )
        out.append("")
    return "\n".join(out)


def best_markdown(rows: list[dict]) -> str:
    out = [
        "| setting | architecture | best by efficiency | best by gain |",
        "| --- | --- | --- | --- |",
    ]
    keys = sorted({(r["setting"], r["architecture"]) for r in rows})
    for setting, arch in keys:
        group = [r for r in rows if (r["setting"], r["architecture"]) == (setting, arch)]

        def best(metric, group=group):
            ok = [r for r in group if np.isfinite(r[metric])]
            if not ok:
                return "n/a"
            r = max(ok, key=lambda r: r[metric])
            scale, fmt = (1.0, ".2f") if metric == "efficiency" else (100.0, "+.1f")
            return f"{r['name']} ({r[metric] * scale:{fmt}})"

        out.append(f"| {setting} | {arch} | {best('efficiency')} | {best('gain')} |")
    return "\n".join(out) + "\n"


def plot(path: str, rows: list[dict], setting: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["setting"] == setting]
    archs = list(dict.fromkeys(r["architecture"] for r in rows))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    bars = [(s, p) for s in strategies for p in (0, 1)]
    bars = [b for b in bars if any((r["strategy"], r["pretraining"]) == b for r in rows)]
    cmap = plt.get_cmap("tab10")
    colour = {s: cmap(i % 10) for i, s in enumerate(strategies)}
    width = 0.8 / max(len(bars), 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.6 * len(archs) + 3), 7.5), sharex=True)
    for ax, metric, scale, ref, label in (
        (axes[0], "efficiency", 1.0, 1.0, "labeling efficiency\n(random = 1)"),
        (axes[1], "gain", 100.0, 0.0, "gain in test accuracy\nover random (pp)"),
    ):
        for j, (s, p) in enumerate(bars):
            xs, ms, ss = [], [], []
            for i, a in enumerate(archs):
                hit = [
                    r for r in rows
                    if (r["architecture"], r["strategy"], r["pretraining"]) == (a, s, p)
                ]
                if hit:
                    xs.append(i - 0.4 + (j + 0.5) * width)
                    ms.append(hit[0][metric] * scale)
                    ss.append(hit[0][f"{metric}_std"] * scale)
            ax.bar(
                xs, ms, width, yerr=ss, color=colour[s], edgecolor="black", linewidth=0.4,
                hatch="///" if p else None, label=s + (" + pretraining" if p else ""),
                error_kw={"elinewidth": 0.6, "capsize": 1.5},
            )
        ax.axhline(ref, color="black", linestyle="--", linewidth=0.8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(archs)))
    axes[1].set_xticklabels(archs)
    axes[0].set_title(f"{setting}: acquisition strategies vs random, per architecture")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _write_csv(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", help="sweep roots (jaxal sweep --workdir)")
    p.add_argument("--out", default=None, help="output folder (default ROOT/analysis)")
    args = p.parse_args(argv)
    units = load_units(args.roots)
    if not units:
        print(f"no finished units under {', '.join(args.roots)}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.roots[0], "analysis")
    os.makedirs(out, exist_ok=True)
    summary, per_round = analyse(units)
    _write_csv(os.path.join(out, "summary.csv"), summary)
    _write_csv(os.path.join(out, "rounds.csv"), per_round)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary_markdown(summary))
    with open(os.path.join(out, "best.md"), "w") as f:
        f.write(best_markdown(summary))
    settings = sorted({r["setting"] for r in summary})
    for s in settings:
        name = "architectures.png" if len(settings) == 1 else f"architectures_{s}.png"
        plot(os.path.join(out, name.replace("+", "_")), summary, s)
    print(summary_markdown(summary))
    print(best_markdown(summary))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
