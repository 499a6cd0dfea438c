"""The hyperparameter study of Huseljic et al. 2023 (experiments/hp_role/): the
configs, the smoke variant's first round, and the re-optimisation command."""

import csv
import importlib.util
import os
import sys

import numpy as np
import pytest
from conftest import tiny_config

from jaxal import config as config_lib
from jaxal.config import apply_overrides
from jaxal.experiment import run_experiment

HERE = os.path.join(os.path.dirname(__file__), "..", "experiments", "hp_role")


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"hp_role_{name}", os.path.join(HERE, f"{name}.py")
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


hp_config = _load("config")
reopt = _load("reoptimize")

GRID = "learning_rate=0.05,weight_decay=0.0005;learning_rate=0.01,weight_decay=0.005"
SETTINGS = ["learning_rate=0.05,weight_decay=0.0005", "learning_rate=0.01,weight_decay=0.005"]
SGD = {"train.optimizer": "sgd", "train.momentum": 0.9, "checkpoint.enabled": False}


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_full_and_fig1_follow_the_protocol():
    full, fig1 = hp_config.get_config("full"), hp_config.get_config("fig1")
    for c in (full, fig1):
        config_lib.validate(c)
        s = config_lib.settings(c)
        assert (c.dataset.name, c.model.name, c.num_seeds) == ("cifar10", "resnet18", 3)
        assert (c.initial.strategy, c.initial.size, c.query_size, c.budget) == (
            "random",
            100,
            100,
            4000,
        )
        t = s.train
        assert (t.optimizer, t.momentum, t.epochs, t.batch_size) == ("sgd", 0.9, 200, 32)
        assert (t.schedule, t.warmup_epochs, t.warmup_start) == ("cosine", 10, 0.01)
        assert (t.crop_padding, t.flip, t.reinit) == (4, True, True)
    grid = [
        tuple(dict(g)[k] for k in ("learning_rate", "weight_decay"))
        for g in config_lib.settings(full).grid
    ]
    assert grid == [(0.001, 0.05), (0.01, 0.0005), (0.01, 0.05), (0.1, 0.005)]  # Table 1
    assert len(config_lib.settings(fig1).grid) == 9
    labels = [(x.label, x.name, dict(x.params)) for x in config_lib.settings(full).strategies]
    assert labels[:3] == [
        ("random", "random", {}),
        ("entropy", "entropy", {}),
        ("coreset", "coreset", {}),
    ]
    assert labels[3][:2] == ("badge", "subsample") and labels[3][2]["m"] == 10000
    assert [x.label for x in config_lib.settings(fig1).strategies] == ["random", "badge"]
    with pytest.raises(ValueError, match="allowed: full, fig1, smoke"):
        hp_config.get_config("nope")


def test_smoke_first_round(tmp_path):
    c = apply_overrides(
        hp_config.get_config("smoke"),
        {"budget": 20, "num_devices": 1, "checkpoint.enabled": False},  # round 0 only
    )
    rows = run_experiment(c, str(tmp_path), progress=False)
    assert len(rows) == 4 * 4 * 2  # strategies x settings x seeds, one round
    assert {r["setting"] for r in rows} == {
        f"learning_rate={lr},weight_decay={wd}" for lr, wd in hp_config.TABLE1
    }
    assert {r["num_labeled"] for r in rows} == {20}
    with np.load(tmp_path / "labeled_indices.npz") as z:
        assert z["badge@learning_rate=0.1,weight_decay=0.005/order"].shape == (2, 20)
    by_setting = {}
    for r in rows:
        by_setting.setdefault(r["setting"], set()).add(round(r["test_accuracy"], 6))
    assert len({frozenset(v) for v in by_setting.values()}) == 4  # the settings train differently


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """A finished tiny grid run: 10 -> 25 labels in steps of 5, 2 settings x 2 seeds."""
    workdir = str(tmp_path_factory.mktemp("hp_grid_run"))
    run_experiment(
        tiny_config(**SGD, grid=GRID, strategy="random,entropy"), workdir, progress=False
    )
    return workdir


