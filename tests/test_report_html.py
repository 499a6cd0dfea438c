"""``jaxal report``: the HTML comparison report and the metrics of ``jaxal.metrics``.

Two real tiny runs (random / entropy / margin, 2 seeds, 10 -> 25 labels) that
differ in ``train.learning_rate`` are reported on; every number of
``summary.csv`` is recomputed here from ``results.csv`` with plain numpy.
"""

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config

from jaxal import metrics, report_html

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = (0.15, 0.2, 0.99)  # around the tiny runs' accuracies, and one never reached
FIGURES = ("learning_curves", "time_split", "class_distribution", "overlap")
TABLES = ("status", "summary", "time_split", "class_distribution", "overlap", "config_diff")


# --- hand-computed metrics ------------------------------------------------------------


def test_normalized_aulc_by_hand():
    # labels 10, 20, 40; accuracy 0.5, 0.7, 0.8
    # trapezoids: 10 * (0.5 + 0.7) / 2 = 6.0 and 20 * (0.7 + 0.8) / 2 = 15.0 -> 21.0
    # label range 40 - 10 = 30 -> 21 / 30 = 0.7
    assert metrics.normalized_aulc([10, 20, 40], [0.5, 0.7, 0.8]) == pytest.approx(0.7)
    # the same points unsorted give the same area
    assert metrics.normalized_aulc([40, 10, 20], [0.8, 0.5, 0.7]) == pytest.approx(0.7)
    # a constant accuracy a gives a, whatever the labels
    assert metrics.normalized_aulc([3, 7, 100], [0.42] * 3) == pytest.approx(0.42)
    # a single point gives its accuracy
    assert metrics.normalized_aulc([50], [0.6]) == 0.6
    with pytest.raises(ValueError):
        metrics.normalized_aulc([10, 10], [0.1, 0.2])


def test_labels_to_target_by_hand():
    x, y = [10, 20, 40], [0.5, 0.7, 0.8]
    # 0.75 is first reached between (20, 0.7) and (40, 0.8):
    # 20 + (0.75 - 0.7) / (0.8 - 0.7) * (40 - 20) = 20 + 0.5 * 20 = 30
    assert metrics.labels_to_target(x, y, 0.75) == pytest.approx(30.0)
    # 0.6 between (10, 0.5) and (20, 0.7): 10 + 0.1 / 0.2 * 10 = 15
    assert metrics.labels_to_target(x, y, 0.6) == pytest.approx(15.0)
    # reached exactly at a point: 20
    assert metrics.labels_to_target(x, y, 0.7) == pytest.approx(20.0)
    # the first point already reaches 0.4: 10
    assert metrics.labels_to_target(x, y, 0.4) == 10.0
    # never reached
    assert math.isnan(metrics.labels_to_target(x, y, 0.9))
    # the FIRST crossing counts on a curve 0.6 -> 0.4 -> 0.9 at 10, 20, 30 labels:
    # 0.5 is reached by the first point already -> 10;
    # 0.8: the first point >= 0.8 is (30, 0.9), the one before (20, 0.4):
    # 20 + (0.8 - 0.4) / (0.9 - 0.4) * 10 = 20 + 0.8 * 10 = 28
    assert metrics.labels_to_target([10, 20, 30], [0.6, 0.4, 0.9], 0.5) == 10.0
    assert metrics.labels_to_target([10, 20, 30], [0.6, 0.4, 0.9], 0.8) == pytest.approx(28.0)


def test_labeling_efficiency_by_hand():
    rx, ry = [10, 20, 40], [0.5, 0.7, 0.8]
    # the strategy reached 0.75 with 20 labels; random needs 30 (see above): 30 / 20 = 1.5
    assert metrics.labeling_efficiency(rx, ry, 20, 0.75) == pytest.approx(1.5)
    # 0.6 with 30 labels: random needs 15 -> 15 / 30 = 0.5 (worse than random)
    assert metrics.labeling_efficiency(rx, ry, 30, 0.6) == pytest.approx(0.5)
    # random never reaches 0.85: undefined
    assert math.isnan(metrics.labeling_efficiency(rx, ry, 40, 0.85))


def test_gain_over_random_by_hand():
    rx, ry = [10, 20, 40], [0.5, 0.7, 0.8]
    # random at 30 labels: 0.7 + (30 - 20) / (40 - 20) * (0.8 - 0.7) = 0.75; 0.78 - 0.75 = 0.03
    assert metrics.gain_over_random(rx, ry, 30, 0.78) == pytest.approx(0.03)
    # at a point of random's curve: 0.65 - 0.7 = -0.05
    assert metrics.gain_over_random(rx, ry, 20, 0.65) == pytest.approx(-0.05)
    # outside random's labels (50 > 40): undefined
    assert math.isnan(metrics.gain_over_random(rx, ry, 50, 0.9))


def test_rank_by_hand():
    # 0.9, 0.9 tie for 1st, 0.7 is 3rd, NaN last (4th)
    np.testing.assert_array_equal(metrics.rank([0.9, 0.7, 0.9, np.nan]), [1, 3, 1, 4])
    # lower is better: 15 < 20 < nan
    np.testing.assert_array_equal(metrics.rank([20, np.nan, 15], higher_is_better=False), [2, 3, 1])


def test_colors_stay_distinct_beyond_twenty():
    cols = report_html.colors(30)
    assert len({tuple(np.round(c, 4)) for c in cols}) == 30


# --- two real runs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from jaxal.experiment import run_experiment

    root = tmp_path_factory.mktemp("report_runs")
    out = []
    for name, lr in (("lr_small", 1e-3), ("lr_large", 1e-2)):
        c = tiny_config(
            strategy="random,entropy,margin",
            num_seeds=2,
            budget=25,
            **{"checkpoint.enabled": False, "train.learning_rate": lr},
        )
        run_experiment(c, str(root / name), progress=False)
        out.append(root / name)
    return out


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    targets = ",".join(str(t) for t in TARGETS)
    assert report_html.main([*map(str, runs), "--out", str(out), "--targets", targets]) == 0
    return out


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _seed_curves(run_dir):
    """{strategy: {seed: (labels, acc)}} straight from results.csv."""
    out = {}
    for r in _read_csv(os.path.join(run_dir, "results.csv")):
        d = out.setdefault(r["strategy"], {}).setdefault(int(r["seed"]), {})
        d[int(r["num_labeled"])] = float(r["test_accuracy"])
    return {
        s: {
            seed: (np.array(sorted(pts), float), np.array([pts[n] for n in sorted(pts)]))
            for seed, pts in by_seed.items()
        }
        for s, by_seed in out.items()
    }


# The independent arithmetic: explicit loops, no jaxal.metrics.
def _area(x, y):
    if len(x) == 1:
        return y[0]
    total = 0.0
    for i in range(len(x) - 1):
        total += (x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2
    return total / (x[-1] - x[0])


def _first_reach(x, y, t):
    for i in range(len(x)):
        if y[i] >= t:
            if i == 0:
                return x[0]
            return x[i - 1] + (t - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1])
    return float("nan")


def _interp(x, y, at):
    if at < x[0] or at > x[-1]:
        return float("nan")
    for i in range(len(x)):
        if x[i] == at:
            return y[i]
        if x[i] > at:
            return y[i - 1] + (at - x[i - 1]) * (y[i] - y[i - 1]) / (x[i] - x[i - 1])


def _stats(vals):
    v = [x for x in vals if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan"), 0
    m = sum(v) / len(v)
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / len(v)), len(v)


def _ranks(vals, higher):
    keyed = [(-v if higher else v) if not math.isnan(v) else math.inf for v in vals]
    return [1 + sum(k2 < k for k2 in keyed) for k in keyed]


def _expected_summary(runs):
    rows = []
    for run in runs:
        curves = _seed_curves(run)
        for strategy in ("random", "entropy", "margin"):
            seeds = curves[strategy]
            finals = [y[-1] for _, y in seeds.values()]
            row = {
                "run": run.name,
                "strategy": strategy,
                "label": f"{strategy} ({run.name})",
                "seeds": len(seeds),
                "final_labels": 25,
                "random_reference": f"random ({run.name})",
            }
            row["final_accuracy_mean"], row["final_accuracy_std"], _ = _stats(finals)
            aulc = [_area(x, y) for x, y in seeds.values()]
            row["aulc_mean"], row["aulc_std"], _ = _stats(aulc)
            labels = sorted({n for x, _ in seeds.values() for n in x})
            mean = [np.mean([y[list(x).index(n)] for x, y in seeds.values()]) for n in labels]
            for t in TARGETS:
                k = f"labels_to_{t:g}"
                row[k] = _first_reach(labels, mean, t)
                per_seed = [_first_reach(x, y, t) for x, y in seeds.values()]
                m, s, n = _stats(per_seed)
                row.update({f"{k}_seed_mean": m, f"{k}_seed_std": s, f"{k}_seeds_reached": n})
            eff, gain = [], []
            for seed, (x, y) in seeds.items():
                rx, ry = curves["random"][seed]
                eff.append(_first_reach(rx, ry, y[-1]) / x[-1])
                gain.append(y[-1] - _interp(rx, ry, x[-1]))
            for name, vals in (("labeling_efficiency", eff), ("gain_over_random", gain)):
                m, s, n = _stats(vals)
                row.update({f"{name}_mean": m, f"{name}_std": s, f"{name}_seeds": n})
            rows.append(row)
    ranked = [("final_accuracy", True), ("aulc", True)]
    ranked += [(f"labels_to_{t:g}", False) for t in TARGETS]
    ranked += [("labeling_efficiency", True), ("gain_over_random", True)]
    for key, higher in ranked:
        col = key if key.startswith("labels_to_") else f"{key}_mean"
        for r, k in zip(rows, _ranks([r[col] for r in rows], higher), strict=True):
            r[f"{key}_rank"] = k
    return rows


