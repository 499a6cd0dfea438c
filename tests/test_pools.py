"""Labeled pools out of a finished run and into another (``jaxal.pools`` export,
``initial.strategy=from_file`` import)."""

import json
import os

import numpy as np
import pytest
from conftest import result_rows, tiny_config

from jaxal import pools
from jaxal.experiment import run_experiment

GRID = "learning_rate=0.05,weight_decay=0.0005;learning_rate=0.01,weight_decay=0.005"
SERIES = "entropy@learning_rate=0.01,weight_decay=0.005"
SGD = {"train.optimizer": "sgd", "train.momentum": 0.9, "checkpoint.enabled": False}


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("grid_run"))
    run_experiment(tiny_config(**SGD, grid=GRID, strategy="entropy"), workdir, progress=False)
    return workdir


def _order(workdir, series):
    with np.load(os.path.join(workdir, "labeled_indices.npz")) as z:
        return z[f"{series}/order"], z["seeds"]


def test_export_then_import_round_trip(grid_run, tmp_path):
    path = str(tmp_path / "pool.npy")
    out = pools.export(grid_run, SERIES, 15, path)
    order, seeds = _order(grid_run, SERIES)
    saved = np.load(path)
    assert saved.dtype == np.int32 and saved.shape == (2, 15)  # [S, num_labels]
    np.testing.assert_array_equal(saved, order[:, :15])  # first 15, acquisition order
    np.testing.assert_array_equal(out, saved)
    with open(str(tmp_path / "pool.json")) as f:
        meta = json.load(f)
    assert meta["series"] == SERIES and meta["seeds"] == seeds.tolist()
    assert meta["num_labels"] == 15 and meta["dataset"]["name"] == "digits"

    # Import: another model (a wider MLP, adam) starts from the exported pool
    # and goes on acquiring.
    other = str(tmp_path / "imported")
    run_experiment(
        tiny_config(
            **{"initial.strategy": "from_file", "initial.file": path, "model.hidden": (32,)},
            strategy="random",
            budget=20,
            **{"checkpoint.enabled": False},
        ),
        other,
        progress=False,
    )
    new_order, new_seeds = _order(other, "random")
    np.testing.assert_array_equal(new_seeds, seeds)
    np.testing.assert_array_equal(new_order[:, :15], saved)  # row i = seed i
    assert (new_order[:, 15:] >= 0).all()  # then acquired as usual
    assert not (set(new_order[0, 15:]) & set(saved[0]))
    rows = result_rows(other)
    assert [int(r["num_labeled"]) for r in rows if r["round"] == "0"] == [15, 15]


def test_list_and_cli(grid_run, tmp_path, capsys):
    names = pools.series_names(grid_run)
    assert names == [f"entropy@{g}" for g in GRID.split(";")]
    path = str(tmp_path / "p.npy")
    rc = pools.main(["export", grid_run, "--series", SERIES, "--labels", "25", "--out", path])
    assert rc == 0 and np.load(path).shape == (2, 25)
    assert "from_file" in capsys.readouterr().out
    assert pools.main(["list", grid_run]) == 0
    assert capsys.readouterr().out.split() == names


@pytest.mark.parametrize(
    "series,labels,out,message",
    [
        ("entropy", 10, "p.npy", "series 'entropy' is not in"),
        (SERIES, 26, "p.npy", "--labels 26 is outside 1..25 (the run's budget)"),
        (SERIES, 0, "p.npy", "--labels 0 is outside"),
        (SERIES, 10, "p.txt", "must end in .npy"),
    ],
)
def test_export_errors_are_one_line(grid_run, tmp_path, capsys, series, labels, out, message):
    argv = ["export", grid_run, "--series", series, "--labels", str(labels)]
    assert pools.main(argv + ["--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("jaxal.pools: error:")


def test_unfinished_run_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(pools.PoolError, match="not finished"):
        pools.load(str(tmp_path), SERIES, 10)
