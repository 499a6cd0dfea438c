"""The open doors, end to end: your own data (npz file, Python arrays), your own
Flax module (import path, Python object), strategies with their own parameters,
and budget / num_rounds from the command line."""

import csv
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import config as config_lib
from jaxal import data as data_lib
from jaxal.experiment import run_experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USERMOD = textwrap.dedent(
    """
    import flax.linen as nn


    class Net(nn.Module):
        num_classes: int
        width: int = 16
        dropout: float = 0.0

        @nn.compact
        def __call__(self, x, train):
            x = x.reshape((x.shape[0], -1))
            h = nn.relu(nn.Dense(self.width)(x))
            z = nn.Dropout(self.dropout, deterministic=not train)(h)
            return nn.Dense(self.num_classes)(z), h


    def make(num_classes, width=16, dropout=0.0):
        return Net(num_classes, width, dropout)
    """
)


class PyNet(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train):
        h = nn.relu(nn.Dense(12)(x.reshape((x.shape[0], -1))))
        z = nn.Dropout(0.3, deterministic=not train)(h)
        return nn.Dense(self.num_classes)(z), h


def _digits_npz(path, dtype=np.uint8):
    ds = data_lib.load_bundled("digits")
    scale = 16 if dtype == np.uint8 else 1.0
    x_tr = np.round(ds.x_train * scale).astype(dtype)
    x_te = np.round(ds.x_test * scale).astype(dtype)
    np.savez(path, x_train=x_tr, y_train=ds.y_train, x_test=x_te, y_test=ds.y_test)
    return ds


def _small(**over):
    over = {"num_seeds": 1, "budget": 20, "train.epochs": 2, "checkpoint.enabled": False, **over}
    return tiny_config(**over)


def _rows_by(rows, key="strategy"):
    out = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def test_npz_dataset_runs_and_matches_the_same_arrays_given_from_python(tmp_path):
    path = tmp_path / "mine.npz"
    _digits_npz(path)
    rows_npz = run_experiment(
        _small(**{"dataset.name": f"npz:{path}"}), str(tmp_path / "a"), progress=False
    )
    f = np.load(path)
    ds = data_lib.from_arrays(f["x_train"], f["y_train"], f["x_test"], f["y_test"], name="mine")
    rows_py = run_experiment(_small(), str(tmp_path / "b"), progress=False, dataset=ds)
    assert [r["num_labeled"] for r in rows_npz] == [10, 15, 20]
    keep = ("num_labeled", "test_accuracy", "test_nll")
    assert [[r[k] for k in keep] for r in rows_npz] == [[r[k] for k in keep] for r in rows_py]
    a = np.load(tmp_path / "a" / "labeled_indices.npz")
    b = np.load(tmp_path / "b" / "labeled_indices.npz")
    np.testing.assert_array_equal(a["entropy/order"], b["entropy/order"])


def test_npz_feature_pool_of_flat_vectors_runs(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6)) * 4
    y_tr, y_te = rng.integers(0, 3, 300), rng.integers(0, 3, 90)
    x_tr = (centers[y_tr] + rng.normal(size=(300, 6))).astype(np.float16)
    x_te = (centers[y_te] + rng.normal(size=(90, 6))).astype(np.float16)
    path = tmp_path / "feat.npz"
    np.savez(path, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    config = _small(**{"dataset.name": f"npz:{path}", "strategy": "margin,coreset",
                       "train.epochs": 30, "train.learning_rate": 1e-2})
    rows = run_experiment(config, str(tmp_path / "w"), progress=False)
    last = [r for r in rows if r["num_labeled"] == 20]
    assert {r["strategy"] for r in last} == {"margin", "coreset"}
    assert all(r["test_accuracy"] > 0.8 for r in last), last  # well-separated clusters


def test_bad_npz_is_one_line_before_anything_is_written(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((5, 3)), y_train=np.arange(4), x_test=np.zeros((2, 3)),
             y_test=np.zeros(2, int))
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(_small(**{"dataset.name": f"npz:{path}"}), str(tmp_path / "w"))
    assert "npz:" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "w").exists()


