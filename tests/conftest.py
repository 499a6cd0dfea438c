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
    # Moved out of the quick suite (2026-12-03: each took 18 s or more there;
    # the quick suite had grown to ~21-26 min on 2 cores).
    "test_resume.py::test_sigkill_mid_run_then_resume_is_bit_identical",
    "test_resume.py::test_resume_refuses_a_different_config",
    "test_in_round.py::test_pieces_compute_what_the_whole_round_computes",
    "test_loop.py::test_vmap_and_loop_give_identical_pools_and_metrics",
    "test_loop.py::test_compiles_grow_only_when_a_round_needs_a_new_last_batch_bucket",
    "test_loop.py::test_host_and_device_step_loops_agree",
    "test_loop.py::test_seed_results_do_not_depend_on_the_other_seeds",
    "test_loop.py::test_labeled_mask_matches_order_and_budget_is_met_with_partial_last_round",
    "test_loop.py::test_phases_compile_once_whatever_the_labeled_set_size",
    "test_loop.py::test_warm_start_keeps_training_from_previous_weights",
    "test_budget_change.py::test_unchanged_finished_run_is_still_refused",
    "test_live.py::test_rounds_are_logged_while_the_run_goes_and_match_results_and_hparams",
    "test_live.py::test_wandb_offline_and_mlflow_file_store_get_each_series_scalars",
    "test_cli.py::test_cli_smoke_run_writes_results_and_refuses_to_overwrite",
    "test_cli_help.py::test_overwrite_removes_the_old_tensorboard_curves",
    "test_doors.py::test_own_flax_module_by_import_path_and_from_python",
    "test_doors.py::test_npz_dataset_runs_and_matches_the_same_arrays_given_from_python",
    "test_doors.py::test_python_module_with_bald_through_mc_full",
    "test_faults.py::test_full_disk_while_writing_results_is_one_error_and_resumes",
    "test_architectures.py::test_a_round_starts_exactly_from_the_given_variables",
    "test_schedule.py::test_validation_accuracies_are_reported_per_round",
    "test_strategies_uncertainty.py::test_mc_entropy_runs_in_the_loop",
    "test_train.py::test_a_bucketed_round_trains_smaller_steps_and_differs_from_full_batches",
    "test_train.py::test_a_lane_in_a_vmapped_host_group_trains_as_alone_when_sizes_differ",
    "test_predict.py::test_mc_dropout_uses_running_batch_norm_statistics",
    "test_predict.py::test_ensemble_members_train_as_independent_models",
    "test_hp_role.py::test_smoke_first_round",
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
