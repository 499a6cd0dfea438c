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


# The long tests: end-to-end runs of 15 s or more each (multi-process runs,
# signals and resumes, study smoke variants, device and thread layouts). The
# README's test command leaves them out (`-m "not long"` in pyproject.toml) so
# it runs in ~10 minutes on 2 cores; `.ci/run` runs them too
# (`pytest -m long`). Each entry is a test function (all its parameter cases).
LONG = {
    "test_multiprocess.py::test_two_processes_match_one_process",
    "test_faults.py::test_signal_stops_cleanly_in_one_line_and_resumes_bit_identically",
    "test_faults.py::test_second_run_on_a_busy_workdir_refuses_at_once_and_the_first_is_unharmed",
    "test_faults.py::test_a_kill_at_any_instant_never_leaves_a_torn_result_file",
    "test_faults.py::test_failed_checkpoint_write_leaves_the_previous_one_usable",
    "test_loop.py::test_fewer_seeds_than_devices_shard_pool_scoring_over_data",
    "test_loop.py::test_ensemble_members_compose_with_seeds_over_devices",
    "test_loop.py::test_eight_seeds_on_four_devices_equal_one_device",
    "test_loop.py::test_seed_threads_do_not_change_results",
    "test_budget_change.py::test_finished_run_rerun_with_another_budget",
    "test_budget_change.py::test_interrupted_mid_strategy_then_resumed_with_a_larger_budget",
    "test_grid.py::test_each_lane_equals_its_setting_run_alone",
    "test_compute_efficient.py::test_smoke_variants_first_round",
    "test_compute_efficient.py::test_scored_column_and_retrains_end_to_end_on_grid_lanes",
    "test_compute_efficient.py::test_three_retrains_are_three_separately_keyed_trainings_averaged",
    "test_schedule.py::test_study_smoke_variants_first_round",
    "test_schedule.py::test_stopping_and_adaptive_rate_resume_exactly",
    "test_architectures.py::test_each_smoke_unit_runs_its_first_round",
    "test_initial_pools.py::test_study_smoke_first_round_uses_the_cached_vae_pool",
    "test_hp_role.py::test_reoptimize_writes_table1",
    "test_doors.py::test_cli_num_rounds_on_a_budget_config_and_the_reverse",
    "test_doors.py::test_two_differently_parameterised_strategies_in_one_run",
    "test_resume.py::test_corrupt_latest_checkpoint_falls_back_to_previous",
    "test_sweep.py::test_local_runs_units_then_skips_then_refuses_other_config",
    "test_in_round.py::test_stopped_mid_round_resumes_from_the_saved_epoch_bit_for_bit",
    "test_in_round.py::test_a_changed_budget_does_not_reuse_another_plans_carry",
    "test_conv.py::test_every_conv_model_gives_the_same_outputs_and_gradients",
    "test_baselines.py::test_full_batches_reproduce_the_results_from_before_batch_buckets",
}


def pytest_collection_modifyitems(config, items):
    found, files = set(), set()
    for item in items:
        name = f"{os.path.basename(item.path)}::{item.originalname}"
        files.add(os.path.basename(item.path))
        if name in LONG:
            item.add_marker(pytest.mark.long)
            found.add(name)
    # A renamed long test would silently join the quick suite: refuse that
    # (when whole files are collected, not single tests or -k selections).
    whole_files = not config.option.keyword and all("::" not in str(a) for a in config.args)
    missing = sorted(n for n in LONG - found if n.split("::")[0] in files)
    if whole_files and missing:
        raise pytest.UsageError(f"tests/conftest.py LONG names no such test: {missing}")


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


def labeled_pools(workdir) -> dict:
    """``labeled_indices.npz`` as a dict of arrays."""
    import numpy as np

    with np.load(os.path.join(workdir, "labeled_indices.npz")) as z:
        return {k: z[k] for k in z.files}


def assert_same_run(a, b) -> None:
    """Two workdirs hold the same rows (timing aside) and the same pools, bit for bit."""
    import numpy as np

    assert result_rows(a) == result_rows(b)
    pa, pb = labeled_pools(a), labeled_pools(b)
    assert sorted(pa) == sorted(pb)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
