"""Cost to reach a target accuracy and class counts of acquired labels, on a
hand-made workdir in the layout jaxal/workdir.py writes."""

import csv
import json
import os

import numpy as np
import pytest

from jaxal.reporting import cost
from jaxal.reporting.analysis import make_series
from jaxal.reporting.runs import load_run

COLUMNS = (
    "strategy,seed,round,num_labeled,test_accuracy,test_nll,train_epochs,train_accuracy,"
    "diverged,train_seconds,eval_seconds,score_seconds,select_seconds"
).split(",")
ACC = {  # strategy -> seed -> accuracy per round; 10 labels + 10 per round
    "random": {0: [0.2, 0.3, 0.4, 0.5], 1: [0.2, 0.4, 0.4, 0.6]},  # mean .2 .35 .4 .55
    "margin": {0: [0.2, 0.5, 0.6, 0.7], 1: [0.2, 0.3, 0.6, 0.7]},  # mean .2 .4 .6 .7
}
# pool labels (3 classes) and what each strategy labeled: order [S, budget], round [S, budget]
Y = np.array([0, 1, 2, 0, 1, 2, 0, 0, 0, 1, 2, 2])
ORDERS = {
    "random": (
        [[0, 1, 2, 3, 4, 5], [0, 1, 9, 10, 11, -1]],
        [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, -1]],
    ),
    "margin": (
        [[0, 1, 6, 7, 8, 3], [0, 1, 6, 7, 11, -1]],
        [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, -1]],
    ),
}


