"""Analyse an initial-pools sweep (experiments/initial_pools/config.py).

    python experiments/initial_pools/analyze.py ROOT [--out DIR] [--features simclr]

Reads every finished unit ``ROOT/<unit>/`` (``config.json``, ``results.csv``,
``labeled_indices.npz``) and writes to ``DIR`` (default ``ROOT/analysis``):

* ``summary.md``: test accuracy (mean ± std over seeds) per initial pool and
  acquisition strategy at the first, a middle and the last budget, the mean over
  all rounds, and each pool's difference from the random pool;
* ``curves.png``: one learning-curve panel per strategy, one line per pool
  (the layout of the paper's Figures 2-5);
* ``overlap_initial.csv/.png``: overlap between the initial pools,
  ``|A ∩ B| / |A|`` between the pools of the same seed, averaged over seeds
  (the paper's Figure 7, right);
* ``overlap_final.csv/.png``: the same between the final labeled pools, per
  strategy (§4: did the initial pool change what was acquired?);
* ``class_distribution.csv/.png``: points per class in each initial pool (mean
  over seeds; the paper's Figure 6), with the max/min ratio and the normalised
  entropy of the distribution;
* ``tsne.png``: a t-SNE (scikit-learn) of the pool on the encoder features
  (``--features``: simclr by default, as the paper's Figure 7; ``vae``, ``ae``
  or ``raw`` pixels), one panel per initial pool (seed 0's pool in colour).
"""

from __future__ import annotations

