"""The architecture study (experiments/architectures/): the paper's model zoo
(App. B), the round-start hook (train.init_from), DeepCluster pretraining,
labeling efficiency / gain over random, and the smoke variant's first round."""

from __future__ import annotations

import functools
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import metrics, models, pretrain
from jaxal import train as train_lib
from jaxal.assemble import assemble
from jaxal.config import ConfigError, apply_overrides, validate
from jaxal.loop import init_state, rounds
from jaxal.rng import Purpose, derive
from jaxal.settings import PretrainSettings, TrainSettings
from jaxal.sweep import Hyper

HERE = os.path.dirname(os.path.abspath(__file__))
STUDY = os.path.join(os.path.dirname(HERE), "experiments", "architectures")
CIFAR = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)


def _study(name="config"):
    path = os.path.join(STUDY, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"arch_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _shapes(tree) -> dict[str, tuple]:
    return pretrain.flatten_shapes(tree)


@functools.cache
def _params(name, num_classes=10, **kw):
    m = models.get_model(name, num_classes, **kw)
    return m, _shapes(jax.eval_shape(m.init, jax.random.key(0), CIFAR))  # traced only


# --- the model zoo (App. B) ---------------------------------------------------------


@pytest.mark.parametrize("name,convs", [("vgg11_fc", 8), ("vgg16_fc", 13), ("vgg19_fc", 16)])
def test_vgg_fc_head_is_the_papers_4096_4096_1000_c_stack(name, convs):
    m, p = _params(name)
    head = {k: v for k, v in p.items() if k.startswith("params/classifier/")}
    assert head == {  # App. B.2: 2 x [FC 4096], FC 1000, FC C, after a 1x1x512 map
        "params/classifier/Dense_0/kernel": (512, 4096),
        "params/classifier/Dense_0/bias": (4096,),
        "params/classifier/Dense_1/kernel": (4096, 4096),
        "params/classifier/Dense_1/bias": (4096,),
        "params/classifier/Dense_2/kernel": (4096, 1000),
        "params/classifier/Dense_2/bias": (1000,),
        "params/classifier/Dense_3/kernel": (1000, 10),
        "params/classifier/Dense_3/bias": (10,),
    }
    kernels = [v for k, v in p.items() if k.startswith("params/backbone/") and "kernel" in k]
    assert len(kernels) == convs and all(v[:2] == (3, 3) for v in kernels)
    assert kernels[-1] == (3, 3, 512, 512) and m.embedding_dim == 1000
    # the pooled-head names keep their single Dense(C) on the 512-d pool
    _, pooled = _params(name.removesuffix("_fc"))
    assert pooled["params/classifier/Dense_0/kernel"] == (512, 10)
    assert not any(k.startswith("params/classifier/Dense_1") for k in pooled)


def test_vgg_fc_head_computes_relu_fc_stack_with_dropout_only_under_a_key():
    m = models.get_model("vgg11_fc", 3, width=8, dropout=0.5)  # FC widths 512, 512, 125
    x = jax.ShapeDtypeStruct((4, 8, 8, 1), jnp.float32)
    rng = np.random.default_rng(0)  # random values, no threefry init to compile
    v = jax.tree.map(
        lambda a: rng.normal(0, 0.2, a.shape).astype(np.float32),
        jax.eval_shape(m.init, jax.random.key(1), x),
    )
    h = jax.eval_shape(m.features, v, x)
    assert h.shape == (4, 64)  # 8x8 -> 1x1 after five 'SAME' pools, 64 channels
    h = rng.normal(0, 1.0, h.shape).astype(np.float32)
    head = jax.jit(m.head)
    logits, emb = head(v, h)
    w = v["params"]["classifier"]
    z = np.asarray(h, np.float64)
    layers = [w[f"Dense_{i}"] for i in range(4)]
    dense = [(np.asarray(d["kernel"]), np.asarray(d["bias"])) for d in layers]
    for k, b in dense[:3]:  # numpy: Dense-ReLU x 3 (no dropout without a key)
        z = np.maximum(z @ k + b, 0)
    ref = z @ dense[3][0] + dense[3][1]
    np.testing.assert_allclose(emb, z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-5)
    assert emb.shape == (4, 125)
    mc_logits, mc_emb = head(v, h, dropout_key=jax.random.key(2))
    assert not np.allclose(mc_emb, emb) and not np.allclose(mc_logits, logits)


def _bottleneck_params(c_in, planes, stride):
    out = 4 * planes
    n = c_in * planes + 2 * planes + 9 * planes * planes + 2 * planes + planes * out + 2 * out
    if stride != 1 or c_in != out:
        n += c_in * out + 2 * out
    return n


def test_resnet50_is_bottlenecks_3_4_6_3_into_a_2048_pool():
    m, p = _params("resnet50")
    total, c_in = 3 * 3 * 3 * 64 + 2 * 64, 64  # stem: Conv 3, 64 + BN
    for i, blocks in enumerate((3, 4, 6, 3)):
        for j in range(blocks):
            total += _bottleneck_params(c_in, 64 * 2**i, 2 if i > 0 and j == 0 else 1)
            c_in = 4 * 64 * 2**i
    total += 2048 * 10 + 10  # FC C on the 2048-wide pool
    params = {k: v for k, v in p.items() if k.startswith("params/")}
    assert sum(int(np.prod(v)) for v in params.values()) == total == 23_520_842
    assert len({k.split("/")[2] for k in params if "Bottleneck" in k}) == 16
    assert m.embedding_dim == 2048 and p["params/classifier/Dense_0/kernel"] == (2048, 10)
    assert _params("resnet18")[0].embedding_dim == 512  # BasicBlock nets unchanged


def test_mlp_depth_is_the_number_of_hidden_widths():
    for hidden in ((256,), (256, 256, 256)):
        _, p = _params("mlp", hidden=hidden)
        dense = sorted(k for k in p if k.startswith("params/backbone/") and k.endswith("kernel"))
        assert len(dense) == len(hidden)


def test_top_layer_is_found_by_the_number_of_classes():
    make = functools.partial(models.get_model, "vgg11_fc", width=8)
    top = pretrain.top_layer_paths(lambda k: make(k), 10, CIFAR)
    assert top == {"params/classifier/Dense_3/kernel", "params/classifier/Dense_3/bias"}


# --- labeling efficiency and gain over random (hand-made curves) -------------------


def test_labeling_efficiency_and_gain_on_a_hand_made_curve():
    rx, ry = [100, 200, 300, 400], [0.5, 0.6, 0.7, 0.8]
    x, y = [100, 200, 300, 400], [0.45, 0.75, 0.7, 0.85]
    # random needs: <= 100 (its first point already has 0.5 >= 0.45), 350 for 0.75,
    # 300 for 0.7, never for 0.85 (bound: 400 / 400)
    np.testing.assert_allclose(
        metrics.efficiency_curve(rx, ry, x, y), [1.0, 1.75, 1.0, np.nan], equal_nan=True
    )
    bound = metrics.efficiency_curve(rx, ry, x, y, beyond="bound")
    np.testing.assert_allclose(bound, [1, 1.75, 1, 1])
    gain = metrics.gain_curve(rx, ry, x, y)
    np.testing.assert_allclose(gain, [-0.05, 0.15, 0.0, 0.05], atol=1e-12)
    # between random's points: 150 labels -> random has 0.55; 0.65 needs 250
    assert metrics.gain_curve(rx, ry, [150], [0.65])[0] == pytest.approx(0.1)
    assert metrics.efficiency_curve(rx, ry, [150], [0.65])[0] == pytest.approx(250 / 150)
    assert np.isnan(metrics.gain_curve(rx, ry, [500], [0.9])[0])  # outside random's range


def test_analysis_uses_the_longest_random_curve_of_the_same_seed():
    an = _study("analyze")

    class FakeRun:
        def __init__(self, strategies, rows, path="u"):
            self.strategies, self.rows, self.path = strategies, rows, path

    def rows(strategy, pts, seed=0):
        return [
            {"strategy": strategy, "seed": seed, "num_labeled": n, "test_accuracy": a}
            for n, a in pts
        ]

    main = FakeRun(
        ["random", "margin"],
        rows("random", [(100, 0.5), (200, 0.6)]) + rows("margin", [(100, 0.5), (200, 0.7)]),
    )
    long = FakeRun(["random"], rows("random", [(100, 0.5), (200, 0.6), (300, 0.7), (400, 0.8)]))
    units = [
        {"setting": "d", "arch": "a", "pretrain": False, "run": main},
        {"setting": "d", "arch": "a", "pretrain": False, "run": long},
    ]
    (margin,), per_round = an.analyse(units)
    assert margin["strategy"] == "margin" and margin["beyond"] == 0
    assert margin["efficiency"] == pytest.approx(300 / 200)  # round 1 only (round 0 skipped)
    assert margin["gain"] == pytest.approx(0.1)
    assert [r["efficiency"] for r in per_round] == pytest.approx([1.0, 1.5])


# --- the round-start hook (train.init_from) ---------------------------------------


def test_a_round_starts_exactly_from_the_given_variables(tmp_path):
    over = {"seed_execution": "loop", "train.step_loop": "device"}
    plain = assemble(tiny_config(**over))
    like = pretrain.template(plain.model, plain.dataset.x_train)
    rng = np.random.default_rng(0)
    given = jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(np.float32), like)
    path = str(tmp_path / "start.npz")
    pretrain.save_variables(path, given)
    # One seed's round trained directly with jaxal.train from chosen variables
    # (train.reinit only decides where fit starts, not how it trains).
    train = plain.phases.train
    fit = jax.jit(train_lib.make_fit(plain.model, train, train.eval_batch_size))

    def fit_from(variables, state, seed, round_, data):
        st = _seed(state, seed)
        key = derive(st.key, jnp.int32(round_), Purpose.TRAIN)
        return fit(variables, st.order, st.num_labeled, key, data, st.hparams)[0]

    for reinit in (True, False):
        run = assemble(
            tiny_config(**over, **{"train.init_from": f"file:{path}", "train.reinit": reinit})
        )
        engine = run.engine(run.settings.strategies[0].label)
        kernel = run.data.init_variables["params"]["classifier"]["Dense_0"]["kernel"]
        np.testing.assert_array_equal(kernel, given["params"]["classifier"]["Dense_0"]["kernel"])
        state = init_state(engine, run.seeds, run.data)
        got, _ = engine.fit(state, jnp.int32(0), run.data)
        data = run.data._replace(init_variables=None)
        for seed in range(2):
            want = fit_from(given, state, seed, 0, data)
            fresh = fit_from(_seed(state.variables, seed), state, seed, 0, data)
            _assert_equal(_seed(got, seed), want)  # trained from the file's variables ...
            assert not _equal(want, fresh)  # ... not from the seed's and round's model.init
        # a later round: reinit starts from the file again, a warm start from the last model
        state = state._replace(variables=got)
        later, _ = engine.fit(state, jnp.int32(2), run.data)
        start = given if reinit else _seed(got, 0)
        _assert_equal(_seed(later, 0), fit_from(start, state, 0, 2, data))


def _seed(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def _equal(a, b) -> bool:
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _assert_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_variables_file_that_does_not_fit_the_model_is_one_config_error(tmp_path):
    plain = assemble(tiny_config())
    like = pretrain.template(plain.model, plain.dataset.x_train)
    flat = {k: np.zeros(s, np.float32) for k, s in _shapes(like).items()}
    flat["params/backbone/Dense_0/kernel"] = np.zeros((3, 3), np.float32)
    np.savez(tmp_path / "bad.npz", **flat)
    match = r"config\.train\.init_from=.*Dense_0/kernel.*\(64, 16\)"
    with pytest.raises(ConfigError, match=match) as e:
        assemble(tiny_config(**{"train.init_from": f"file:{tmp_path / 'bad.npz'}"}))
    assert "\n" not in str(e.value)
    for over, key in (
        ({"train.init_from": "imagenet"}, "config.train.init_from"),
        ({"train.init_from": "pretrain", "ensemble_size": 2}, "config.train.init_from"),
        ({"pretrain.clusters": 1}, "config.pretrain.clusters"),
        ({"pretrain.rounds": 0}, "config.pretrain.rounds"),
    ):
        with pytest.raises(ConfigError, match=key):
            assemble(tiny_config(**over))


# --- DeepCluster --------------------------------------------------------------------


def test_deepcluster_pseudo_labels_recover_separable_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]])
    y = np.repeat(np.arange(3), 60)
    x = (centres[y] + rng.normal(0, 0.5, (180, 3))).astype(np.float32)
    make = lambda k: models.get_model("mlp", k, hidden=(16,), dropout=0.0)  # noqa: E731
    s = PretrainSettings(rounds=3, epochs=2, pca_dim=2, kmeans_iters=20, batch_size=30)
    t = TrainSettings(optimizer="adam", learning_rate=1e-2, eval_batch_size=64)
    variables, hist = pretrain.deepcluster(make, 3, x, s, t, y_for_log=y)
    assert np.all(hist["nmi_labels"] > 0.95), hist  # the clusters are the blobs
    assert hist["min_cluster"].min() >= 50 and hist["accuracy"][-1] > 0.9
    assert _shapes(variables) == _shapes(jax.eval_shape(make(3).init, jax.random.key(0), x[:1]))


