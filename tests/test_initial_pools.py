"""Initial-pool strategies (jaxal/initial.py, jaxal/ssl.py) on hand-checkable cases,
the binned rule of Chandra et al. 2021 §4.1, and the first round of the
initial-pools study's smoke variant (experiments/initial_pools/)."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from jaxal import initial as initial_lib
from jaxal import ssl
from jaxal.assemble import assemble
from jaxal.config import ConfigError
from jaxal.initial import InitialInputs, initial_pool
from jaxal.loop import init_state
from jaxal.settings import InitialSettings, SSLSettings


def pools(config) -> np.ndarray:
    """The initial pools ``[S, n]`` of a config (order buffer up to the initial size)."""
    r = assemble(config)
    state = init_state(r.engine(next(iter(r.strategies))), r.seeds, r.data)
    return np.asarray(state.order)[:, : r.plan.initial_size]


# --- binned (§4.1) ----------------------------------------------------------------------


def test_binned_rule_on_a_tiny_sorted_input():
    # Scores already sorted (index i has score 11 - i); 3 bins of 4: [0..3] [4..7] [8..11].
    # B = 6: B/n = 2 hardest of bins 0 and 1, 2 easiest of the last bin (lowest first).
    scores = jnp.arange(12.0)[::-1]
    np.testing.assert_array_equal(initial_lib.binned_picks(scores, 6, 3), [0, 1, 4, 5, 11, 10])
    # n = 10 into bins of 4, 3, 3 ([0..3] [4..6] [7..9]); B = 7 gives quotas 3, 2, 2.
    scores = jnp.arange(10.0)[::-1]
    np.testing.assert_array_equal(initial_lib.binned_picks(scores, 7, 3), [0, 1, 2, 4, 5, 9, 8])
    # Unsorted input: the same rule on the ranks. Points by score: 5 > 2 > 0 > 3 > 4 > 1.
    scores = jnp.array([3.0, 0.0, 4.0, 2.0, 1.0, 9.0])
    np.testing.assert_array_equal(initial_lib.binned_picks(scores, 2, 2), [5, 1])
    assert initial_lib.bin_sizes(10, 3) == [4, 3, 3]


def test_hardest_takes_the_top_scores():
    s = InitialSettings(strategy="hardest", size=2)
    y = jnp.zeros(5, jnp.int32)
    inputs = InitialInputs(scores=jnp.array([0.1, 5.0, 3.0, 4.0, 0.0]))
    labeled, order, n = initial_pool(jax.random.key(0), y, s, 1, 4, inputs)
    np.testing.assert_array_equal(order, [1, 3, -1, -1])
    assert int(n) == 2 and np.flatnonzero(labeled).tolist() == [1, 3]
    s = InitialSettings(strategy="binned", size=2, bins=2)
    _, order, _ = initial_pool(jax.random.key(0), y, s, 1, 2, inputs)
    np.testing.assert_array_equal(order, [1, 4])  # hardest of the top bin, easiest of the last


# --- cluster (§3.2.2) ------------------------------------------------------------------------


def test_equal_and_proportional_quotas_by_hand():
    u = jnp.array([0.9, 0.1, 0.5, 0.3])
    # Water-filling over sizes 1, 5, 5, 9 for B = 8: 1, then 7 // 3 = 2, 5 // 2 = 2, 3.
    q = initial_lib.equal_quotas(jnp.array([1, 5, 5, 9]), 8, u)
    np.testing.assert_array_equal(q, [1, 2, 2, 3])
    np.testing.assert_array_equal(initial_lib.equal_quotas(jnp.full(4, 10), 8, u), [2, 2, 2, 2])
    # |C_j| B / N: 50, 30, 20 of 100 with B = 10 -> 5, 3, 2.
    q = initial_lib.proportional_quotas(jnp.array([50, 30, 20]), 10, 100, u[:3])
    np.testing.assert_array_equal(q, [5, 3, 2])
    # 4.5, 3.5, 2.0: floors 4, 3, 2 and one point left; the tie of the two halves
    # goes to the lower u (cluster 1).
    q = initial_lib.proportional_quotas(jnp.array([45, 35, 20]), 10, 100, u[:3])
    np.testing.assert_array_equal(q, [4, 4, 2])


def test_quota_picks_lowest_u_per_cluster_interleaved():
    labels = jnp.array([0, 0, 0, 1, 1, 2])
    u = jnp.array([0.3, 0.1, 0.2, 0.9, 0.8, 0.0])
    picks = initial_lib.quota_picks(labels, jnp.array([2, 1, 0]), u, 3)
    np.testing.assert_array_equal(picks, [1, 4, 2])  # rank 0 of clusters 0, 1; rank 1 of 0


def _blobs(sizes, d=3):
    rng = np.random.default_rng(0)
    centres = 20.0 * np.eye(d)[: len(sizes)]
    x = np.concatenate([c + rng.normal(size=(n, d)) for c, n in zip(centres, sizes, strict=True)])
    return jnp.asarray(x, jnp.float32), np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize(
    "share,size,expected", [("equal", 6, [2, 2, 2]), ("proportional", 10, [5, 3, 2])]
)
def test_cluster_takes_its_share_of_every_kmeans_cluster(share, size, expected):
    x, blob = _blobs([10, 6, 4])  # three far-apart blobs: k-means (K = 3) finds them
    s = InitialSettings(strategy="cluster", size=size, cluster_share=share)
    y = jnp.zeros(20, jnp.int32)  # the labels are not used
    pool = jax.jit(lambda key: initial_pool(key, y, s, 3, size, InitialInputs(x))[1])
    take = [np.asarray(pool(jax.random.key(k))) for k in (0, 1, 0)]
    for order in take:
        assert len(set(order.tolist())) == size
        np.testing.assert_array_equal(np.bincount(blob[order], minlength=3), expected)
    np.testing.assert_array_equal(take[0], take[2])  # same key, same pool
    assert set(take[0]) != set(take[1])  # another seed's key picks others within clusters


def test_cluster_on_the_run_uses_each_seeds_initial_pool_key():
    from jaxal.rng import Purpose, derive

    over = {"initial.strategy": "cluster", "initial.features": "raw", "initial.size": 10}
    cfg = tiny_config(**over)
    got = pools(cfg)
    r = assemble(cfg)
    x = jnp.asarray(r.dataset.x_train.reshape(len(r.dataset.x_train), -1))
    s = InitialSettings.of(cfg.initial)
    one = jax.jit(
        lambda key: initial_pool(
            derive(key, 0, Purpose.INITIAL_POOL), r.data.y_pool, s, 10, 10, InitialInputs(x)
        )[1]
    )
    np.testing.assert_array_equal(got, [one(jax.random.key(seed)) for seed in (0, 1)])
    assert set(got[0]) != set(got[1]) and all(len(set(row)) == 10 for row in got)


# --- from_file -------------------------------------------------------------------------------


def test_from_file_npy_txt_and_a_runs_labeled_indices(tmp_path):
    np.save(tmp_path / "one.npy", np.array([5, 3, 8, 1]))
    got = pools(
        tiny_config(**{"initial.strategy": "from_file", "initial.file": str(tmp_path / "one.npy")})
    )
    np.testing.assert_array_equal(got, [[5, 3, 8, 1], [5, 3, 8, 1]])  # [n]: every seed
    (tmp_path / "two.txt").write_text("# seed 0, then seed 1\n4 9 2\n7 0 6\n")
    (tmp_path / "two.csv").write_text("4,9,2\n7,0,6\n")
    for name in ("two.txt", "two.csv"):
        cfg = tiny_config(**{"initial.strategy": "from_file", "initial.file": str(tmp_path / name)})
        np.testing.assert_array_equal(pools(cfg), [[4, 9, 2], [7, 0, 6]])  # [S, n]: row per seed
    # Import the labels of a run's first rounds from its labeled_indices.npz.
    order = np.array([[11, 12, 13, 14, 15, -1], [21, 22, 23, 24, 25, -1]])
    np.savez(tmp_path / "labeled_indices.npz", seeds=np.array([0, 1]), **{"margin/order": order})
    over = {
        "initial.strategy": "from_file",
        "initial.file": str(tmp_path / "labeled_indices.npz"),
        "initial.file_key": "margin/order",
        "initial.file_take": 4,
    }
    np.testing.assert_array_equal(pools(tiny_config(**over)), order[:, :4])


@pytest.mark.parametrize(
    "content,over,message",
    [
        (
            np.array([1, 2, 5000]),
            {},
            "index 5000 at row 0, position 2 is out of range for the pool of 1347",
        ),
        (np.array([[1, 2], [3, 3]]), {}, "row 1 repeats index 3 (positions 0 and 1)"),
        (np.array([4, -1]), {}, "negative index -1"),
        (np.array([[1, 2], [3, 4], [5, 6]]), {}, "3 rows (one per seed) but the run has 2 seeds"),
        (np.array([0.5, 2.0]), {}, "non-integers"),
        (np.array([1, 2]), {"initial.file_take": 3}, "config.initial.file_take=3 is invalid"),
        (None, {}, "no such file"),
        ({"a": [1], "b": [2]}, {}, "holds 2 arrays (a, b); name one with config.initial.file_key"),
    ],
)
def test_from_file_bad_indices_stop_in_one_line(tmp_path, content, over, message):
    path = tmp_path / ("p.npz" if isinstance(content, dict) else "p.npy")
    if isinstance(content, dict):
        np.savez(path, **content)
    elif content is not None:
        np.save(path, content)
    cfg = tiny_config(**{"initial.strategy": "from_file", "initial.file": str(path), **over})
    with pytest.raises(ConfigError) as e:
        assemble(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith("config.initial.file")


@pytest.mark.parametrize(
    "over,key,allowed",
    [
        ({"initial.cluster_share": "half"}, "config.initial.cluster_share", "equal, proportional"),
        ({"initial.score": "rotation"}, "config.initial.score", "vae, vae_elbo, ae, simclr"),
        ({"initial.features": "pixels"}, "config.initial.features", "simclr, vae, ae, raw"),
        ({"initial.bins": 1}, "config.initial.bins", ">= 2"),
        (
            {"initial.strategy": "hardest", "initial.ssl.arch": "model"},
            "config.initial.ssl.arch",
            "decoder",
        ),
        ({"initial.ssl.arch": "transformer"}, "config.initial.ssl.arch", "auto, mlp, conv, model"),
        (
            {"initial.strategy": "hardest", "initial.ssl.arch": "conv"},
            "config.initial.ssl.arch",
            "divisible by 16",
        ),
    ],
)
def test_bad_initial_keys_name_the_key_and_what_is_allowed(over, key, allowed):
    with pytest.raises(ConfigError) as e:
        assemble(tiny_config(**over))
    assert str(e.value).startswith(key) and allowed in str(e.value) and "\n" not in str(e.value)


# --- self-supervised scores -----------------------------------------------------------------


def test_nt_xent_by_hand():
    e = jnp.eye(2)
    # i = 0: positive at view 2 (similarity 1), negatives 1 and 3 (similarity 0), T = 1.
    per = ssl.nt_xent(e, e, jnp.array([True, True]), 1.0)
    np.testing.assert_allclose(per, [-np.log(np.e / (np.e + 2))] * 2, rtol=1e-6)
    # An invalid (padding) row is no negative: only the pair is left, loss 0.
    per = ssl.nt_xent(e, e, jnp.array([True, False]), 1.0)
    np.testing.assert_allclose(per[0], 0.0, atol=1e-6)


@pytest.mark.parametrize("name,score", [("ae", "recon"), ("vae", "recon")])
def test_reconstruction_error_ranks_off_manifold_points_first(name, score):
    # 250 points on a 2-D plane of R^12 and 50 isotropic ones off it: an encoder
    # with a 2-D latent learns the plane; the 20 hardest points are all off it.
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(12, 12)))[0].T
    x = np.concatenate(
        [2.0 * rng.normal(size=(250, 2)) @ basis[:2], 2.0 * rng.normal(size=(50, 12))]
    )
    s = SSLSettings(
        arch="mlp",
        latent=2,
        hidden=64,
        epochs=60,
        batch_size=64,
        learning_rate=3e-3,
        val_fraction=0.0,
    )
    out = ssl.train_and_encode(name, x.astype(np.float32), s)
    assert out["features"].shape == (300, 2) and out[score].shape == (300,)
    assert (np.argsort(-out[score])[:20] >= 250).all()


def test_encoders_are_cached_and_reused(tmp_path, monkeypatch):
    x = np.random.default_rng(1).normal(size=(40, 6)).astype(np.float32)
    s = SSLSettings(arch="mlp", latent=2, hidden=8, epochs=1, batch_size=16)
    first = ssl.encode_pool("simclr", x, s, cache_dir=str(tmp_path))
    (path,) = [p for p in os.listdir(tmp_path) if p.endswith(".npz")]
    assert path.startswith("simclr-") and first["loss"].shape == (40,)

    def no_training(*a, **k):
        raise AssertionError("the cached encoder was trained again")

    monkeypatch.setattr(ssl, "train_and_encode", no_training)
    again = ssl.encode_pool("simclr", x, s, cache_dir=str(tmp_path))
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    with pytest.raises(AssertionError):  # other settings: another encoder
        ssl.encode_pool("simclr", x, SSLSettings(arch="mlp", latent=3), cache_dir=str(tmp_path))


# --- the study's smoke variant -----------------------------------------------------------------


def _study_config(variant="smoke"):
    path = os.path.join(
        os.path.dirname(__file__), "..", "experiments", "initial_pools", "config.py"
    )
    spec = importlib.util.spec_from_file_location("initial_pools_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.get_config(variant)


def test_study_smoke_first_round_uses_the_cached_vae_pool(tmp_path, monkeypatch):
    from jaxal.config import apply_overrides
    from jaxal.experiment import run_experiment

    mod, config = _study_config()
    assert len(mod.get_hyper(None, "smoke")) == 21  # 7 initial pools x 3 acquisition groups
    apply_overrides(
        config,
        {
            "initial.strategy": "hardest",
            "initial.score": "vae",
            "initial.ssl.epochs": 3,
            "strategy": "passive=random",
            "num_seeds": 2,
            "budget": 30,
            "train.epochs": 3,
            "checkpoint.enabled": False,
        },
    )  # budget = the initial pool: the first round only
    rows = run_experiment(config, str(tmp_path / "unit"), progress=False)
    assert [(r["round"], r["num_labeled"]) for r in rows] == [(0, 30), (0, 30)]
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    (cache,) = [p for p in os.listdir(tmp_path / "ssl_cache") if p.endswith(".npz")]  # ../ssl_cache
    recon = np.load(tmp_path / "ssl_cache" / cache)["recon"]
    order = np.load(tmp_path / "unit" / "labeled_indices.npz")["passive/order"]
    expected = np.argsort(-recon, kind="stable")[:30]
    np.testing.assert_array_equal(order, [expected, expected])  # Eq. (1): the 30 hardest points
    # Another unit of the sweep (or the same one resumed) reuses the encoder: same pool.
    from jaxal.initial import resolve_cache_dir

    monkeypatch.setattr(ssl, "train_and_encode", lambda *a, **k: pytest.fail("trained again"))
    apply_overrides(config, {"strategy": "me=entropy"})
    run = assemble(config)
    run.prepare_initial(resolve_cache_dir(run.settings.initial, str(tmp_path / "unit2")))
    state = init_state(run.engine("me"), run.seeds, run.data)
    np.testing.assert_array_equal(np.asarray(state.order), order)
    assert len([p for p in os.listdir(tmp_path / "ssl_cache") if p.endswith(".npz")]) == 1