@pytest.fixture(scope="module")
def reoptimized(grid_run, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reopt"))
    results = reopt.reoptimize(grid_run, [20, 25], out, grid_size=2, progress=False)
    return out, results


def test_reoptimize_writes_table1(grid_run, reoptimized):
    out, results = reoptimized
    table = _csv(os.path.join(out, "table1.csv"))
    assert [(r["labels"], r["strategy"]) for r in table] == [
        ("20", "random"),
        ("20", "entropy"),
        ("25", "random"),
        ("25", "entropy"),
    ]
    for k in (1, 2):
        for c in ("DAL", "re-opt"):
            assert f"HP{k} {c} mean" in table[0] and f"HP{k} {c} std" in table[0]
    md = open(os.path.join(out, "table1.md")).read()
    assert "| \\|L\\| | strategy | HP 1 DAL | HP 1 re-opt | HP 2 DAL | HP 2 re-opt |" in md
    assert "HP 1: lr=0.05, wd=0.0005; HP 2: lr=0.01, wd=0.005" in md

    # DAL = the run's own accuracy at |L|; the chosen setting is a candidate.
    run_rows = _csv(os.path.join(grid_run, "results.csv"))
    cands = reopt.candidates(2, extra=[(0.05, 0.0005), (0.01, 0.005)])
    assert len(cands) == 6 and (1e-5, 1e-5) in cands and (0.1, 0.1) in cands
    assert len(results) == 2 * 2 * 2 * 2  # |L| x strategies x settings x seeds
    for r in results:
        want = [
            float(x["test_accuracy"])
            for x in run_rows
            if (x["strategy"], x["setting"], int(x["seed"]), int(x["num_labeled"]))
            == (r["strategy"], r["setting"], r["seed"], r["labels"])
        ]
        assert r["dal_test_accuracy"] == want[0]
        assert (r["best_learning_rate"], r["best_weight_decay"]) in cands
        assert 0 <= r["reopt_test_accuracy"] <= 1
    mean = np.mean(
        [
            r["dal_test_accuracy"]
            for r in results
            if r["labels"] == 20 and r["strategy"] == "entropy" and r["setting"] == SETTINGS[1]
        ]
    )
    assert float(table[1]["HP2 DAL mean"]) == pytest.approx(100 * mean, abs=1e-3)

    # The chosen setting is the best mean validation accuracy over the splits.
    search = _csv(os.path.join(out, "search.csv"))
    assert len(search) == 2 * 2 * 2 * 2 * 3 * 6  # ... x splits x candidates
    r = results[0]
    mine = [
        x
        for x in search
        if (int(x["labels"]), x["strategy"], x["setting"], int(x["seed"]))
        == (r["labels"], r["strategy"], r["setting"], r["seed"])
    ]
    mean_acc = {}
    for x in mine:
        mean_acc.setdefault((float(x["learning_rate"]), float(x["weight_decay"])), []).append(
            float(x["val_accuracy"])
        )
    best = max(np.mean(v) for v in mean_acc.values())
    assert np.mean(mean_acc[r["best_learning_rate"], r["best_weight_decay"]]) == pytest.approx(best)


def test_validation_splits_are_10_percent_of_the_pool(grid_run, reoptimized):
    out, _ = reoptimized
    with np.load(os.path.join(grid_run, "labeled_indices.npz")) as z:
        order = z[f"entropy@{SETTINGS[0]}/order"]
    with np.load(os.path.join(out, "splits.npz")) as z:
        val = z[f"20/entropy@{SETTINGS[0]}/val"]
    assert val.shape == (2, 3, 2)  # seeds x splits x 10% of 20
    for i in range(2):
        pool = set(order[i, :20].tolist())
        assert len(pool) == 20
        for j in range(3):
            assert len(set(val[i, j])) == 2 and set(val[i, j]) <= pool
        assert len({tuple(v) for v in val[i]}) > 1  # three different random splits
    # Hand check: positions from the documented seeded permutation; train and
    # validation are disjoint and make up the pool.
    pos = reopt.validation_positions(20, seed=1, split=2)
    assert pos.tolist() == sorted(np.random.default_rng((0, 1, 20, 2)).permutation(20)[:2])
    train, v = reopt.split_pool(order[1, :20], pos)
    np.testing.assert_array_equal(v, val[1, 2])
    assert (
        len(train) == 18 and not set(train) & set(v) and set(train) | set(v) == set(order[1, :20])
    )
    assert reopt.num_val(2000, 0.1) == 200 and reopt.num_val(4000, 0.1) == 400


def test_retraining_with_the_dal_setting_reproduces_the_run(grid_run):
    """Same pool, setting and keys as the run's round at |L|: the run's own accuracy."""
    run = reopt.read_run(grid_run)
    cands = reopt.candidates(1, extra=[(0.05, 0.0005)])
    trainer = reopt.Trainer(reopt.search_config(run, 4, cands), 4, 2)
    with np.load(os.path.join(grid_run, "labeled_indices.npz")) as z:
        order = z[f"entropy@{SETTINGS[0]}/order"]
    tasks, want = [], []
    for i, seed in enumerate(run.seeds.tolist()):
        acc, rnd = reopt.dal_accuracy(run, "entropy", SETTINGS[0], seed, 20)
        tasks.append(reopt.Task(f"t{i}", seed, rnd, order[i, :20], 0.05, 0.0005))
        want.append(acc)
    acc, _, diverged = trainer(tasks)
    np.testing.assert_allclose(acc, want, atol=1e-6)  # results.csv prints 6 digits
    assert not diverged.any()


def test_rerun_resumes_and_other_settings_are_refused(grid_run, reoptimized):
    out, results = reoptimized
    again = reopt.reoptimize(grid_run, [20, 25], out, grid_size=2, progress=False)
    assert again == results  # every training read back from tasks.jsonl
    with pytest.raises(reopt.ReoptError, match="other settings"):
        reopt.reoptimize(grid_run, [20, 25], out, grid_size=3, progress=False)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--labels", "30"], "--labels 30 is outside 1..25 (the run's budget)"),
        (["--labels", "22"], "has no round with 22 labels"),
        (["--labels", "5"], "need at least one point on each side"),
        (["--labels", "20", "--set", "train.epoch=3"], "has no key 'train.epoch'"),
        (["--labels", "20", "--set", "train.epochs=0"], "config.train.epochs=0 is invalid"),
    ],
)
def test_bad_arguments_are_one_line(grid_run, tmp_path, capsys, args, message):
    out = str(tmp_path / "out")
    rc = reopt.main([grid_run, *args, "--out", out, "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not os.path.exists(out)  # refused before anything is written


def test_runs_without_a_grid_or_unfinished_are_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"grid": ""}')
    with pytest.raises(reopt.ReoptError, match="not finished"):
        reopt.read_run(str(tmp_path))
    (tmp_path / "DONE").write_text("")
    with pytest.raises(reopt.ReoptError, match="no hyperparameter grid"):
        reopt.read_run(str(tmp_path))
