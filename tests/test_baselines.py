"""Same config and seed => the same labeled pools and metrics as the saved baselines.

The baselines (``tests/baselines/*.npz``) were recorded by
``tests/baselines/make.py`` from main at 57abcde, before the run assembly was
reshaped: the quickstart (``configs/digits.py``) and ``configs/mnist_bald.py:smoke``,
on one CPU device with the default (``auto``) execution. Pools and metrics
must match bit for bit; a change meant to alter results re-baselines in its
own commit (and says by how much in the notes). The ``*_full_batches``
baselines are the 57abcde recordings, kept for ``train.batch_buckets = False``
(the CASES were re-recorded when the last batch of an epoch got bucket shapes).
"""

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "baselines"))

import make  # noqa: E402


def _check(name, path, variant, overrides, tmp_path):
    want = np.load(os.path.join(HERE, "baselines", f"{name}.npz"))
    got = make.run_case(path, variant, str(tmp_path / "run"), num_devices=1, overrides=overrides)
    assert sorted(got) == sorted(want.files)
    for key in want.files:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("name,path,variant,overrides", make.CASES)
def test_pools_and_metrics_are_bit_identical_to_the_saved_baseline(
    name, path, variant, overrides, tmp_path
):
    _check(name, path, variant, overrides, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name,path,variant,overrides", make.FULL_BATCHES)
def test_full_batches_reproduce_the_results_from_before_batch_buckets(
    name, path, variant, overrides, tmp_path
):
    """``train.batch_buckets = False`` is bit for bit the training of jaxal before
    the last batch ran in a bucket shape (baselines recorded at 57abcde)."""
    _check(name, path, variant, overrides, tmp_path)
