"""Same config and seed => the same labeled pools and metrics as the saved baselines.

The baselines (``tests/baselines/*.npz``) were recorded by
``tests/baselines/make.py`` from main at 57abcde, before the run assembly was
reshaped: the quickstart (``configs/digits.py``) and ``configs/mnist_bald.py:smoke``,
on one CPU device with the default (``auto``) execution. Pools and metrics
must match bit for bit; a change meant to alter results re-baselines in its
own commit (and says by how much in the notes).
"""

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "baselines"))

import make  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("name,path,variant", make.CASES)
def test_pools_and_metrics_are_bit_identical_to_the_saved_baseline(name, path, variant, tmp_path):
    want = np.load(os.path.join(HERE, "baselines", f"{name}.npz"))
    got = make.run_case(path, variant, str(tmp_path / "run"), num_devices=1)
    assert sorted(got) == sorted(want.files)
    for key in want.files:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
