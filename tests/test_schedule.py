"""The round loop of the Sherbrooke report: two validation splits, stopping at
the active-learning level (``stop.patience``) and the adaptive labeling rate
(``labeling_rate.schedule=adaptive``, Algorithm 1), checked against the
rules re-derived by hand from each run's own recorded metrics."""

import csv
import math
import os

import numpy as np
from conftest import tiny_config

from jaxal import data as data_lib
from jaxal.experiment import run_experiment


def _rows(workdir):
    with open(os.path.join(workdir, "results.csv")) as f:
        return list(csv.DictReader(f))


def _by_seed(rows):
    out = {}
    for r in rows:
        out.setdefault(int(r["seed"]), []).append(r)
    return {s: sorted(v, key=lambda r: int(r["round"])) for s, v in out.items()}


def test_two_validation_splits_are_disjoint_stratified_and_leave_the_pool():
    cfg = tiny_config(**{"dataset.val_size": 100, "dataset.val2_size": 200}).dataset
    cfg.normalize = "none"
    ds = data_lib.load(cfg)
    raw = data_lib.load(tiny_config(**{"dataset.normalize": "none"}).dataset)
    assert len(ds.y_val) == 100 and len(ds.y_val2) == 200
    assert len(ds.y_train) == len(raw.y_train) - 300
    # every example ends up in exactly one of pool / val / val2 (rows are unique images)
    key = lambda x: {a.tobytes() for a in x}  # noqa: E731
    pool, v1, v2 = key(ds.x_train), key(ds.x_val), key(ds.x_val2)
    assert not (pool & v1) and not (pool & v2) and not (v1 & v2)
    assert len(pool | v1 | v2) == len(key(raw.x_train))
    # stratified: each class's share of split 2 is within one example of its pool share
    share = np.bincount(raw.y_train, minlength=10) / len(raw.y_train)
    assert np.all(np.abs(np.bincount(ds.y_val2, minlength=10) - 200 * share) <= 1.0)


def test_validation_accuracies_are_reported_per_round(tmp_path):
    rows = run_experiment(
        tiny_config(**{"dataset.val_size": 60, "dataset.val2_size": 80}),
        str(tmp_path / "a"),
        progress=False,
    )
    for r in rows:
        # accuracies on 60 and 80 examples: multiples of 1/60 and 1/80
        assert abs(r["val_accuracy"] * 60 - round(r["val_accuracy"] * 60)) < 1e-3
        assert abs(r["val2_accuracy"] * 80 - round(r["val2_accuracy"] * 80)) < 1e-3
    none = run_experiment(tiny_config(num_seeds=1), str(tmp_path / "b"), progress=False)
    assert all(math.isnan(r["val_accuracy"]) and math.isnan(r["val2_accuracy"]) for r in none)


def test_al_patience_stops_each_seed_by_the_rule(tmp_path):
    w = str(tmp_path / "w")
    run_experiment(
        tiny_config(
            num_seeds=3,
            budget=60,
            **{"dataset.val2_size": 40, "stop.patience": 1, "train.epochs": 2},
        ),
        w,
        progress=False,
    )
    stopped_early = 0
    for seed, rows in _by_seed(_rows(w)).items():
        val2 = [float(r["val2_accuracy"]) for r in rows]
        # by hand: the first round r >= 1 whose val2 does not beat the best before it
        want = next((r for r in range(1, 11) if r < len(val2) and val2[r] <= max(val2[:r])), None)
        if want is None:  # never stopped: all 11 rounds (10 -> 60 in steps of 5)
            assert len(rows) == 11, seed
        else:
            stopped_early += 1
            assert len(rows) == want + 1, (seed, val2)  # no rows after the stop
            assert rows[-1]["stopped"] == "1" and rows[-1]["queried"] == "0"
        assert all(r["stopped"] == "0" for r in rows[:-1])
        for a, b in zip(rows, rows[1:], strict=False):  # labels grow by what was queried
            assert int(b["num_labeled"]) == int(a["num_labeled"]) + int(a["queried"])
    assert stopped_early >= 1  # else the test shows nothing
    with np.load(os.path.join(w, "labeled_indices.npz")) as z:
        order = z["entropy/order"]
    for i, (_seed, rows) in enumerate(sorted(_by_seed(_rows(w)).items())):
        assert int((order[i] >= 0).sum()) == int(rows[-1]["num_labeled"])


