"""Bad configs stop with one line naming the key, before anything compiles."""

import os
import subprocess
import sys

import jax
import pytest
from conftest import tiny_config

from jaxal import config as config_lib
from jaxal import data as data_lib
from jaxal.experiment import run_experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD = [
    # (overrides, key named in the message, a word of the allowed values/rule)
    ({"strategy": "nope"}, "config.strategy", "entropy"),
    ({"strategy": "random,bogus"}, "config.strategy", "margin"),
    ({"model.name": "bogus"}, "config.model.name", "resnet18"),
    ({"model.width": 2}, "config.model.width", "accepts"),
    ({"dataset.name": "no_such_dataset"}, "dataset.name", "digits"),
    ({"dataset.normalize": "zscore"}, "dataset.normalize", "standardize"),
    ({"query_size": 0}, "config.query_size", ">= 1"),
    ({"query_size": -3}, "config.query_size", ">= 1"),
    ({"train.learning_rate": 0.0}, "config.train.learning_rate", "positive"),
    ({"train.learning_rate": -1e-3}, "config.train.learning_rate", "positive"),
    ({"train.epochs": 0}, "config.train.epochs", "positive"),
    ({"train.optimizer": "lion"}, "config.train.optimizer", "adamw"),
    ({"train.schedule": "step"}, "config.train.schedule", "cosine"),
    ({"seed_execution": "pmap"}, "config.seed_execution", "vmap"),
    ({"initial.strategy": "kmeans"}, "config.initial.strategy", "class_balanced"),
    ({"mc.mode": "half"}, "config.mc.mode", "head"),
    ({"strategy_params.beta": 2.0}, "config.strategy_params.beta", "not a parameter"),
    ({"train.early_stop.patience": 3}, "config.train.early_stop.patience", "val_size"),
    ({"budget": None}, "config.budget", "num_rounds"),
    ({"grid": "epochs=10"}, "config.grid", "allowed grid keys: learning_rate"),
    ({"grid": "learning_rate=0.1;batch_size=4"}, "config.grid", "batch shape"),
    ({"grid": "learning_rate=fast"}, "config.grid", "not a number"),
    ({"grid": "learning_rate=0.1;learning_rate=0.1"}, "config.grid", "listed twice"),
    ({"grid": "learning_rate=0"}, "config.grid", "must be > 0"),
    ({"grid": "momentum=0.5"}, "config.grid", "momentum only applies to train.optimizer=sgd"),
    ({"train.warmup_epochs": 4}, "config.train.warmup_epochs", "[0, train.epochs=3]"),
    ({"train.warmup_start": 1.5}, "config.train.warmup_start", "[0, 1]"),
    ({"labeling_rate.schedule": "fast"}, "config.labeling_rate.schedule", "adaptive"),
    ({"labeling_rate.R": 50}, "config.labeling_rate.R", "query_size=5"),
    ({"labeling_rate.epsilon": 0.0}, "config.labeling_rate.epsilon", "> 0"),
    (
        {"labeling_rate.schedule": "adaptive"},
        "config.labeling_rate.metric",
        "dataset.val2_size > 0",
    ),
    ({"stop.patience": 0}, "config.stop.patience", ">= 1"),
    ({"stop.patience": 2, "stop.metric": "loss"}, "config.stop.metric", "val2_accuracy"),
    ({"stop.patience": 2, "stop.metric": "val_accuracy"}, "config.stop.metric", "val_size > 0"),
    ({"dataset.val2_size": -1}, "dataset.val2_size", "integer >= 0"),
    ({"train.epoch": 5}, "unknown config key config.train.epoch", "config.train.epochs"),
    ({"stop.patiense": 2}, "unknown config key config.stop.patiense", "config.stop.patience"),
]

BAD_SIZES = [
    ({"strategy": "subsample", "strategy_params.m": 5000}, "config.strategy_params.m", "1347"),
    ({"budget": 5000}, "config.budget", "pool size 1347"),
    ({"initial.size": 2000, "budget": 1300}, "config.initial.size", "pool size"),
    ({"initial.size": 40, "budget": 30}, "config.initial.size", "budget 30"),
    (
        {"initial.strategy": "class_balanced", "initial.per_class": 500},
        "config.initial.per_class",
        "smallest class",
    ),
]


def _compile_counter():
    events = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    return events, listener


@pytest.mark.parametrize("overrides,key,allowed", BAD + BAD_SIZES)
def test_bad_config_names_key_and_allowed_before_compiling(overrides, key, allowed, tmp_path):
    config = tiny_config(**overrides)
    events, listener = _compile_counter()
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.raises(config_lib.ConfigError) as e:
            run_experiment(config, str(tmp_path / "w"), progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    msg = str(e.value)
    assert key in msg and allowed in msg and "\n" not in msg, msg
    assert events == [], "compiled before rejecting the config"
    assert not (tmp_path / "w").exists(), "wrote to the workdir before rejecting the config"


def test_the_quickstart_config_is_valid():
    for variant in ("", "smoke"):
        sys.path.insert(0, os.path.join(REPO, "configs"))
        try:
            import digits
        finally:
            sys.path.pop(0)
        config = digits.get_config(variant)
        config_lib.validate(config)
        config_lib.validate_sizes(config, data_lib.load(config.dataset))


def _cli(*args, cwd=REPO, env=None):
    return subprocess.run(
        [sys.executable, "-m", "jaxal", *args],
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "flag,expected",
    [
        ("--config.foo=1", "unknown config key config.foo"),
        ("--config.train.nope=1", "unknown config key config.train.nope"),
        ("--config.strategy=nope", "config.strategy='nope'"),
        ("--config.budget=100000", "config.budget=100000"),
        ("--config.train.epochs=abc", "config.train.epochs"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_status_2(flag, expected, tmp_path):
    r = _cli("--config=configs/digits.py:smoke", f"--workdir={tmp_path / 'w'}", flag)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("jaxal: error:") and expected in lines[0], lines
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "flags,env,expected",
    [
        (["--num_processes=2", "--process_id=0"], {}, "needs --coordinator_address"),
        (["--coordinator_address=127.0.0.1:1", "--num_processes=2"], {}, "needs --process_id"),
        (["--num_processes=2", "--process_id=2"], {}, "--process_id=2 must be in [0, 2)"),
        ([], {"JAX_NUM_PROCESSES": "two"}, "$JAX_NUM_PROCESSES='two' is not an integer"),
        ([], {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "needs --coordinator_address"),
        (["--distributed"], {}, "could not join the multi-process run"),  # no cluster here
    ],
)
def test_cli_bad_multiprocess_settings(flags, env, expected, tmp_path):
    # Flags or JAX_* variables; refused in one line, before joining anything.
    r = _cli("--config=configs/digits.py:smoke", f"--workdir={tmp_path / 'w'}", *flags, env=env)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "w").exists()


def test_cli_missing_config_file_and_variant(tmp_path):
    r = _cli("--config=configs/nonexistent.py", f"--workdir={tmp_path}")
    assert r.returncode == 2 and "no such config file" in r.stderr
    r = _cli("--config=configs/digits.py:bogus", f"--workdir={tmp_path}")
    assert r.returncode == 2 and "unknown variant 'bogus'" in r.stderr