def _workdir(tmp_path, dataset_name="digits"):
    w = tmp_path / "run"
    w.mkdir()
    config = {
        "strategy": "random,margin",
        "seed": 0,
        "num_seeds": 2,
        "query_size": 10,
        "budget": 40,
        "num_rounds": None,
        "dataset": {
            "name": dataset_name,
            "normalize": "standardize",
            "pool_size": None,
            "val_size": 0,
            "imbalance_factor": 1.0,
            "data_seed": 0,
            "data_dir": None,
            "download": False,
        },
    }
    (w / "config.json").write_text(json.dumps(config))
    with open(w / "results.csv", "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=COLUMNS)
        out.writeheader()
        for strategy, seeds in ACC.items():
            for rd in range(4):
                for seed, acc in seeds.items():
                    row = dict.fromkeys(COLUMNS, "0")
                    row.update(strategy=strategy, seed=seed, round=rd, num_labeled=10 + 10 * rd)
                    row["test_accuracy"] = f"{acc[rd]:.6g}"
                    out.writerow(row)
    arrays = {"seeds": np.array([0, 1])}
    for s, (order, rnd) in ORDERS.items():
        arrays[f"{s}/order"] = np.array(order, np.int32)
        arrays[f"{s}/round"] = np.array(rnd, np.int64)
    np.savez(w / "labeled_indices.npz", **arrays)
    (w / "DONE").write_text("finished\n")
    return str(w)


def test_report_table_4_3_is_reproduced():
    # SqueezeNet 1.1 / CIFAR-10: n_start 100 x 10 classes, eta 100; ResNet18 / EMNIST: 50 x 62, 1000
    want = {
        (100, 10, 100, 1): (1015, 1030, 1060),
        (100, 10, 100, 11): (2165, 2330, 2660),
        (50, 62, 1000, 3): (5145, 5190, 5280),
        (50, 62, 1000, 7): (9205, 9310, 9520),
    }
    for (n, c, eta, k), costs in want.items():
        for lam, w in zip(cost.REPORT_LAMBDAS, costs, strict=True):
            assert cost.report_cost(n, c, eta, k, lam) == w
            # the same from the labels the K-th model trained on and K
            assert cost.total_cost(n * c + (k - 1) * eta, k, lam) == w
    assert cost.total_cost(30, 3, 15, c_l=2.0) == 2 * (30 + 45)


def test_first_round_reaching_uses_the_mean_over_seeds(tmp_path):
    run = load_run(_workdir(tmp_path))
    by = {s.strategy: s for s in make_series([run])}
    got = cost.first_round_reaching(by["random"].rows, 0.38)
    assert (got.round, got.rounds_trained, got.labels) == (2, 3, 30.0)
    assert got.accuracy == pytest.approx(0.4)
    assert cost.first_round_reaching(by["margin"].rows, 0.38).round == 1
    assert cost.first_round_reaching(by["random"].rows, 0.65).round is None
    with pytest.raises(cost.ReportError, match="val2_accuracy"):
        cost.first_round_reaching(by["random"].rows, 0.5, metric="val2_accuracy")


def test_cost_table_by_hand(tmp_path):
    run = load_run(_workdir(tmp_path))
    rows = cost.cost_rows(make_series([run]), targets=[0.38, 0.65], lambdas=(15, 30, 60))
    r = {(x["target"], x["strategy"]): x for x in rows}
    a = r[(0.38, "random")]  # round 2: 30 labels, K = 3
    assert (a["rounds_trained"], a["labels"]) == (3, 30.0)
    assert (a["cost_lambda_15"], a["cost_lambda_30"], a["cost_lambda_60"]) == (75, 120, 210)
    # per seed: seed 0 reaches at round 2 (75), seed 1 at round 1 (20 + 2 * 15 = 50)
    assert a["seeds_reached"] == 2 and a["cost_lambda_15_seed_mean"] == 62.5
    b = r[(0.38, "margin")]  # round 1: 20 labels, K = 2
    assert (b["cost_lambda_15"], b["cost_lambda_30"], b["cost_lambda_60"]) == (50, 80, 140)
    c = r[(0.65, "random")]
    assert c["cost_lambda_15"] == cost.NOT_REACHED and c["seeds_reached"] == 0
    assert r[(0.65, "margin")]["cost_lambda_60"] == 40 + 4 * 60
    scaled = cost.cost_rows(make_series([run]), [0.38], (15,), c_l=2.0)
    assert [x["cost_lambda_15"] for x in scaled] == [150, 100]

    out = tmp_path / "out"
    got = cost.analyse([run.path], str(out), [0.38, 0.65], (15, 30, 60), pool_labels=Y)
    md = (out / "cost.md").read_text()
    assert "| 0.65 | random | not reached | not reached | not reached |" in md
    assert "| 0.38 | margin | 2 | 20 | 50 (seeds: 62, 2/2) | 80" in md
    with open(out / "cost.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["cost_lambda_30"] for t in table] == ["120.0", "80.0", "not reached", "160.0"]
    assert os.path.exists(got["written"][-1]) and got["written"][-1].endswith(".png")


def test_class_counts_of_acquired_labels(tmp_path):
    run = load_run(_workdir(tmp_path))
    # random: seed 0 acquired 2,3,4,5 -> classes 2,0,1,2; seed 1 acquired 9,10,11 -> 1,2,2
    np.testing.assert_array_equal(cost.class_counts(run, "random", Y), [[1, 1, 2], [0, 1, 2]])
    # margin: seed 0 acquired 6,7,8,3 -> 0,0,0,0; seed 1 acquired 6,7,11 -> 0,0,2
    np.testing.assert_array_equal(cost.class_counts(run, "margin", Y), [[4, 0, 0], [2, 0, 1]])
    np.testing.assert_array_equal(
        cost.class_counts(run, "margin", Y, include_initial=True), [[5, 1, 0], [3, 1, 1]]
    )
    counts = cost.class_count_rows(make_series([run]), pool_labels=Y)
    table = cost.class_table(counts, class_names=["a", "b", "c"])
    first = [r for r in table.raw if r["strategy"] == "margin"][0]
    assert (first["class"], first["mean_count"], first["fraction"]) == ("a", 3.0, 3.0 / 3.5)
    png = tmp_path / "classes.png"
    assert cost.plot_class_distribution(str(png), counts, "random", top=2) == ["margin"]
    assert png.stat().st_size > 1000
    with pytest.raises(cost.ReportError, match="beyond"):
        cost.class_counts(run, "random", Y[:5])


def test_pool_labels_are_loaded_from_an_npz_dataset(tmp_path):
    ds = tmp_path / "pool.npz"
    rng = np.random.default_rng(0)
    np.savez(
        ds,
        x_train=rng.normal(size=(12, 2, 2, 1)).astype(np.float32),
        y_train=Y,
        x_test=rng.normal(size=(3, 2, 2, 1)).astype(np.float32),
        y_test=np.array([0, 1, 2]),
    )
    run = load_run(_workdir(tmp_path, dataset_name=f"npz:{ds}"))
    notes = []
    counts = cost.class_count_rows(make_series([run]), notes=notes)
    assert notes == []
    np.testing.assert_array_equal(counts["margin"], [[4, 0, 0], [2, 0, 1]])
    assert cost.main([run.path, "--out", str(tmp_path / "o"), "--targets", "0.38"]) == 0
    assert (tmp_path / "o" / "class_distribution.png").exists()