def _algorithm_1(k_prev, a_prev, a, eps, g, big_r):
    delta = max(eps, a - a_prev) / k_prev
    return math.ceil(min(big_r, min(g, 1 - a) / delta) - 1e-9)


def test_adaptive_labeling_rate_follows_algorithm_1(tmp_path):
    w = str(tmp_path / "w")
    q, k0, eps, g = 20, 5, 0.01, 0.05
    run_experiment(
        tiny_config(
            num_seeds=2,
            query_size=q,
            num_rounds=6,
            budget=None,
            **{
                "dataset.val2_size": 80,
                "labeling_rate.schedule": "adaptive",
                "labeling_rate.k0": k0,
                "labeling_rate.epsilon": eps,
                "labeling_rate.g": g,
                "train.epochs": 4,
            },
        ),
        w,
        progress=False,
    )
    sizes = set()
    for rows in _by_seed(_rows(w)).values():
        val2 = [float(r["val2_accuracy"]) for r in rows]
        assert int(rows[0]["queried"]) == k0
        k = k0
        for r in range(1, len(rows) - 1):
            k = min(max(_algorithm_1(k, val2[r - 1], val2[r], eps, g, q), 1), q)
            k = min(k, 10 + 6 * q - int(rows[r]["num_labeled"]))
            assert int(rows[r]["queried"]) == k, (r, val2)
            sizes.add(k)
        for a, b in zip(rows, rows[1:], strict=False):
            assert int(b["num_labeled"]) == int(a["num_labeled"]) + int(a["queried"])
    assert len(sizes) > 1  # the rate did change (else this shows nothing)


def _study_config(variant, **overrides):
    import importlib.util

    from jaxal.config import apply_overrides

    path = os.path.join(
        os.path.dirname(__file__), "..", "experiments", "labeling_rate", "config.py"
    )
    spec = importlib.util.spec_from_file_location("labeling_rate_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return apply_overrides(mod.get_config(variant), overrides)


def test_study_smoke_variants_first_round(tmp_path):
    for variant in ("smoke", "smoke_adaptive", "smoke_l2"):
        cfg = _study_config(variant, num_rounds=0, num_seeds=2, **{"train.epochs": 2})
        rows = run_experiment(cfg, str(tmp_path / variant), progress=False)
        settings = max(cfg.grid.count(";") + 1, 1) if cfg.grid else 1
        assert len(rows) == len(cfg.strategy.split(",")) * settings * 2, variant
        assert all(r["num_labeled"] == 20 for r in rows)  # 2 per class, 10 classes
        assert all(0 <= r["val2_accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1 for r in rows)
    # the full variants are valid configs (their data is not on this machine)
    from jaxal import config as config_lib

    for variant in ("cifar10", "cifar10_adaptive", "cifar10_l2", "cifar10_noaug", "emnist"):
        config_lib.validate(_study_config(variant))


def test_stopping_and_adaptive_rate_resume_exactly(tmp_path, monkeypatch):
    """The per-seed schedule (query size, best metric, patience count, stopped)
    is checkpointed state: stopping mid-run and resuming gives the same run."""
    import signal

    from jaxal import interrupt

    cfg = dict(
        num_seeds=2,
        query_size=20,
        num_rounds=6,
        budget=None,
        strategy="random,entropy",
        **{
            "dataset.val2_size": 80,
            "labeling_rate.schedule": "adaptive",
            "labeling_rate.k0": 5,
            "stop.patience": 2,
            "train.epochs": 3,
        },
    )
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    run_experiment(tiny_config(**cfg), full, progress=False)
    calls = {"n": 0}
    real = interrupt.check

    def stop_at_the_ninth_round():  # entropy's round 2 (random has 7 rounds at most)
        calls["n"] += 1
        if calls["n"] == 9:
            interrupt.request(signal.SIGTERM)
        real()

    monkeypatch.setattr(interrupt, "check", stop_at_the_ninth_round)
    try:
        run_experiment(tiny_config(**cfg), cut, progress=False)
        raise AssertionError("the run was not interrupted")
    except interrupt.Interrupted:
        pass
    finally:
        interrupt._requested.clear()
    monkeypatch.setattr(interrupt, "check", real)
    run_experiment(tiny_config(**cfg), cut, progress=False)
    timing = ("train_seconds", "eval_seconds", "score_seconds", "select_seconds")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert strip(_rows(cut)) == strip(_rows(full))
    with np.load(os.path.join(full, "labeled_indices.npz")) as a:
        with np.load(os.path.join(cut, "labeled_indices.npz")) as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