def test_own_flax_module_by_import_path_and_from_python(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(USERMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    over = {"model.name": "mymodels:make", "model.hidden": None, "strategy": "margin,badge"}
    rows = run_experiment(_small(**over), str(tmp_path / "a"), progress=False)
    assert {r["strategy"] for r in rows} == {"margin", "badge"}
    assert max(r["num_labeled"] for r in rows) == 20
    # The same module given as an object trains exactly the same.
    import mymodels

    rows_obj = run_experiment(
        _small(strategy="margin,badge"), str(tmp_path / "b"), progress=False,
        model=mymodels.Net(10),
    )
    assert [r["test_accuracy"] for r in rows] == [r["test_accuracy"] for r in rows_obj]


def test_own_module_is_validated_like_a_builtin(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(USERMOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(
            _small(**{"model.name": "mymodels:make", "model.hidden": (8,)}), str(tmp_path / "w")
        )
    assert "config.model.hidden" in str(e.value) and "width" in str(e.value)
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(_small(**{"model.name": "nosuchmod:make"}), str(tmp_path / "w"))
    assert "nosuchmod" in str(e.value) and "\n" not in str(e.value)
    # MC head mode needs a backbone/head split a user module does not have.
    over = {"model.name": "mymodels:make", "model.hidden": None, "model.dropout": 0.5,
            "strategy": "bald", "mc.mode": "head"}
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(_small(**over), str(tmp_path / "w"))
    assert "config.mc.mode" in str(e.value) and "full" in str(e.value)
    assert not (tmp_path / "w").exists()


def test_python_module_with_bald_through_mc_full(tmp_path):
    over = {"strategy": "random,bald", "mc.samples": 3, "model.dropout": None}
    rows = run_experiment(_small(**over), str(tmp_path / "w"), progress=False, model=PyNet)
    assert {r["strategy"] for r in rows} == {"random", "bald"}


def test_two_differently_parameterised_strategies_in_one_run(tmp_path):
    spec = "subsample(base=entropy,m=300),wide=subsample(base=margin,m=900)"
    rows = run_experiment(_small(strategy=spec), str(tmp_path / "both"), progress=False)
    by = _rows_by(rows)
    assert list(by) == ["subsample(base=entropy,m=300)", "wide"]
    # Each equals the strategy run alone in the older flat form.
    for label, base, m in [("subsample(base=entropy,m=300)", "entropy", 300),
                           ("wide", "margin", 900)]:
        alone = _small(strategy="subsample", **{"strategy_params.base": base,
                                                "strategy_params.m": m})
        rows1 = run_experiment(alone, str(tmp_path / label), progress=False)
        keep = ("num_labeled", "test_accuracy", "test_nll")
        assert [[r[k] for k in keep] for r in by[label]] == [[r[k] for k in keep] for r in rows1]
    npz = np.load(tmp_path / "both" / "labeled_indices.npz")
    assert not np.array_equal(npz["wide/order"], npz["subsample(base=entropy,m=300)/order"])


@pytest.mark.parametrize(
    "strategy,words",
    [
        ("random,random", ["listed twice", "random"]),
        ("subsample(base=entropy,mm=3)", ["no parameter 'mm'", "allowed"]),
        ("subsample(base=entropy,m)", ["needs a value"]),
        ("bogus(m=1)", ["config.strategy", "allowed"]),
    ],
)
def test_bad_strategy_lists_are_one_line(strategy, words, tmp_path):
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(_small(strategy=strategy), str(tmp_path / "w"))
    msg = str(e.value)
    assert all(w in msg for w in words) and "\n" not in msg, msg


def test_apply_overrides_budget_and_num_rounds_last_one_wins():
    c = tiny_config()  # sets budget=25
    config_lib.apply_overrides(c, {"num_rounds": 2})
    assert c.budget is None and c.num_rounds == 2
    config_lib.apply_overrides(c, {"budget": 30})
    assert c.budget == 30 and c.num_rounds is None


def _cli(tmp_path, name, *extra):
    work = tmp_path / name
    cmd = [sys.executable, "-m", "jaxal", "--config=configs/digits.py:smoke", f"--workdir={work}",
           "--config.num_seeds=1", "--config.strategy=random", "--config.train.epochs=1",
           "--no_progress", *extra]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(work / "results.csv") as f:
        return [int(row["num_labeled"]) for row in csv.DictReader(f)]


def test_cli_num_rounds_on_a_budget_config_and_the_reverse(tmp_path):
    # digits:smoke sets budget=50 (20 -> 50 in steps of 10); the last flag wins.
    assert _cli(tmp_path, "a", "--config.num_rounds=1") == [20, 30]
    assert _cli(tmp_path, "b", "--config.num_rounds=1", "--config.budget=40") == [20, 30, 40]
    assert _cli(tmp_path, "c", "--config.budget=None", "--config.num_rounds", "2") == [20, 30, 40]
