"""The round loop: fixed shapes, derived randomness, seed execution modes."""

import jax
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import data as data_lib
from jaxal import parallel
from jaxal import train as train_lib
from jaxal.assemble import assemble, to_device
from jaxal.initial import initial_pool
from jaxal.loop import acquisition_rounds, run_rounds


def run(config, on_round=None):
    """One strategy's rounds, built by the one assembler."""
    r = assemble(config)
    engine = r.engine(next(iter(r.strategies)))
    state, recs = run_rounds(engine, r.seeds, r.data, on_round=on_round)
    return engine, state, recs


def metrics(recs):
    return np.stack([np.stack([r.test_accuracy, r.test_nll, r.train_accuracy]) for r in recs])


@pytest.mark.parametrize("model,step_loop", [("mlp", "device"), ("mlp", "host"), ("cnn", "host")])
def test_vmap_and_loop_give_identical_pools_and_metrics(model, step_loop):
    over = {"model.name": model, "model.dropout": 0.5, "train.step_loop": step_loop}
    if model == "cnn":
        over.update({"model.hidden": None, "model.padding": "SAME", "budget": 20})
    _, s_vmap, r_vmap = run(tiny_config(seed_execution="vmap", **over))
    _, s_loop, r_loop = run(tiny_config(seed_execution="loop", **over))
    np.testing.assert_array_equal(np.asarray(s_vmap.order), np.asarray(s_loop.order))
    np.testing.assert_array_equal(np.asarray(s_vmap.labeled), np.asarray(s_loop.labeled))
    # Same per-seed program, same keys: metrics agree to float32 rounding of a
    # batched vs unbatched matmul/conv (accuracies exactly).
    np.testing.assert_array_equal(metrics(r_vmap)[:, 0], metrics(r_loop)[:, 0])
    np.testing.assert_allclose(metrics(r_vmap), metrics(r_loop), rtol=2e-5, atol=1e-6)