def test_deepcluster_feature_preprocessing_and_uniform_cluster_sampling():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(500, 3)) * np.array([5.0, 1.0, 0.2])
    out = pretrain.preprocess_features(f, 0)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-5)
    top = pretrain.preprocess_features(f, 1)  # 1 whitened component, L2-normalised: +-1
    np.testing.assert_allclose(np.abs(top[:, 0]), 1, rtol=1e-5)
    # the top component is (nearly) the first axis, whose variance is 25x the next
    agree = np.sign(top[:, 0]) == np.sign(f[:, 0] - f[:, 0].mean())
    assert max(agree.mean(), 1 - agree.mean()) > 0.97
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    picks = pretrain.uniform_cluster_sample(labels, 4, 100, np.random.default_rng(0))  # 3 non-empty
    counts = np.bincount(labels[picks], minlength=3)
    assert picks.shape == (100,) and counts.sum() == 100
    assert np.all((32 <= counts) & (counts <= 34))  # ceil(100 / 3) = 34 each, first 100 kept
    assert set(picks[labels[picks] == 2]) == {99}


# --- the smoke variant's first round ------------------------------------------------


def test_each_smoke_unit_runs_its_first_round(tmp_path):
    study = _study()
    points = study.get_hyper(Hyper(), "smoke")
    assert len(points) == 6  # 2 architectures x (without, with pretraining) + 2 long randoms
    for variant in study.VARIANTS:  # the units are valid configs (all of one GPU variant)
        units = study.get_hyper(Hyper(), variant)
        for point in units if variant == "cifar10_aug" else units[:1]:
            c = study.get_config(variant)
            validate(apply_overrides(c, {k.removeprefix("config."): v for k, v in point.items()}))
        if variant != "smoke":  # §3.2: 1,000 balanced labels, +1,000 per round, 25 rounds
            c = study.get_config(variant)
            assert (c.initial.per_class, c.query_size, c.num_rounds) == (100, 1000, 25)
            assert c.train.early_stop.train_accuracy == 0.99 and c.train.early_stop.patience == 50
            assert bool(c.train.augment.flip) == variant.endswith("_aug")
    seen = set()
    for point in points:
        key = (point["config.model.name"], point["config.train.init_from"])
        if key in seen:
            continue  # the long random reference: same model and start as its unit
        seen.add(key)
        config = study.get_config("smoke")
        apply_overrides(config, {k.removeprefix("config."): v for k, v in point.items()})
        fast = {"train.epochs": 5, "pretrain.rounds": 1, "pretrain.kmeans_iters": 5}
        apply_overrides(config, {"num_devices": 1, **fast})
        run = assemble(config)
        assert list(run.strategies) == [
            "random", "least_confidence", "margin", "entropy", "bald", "coreset", "badge"
        ]
        rec, state = next(rounds(run.engine("random"), run.seeds, run.data))
        assert rec.num_labeled == 40 and np.all(rec.queried == 40)
        assert np.all(rec.test_accuracy > 0.2), (point, rec.test_accuracy)  # chance: 0.1
        assert np.all(np.asarray(state.num_labeled) == 80)
        pretrained = point["config.train.init_from"] == "pretrain"
        assert (run.data.init_variables is not None) == pretrained
    assert len(seen) == 4
