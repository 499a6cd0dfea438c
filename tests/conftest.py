"""Shared test setup.

Four fake CPU devices so the sharded paths run on any machine; set before JAX
is imported anywhere.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import csv  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

# A short two-strategy CLI run of the smoke config, for tests that kill,
# signal or resume real runs.
SMOKE_ARGS = [
    "--config=configs/digits.py:smoke",
    "--config.num_seeds=2",
    "--config.train.epochs=5",
    "--config.strategy=random,margin",
    "--no_progress",
]
TIMING = ("train_seconds", "eval_seconds", "score_seconds", "select_seconds")


def smoke_cmd(workdir, *extra) -> list[str]:
    """The command line of the smoke run in ``workdir``."""
    return [sys.executable, "-m", "jaxal", *SMOKE_ARGS, f"--workdir={workdir}", *extra]


def result_rows(workdir) -> list[dict]:
    """``results.csv`` rows without the timing columns (which differ run to run)."""
    with open(os.path.join(workdir, "results.csv")) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def tiny_config(**overrides):
    """A seconds-long digits/MLP experiment config."""
    from jaxal.config import apply_overrides, base_config

    c = base_config()
    c.dataset.name = "digits"
    c.model.name = "mlp"
    c.model.hidden = (16,)
    c.model.dropout = 0.0
    c.strategy = "entropy"
    c.num_seeds = 2
    c.num_devices = 1
    c.initial.strategy = "random"
    c.initial.size = 10
    c.query_size = 5
    c.budget = 25
    c.train.epochs = 3
    c.train.batch_size = 8
    c.score_batch_size = 256
    c.train.eval_batch_size = 256
    return apply_overrides(c, overrides)


@pytest.fixture
def make_config():
    return tiny_config
