"""The hyperparameter grid as an array axis (``config.grid``).

A (setting, seed) lane of a grid run must get exactly the labeled pools and
metrics of a run of that seed alone with the setting in ``config.train``.
"""

import csv
import os

import numpy as np
import pytest
from conftest import TIMING, tiny_config

from jaxal import grid as grid_lib
from jaxal.experiment import run_experiment
from jaxal.settings import TrainSettings

GRID = "learning_rate=0.05,weight_decay=0.0005;learning_rate=0.01,momentum=0.0"
# What each setting means when run alone (sgd; the rest of train.* as in BASE).
ALONE = [
    {"train.learning_rate": 0.05, "train.weight_decay": 0.0005},
    {"train.learning_rate": 0.01, "train.momentum": 0.0},
]
BASE = dict(
    {"train.optimizer": "sgd", "train.momentum": 0.9, "train.schedule": "cosine"},
    strategy="entropy",
    num_seeds=2,
)


def _rows(workdir):
    with open(os.path.join(workdir, "results.csv")) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _pools(workdir):
    with np.load(os.path.join(workdir, "labeled_indices.npz")) as z:
        return {k: z[k] for k in z.files}


def test_parse_names_and_lanes():
    settings = grid_lib.parse(GRID)
    assert settings == (
        (("learning_rate", 0.05), ("weight_decay", 0.0005)),
        (("learning_rate", 0.01), ("momentum", 0.0)),
    )
    train = TrainSettings(optimizer="sgd", learning_rate=0.1, weight_decay=0.0, momentum=0.9)
    lanes = grid_lib.Lanes.of([7, 8, 9], train, settings)
    assert len(lanes) == 6
    assert lanes.seed.tolist() == [7, 8, 9, 7, 8, 9]  # setting-major
    assert lanes.setting.tolist() == [0, 0, 0, 1, 1, 1]
    hp = lanes.hparams()
    # unset keys come from config.train
    assert hp["learning_rate"].tolist() == pytest.approx([0.05] * 3 + [0.01] * 3)
    assert hp["weight_decay"].tolist() == pytest.approx([0.0005] * 3 + [0.0] * 3)
    assert hp["momentum"].tolist() == pytest.approx([0.9] * 3 + [0.0] * 3)
    assert lanes.names == (
        "learning_rate=0.05,weight_decay=0.0005",
        "learning_rate=0.01,momentum=0.0",
    )
    assert grid_lib.parse("") == () and grid_lib.parse(None) == ()


@pytest.mark.parametrize("execution,step_loop", [("loop", "device"), ("vmap", "host")])
def test_each_lane_equals_its_setting_run_alone(execution, step_loop, tmp_path):
    grid_dir = str(tmp_path / "grid")
    run_experiment(
        tiny_config(**BASE, grid=GRID, seed_execution=execution, **{"train.step_loop": step_loop}),
        grid_dir,
        progress=False,
    )
    rows, pools = _rows(grid_dir), _pools(grid_dir)
    names = [grid_lib.name(s) for s in grid_lib.parse(GRID)]
    assert {r["setting"] for r in rows} == set(names)
    assert len(rows) == 2 * 2 * 4  # settings x seeds x rounds
    by_setting = [[r["test_nll"] for r in rows if r["setting"] == n] for n in names]
    assert by_setting[0] != by_setting[1]  # the settings really train differently
    for name, alone in zip(names, ALONE, strict=True):
        one_dir = str(tmp_path / name)
        run_experiment(
            tiny_config(
                **{**BASE, **alone, "train.step_loop": step_loop}, seed_execution=execution
            ),
            one_dir,
            progress=False,
        )
        mine = [
            {k: v for k, v in r.items() if k not in ("setting", *grid_lib.GRID_KEYS)}
            for r in rows
            if r["setting"] == name
        ]
        # same labeled pools, accuracies, NLL and epochs, to the printed digit
        assert mine == _rows(one_dir)
        # the setting's values are columns of its rows
        values = grid_lib.hyperparameters(
            TrainSettings(optimizer="sgd", learning_rate=1e-3, momentum=0.9),
            dict(alone_keys(alone)),
        )
        for r in rows:
            if r["setting"] == name:
                for k in grid_lib.GRID_KEYS:
                    assert float(r[k]) == pytest.approx(values[k])
        alone_pools = _pools(one_dir)
        for label in ("entropy",):
            np.testing.assert_array_equal(
                pools[f"{label}@{name}/order"], alone_pools[f"{label}/order"]
            )
            np.testing.assert_array_equal(
                pools[f"{label}@{name}/round"], alone_pools[f"{label}/round"]
            )
        np.testing.assert_array_equal(pools["seeds"], alone_pools["seeds"])


def alone_keys(alone):
    return {k.removeprefix("train."): v for k, v in alone.items()}.items()
