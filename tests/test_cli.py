"""End to end: the CLI runs a real experiment on bundled data and writes every output."""

import csv
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_smoke_run_writes_results_and_refuses_to_overwrite(tmp_path):
    work = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "jaxal",
        "--config=configs/digits.py:smoke",
        f"--workdir={work}",
        "--config.num_seeds=3",
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mean ± std over 3 seeds" in " ".join(r.stdout.split())  # the per-round table

    config = json.loads((work / "config.json").read_text())
    assert config["num_seeds"] == 3 and config["strategy"] == "random,entropy"

    with open(work / "results.csv") as f:
        rows = list(csv.DictReader(f))
    need = {
        "strategy",
        "seed",
        "round",
        "num_labeled",
        "test_accuracy",
        "test_nll",
        "train_seconds",
        "score_seconds",
        "select_seconds",
    }
    assert need <= set(rows[0])
    # 2 strategies x 3 seeds x 4 rounds (20 -> 30 -> 40 -> 50 labels)
    assert len(rows) == 2 * 3 * 4
    assert sorted({int(r["num_labeled"]) for r in rows}) == [20, 30, 40, 50]
    accs = np.array([float(r["test_accuracy"]) for r in rows])
    assert ((0 <= accs) & (accs <= 1)).all() and accs.mean() > 0.3  # learned something

    z = np.load(work / "labeled_indices.npz")
    np.testing.assert_array_equal(z["seeds"], [0, 1, 2])
    for strategy in ("random", "entropy"):
        order, rnd = z[f"{strategy}/order"], z[f"{strategy}/round"]
        assert order.shape == (3, 50) and rnd.shape == (3, 50)
        for s in range(3):
            assert len(set(order[s])) == 50 and order[s].min() >= 0
        assert (rnd[:, :20] == 0).all() and (rnd[:, 40:] == 3).all()
    # Both strategies start from the same class-balanced initial pool per seed.
    np.testing.assert_array_equal(z["random/order"][:, :20], z["entropy/order"][:, :20])
    assert (work / "learning_curve.png").stat().st_size > 10_000

    # TensorBoard curves (the `tensorboard` package is in the test extra).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for strategy in ("random", "entropy"):
        acc = EventAccumulator(str(work / "tensorboard" / strategy))
        acc.Reload()
        events = acc.Scalars("test_accuracy/mean")
        assert [e.step for e in events] == [20, 30, 40, 50]
        want = [
            np.mean(
                [
                    float(r["test_accuracy"])
                    for r in rows
                    if r["strategy"] == strategy and int(r["num_labeled"]) == n
                ]
            )
            for n in (20, 30, 40, 50)
        ]
        np.testing.assert_allclose([e.value for e in events], want, rtol=1e-5)

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr
