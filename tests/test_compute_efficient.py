"""Németh & Matuszka's compute-efficient AL study (experiments/compute_efficient/):
brightness augmentation, the ``train.retrains`` replica axis, the ``scored``
column, and the first round of each smoke variant."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

import jaxal
from jaxal import config as config_lib
from jaxal import report
from jaxal import strategies as strategies_lib
from jaxal import train as train_lib
from jaxal.loop import init_state, make_engine, rounds, run_rounds
from jaxal.rng import Purpose, derive
from jaxal.settings import TrainSettings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY = os.path.join(REPO, "experiments", "compute_efficient", "config.py")


def _images(b=6, h=4, w=4, c=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(b, h, w, c)), jnp.float32)


# --- brightness -------------------------------------------------------------------


def test_brightness_adds_one_shift_per_image():
    x = _images()
    shift = jnp.array([0.0, 0.5, -0.25, 1.0, -1.0, 0.125])
    got = np.asarray(train_lib.adjust_brightness(x, shift))
    np.testing.assert_allclose(got, np.asarray(x) + np.asarray(shift)[:, None, None, None])
    # drawn: every pixel and channel of image i moves by the same delta_i in [-b, b]
    b = 0.3
    out = np.asarray(train_lib.augment(jax.random.key(0), x, 0, False, brightness=b))
    delta = out - np.asarray(x)
    per_image = delta.reshape(6, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-6)
    assert np.all(np.abs(per_image[:, 0]) <= b) and len(np.unique(per_image[:, 0])) == 6
    # after contrast: f * x + (1 - f) * mean + delta, with contrast's own draw unchanged
    both = np.asarray(train_lib.augment(jax.random.key(0), x, 0, False, contrast=0.5, brightness=b))
    only_c = np.asarray(train_lib.augment(jax.random.key(0), x, 0, False, contrast=0.5))
    np.testing.assert_allclose(both - only_c, delta, atol=1e-5)


def test_brightness_off_is_bit_identical_and_keeps_the_other_draws():
    x = _images(b=16)
    key = jax.random.key(5)
    kw = dict(rotation=10.0, contrast=0.2, hue=0.1)
    base = np.asarray(train_lib.augment(key, x, 1, True, **kw))
    off = train_lib.augment(key, x, 1, True, brightness=0.0, **kw)
    assert np.array_equal(base, np.asarray(off))
    assert train_lib.augment(key, x, 0, False, brightness=0.0) is x
    # on: the flips (and crops) are the same draws; only the per-image shift is added
    flip = np.asarray(train_lib.augment(key, x, 0, True))
    flip_b = np.asarray(train_lib.augment(key, x, 0, True, brightness=0.5))
    d = (flip_b - flip).reshape(16, -1)
    np.testing.assert_allclose(d, d[:, :1].repeat(d.shape[1], 1), atol=1e-6)


def test_brightness_and_retrains_config_keys():
    c = tiny_config(**{"train.augment.brightness": 0.4, "train.retrains": 3})
    config_lib.validate(c)
    t = TrainSettings.of(c.train)
    assert (t.brightness, t.retrains) == (0.4, 3)
    assert (TrainSettings().brightness, TrainSettings.of(tiny_config().train).retrains) == (0.0, 1)
    for key, bad in (
        ("train.augment.brightness", -0.1),
        ("train.augment.brightness", 11.0),
        ("train.retrains", 0),
        ("train.retrains", 65),
        ("train.retrains", -1),
    ):
        with pytest.raises(config_lib.ConfigError) as e:
            config_lib.validate(tiny_config(**{key: bad}))
        assert f"config.{key}=" in str(e.value) and "\n" not in str(e.value)


# --- retrains: the [R] replica axis ------------------------------------------------

REPLICA_TAG = 0x524550  # replica j >= 1 trains with root key fold_in(root, TAG + j)


def _replica_root(root, j):
    return root if j == 0 else jax.random.fold_in(root, REPLICA_TAG + j)


@pytest.mark.parametrize("step_loop", ["device", "host"])
def test_three_retrains_are_three_separately_keyed_trainings_averaged(step_loop):
    c = tiny_config(
        strategy="entropy",
        num_seeds=1,
        seed_execution="loop",
        **{"train.retrains": 3, "train.step_loop": step_loop},
    )
    run = jaxal.assemble(c)
    engine = run.engine("entropy")
    state = init_state(engine, run.lanes, run.data)
    variables, _ = engine.fit(state, jnp.int32(0), run.data)
    acc, nll, _, _, per_replica = (np.asarray(a) for a in engine.evaluate(variables, run.data))
    assert len(variables) == 3 and per_replica.shape == (1, 3)
    # by hand: replica j = a plain fit of the lane with root key j, then its test accuracy
    lane = jax.tree.map(lambda a: a[0], state)
    fit = jax.jit(train_lib.make_fit(run.model, run.phases.train))
    evaluate = train_lib.make_evaluate(run.model, 256)
    want = []
    for j in range(3):
        root = _replica_root(lane.key, j)
        start = run.model.init(derive(root, 0, Purpose.MODEL_INIT), run.data.x_pool[:1])
        v, _ = fit(
            start, lane.order, lane.num_labeled, derive(root, 0, Purpose.TRAIN), run.data,
            lane.hparams,
        )
        want.append(float(evaluate(v, run.data.x_test, run.data.y_test)[0]))
    # accuracies are multiples of 1/450: a tolerance of 1e-6 asks for the same predictions
    np.testing.assert_allclose(per_replica[0], want, atol=1e-6)
    np.testing.assert_allclose(acc[0], np.mean(want), atol=1e-6)
    assert np.isfinite(nll).all()
    leaves = [jax.tree.leaves(v)[0] for v in variables]
    assert not np.array_equal(leaves[0], leaves[1]) and not np.array_equal(leaves[1], leaves[2])
    if step_loop == "device":  # the [R] axis vmapped (seed_execution=vmap): the same replicas
        c.seed_execution = "vmap"
        run = jaxal.assemble(c)
        engine = run.engine("entropy")
        out = engine.evaluate(engine.fit(state, jnp.int32(0), run.data)[0], run.data)
        np.testing.assert_allclose(np.asarray(out[1]), nll, rtol=1e-4)  # XLA batches: rounding
        assert np.abs(np.asarray(out[4]) - per_replica).max() <= 2 / 450


def _run_rows(config, labels=None):
    run = jaxal.assemble(config)
    out, orders = {}, {}
    for label in labels or run.strategies:
        state, recs = run_rounds(run.engine(label), run.lanes, run.data)
        out[label] = report.rows(label, run.lanes, recs)
        orders[label] = np.asarray(state.order)
    return out, orders


def test_scored_column_and_retrains_end_to_end_on_grid_lanes():
    strategies = "entropy,history_subsample(base=entropy,m=60)"  # subsample: smoke test
    grid = "learning_rate=0.01;learning_rate=0.003"  # lanes (setting, seed) stay outermost
    over = dict(strategy=strategies, num_seeds=1, seed_execution="loop", grid=grid, budget=20)
    rows, orders = _run_rows(tiny_config(**over, **{"train.retrains": 3}))
    n, k, init = 1347, 5, 10  # digits pool, query size, initial pool
    by = {label: sorted(r, key=lambda x: (x["round"], x["setting"])) for label, r in rows.items()}
    rounds = [0, 0, 1, 1, 2, 2]  # two settings, 10 -> 20 labels: 2 acquisitions + last
    assert [r["round"] for r in by["entropy"]] == rounds
    full = [n - init - k * r if r < 2 else 0 for r in rounds]
    assert [r["scored"] for r in by["entropy"]] == full
    hist = [r["scored"] for r in by["history_subsample(base=entropy,m=60)"]]
    assert hist == [n - init] * 2 + [60] * 2 + [0, 0]  # Algorithm 1: the whole pool first
    for r in by["entropy"]:
        reps = [r[f"test_accuracy_r{j}"] for j in range(3)]
        assert r["test_accuracy"] == pytest.approx(np.mean(reps), abs=1e-6)
    assert len({r["test_accuracy_r1"] for r in by["entropy"]}) > 1
    # R = 1 is today's run: no replica columns, and replica 0 of R = 3 is its model
    # (its accuracy, and so every pick: the acquisition is the R = 1 one)
    some = ["history_subsample(base=entropy,m=60)"]
    rows1, orders1 = _run_rows(tiny_config(**over), some)
    for label in some:
        assert "test_accuracy_r0" not in rows1[label][0]
        np.testing.assert_array_equal(orders1[label], orders[label])
        assert [(r["setting"], r["test_accuracy"]) for r in rows1[label]] == [
            (r["setting"], r["test_accuracy_r0"]) for r in rows[label]
        ]
        assert [r["scored"] for r in rows1[label]] == [r["scored"] for r in rows[label]]


# --- the study's smoke variants -------------------------------------------------------


def _study():
    spec = importlib.util.spec_from_file_location("compute_efficient_config", STUDY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_variants_are_valid_and_follow_the_paper(monkeypatch):
    monkeypatch.syspath_prepend(REPO)  # the MNIST variants' model: experiments.compute_efficient
    study = _study()
    for variant in study.VARIANTS:
        c = study.get_config(variant)
        config_lib.validate(c)
        assert c.train.retrains == 3 and c.num_rounds == 10
        assert "history_subsample" in c.strategy and "random" in c.strategy
        if not variant.startswith("smoke"):
            assert [f"m={m})" in c.strategy for m in (2500, 5000, 10000)] == [True] * 3
    cifar = study.get_config("cifar10_varr_is25_tas25")
    assert (cifar.initial.per_class, cifar.query_size, cifar.model.name) == (1250, 1250, "vgg11")
    assert cifar.train.augment.flip and cifar.train.augment.brightness > 0
    mnist = study.get_config("mnist_entropy_is1")
    assert (mnist.initial.per_class, mnist.query_size, mnist.mc.samples) == (60, 600, 64)
    with pytest.raises(ValueError):
        study.get_config("mnist_bald_is1")


def _smoke(variant):
    c = _study().get_config(variant)  # as run, but 1 seed, 2 epochs, 4 MC passes
    c.num_seeds = 1
    c.num_devices = 1  # as on this machine (conftest fakes 4 CPU devices)
    c.train.epochs = 2
    c.train.early_stop.patience = None
    c.mc.samples = 4
    return c


def test_smoke_variants_first_round():
    """Round 0 (train R = 3, score, label 40) of each smoke variant's strategies.

    ``smoke_varr`` differs from ``smoke`` only in its strategies, so its engines are
    built on the ``smoke`` run's training phases (compiled once). For time,
    hist_m320/m640 (which differ from hist_m160 only by m) are left out, and
    random (the same run in both variants) runs once."""
    configs = {v: _smoke(v) for v in ("smoke", "smoke_varr")}
    a, b = (c.to_dict() for c in configs.values())
    assert {k for k in a if a[k] != b[k]} == {"strategy", "strategy_params"}
    run = jaxal.assemble(configs["smoke"])
    s = run.settings
    assert run.plan.num_pool == 3900 and run.plan.num_rounds == 11
    unlabeled = 3900 - 40
    for variant, c in configs.items():
        specs = {spec.label: spec for spec in config_lib.parse_strategies(c)}
        full = "entropy(source=mc)" if variant == "smoke" else "variation_ratios"
        assert list(specs) == [
            "random", full, "hist_m160", "hist_m320", "hist_m640", "uniform_m320"
        ]
        labels = [full, "hist_m160", "uniform_m320"] + (["random"] if variant == "smoke" else [])
        first, picked = {}, {}
        for label in labels:
            strategy = strategies_lib.get(
                specs[label].name, **config_lib.strategy_kwargs(specs[label], 3900)
            )
            engine = make_engine(
                run.model, strategy, run.plan, run.phases, initial=s.initial, mc=s.mc,
                score_batch_size=s.score_batch_size, initial_inputs=run.prepare_initial(),
                schedule=s.schedule,
            )
            rec, state = next(rounds(engine, run.lanes, run.data))
            (first[label],) = report.rows(label, run.lanes, [rec])
            picked[label] = np.asarray(state.order)[0, 40:80]
        if "random" in first:
            assert first["random"]["scored"] == 0
        assert first[full]["scored"] == unlabeled  # the AF on the whole pool
        # history_subsample: Algorithm 1 scores everything first...
        assert first["hist_m160"]["scored"] == unlabeled
        # ... so its first batch is the full-pool AF's (same model, scores and top-k)
        np.testing.assert_array_equal(picked["hist_m160"], picked[full])
        assert first["uniform_m320"]["scored"] == 320
        assert not np.array_equal(picked["uniform_m320"], picked[full])
        for r in first.values():
            reps = [r[f"test_accuracy_r{j}"] for j in range(3)]
            assert r["test_accuracy"] == pytest.approx(np.mean(reps), abs=1e-6)
            assert r["num_labeled"] == 40 and r["queried"] == 40
        # every strategy of a seed shares the initial pool and round 0's models
        assert len({tuple(r[f"test_accuracy_r{j}"] for j in range(3)) for r in first.values()}) == 1
