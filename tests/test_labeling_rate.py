"""The Sherbrooke report's labeling-rate scheduler (Algorithm 1) and AL-level
patience stopping, on hand-computed sequences."""

import math

import numpy as np
import pytest

from jaxal import labeling_rate as lr

S = lr.LabelingRateSettings(epsilon=0.001, g=0.05, R=500, k0=100)


def test_algorithm_1_by_hand():
    # delta = 0.05 / 100 = 5e-4, gain = min(0.05, 0.65) = 0.05 -> 0.05 / 5e-4 = 100
    assert lr.labeling_rate_update(100, 0.30, 0.35, 0.001, 500, 0.05) == 100
    # delta = 0.03 / 100 = 3e-4 -> 166.67 -> ceil 167
    assert lr.labeling_rate_update(100, 0.30, 0.33, 0.001, 500, 0.05) == 167
    # delta = 0.02 / 100 = 2e-4 -> 250
    assert lr.labeling_rate_update(100, 0.35, 0.37, 0.001, 500, 0.05) == 250
    # accuracy fell: epsilon replaces the difference, delta = 0.001 / 250 -> 12500 -> R
    assert lr.labeling_rate_update(250, 0.37, 0.36, 0.001, 500, 0.05) == 500
    assert lr.labeling_rate_update(250, 0.37, 0.36, 0.001, 20000, 0.05) == 12500
    # near the top: gain = min(0.05, 1 - 0.98) = 0.02, delta = 0.48 / 100 -> 4.17 -> 5
    assert lr.labeling_rate_update(100, 0.50, 0.98, 0.001, 500, 0.05) == 5
    # nothing left to gain: the literal algorithm asks for 0
    assert lr.labeling_rate_update(100, 0.9, 1.0, 0.001, 500, 0.05) == 0
    with pytest.raises(ValueError):
        lr.labeling_rate_update(100, 0.3, 0.4, 0.0, 500, 0.05)


def test_float_round_off_does_not_add_a_label():
    # 0.35 - 0.30 = 0.04999999999999999 in floats: a plain ceil would give 101
    assert math.ceil(0.05 / ((0.35 - 0.30) / 100)) == 101
    assert lr.labeling_rate_update(100, 0.30, 0.35, 0.001, 500, 0.05) == 100


def test_next_query_size_bounds_and_first_round():
    assert lr.next_query_size([0.3], 7, S, k_max=1000) == 100  # k0 after round 0
    assert lr.next_query_size([0.3], 7, S, k_max=64) == 64  # k0 capped by the buffer
    assert lr.next_query_size([0.35, 0.37], 100, S, k_max=1000) == 250
    assert lr.next_query_size([0.35, 0.37], 100, S, k_max=200) == 200
    assert lr.next_query_size([0.37, 0.36], 250, S, k_max=1000) == 500  # R
    assert lr.next_query_size([0.9, 1.0], 100, S, k_max=1000) == 1  # at least one label
    assert lr.next_query_size([0.4, float("nan")], 123, S, k_max=1000) == 123  # kept
    # only the last two accuracies matter
    assert lr.next_query_size([0.1, 0.9, 0.35, 0.37], 100, S, k_max=1000) == 250


def test_schedule_and_per_seed_form():
    acc = [0.30, 0.35, 0.37, 0.36]
    assert lr.query_size_schedule(acc, S, k_max=1000) == [100, 100, 250, 500]
    assert lr.query_size_schedule(acc, S, k_max=300) == [100, 100, 250, 300]
    got = lr.next_query_sizes(
        np.array([0.30, 0.35, 0.37]),
        np.array([0.35, 0.37, 0.36]),
        np.array([100, 100, 250]),
        S,
        k_max=1000,
    )
    assert got.dtype == np.int32 and got.tolist() == [100, 250, 500]


def test_settings_are_checked():
    for bad in (
        dict(epsilon=0.0, g=0.05, R=5, k0=1),
        dict(epsilon=0.1, g=-1.0, R=5, k0=1),
        dict(epsilon=0.1, g=0.05, R=0, k0=1),
        dict(epsilon=0.1, g=0.05, R=5, k0=0),
        dict(epsilon=0.1, g=0.05, R=2.5, k0=1),
    ):
        with pytest.raises(ValueError):
            lr.LabelingRateSettings(**bad)
    with pytest.raises(ValueError):
        lr.next_query_size([0.1, 0.2], 5, S, k_max=0)


def test_should_stop_counts_rounds_without_beating_the_best():
    assert not lr.should_stop([], 3)
    assert not lr.should_stop([0.5, 0.4, 0.45], 3)  # two rounds without improvement
    assert lr.should_stop([0.5, 0.4, 0.45, 0.49], 3)  # three: the best is still 0.5
    assert not lr.should_stop([0.5, 0.4, 0.45, 0.51], 3)  # beaten: count reset
    assert lr.should_stop([0.5, 0.4, 0.45, 0.51, 0.5, 0.5, 0.51], 3)  # a tie is no gain
    assert lr.rounds_without_improvement([0.5, 0.4, 0.45, 0.51, 0.5]) == 1
    assert lr.should_stop([0.2, float("nan")], 1)  # a diverged round never improves
    # min_delta: 0.505 and 0.509 do not beat 0.5 by more than 0.01
    assert not lr.should_stop([0.5, 0.505, 0.509, 0.508], 3)
    assert lr.should_stop([0.5, 0.505, 0.509, 0.508], 3, min_delta=0.01)
    with pytest.raises(ValueError):
        lr.should_stop([0.5], 0)
