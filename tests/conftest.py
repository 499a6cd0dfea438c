"""Shared test setup.

Four fake CPU devices so the sharded paths run on any machine; set before JAX
is imported anywhere.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402


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
