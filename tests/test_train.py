"""Training: exact epochs over a growing labeled set, optimizers, schedules,
augmentation and early stopping."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import data as data_lib
from jaxal import models as models_lib
from jaxal import train as train_lib
from jaxal.experiment import to_device


@pytest.mark.parametrize("n,bsz", [(1, 4), (7, 4), (8, 4), (9, 4), (20, 32)])
def test_every_labeled_point_is_seen_exactly_once_per_epoch(n, bsz):
    capacity = 24
    order = jnp.full((capacity,), -1, jnp.int32).at[:n].set(jnp.arange(100, 100 + n))
    perm = train_lib.epoch_permutation(jax.random.key(n), order, jnp.int32(n))
    steps = math.ceil(n / bsz)
    seen = []
    for i in range(steps):
        idx, w = train_lib.batch_indices(perm, jnp.int32(n), jnp.int32(i), bsz)
        idx, w = np.asarray(idx), np.asarray(w)
        assert idx.shape == (bsz,) and (idx >= 100).all()  # fillers are real labeled points
        seen += list(idx[w == 1])
    assert sorted(seen) == list(range(100, 100 + n))


def test_permutations_differ_between_epochs_and_are_uniformish():
    order = jnp.arange(5, dtype=jnp.int32)
    firsts = [
        int(train_lib.epoch_permutation(jax.random.key(e), order, jnp.int32(5))[0])
        for e in range(500)
    ]
    counts = np.bincount(firsts, minlength=5)
    assert counts.min() > 60, counts  # expected 100 each


def test_cosine_schedule_and_constant():
    cfg = tiny_config(**{"train.schedule": "cosine", "train.learning_rate": 0.1}).train
    lr = lambda s, t: float(train_lib.learning_rate(cfg, jnp.int32(s), jnp.int32(t)))  # noqa: E731
    assert lr(0, 100) == pytest.approx(0.1)
    assert lr(50, 100) == pytest.approx(0.05)
    assert lr(100, 100) == pytest.approx(0.0, abs=1e-9)
    cfg.schedule = "constant"
    assert lr(70, 100) == pytest.approx(0.1)


def test_linear_warmup_then_cosine_by_hand():
    # 10 epochs x 10 steps, 2 warm-up epochs from 0.01 x peak: steps 0..19 ramp
    # 0.001 -> 0.1 linearly (step 10: 0.001 + 0.099 * 10 / 20), then cosine over 80 steps.
    cfg = tiny_config(
        **{
            "train.schedule": "cosine",
            "train.learning_rate": 0.1,
            "train.epochs": 10,
            "train.warmup_epochs": 2,
        }
    ).train
    lr = lambda s: float(train_lib.learning_rate(cfg, jnp.int32(s), jnp.int32(100)))  # noqa: E731
    assert lr(0) == pytest.approx(0.001)
    assert lr(10) == pytest.approx(0.0505)
    assert lr(20) == pytest.approx(0.1)  # warm-up over: the cosine's peak
    assert lr(60) == pytest.approx(0.05)  # half-way through the 80 cosine steps
    assert lr(100) == pytest.approx(0.0, abs=1e-9)
    # a lane's own peak rate scales the whole schedule
    base = jnp.float32(0.02)
    assert float(train_lib.learning_rate(cfg, jnp.int32(10), jnp.int32(100), base)) == (
        pytest.approx(0.0505 * 0.2)
    )
    cfg.schedule = "constant"
    assert lr(10) == pytest.approx(0.0505) and lr(50) == pytest.approx(0.1)


@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_optimizers_step_towards_lower_loss(opt):
    cfg = tiny_config(
        **{"train.optimizer": opt, "train.weight_decay": 1e-4, "train.learning_rate": 0.05}
    ).train
    tx = train_lib.make_optimizer(cfg)
    params = {"w": jnp.array([3.0, -2.0])}
    state = tx.init(params)
    for _ in range(50):
        grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
        updates, state = tx.update(grads, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    assert float(jnp.sum(params["w"] ** 2)) < 13.0 * 0.5


def test_weight_decay_shrinks_weights_without_gradient():
    cfg = tiny_config(
        **{
            "train.optimizer": "sgd",
            "train.momentum": 0.0,
            "train.weight_decay": 0.5,
            "train.learning_rate": 0.1,
        }
    ).train
    tx = train_lib.make_optimizer(cfg)
    params = {"w": jnp.array([2.0])}
    updates, _ = tx.update({"w": jnp.array([0.0])}, tx.init(params), params)
    # SGD on L2: w - lr * wd * w = 2 - 0.1 * 0.5 * 2
    assert float(params["w"][0] + updates["w"][0]) == pytest.approx(1.9)


def test_augment_crop_shifts_and_flip_mirrors():
    x = jnp.arange(2 * 4 * 4, dtype=jnp.float32).reshape(2, 4, 4, 1) + 1
    assert (train_lib.augment(jax.random.key(0), x, 0, False) == x).all()
    flipped = [np.asarray(train_lib.augment(jax.random.key(s), x, 0, True)) for s in range(20)]
    for f in flipped:
        for b in range(2):
            assert np.array_equal(f[b], x[b]) or np.array_equal(f[b], np.asarray(x[b])[:, ::-1])
    assert any(not np.array_equal(f, x) for f in flipped)
    for s in range(20):
        c = np.asarray(train_lib.augment(jax.random.key(s), x, 1, False))
        for b in range(2):
            padded = np.pad(np.asarray(x[b]), ((1, 1), (1, 1), (0, 0)))
            windows = [padded[i : i + 4, j : j + 4] for i in range(3) for j in range(3)]
            assert any(np.array_equal(c[b], w) for w in windows)


def _fit(config, n=40):
    ds = data_lib.load(config.dataset)
    model = models_lib.get_model("mlp", ds.num_classes, hidden=(32,), dropout=0.0)
    data = to_device(ds)
    fit = jax.jit(train_lib.make_fit(model, config.train))
    variables = model.init(jax.random.key(0), data.x_pool[:1])
    order = jnp.full((64,), -1, jnp.int32).at[:n].set(jnp.arange(n) * 7)
    return fit(variables, order, jnp.int32(n), jax.random.key(1), data)


def test_fit_runs_exact_steps_and_learns():
    config = tiny_config(
        **{"train.epochs": 30, "train.batch_size": 16, "train.learning_rate": 1e-2}
    )
    _, m = _fit(config, n=40)
    assert int(m.epochs) == 30 and int(m.steps) == 30 * 3
    assert float(m.train_accuracy) > 0.9


def test_early_stop_on_train_accuracy():
    config = tiny_config(
        **{
            "train.epochs": 200,
            "train.batch_size": 16,
            "train.learning_rate": 1e-2,
            "train.early_stop.train_accuracy": 0.8,
        }
    )
    _, m = _fit(config)
    assert 1 <= int(m.epochs) < 200 and float(m.train_accuracy) >= 0.8


def test_early_stop_on_validation_patience_keeps_best_weights():
    config = tiny_config(
        **{
            "train.epochs": 300,
            "train.batch_size": 16,
            "train.learning_rate": 1e-2,
            "train.early_stop.patience": 3,
            "dataset.val_size": 100,
        }
    )
    variables, m = _fit(config)
    assert int(m.epochs) < 300
    ds = data_lib.load(config.dataset)
    model = models_lib.get_model("mlp", ds.num_classes, hidden=(32,), dropout=0.0)
    acc, _ = train_lib.make_evaluate(model, 64)(
        variables, jnp.asarray(ds.x_val), jnp.asarray(ds.y_val)
    )
    assert float(acc) == pytest.approx(float(m.val_accuracy))


# --- The last batch of an epoch in a bucket shape (train.batch_buckets) ------


def test_bucket_sizes_and_the_bucket_of_each_last_batch_by_hand():
    assert train_lib.batch_buckets(64) == (8, 16, 32, 64)
    assert train_lib.batch_buckets(50) == (8, 16, 32, 50)
    assert train_lib.batch_buckets(8) == (8,)
    assert train_lib.batch_buckets(5) == (5,)
    assert train_lib.batch_buckets(64, enabled=False) == (64,)
    b = train_lib.batch_buckets(64)
    # 20 labels: one step of 32 (not 64 with 44 weight-0 repeats); 70 = 64 + 6 -> 8;
    # 128 = two full batches, no last one; 100 = 64 + 36 -> 64
    assert train_lib.last_batch_sizes(np.array([20]), 64, b) == (32,)
    assert train_lib.last_batch_sizes(np.array([70]), 64, b) == (8,)
    assert train_lib.last_batch_sizes(np.array([128]), 64, b) == ()
    assert train_lib.last_batch_sizes(np.array([100]), 64, b) == (64,)
    assert train_lib.last_batch_sizes(np.array([20, 30, 72, 128, 8]), 64, b) == (8, 32)
    assert train_lib.last_batch_sizes(np.array([20]), 64, (64,)) == (64,)


@pytest.mark.parametrize("n,bsz", [(1, 64), (20, 64), (70, 64), (9, 4), (33, 32)])
def test_bucketed_last_batch_still_sees_every_point_once(n, bsz):
    capacity = 80
    order = jnp.full((capacity,), -1, jnp.int32).at[:n].set(jnp.arange(100, 100 + n))
    perm = train_lib.epoch_permutation(jax.random.key(n), order, jnp.int32(n))
    buckets = train_lib.batch_buckets(bsz)
    (size,) = train_lib.last_batch_sizes(np.array([n]), bsz, buckets)
    # The smallest of 8, 16, 32, ... that holds the remainder (or the full batch).
    r = n % bsz
    assert size == bsz or (r <= size and (size == 8 or size < 2 * r))
    seen = []
    for i in range(n // bsz):
        idx, w = train_lib.batch_indices(perm, jnp.int32(n), jnp.int32(i), bsz)
        seen += list(np.asarray(idx)[np.asarray(w) == 1])
    idx, w = train_lib.batch_indices(perm, jnp.int32(n), jnp.int32(n // bsz), bsz, size)
    idx, w = np.asarray(idx), np.asarray(w)
    assert idx.shape == (size,) and (idx >= 100).all()
    seen += list(idx[w == 1])
    assert sorted(seen) == list(range(100, 100 + n))


def _mlp_parts(batch_size, epochs=4, buckets=True):
    config = tiny_config(
        **{"train.batch_size": batch_size, "train.epochs": epochs, "train.batch_buckets": buckets}
    )
    ds = data_lib.load(config.dataset)
    model = models_lib.get_model("mlp", ds.num_classes, hidden=(16,), dropout=0.0)
    data = to_device(ds)
    return model, config, data, train_lib.make_fit_parts(model, config.train)


def test_a_bucketed_round_trains_smaller_steps_and_differs_from_full_batches():
    """Same keys, n = 20, batch 64: the epoch is one step of shape 32. Its
    gradient is that of the same 20 points, so the weights agree with the
    full-shape step to float rounding -- not bit for bit (other shapes)."""
    model, config, data, parts = _mlp_parts(64)
    _, _, _, full_parts = _mlp_parts(64, buckets=False)
    assert parts.buckets == (8, 16, 32, 64) and full_parts.buckets == (64,)
    order = jnp.full((40,), -1, jnp.int32).at[:20].set(jnp.arange(20) * 3)
    v0 = model.init(jax.random.key(0), data.x_pool[:1])
    key = jax.random.key(1)
    got = train_lib.host_fit(parts.map(jax.jit), 64)(v0, order, jnp.int32(20), key, data)
    want = train_lib.host_fit(full_parts.map(jax.jit), 64)(v0, order, jnp.int32(20), key, data)
    a, b = jax.tree.leaves(got[0]), jax.tree.leaves(want[0])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    assert int(got[1].steps) == int(want[1].steps) == 4  # one step per epoch either way
    # the device step loop (any bucket via lax.cond) computes the same round
    dev = jax.jit(train_lib.make_fit(model, config.train))(v0, order, jnp.int32(20), key, data)
    for x, y in zip(jax.tree.leaves(dev[0]), a, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("buckets", [True, False])
def test_a_lane_in_a_vmapped_host_group_trains_as_alone_when_sizes_differ(buckets):
    """Lanes of one vmapped host step loop with 13 and 30 labels (batch 8): the
    13-label lane must not take the 30-label lane's extra steps (with zero
    gradients Adam would still move it) nor its bucket."""
    model, config, data, parts = _mlp_parts(8, epochs=3, buckets=buckets)
    ns = (13, 30)
    orders = jnp.stack(
        [jnp.full((40,), -1, jnp.int32).at[:n].set(jnp.arange(n) * 5 + j) for j, n in enumerate(ns)]
    )
    keys = jax.random.split(jax.random.key(3), 2)
    v0 = jax.vmap(lambda k: model.init(k, data.x_pool[:1]))(keys)
    ax = (0, 0, 0, 0, None)
    step_ax = (0, None, 0, 0, 0, None)

    def vparts(p):
        return train_lib.FitParts(
            start=jax.jit(jax.vmap(p.start, ax + (None,))),
            begin_epoch=jax.jit(jax.vmap(train_lib.masked(p.begin_epoch), ax)),
            step=jax.jit(jax.vmap(train_lib.masked(p.step), step_ax)),
            end_epoch=jax.jit(jax.vmap(train_lib.masked(p.end_epoch), ax)),
            finish=jax.jit(jax.vmap(p.finish)),
            last=tuple((b, jax.jit(jax.vmap(train_lib.masked(f), step_ax))) for b, f in p.last),
        )

    group = train_lib.host_fit(vparts(parts), 8, vparts(train_lib.guarded_steps(parts, 8)))
    got, gm = group(v0, orders, jnp.asarray(ns, jnp.int32), keys, data)
    alone = train_lib.host_fit(parts.map(jax.jit), 8)
    for j, n in enumerate(ns):
        one = jax.tree.map(lambda a, j=j: a[j], v0)
        want, wm = alone(one, orders[j], jnp.int32(n), keys[j], data)
        assert int(gm.steps[j]) == int(wm.steps) == 3 * -(-n // 8)
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(x[j]), np.asarray(y), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="guarded"):
        train_lib.host_fit(vparts(parts), 8)(v0, orders, jnp.asarray(ns, jnp.int32), keys, data)
