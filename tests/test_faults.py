"""Nothing lost, nothing garbage: signals, concurrent runs, divergence, disk
trouble, torn writes and hostile configs, on real runs of the smoke configs."""

import csv
import errno
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import result_rows, smoke_cmd, tiny_config

from jaxal import config as config_lib
from jaxal import report
from jaxal.assemble import assemble
from jaxal.experiment import DiskError, WorkdirError, run_experiment
from jaxal.loop import init_state
from jaxal.rng import Purpose, derive
from jaxal.strategies.base import masked_top_k

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_cmd, _rows = smoke_cmd, result_rows


def _start(workdir):
    return subprocess.Popen(
        _cmd(workdir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(p, marker: str):
    deadline = time.time() + 120
    for line in p.stdout:
        if marker in line:
            return
        assert time.time() < deadline, "run did not reach the marker"
    raise AssertionError(f"run ended before {marker!r}")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The uninterrupted reference run."""
    work = tmp_path_factory.mktemp("full") / "run"
    r = subprocess.run(_cmd(work), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return work


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly_in_one_line_and_resumes_bit_identically(tmp_path, full, sig, status):
    work = tmp_path / "w"
    p = _start(work)
    _wait_for(p, "margin r1 ")
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == status, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "rerun the same command to resume" in lines[0], err[-2000:]
    assert signal.Signals(sig).name in lines[0] and "Traceback" not in err
    assert not (work / "DONE").exists()
    before = _rows(work)  # complete, parseable, and a prefix of the full run
    assert before == _rows(full)[: len(before)]
    if sig == signal.SIGINT:
        return  # resuming after a stop is the same for both signals: checked once
    r = subprocess.run(_cmd(work), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _rows(work) == _rows(full)
    a, b = np.load(full / "labeled_indices.npz"), np.load(work / "labeled_indices.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


def test_second_run_on_a_busy_workdir_refuses_at_once_and_the_first_is_unharmed(tmp_path, full):
    work = tmp_path / "w"
    first = _start(work)
    _wait_for(first, "random r0 ")
    # Freeze the first run while the second tries: a smoke run can finish
    # before a second interpreter has imported jax, and a frozen process still
    # holds its lock, so the test does not race the machine's speed.
    first.send_signal(signal.SIGSTOP)
    t0 = time.time()
    try:
        second = subprocess.run(_cmd(work), cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    first.communicate(timeout=180)
    assert first.returncode == 0
    assert _rows(work) == _rows(full)
    assert time.time() - t0 < 170


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / ".jaxal.lock").write_text('{"host": "gone", "pid": 999999}')
    rows = run_experiment(_small(), str(work), progress=False)
    assert rows and (work / "DONE").exists()


def test_workdir_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(WorkdirError, match="is a file"):
        run_experiment(_small(), str(f), progress=False)


def _small(**over):
    over = {"num_seeds": 2, "budget": 20, "train.epochs": 2, **over}
    return tiny_config(**over)


def test_divergence_is_detected_on_device_recorded_and_falls_back_to_random(tmp_path):
    config = _small(**{"train.learning_rate": 1e30, "train.epochs": 6, "strategy": "margin"})
    rows = run_experiment(config, str(tmp_path / "w"), progress=False)
    assert all(r["diverged"] == 1 for r in rows), rows
    assert all(r["train_epochs"] < 6 for r in rows)  # a diverged seed stops training
    with open(tmp_path / "w" / "results.csv") as f:
        assert {r["diverged"] for r in csv.DictReader(f)} == {"1"}
    # The picks are the documented fallback: uniform from the FALLBACK key.
    run = assemble(config)
    engine = run.engine("margin")
    state = init_state(engine, run.seeds, run.data)
    order = np.load(tmp_path / "w" / "labeled_indices.npz")["margin/order"]
    for s in range(2):
        u = jax.random.uniform(derive(state.key[s], 0, Purpose.FALLBACK), (run.plan.num_pool,))
        want = masked_top_k(u, state.labeled[s], run.plan.query_size)
        np.testing.assert_array_equal(order[s, 10:15], np.asarray(want))


def test_a_diverged_seed_does_not_affect_the_others():
    # One seed diverged, the other not, in the same select call.
    run = assemble(_small(strategy="margin"))
    engine = run.engine("margin")
    state = init_state(engine, run.seeds, run.data)
    variables, fm = engine.fit(state, jnp.int32(0), run.data)
    state = state._replace(variables=variables)
    cand, outputs = engine.score(state, jnp.int32(0), run.data)
    take = jnp.full((2,), 5, jnp.int32)  # per lane
    _, healthy = engine.select(state, jnp.int32(0), cand, outputs, take, jnp.array([False, False]))
    _, mixed = engine.select(state, jnp.int32(0), cand, outputs, take, jnp.array([True, False]))
    np.testing.assert_array_equal(np.asarray(mixed)[1], np.asarray(healthy)[1])
    assert not np.array_equal(np.asarray(mixed)[0], np.asarray(healthy)[0])


def test_full_disk_while_writing_results_is_one_error_and_resumes(tmp_path, monkeypatch):
    work = tmp_path / "w"
    reference = run_experiment(_small(), str(tmp_path / "ref"), progress=False)
    calls = []
    real = report.write_csv

    def failing(path, rows):
        calls.append(path)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, rows)

    monkeypatch.setattr(report, "write_csv", failing)
    with pytest.raises(DiskError) as e:
        run_experiment(_small(), str(work), progress=False)
    assert "No space left on device" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setattr(report, "write_csv", real)
    rows = run_experiment(_small(), str(work), progress=False)
    keep = ("strategy", "seed", "round", "num_labeled", "test_accuracy", "test_nll")
    assert [[r[k] for k in keep] for r in rows] == [[r[k] for k in keep] for r in reference]


def test_failed_checkpoint_write_leaves_the_previous_one_usable(tmp_path, monkeypatch):
    from jaxal import checkpoint as checkpoint_lib

    work = tmp_path / "w"
    reference = run_experiment(_small(), str(tmp_path / "ref"), progress=False)
    real = checkpoint_lib.RunCheckpointer.save
    calls = []

    def failing(self, step, state, meta):
        calls.append(step)
        if len(calls) == 2:
            raise OSError(errno.EACCES, "Permission denied")
        real(self, step, state, meta)

    monkeypatch.setattr(checkpoint_lib.RunCheckpointer, "save", failing)
    with pytest.raises(DiskError, match="Permission denied"):
        run_experiment(_small(), str(work), progress=False)
    monkeypatch.setattr(checkpoint_lib.RunCheckpointer, "save", real)
    rows = run_experiment(_small(), str(work), progress=False)
    keep = ("strategy", "seed", "round", "num_labeled", "test_accuracy", "test_nll")
    assert [[r[k] for k in keep] for r in rows] == [[r[k] for k in keep] for r in reference]


_WRITER = r"""
import sys, numpy as np
sys.path.insert(0, {repo!r})
from jaxal import report
from jaxal.workdir import _write_json
rows = [dict(strategy="s", seed=i, round=0, num_labeled=1, test_accuracy=0.5, test_nll=1.0,
             train_epochs=1, train_accuracy=0.5, diverged=0, train_seconds=0.1,
             eval_seconds=0.1, score_seconds=0.1, select_seconds=0.1) for i in range(20000)]
order = np.arange(400000).reshape(4, -1)
print("ready", flush=True)
while True:
    report.write_csv({d!r} + "/results.csv", rows)
    report.write_labeled_indices(
        {d!r} + "/labeled_indices.npz", dict(s=order), dict(s=order), [0, 1, 2, 3]
    )
    _write_json({d!r} + "/config.json", dict(rows=list(range(50000))))
"""


def test_a_kill_at_any_instant_never_leaves_a_torn_result_file(tmp_path):
    import json

    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(repo=REPO, d=str(tmp_path)))
    rng = np.random.default_rng(0)
    for _ in range(8):
        p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.6)))
        p.kill()
        p.wait()
        if (tmp_path / "results.csv").exists():
            with open(tmp_path / "results.csv") as f:
                assert len(list(csv.DictReader(f))) == 20000
        if (tmp_path / "labeled_indices.npz").exists():
            assert np.load(tmp_path / "labeled_indices.npz")["s/order"].shape == (4, 100000)
        if (tmp_path / "config.json").exists():
            assert len(json.loads((tmp_path / "config.json").read_text())["rows"]) == 50000


@pytest.mark.parametrize(
    "overrides,key",
    [
        ({"seed": 2**63}, "config.seed"),
        ({"seed": -1}, "config.seed"),
        ({"dataset.val_size": 5000}, "dataset.val_size"),
        ({"dataset.pool_size": 5000}, "dataset.pool_size"),
        ({"model.hidden": 256}, "config.model.hidden"),
    ],
)
def test_former_tracebacks_are_one_line_before_anything_is_written(overrides, key, tmp_path):
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(_small(**overrides), str(tmp_path / "w"))
    assert key in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "w").exists()


def test_tfds_dataset_not_on_disk_is_one_line(tmp_path):
    over = {"dataset.name": "mnist", "dataset.data_dir": str(tmp_path / "nothing")}
    with pytest.raises(config_lib.ConfigError) as e:
        run_experiment(_small(**over), str(tmp_path / "w"))
    assert "mnist" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "w").exists()


_KEYS = [
    "seed", "num_seeds", "num_devices", "seed_threads", "seed_execution", "strategy",
    "query_size", "budget", "num_rounds", "ensemble_size", "score_batch_size",
    "train.epochs", "train.learning_rate", "train.batch_size", "train.weight_decay",
    "train.optimizer", "train.schedule", "train.momentum", "train.augment.crop_padding",
    "train.early_stop.patience", "train.early_stop.train_accuracy",
    "initial.strategy", "initial.size", "initial.per_class", "mc.samples", "mc.mode",
    "model.name", "model.hidden", "model.dropout", "dataset.name", "dataset.pool_size",
    "dataset.val_size", "dataset.imbalance_factor", "dataset.normalize",
    "strategy_params.m", "strategy_params.base",
]


def _values():
    from hypothesis import strategies as st

    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["", "random", "entropy,entropy", "margin(m=3)", "npz:", "mlp", "cnn"]),
        st.lists(st.integers(-3, 300), max_size=3).map(tuple),
    )


def test_hostile_configs_end_in_a_run_or_one_config_error_never_a_traceback():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(_KEYS), _values()), min_size=1, max_size=4))
    def check(pairs):
        config = tiny_config()
        for key, value in pairs:
            try:
                config_lib.apply_overrides(config, {key: value})
            except (TypeError, ValueError):
                pass  # the ConfigDict refused the value's type: --config.* says so in one line
        try:
            assemble(config)
        except config_lib.ConfigError as e:
            assert "\n" not in str(e), str(e)

    check()


def _npz(path, y_train, y_test, n_feat=4):
    rng = np.random.default_rng(0)
    x_tr = rng.normal(size=(len(y_train), n_feat)).astype(np.float32)
    x_te = rng.normal(size=(len(y_test), n_feat)).astype(np.float32)
    np.savez(path, x_train=x_tr, y_train=np.array(y_train), x_test=x_te, y_test=np.array(y_test))
    return f"npz:{path}"


@pytest.mark.parametrize(
    "case,over,outcome",
    [
        ("single class", {}, "runs"),
        ("class absent from the pool", {"initial.strategy": "class_balanced"}, "initial.per_class"),
        ("class absent from the pool", {}, "runs"),
        ("pool smaller than k", {"query_size": 500, "budget": 510}, "config.budget"),
    ],
)
def test_awkward_datasets_run_or_stop_in_one_line(case, over, outcome, tmp_path):
    if case == "single class":
        name = _npz(tmp_path / "d.npz", [0] * 60, [0] * 20)
    else:  # class 2 only in the test split
        name = _npz(tmp_path / "d.npz", [0, 1] * 30, [0, 1, 2] * 7)
    config = _small(**{"dataset.name": name, "strategy": "margin", **over})
    if outcome == "runs":
        rows = run_experiment(config, str(tmp_path / "w"), progress=False)
        assert max(r["num_labeled"] for r in rows) == 20
    else:
        with pytest.raises(config_lib.ConfigError) as e:
            run_experiment(config, str(tmp_path / "w"), progress=False)
        assert outcome in str(e.value) and "\n" not in str(e.value)