def test_summary_csv_is_recomputed_from_results_csv(runs, report):
    got = _read_csv(report / "summary.csv")
    want = _expected_summary(runs)
    assert len(got) == len(want) == 6
    assert set(got[0]) == set(want[0])  # every column is checked below
    checked = 0
    for g, w in zip(got, want, strict=True):
        for key, expect in w.items():
            cell = g[key]
            if isinstance(expect, str):
                assert cell == expect, key
            elif isinstance(expect, float) and math.isnan(expect):
                # a target not reached on the mean curve says so; undefined spreads are empty
                plain = key.startswith("labels_to_") and not key.endswith(("_mean", "_std"))
                assert cell == ("not reached" if plain else ""), (key, cell)
            else:
                assert float(cell) == pytest.approx(float(expect), rel=1e-9, abs=1e-12), key
            checked += 1
    assert checked == 6 * len(want[0])
    # the data exercised both "reached" and "not reached"
    cells = [g[f"labels_to_{t:g}"] for g in got for t in TARGETS]
    assert "not reached" in cells and any(c != "not reached" for c in cells)
    summary_md = (report / "summary.md").read_text()
    assert "not reached" in summary_md and "entropy (lr_large)" in summary_md


def test_report_writes_every_figure_and_table(runs, report):
    page = (report / "index.html").read_text()
    import matplotlib.image

    for name in FIGURES:
        assert f'<img id="fig-{name}"' in page, name
        img = matplotlib.image.imread(report / f"{name}.png")
        assert img.shape[0] > 100 and img.shape[1] > 100
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert 'src="http' not in page and "<link" not in page  # self-contained
    for name in TABLES:
        assert (report / f"{name}.md").read_text().startswith("## ")
        assert _read_csv(report / f"{name}.csv"), name
    # the runs differ only in the learning rate: the one config difference, and the facets
    diff = _read_csv(report / "config_diff.csv")
    assert diff == [{"key": "train.learning_rate", "lr_small": "0.001", "lr_large": "0.01"}]
    assert "Faceted by train.learning_rate" in page
    status = _read_csv(report / "status.csv")
    assert len(status) == 6 and {r["status"] for r in status} == {"complete"}


def test_time_split_and_pool_tables_are_recomputed(runs, report):
    # time: per round = sum of the seed rows (each holds wall time / S); mean over rounds >= 1
    times = {r["label"]: r for r in _read_csv(report / "time_split.csv")}
    for run in runs:
        rows = _read_csv(os.path.join(run, "results.csv"))
        for strategy in ("random", "entropy", "margin"):
            sub = [r for r in rows if r["strategy"] == strategy]
            got = times[f"{strategy} ({run.name})"]
            for phase in ("train_seconds", "eval_seconds", "score_seconds", "select_seconds"):
                per_round = [
                    sum(float(r[phase]) for r in sub if r["round"] == str(rd)) for rd in (1, 2, 3)
                ]
                assert float(got[phase]) == pytest.approx(np.mean(per_round), rel=1e-9)
            total = sum(float(r[p]) for r in sub for p in report_html.PHASES)
            assert float(got["wall_seconds"]) == pytest.approx(total, rel=1e-9)

    # overlap: mean over seeds of |A & B| / |A | B| of the final labeled sets
    za = np.load(runs[0] / "labeled_indices.npz")
    zb = np.load(runs[1] / "labeled_indices.npz")
    overlap = {r["label"]: r for r in _read_csv(report / "overlap.csv")}
    pairs = [
        (za, "entropy", "entropy (lr_small)", zb, "margin", "margin (lr_large)"),
        (za, "random", "random (lr_small)", za, "margin", "margin (lr_small)"),
    ]
    for z1, s1, l1, z2, s2, l2 in pairs:
        jac = []
        for i in range(2):
            a, b = set(z1[f"{s1}/order"][i].tolist()), set(z2[f"{s2}/order"][i].tolist())
            jac.append(len(a & b) / len(a | b))
        assert float(overlap[l1][l2]) == pytest.approx(np.mean(jac), rel=1e-9)
        assert float(overlap[l2][l1]) == pytest.approx(np.mean(jac), rel=1e-9)
    for label, row in overlap.items():
        assert float(row[label]) == 1.0

    # class distribution of the acquired labels (rounds >= 1), mean over seeds
    from jaxal import data

    cfg = data.default_config()
    cfg.name = "digits"
    y = np.asarray(data.load(cfg).y_train)
    classes = {r["label"]: r for r in _read_csv(report / "class_distribution.csv")}
    order, rnd = zb["margin/order"], zb["margin/round"]
    fr = np.mean(
        [np.bincount(y[order[i][rnd[i] >= 1]], minlength=10) / (rnd[i] >= 1).sum() for i in (0, 1)],
        axis=0,
    )
    got = [float(classes["margin (lr_large)"][f"class_{c}"]) for c in range(10)]
    np.testing.assert_allclose(got, fr, rtol=1e-9)
    pool = [float(classes["pool"][f"class_{c}"]) for c in range(10)]
    np.testing.assert_allclose(pool, np.bincount(y, minlength=10) / y.size, rtol=1e-9)