def test_host_and_device_step_loops_agree():
    over = {"model.dropout": 0.5, "train.early_stop.train_accuracy": 0.9, "train.epochs": 8}
    _, s_dev, r_dev = run(tiny_config(**{"train.step_loop": "device"}, **over))
    _, s_host, r_host = run(tiny_config(**{"train.step_loop": "host"}, **over))
    np.testing.assert_array_equal(np.asarray(s_dev.order), np.asarray(s_host.order))
    np.testing.assert_array_equal([r.train_epochs for r in r_dev], [r.train_epochs for r in r_host])
    np.testing.assert_allclose(metrics(r_dev), metrics(r_host), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("mode,step_loop", [("vmap", "device"), ("loop", "host")])
def test_eight_seeds_on_four_devices_equal_one_device(mode, step_loop):
    assert len(jax.devices()) >= 4  # conftest forces 4 CPU devices
    over = {
        "seed_execution": mode,
        "num_seeds": 8,
        "budget": 20,
        "train.step_loop": step_loop,
        "train.epochs": 2,
    }
    _, s1, r1 = run(tiny_config(num_devices=1, **over))
    _, s4, r4 = run(tiny_config(num_devices=4, **over))
    assert s4.labeled.sharding.spec[0] == "seed" and len(s4.labeled.devices()) == 4
    np.testing.assert_array_equal(np.asarray(s1.order), np.asarray(s4.order))
    np.testing.assert_allclose(metrics(r1), metrics(r4), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(
    "model,devices",
    [("mlp", 1), ("cnn", 1), ("mlp", 2)],
)
def test_seed_threads_do_not_change_results(model, devices):
    # seed_execution=loop runs seeds concurrently in host threads; each seed is
    # its own computation, so the results are bitwise those of one thread.
    over = {"seed_execution": "loop", "num_seeds": 4, "num_devices": devices, "budget": 20}
    if model == "cnn":
        over.update({"model.name": "cnn", "model.hidden": None, "model.padding": "SAME"})
        over.update({"budget": 20, "model.dropout": 0.5, "train.step_loop": "host"})
    engine1, s1, r1 = run(tiny_config(seed_threads=1, **over))
    engine4, s4, r4 = run(tiny_config(seed_threads=4, **over))
    assert engine1.placement.threads == 1 and engine4.placement.threads == 4
    np.testing.assert_array_equal(np.asarray(s1.order), np.asarray(s4.order))
    np.testing.assert_array_equal(metrics(r1), metrics(r4))  # bitwise


def test_seed_threads_auto_is_one_per_core_and_at_most_the_seeds():
    assert parallel.resolve_seed_threads(0, 16, platform="cpu") == parallel.cpu_cores()
    assert parallel.resolve_seed_threads(0, 1, platform="cpu") == 1
    assert parallel.resolve_seed_threads(0, 16, seed_devices=8, platform="gpu") == 8
    assert parallel.resolve_seed_threads(3, 2) == 2


def score_flops_per_device(engine, state, config):
    """XLA's flop count of one device's share of a pool-scoring call."""
    ds = data_lib.load(config.dataset)
    data = parallel.put_shared(to_device(ds), engine.placement)
    cost = engine.score.lower(state, jax.numpy.int32(1), data).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


@pytest.mark.parametrize(
    "mode,strategy,seeds",
    [("vmap", "bald", 1), ("loop", "bald", 1), ("loop", "badge", 1), ("loop", "bald", 2)],
)
def test_fewer_seeds_than_devices_shard_pool_scoring_over_data(mode, strategy, seeds):
    # S seeds on 4 devices: mesh (seed=S, data=4/S); each device scores its
    # share of every chunk, and the labeled pools are those of one device.
    over = {"seed_execution": mode, "num_seeds": seeds, "strategy": strategy, "budget": 20}
    over.update({"model.dropout": 0.5, "mc.samples": 4, "train.epochs": 2, "seed_threads": 2})
    c1, c4 = tiny_config(num_devices=1, **over), tiny_config(num_devices=4, **over)
    e1, s1, r1 = run(c1)
    e4, s4, r4 = run(c4)
    assert dict(e4.placement.mesh.shape) == {"seed": seeds, "data": 4 // seeds}
    np.testing.assert_array_equal(np.asarray(s1.order), np.asarray(s4.order))
    np.testing.assert_allclose(metrics(r1), metrics(r4), rtol=2e-5, atol=1e-6)
    # One device's work: vmap, all seeds' scoring over 4 devices; loop, one
    # seed's scoring over its row of 4 / S devices.
    share = 1 / 4 if mode == "vmap" else seeds / 4
    flops1, flops4 = score_flops_per_device(e1, s1, c1), score_flops_per_device(e4, s4, c4)
    assert flops4 < 1.2 * share * flops1, (flops1, flops4, share)


@pytest.mark.parametrize("mode,seeds", [("vmap", 4), ("loop", 1)])
def test_ensemble_members_compose_with_seeds_over_devices(mode, seeds):
    # Each seed carries its [M] members; seeds shard over devices (and with 1
    # seed the members' pool scoring shards over data): same pools as 1 device.
    over = {"seed_execution": mode, "num_seeds": seeds, "ensemble_size": 3}
    over.update({"strategy": "bald", "budget": 20, "train.epochs": 2})
    e1, s1, r1 = run(tiny_config(num_devices=1, **over))
    e4, s4, r4 = run(tiny_config(num_devices=4, **over))
    assert jax.tree.leaves(s4.variables)[0].shape[:2] == (seeds, 3)  # [S, M, ...]
    np.testing.assert_array_equal(np.asarray(s1.order), np.asarray(s4.order))
    np.testing.assert_allclose(metrics(r1), metrics(r4), rtol=2e-5, atol=1e-6)


def test_same_seed_is_bit_identical_and_seeds_differ():
    _, s1, r1 = run(tiny_config())
    _, s2, r2 = run(tiny_config())
    np.testing.assert_array_equal(np.asarray(s1.order), np.asarray(s2.order))
    np.testing.assert_array_equal(metrics(r1), metrics(r2))  # bitwise
    order = np.asarray(s1.order)
    assert not np.array_equal(order[0], order[1]), "two seeds drew the same pools"


def test_seed_results_do_not_depend_on_the_other_seeds():
    # Seed 1 run alone == seed 1 run as the second of two seeds.
    _, s_pair, r_pair = run(tiny_config(seed=0, num_seeds=2))
    _, s_one, r_one = run(tiny_config(seed=1, num_seeds=1))
    np.testing.assert_array_equal(np.asarray(s_pair.order)[1], np.asarray(s_one.order)[0])
    np.testing.assert_allclose(metrics(r_pair)[:, :, 1], metrics(r_one)[:, :, 0], rtol=2e-5)


def test_labeled_mask_matches_order_and_budget_is_met_with_partial_last_round():
    config = tiny_config(budget=27)  # 10 initial + 5 + 5 + 5 + 2
    engine, state, recs = run(config)
    assert [r.num_labeled for r in recs] == [10, 15, 20, 25, 27]
    order, labeled = np.asarray(state.order), np.asarray(state.labeled)
    for s in range(order.shape[0]):
        assert (order[s] >= 0).all() and len(set(order[s])) == 27
        np.testing.assert_array_equal(np.flatnonzero(labeled[s]), np.sort(order[s]))
    np.testing.assert_array_equal(
        acquisition_rounds(order[0], engine.plan), [0] * 10 + [1] * 5 + [2] * 5 + [3] * 5 + [4] * 2
    )


def test_phases_compile_once_whatever_the_labeled_set_size():
    compiles = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    counts = []
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        run(tiny_config(budget=40), on_round=lambda rec, state: counts.append(len(compiles)))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    # Round 0 compiles fit/evaluate/score/select; rounds 1.. add nothing.
    assert counts[0] > 0
    assert counts[1:] == [counts[1]] * (len(counts) - 1), counts
    assert counts[-1] == counts[1], counts


@pytest.mark.parametrize(
    "step_loop,seeds", [("device", "loop"), ("device", "vmap"), ("host", "loop"), ("host", "vmap")]
)
def test_compiles_grow_only_when_a_round_needs_a_new_last_batch_bucket(step_loop, seeds):
    """Batch 16, 10 -> 40 labels in steps of 5: the last batches (10, 15, 4, 9,
    14, 3, 8) need the buckets 16 and 8 -- a round compiles only when it meets a
    bucket no earlier round needed, so a run compiles at most once per bucket.
    The device loop over per-seed calls builds one program with every bucket's
    step in round 0 and never compiles again."""
    compiles, counts, sizes = [], [], []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    def on_round(rec, state):
        counts.append(len(compiles))
        sizes.append(train_lib.last_batch_sizes(rec.labels, 16, (8, 16)))

    overrides = {"budget": 40, "train.batch_size": 16, "train.step_loop": step_loop}
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        engine, _, _ = run(tiny_config(**overrides, seed_execution=seeds), on_round=on_round)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert sizes == [(16,), (16,), (8,), (16,), (16,), (8,), (8,)], sizes
    grew = [j for j in range(1, len(counts)) if counts[j] > counts[j - 1]]
    one_program = (step_loop, seeds) == ("device", "loop")
    assert grew == ([] if one_program else [2]), (counts, sizes)
    if step_loop == "device":
        assert len(engine.fit) == (1 if one_program else 2)  # round programs built


def test_class_balanced_initial_pool():
    y = np.repeat(np.arange(4), [5, 7, 3, 9]).astype(np.int32)
    cfg = tiny_config(**{"initial.strategy": "class_balanced", "initial.per_class": 3}).initial
    labeled, order, n = initial_pool(jax.random.key(3), y, cfg, 4, capacity=20)
    labeled, order = np.asarray(labeled), np.asarray(order)
    assert int(n) == 12 and (order[12:] == -1).all()
    np.testing.assert_array_equal(np.bincount(y[labeled], minlength=4), [3, 3, 3, 3])
    np.testing.assert_array_equal(np.sort(order[:12]), np.flatnonzero(labeled))


def test_warm_start_keeps_training_from_previous_weights():
    _, s_re, r_re = run(tiny_config(**{"train.reinit": True, "train.epochs": 1}))
    _, s_ws, r_ws = run(tiny_config(**{"train.reinit": False, "train.epochs": 1}))
    # Round 0 is identical (same init), later rounds differ.
    np.testing.assert_array_equal(metrics(r_re)[0], metrics(r_ws)[0])
    assert not np.array_equal(metrics(r_re)[1:], metrics(r_ws)[1:])


def test_vmap_is_bit_identical_to_itself_and_equal_to_loop_up_to_float_rounding():
    # The guarantee the README states: vmap reruns are bitwise; against loop,
    # the same per-seed program compiled batched rounds differently (ulp-level
    # per training step, measured), so metrics agree to float32 rounding and
    # pools agree except where scores tie within that rounding.
    over = {"seed_execution": "vmap", "num_seeds": 3, "budget": 30}
    _, s1, r1 = run(tiny_config(**over))
    _, s2, r2 = run(tiny_config(**over))
    np.testing.assert_array_equal(np.asarray(s1.order), np.asarray(s2.order))
    np.testing.assert_array_equal(metrics(r1), metrics(r2))  # bitwise
    _, s3, r3 = run(tiny_config(**{**over, "seed_execution": "loop"}))
    np.testing.assert_allclose(metrics(r1), metrics(r3), rtol=1e-4, atol=1e-5)
    same = np.mean(np.asarray(s1.order) == np.asarray(s3.order))
    assert same > 0.9, same  # near-ties only