import argparse
import csv
import glob
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _study():
    spec = importlib.util.spec_from_file_location(
        "initial_pools_config", os.path.join(HERE, "config.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.removeprefix("config.").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def pool_name(cfg: dict, pools: dict) -> str:
    """The study's name of a unit's initial pool (matched on the keys it sets)."""
    for name, over in pools.items():
        if all(_lookup(cfg, k) == v for k, v in over.items() if k != "config.initial.ssl.arch"):
            return name
    i = cfg["initial"]
    return f"{i['strategy']}({i.get('features') or ''}{i.get('score') or ''})"


def load_units(root: str, pools: dict) -> list[dict]:
    units = []
    for cfg_path in sorted(glob.glob(os.path.join(root, "*", "config.json"))):
        unit = os.path.dirname(cfg_path)
        if not os.path.exists(os.path.join(unit, "DONE")):
            print(f"skipping unfinished unit {unit}", file=sys.stderr)
            continue
        with open(cfg_path) as f:
            cfg = json.load(f)
        with open(os.path.join(unit, "results.csv")) as f:
            rows = list(csv.DictReader(f))
        with np.load(os.path.join(unit, "labeled_indices.npz")) as z:
            arrays = {k: z[k] for k in z.files}
        units.append(
            {
                "dir": unit,
                "config": cfg,
                "pool": pool_name(cfg, pools),
                "rows": rows,
                "arrays": arrays,
            }
        )
    if not units:
        raise SystemExit(f"no finished units in {root}")
    return units


def curves(units) -> dict:
    """``{(pool, strategy): (labels [R], acc [S, R])}`` (accuracy in %)."""
    out = {}
    for u in units:
        by = {}
        for r in u["rows"]:
            by.setdefault(r["strategy"], {}).setdefault(int(r["num_labeled"]), {})[
                int(r["seed"])
            ] = 100.0 * float(r["test_accuracy"])
        for strat, per_label in by.items():
            labels = sorted(per_label)
            seeds = sorted(per_label[labels[0]])
            acc = np.array([[per_label[n][s] for n in labels] for s in seeds])
            out[(u["pool"], strat)] = (np.array(labels), acc)
    return out


def pool_sets(units, which: str) -> dict:
    """``{(pool, strategy): [S] sets}``: the initial (``round == 0``) or final labeled pools."""
    out = {}
    for u in units:
        a = u["arrays"]
        for key in a:
            if not key.endswith("/order"):
                continue
            strat = key[: -len("/order")]
            order, rnd = a[key], a[f"{strat}/round"]
            sets = []
            for o, r in zip(order, rnd, strict=True):
                keep = (r == 0) if which == "initial" else (o >= 0)
                sets.append(set(o[keep & (o >= 0)].tolist()))
            out[(u["pool"], strat)] = sets
    return out


def overlap(a: list[set], b: list[set]) -> float:
    return float(np.mean([len(x & y) / max(len(x), 1) for x, y in zip(a, b, strict=True)]))


def _fmt(acc: np.ndarray) -> str:
    return f"{acc.mean():.1f} ± {acc.std():.1f}"


def _heatmap(ax, m, names, title):
    ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{m[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="w" if m[i, j] < 0.6 else "k",
            )
    ax.set_title(title, fontsize=9)


def _write_matrix(path, m, names):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pool", *names])
        for n, row in zip(names, m, strict=True):
            w.writerow([n, *[f"{v:.4f}" for v in row]])


def _markdown(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root")
    p.add_argument("--out", default=None)
    p.add_argument("--features", default="simclr", choices=("simclr", "vae", "ae", "raw"))
    p.add_argument("--tsne_points", type=int, default=5000, help="pool points in the t-SNE")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = _study()
    pool_order = list(study.POOLS)
    units = load_units(args.root, study.POOLS)
    out = args.out or os.path.join(args.root, "analysis")
    os.makedirs(out, exist_ok=True)
    cur = curves(units)
    pools_run = [p for p in pool_order if any(k[0] == p for k in cur)]
    pools_run += sorted({k[0] for k in cur} - set(pools_run))
    found = list(dict.fromkeys(k[1] for k in cur))
    preferred = ["passive", "lc", "mm", "me", "coreset", "dbal", "ens_varR"]
    strategies = [s for s in preferred if s in found] + [s for s in found if s not in preferred]
    lines = [f"# Initial-pools study: {args.root}", ""]
    u0 = units[0]["config"]
    lines += [
        f"{u0['dataset']['name']} / {u0['model']['name']}, {len(units)} units, "
        f"{units[0]['arrays']['seeds'].size} seeds; test accuracy %, mean ± std over seeds.",
        "",
    ]

    # --- accuracy tables -----------------------------------------------------------
    labels = cur[next(iter(cur))][0]
    picks = sorted({0, len(labels) // 2, len(labels) - 1})
    for i in picks:
        n = labels[i]
        lines += [f"## {n} labels" + (" (the initial pool)" if i == 0 else ""), ""]
        rows = []
        for p in pools_run:
            rows.append(
                [p] + [_fmt(cur[(p, s)][1][:, i]) if (p, s) in cur else "" for s in strategies]
            )
        lines += _markdown(["pool", *strategies], rows) + [""]
    lines += ["## Mean over all rounds (area under the learning curve / rounds)", ""]
    rows = []
    for p in pools_run:
        rows.append(
            [p] + [_fmt(cur[(p, s)][1].mean(axis=1)) if (p, s) in cur else "" for s in strategies]
        )
    lines += _markdown(["pool", *strategies], rows) + [""]
    if "random" in pools_run:
        lines += ["## Difference from the random initial pool (mean accuracy, points)", ""]
        header = ["pool", *[f"{s} @{labels[i]}" for s in strategies for i in (0, len(labels) - 1)]]
        rows = []
        for p in pools_run:
            if p == "random":
                continue
            row = [p]
            for s in strategies:
                for i in (0, len(labels) - 1):
                    if (p, s) in cur and ("random", s) in cur:
                        d = cur[(p, s)][1][:, i].mean() - cur[("random", s)][1][:, i].mean()
                        row.append(f"{d:+.1f}")
                    else:
                        row.append("")
            rows.append(row)
        lines += _markdown(header, rows) + [""]

    # --- learning curves -------------------------------------------------------------
    ncol = min(4, len(strategies))
    nrow = -(-len(strategies) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.2 * nrow), squeeze=False)
    for ax, s in zip(axes.flat, strategies, strict=False):
        for p in pools_run:
            if (p, s) not in cur:
                continue
            x, acc = cur[(p, s)]
            ax.plot(x, acc.mean(0), marker="o", ms=3, label=p)
            ax.fill_between(x, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.15)
        ax.set_title(s)
        ax.set_xlabel("labels")
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(strategies) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=120)
    plt.close(fig)

    # --- overlaps --------------------------------------------------------------------
    init = pool_sets(units, "initial")
    first_strategy = {p: next(s for s in strategies if (p, s) in init) for p in pools_run}
    m = np.array(
        [
            [overlap(init[(a, first_strategy[a])], init[(b, first_strategy[b])]) for b in pools_run]
            for a in pools_run
        ]
    )
    _write_matrix(os.path.join(out, "overlap_initial.csv"), m, pools_run)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    _heatmap(ax, m, pools_run, "initial pools: |A ∩ B| / |A| (same seed)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "overlap_initial.png"), dpi=120)
    plt.close(fig)
    lines += ["## Overlap of the initial pools (|A ∩ B| / |A|, same seed, mean over seeds)", ""]
    lines += _markdown(
        ["pool", *pools_run],
        [[a, *[f"{v:.2f}" for v in r]] for a, r in zip(pools_run, m, strict=True)],
    ) + [""]
    final = pool_sets(units, "final")
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4 * nrow), squeeze=False)
    vs_random = []
    with open(os.path.join(out, "overlap_final.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "pool", *pools_run])
        for ax, s in zip(axes.flat, strategies, strict=False):
            names = [p for p in pools_run if (p, s) in final]
            mf = np.array([[overlap(final[(a, s)], final[(b, s)]) for b in names] for a in names])
            for a, row in zip(names, mf, strict=True):
                w.writerow([s, a, *[f"{v:.4f}" for v in row]])
            _heatmap(ax, mf, names, f"final labeled pools: {s}")
            if "random" in names:
                j = names.index("random")
                vs_random.append([s, *[f"{mf[i, j]:.2f}" for i in range(len(names))]])
    for ax in list(axes.flat)[len(strategies) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "overlap_final.png"), dpi=110)
    plt.close(fig)
    if vs_random:
        lines += [
            "## Overlap of the final labeled pools with the random start's (same strategy, seed)",
            "",
        ]
        lines += _markdown(["strategy", *pools_run], vs_random) + [""]

    # --- class distributions ---------------------------------------------------------------
    import ml_collections

    from jaxal.data import load as load_data

    ds = load_data(ml_collections.ConfigDict(u0["dataset"]))
    y = np.asarray(ds.y_train)
    c = int(ds.num_classes)
    dist = {}
    for p in pools_run:
        sets = init[(p, first_strategy[p])]
        dist[p] = np.mean([np.bincount(y[sorted(st)], minlength=c) for st in sets], axis=0)
    with open(os.path.join(out, "class_distribution.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pool", *[f"class_{k}" for k in range(c)], "max_over_min", "norm_entropy"])
        rows = []
        for p in pools_run:
            d = dist[p]
            q = d / d.sum()
            ent = float(-(q[q > 0] * np.log(q[q > 0])).sum() / np.log(c))
            ratio = d.max() / d.min() if d.min() > 0 else float("inf")
            w.writerow([p, *[f"{v:.2f}" for v in d], f"{ratio:.2f}", f"{ent:.3f}"])
            rows.append([p, *[f"{v:.1f}" for v in d], f"{ratio:.1f}", f"{ent:.2f}"])
    lines += ["## Class distribution of the initial pools (points per class, mean over seeds)", ""]
    lines += _markdown(["pool", *[str(k) for k in range(c)], "max/min", "entropy/log C"], rows) + [
        ""
    ]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * c), 3.5))
    width = 0.8 / len(pools_run)
    for i, p in enumerate(pools_run):
        ax.bar(np.arange(c) + i * width, dist[p], width, label=p)
    ax.set_xticks(np.arange(c) + 0.4 - width / 2, [str(k) for k in range(c)])
    ax.set_xlabel("class")
    ax.set_ylabel("points in the initial pool")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "class_distribution.png"), dpi=120)
    plt.close(fig)

    # --- t-SNE -------------------------------------------------------------------------------
    cache = os.path.join(args.root, "ssl_cache")
    feats, source = None, args.features
    if args.features == "raw":
        feats = np.asarray(ds.x_train, np.float32).reshape(len(y), -1)
    else:
        files = sorted(glob.glob(os.path.join(cache, f"{args.features}-*.npz")))
        if files:
            with np.load(files[0]) as z:
                feats = z["features"]
            source = f"{args.features} encoder features ({os.path.basename(files[0])})"
        else:
            print(f"no {args.features} encoder in {cache}; t-SNE on raw pixels", file=sys.stderr)
            feats, source = np.asarray(ds.x_train, np.float32).reshape(len(y), -1), "raw pixels"
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(0)
    pick = np.arange(len(y))
    union = set().union(*[init[(p, first_strategy[p])][0] for p in pools_run])
    if len(pick) > args.tsne_points:  # the pools' points and a random rest
        rest = np.setdiff1d(pick, sorted(union))
        extra = rng.choice(rest, max(args.tsne_points - len(union), 0), replace=False)
        pick = np.sort(np.concatenate([sorted(union), extra]).astype(int))
    emb = TSNE(2, random_state=0, init="pca", perplexity=30).fit_transform(feats[pick])
    where = {int(i): k for k, i in enumerate(pick)}
    ncol_t = min(4, len(pools_run))
    nrow_t = -(-len(pools_run) // ncol_t)
    fig, axes = plt.subplots(nrow_t, ncol_t, figsize=(3.6 * ncol_t, 3.6 * nrow_t), squeeze=False)
    cmap = plt.get_cmap("tab10" if c <= 10 else "tab20")
    for ax, p in zip(axes.flat, pools_run, strict=False):
        ax.scatter(emb[:, 0], emb[:, 1], s=2, c="0.85")
        idx = np.array([where[i] for i in sorted(init[(p, first_strategy[p])][0])])
        ax.scatter(emb[idx, 0], emb[idx, 1], s=10, c=[cmap(int(y[pick[i]]) % 20) for i in idx])
        ax.set_title(p, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(pools_run) :]:
        ax.axis("off")
    fig.suptitle(
        f"t-SNE of the pool on {source}; seed 0's initial pool coloured by class", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(os.path.join(out, "tsne.png"), dpi=120)
    plt.close(fig)

    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"figures and tables in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