def test_in_progress_and_incomplete_runs_are_reported_not_dropped(runs, tmp_path):
    running = tmp_path / "running"
    shutil.copytree(runs[0], running)
    os.remove(running / "DONE")
    rows = _read_csv(running / "results.csv")
    last = max(int(r["round"]) for r in rows)
    with open(running / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(r for r in rows if int(r["round"]) != last)
    os.remove(running / "labeled_indices.npz")  # written only when a run finishes

    holes = tmp_path / "holes"  # finished, but seed 1 of margin has no rows
    shutil.copytree(runs[1], holes)
    with open(holes / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        full = _read_csv(runs[1] / "results.csv")
        w.writerows(r for r in full if not (r["strategy"] == "margin" and r["seed"] == "1"))

    out = tmp_path / "out"
    assert report_html.main([str(running), str(holes), "--out", str(out)]) == 0
    status = {(r["run"], r["strategy"]): r for r in _read_csv(out / "status.csv")}
    for s in ("random", "entropy", "margin"):
        r = status[("running", s)]
        assert r["status"] == "in progress", r
        assert (r["rounds_found"], r["rounds_expected"]) == ("3", "4")
        assert (r["labels_found"], r["labels_expected"]) == ("20", "25")
        assert "lacks rounds 3" in r["detail"]
    bad = status[("holes", "margin")]
    assert bad["status"] == "incomplete" and "missing seeds 1" in bad["detail"]
    assert status[("holes", "random")]["status"] == "complete"
    summary = {r["label"]: r for r in _read_csv(out / "summary.csv")}
    assert summary["margin (running)"]["final_labels"] == "20"  # reported on what it has
    assert summary["margin (holes)"]["seeds"] == "1"
    page = (out / "index.html").read_text()
    assert "in progress" in page and "incomplete" in page
    assert "running: no labeled_indices.npz" in page


@pytest.mark.parametrize("entry", [["-m", "jaxal", "report"], ["-m", "jaxal.report"]])
def test_mixing_datasets_exits_2_with_one_line(runs, tmp_path, entry):
    other = tmp_path / "other"
    shutil.copytree(runs[0], other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["dataset"]["name"] = "mnist5k"
    (other / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, *entry, str(runs[0]), str(other), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    # `python -m jaxal.report` also gets runpy's warning that the package imported
    # jaxal.report before running it as __main__ (harmless); the report's own output
    # is one line
    lines = [ln for ln in r.stderr.splitlines() if "RuntimeWarning" not in ln and ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "different datasets" in lines[0] and "digits" in lines[0] and "mnist5k" in lines[0]
    assert not out.exists()


def test_unloadable_dataset_skips_class_distribution_with_a_note(runs, tmp_path):
    run = tmp_path / "tfds_run"
    shutil.copytree(runs[0], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["dataset"]["name"] = "cifar10"
    (run / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "jaxal.report_html", str(run), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "class distribution skipped" in r.stdout
    page = (out / "index.html").read_text()
    assert "cifar10" in page and "neither bundled" in page
    assert not (out / "class_distribution.png").exists()
    assert '<img id="fig-overlap"' in page and '<img id="fig-learning_curves"' in page
    assert "All strategies on one axis" in page  # one run: no facets
    labels = [r["label"] for r in _read_csv(out / "summary.csv")]
    assert labels == ["random", "entropy", "margin"]  # one run: no run-name suffix


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)"
)
def test_html_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    html = report / "index.html"
    png = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            f"file://{html}",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert png.exists(), "chromium wrote no screenshot"
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1280)
    non_white = (img.min(axis=2) < 245).mean()
    assert non_white > 0.05, non_white
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200  # plots, not just text
    # the learning curves' first strategy is drawn in tab10 blue (31, 119, 180)
    blue = (np.abs(img - [31, 119, 180]).max(axis=2) < 40).sum()
    assert blue > 200, blue
    page = html.read_text()
    for name in FIGURES:
        assert f'<img id="fig-{name}"' in page
