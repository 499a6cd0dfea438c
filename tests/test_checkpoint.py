"""Tests for jaxal.checkpoint: bit-exact round trips, pruning, async saves,
fallback past corrupted steps, and a SIGKILL in the middle of saving."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxal.checkpoint import CheckpointWarning, LayoutMismatchError, RunCheckpointer
from jaxal.loop import SeedState

# Orbax leaves un-awaited coroutines and a closed event loop behind when a read
# fails; harmless here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

S, N, BUDGET = 4, 9, 6
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class History(NamedTuple):
    scores: jax.Array  # float32[S, N]
    nested: tuple  # ((), int32[S], None)
    missing: object  # None


def make_state(step: int = 0) -> SeedState:
    """A SeedState-like tree whose values depend on ``step`` (numpy-built)."""
    rng = np.random.default_rng(step)
    scores = rng.standard_normal((S, N)).astype(np.float32)
    scores[0, :3] = [np.nan, -0.0, np.inf]  # bit patterns an `==` check would miss
    labeled = rng.random((S, N)) < 0.3
    order = np.full((S, BUDGET), -1, np.int32)
    order[:, :2] = rng.integers(0, N, (S, 2))
    return SeedState(
        key=jax.random.split(jax.random.key(100 + step), S),
        labeled=jnp.asarray(labeled),
        order=jnp.asarray(order),
        num_labeled=jnp.asarray(labeled.sum(1), jnp.int32),
        variables={
            "params": {
                "Dense_0": {
                    "kernel": jnp.asarray(rng.standard_normal((S, 3, 2)), jnp.float32),
                    "bias": jnp.asarray(rng.standard_normal((S, 2)), jnp.bfloat16),
                }
            },
            "batch_stats": {"mean": np.arange(S * 2, dtype=np.float64).reshape(S, 2) + step},
        },
        strategy_state=History(
            scores=jnp.asarray(scores),
            nested=((), jnp.arange(S, dtype=jnp.int32) + step, None),
            missing=None,
        ),
        hparams={
            "learning_rate": jnp.full((S,), 1e-3 * (step + 1), jnp.float32),
            "weight_decay": jnp.zeros((S,), jnp.float32),
        },
    )


def host_bits(tree):
    """Leaves as host numpy bit patterns (keys as their raw uint32 data)."""

    def bits(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        a = np.asarray(x)
        return a.view(np.uint8) if a.dtype.itemsize else a

    return [bits(x) for x in jax.tree.leaves(tree)]


def assert_same_tree(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert type(g) is type(w) or (isinstance(g, jax.Array) and isinstance(w, jax.Array))
        assert g.dtype == w.dtype and g.shape == w.shape
    for g, w in zip(host_bits(got), host_bits(want), strict=True):
        np.testing.assert_array_equal(g, w)


def open_ckpt(path, **kw):
    return RunCheckpointer(os.path.join(str(path), "checkpoints"), **kw)


# --- round trips -------------------------------------------------------------


def test_round_trip_is_bit_exact_and_keys_stay_typed(tmp_path):
    state = make_state(3)
    expected_bits = host_bits(state)
    # Random numbers the keys give before saving, for each seed.
    expected_draws = np.stack([np.asarray(jax.random.uniform(k, (5,))) for k in state.key])
    meta = {"round": 3, "strategy": "entropy", "rows": [{"acc": 0.5, "n": 10}]}
    with open_ckpt(tmp_path) as ckpt:
        ckpt.save(3, state, meta)
        ckpt.wait()
    with open_ckpt(tmp_path) as ckpt:  # a fresh process-like reopen
        got, got_meta = ckpt.restore(template=state)
    assert isinstance(got, SeedState) and isinstance(got.strategy_state, History)
    assert got.strategy_state.nested[0] == () and got.strategy_state.nested[2] is None
    assert got.strategy_state.missing is None
    assert jax.dtypes.issubdtype(got.key.dtype, jax.dtypes.prng_key)
    assert got.key.dtype == state.key.dtype and got.key.shape == (S,)
    assert isinstance(got.variables["batch_stats"]["mean"], np.ndarray)
    for g, w in zip(host_bits(got), expected_bits, strict=True):
        np.testing.assert_array_equal(g, w)
    draws = np.stack([np.asarray(jax.random.uniform(k, (5,))) for k in got.key])
    np.testing.assert_array_equal(draws, expected_draws)
    assert got_meta == meta


def test_restore_into_sharded_and_abstract_templates(tmp_path):
    mesh = jax.make_mesh((4,), ("seed",), axis_types=(AxisType.Auto,))
    seed_sharding = NamedSharding(mesh, P("seed"))
    state = jax.device_put(
        jax.tree.map(jnp.asarray, make_state(1)), seed_sharding
    )  # every leaf sharded over its leading [S] axis
    with open_ckpt(tmp_path) as ckpt:
        ckpt.save(1, state, {})
        got, _ = ckpt.restore(1, template=state)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(state), strict=True):
            assert g.sharding.is_equivalent_to(w.sharding, g.ndim)
        assert_same_tree(got, state)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
        )
        got, _ = ckpt.restore(1, template=abstract)
        assert got.key.sharding.is_equivalent_to(state.key.sharding, 1)
        assert_same_tree(got, state)


def test_restore_without_template_gives_flat_dict_by_path(tmp_path):
    state = make_state(2)
    with open_ckpt(tmp_path) as ckpt:
        ckpt.save(0, state, {"a": 1})
        flat, meta = ckpt.restore()
    want = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}
    assert list(flat) == list(want)
    assert meta == {"a": 1}
    assert jax.dtypes.issubdtype(flat[".key"].dtype, jax.dtypes.prng_key)
    for k in want:
        for g, w in zip(host_bits(flat[k]), host_bits(want[k]), strict=True):
            np.testing.assert_array_equal(g, w)


def test_scalars_and_empty_trees(tmp_path):
    tree = {"i": 7, "f": 2.5, "b": True, "np32": np.float32(1.25), "empty": (), "none": None}
    with open_ckpt(tmp_path) as ckpt:
        ckpt.save(0, tree, {})
        ckpt.save(1, (), {"only": "meta"})
        got, _ = ckpt.restore(0, template=tree)
        assert got == {"i": 7, "f": 2.5, "b": True, "np32": 1.25, "empty": (), "none": None}
        assert type(got["np32"]) is np.float32 and type(got["i"]) is int
        assert ckpt.restore(1, template=()) == ((), {"only": "meta"})


def test_meta_json_round_trip(tmp_path):
    meta = {
        "config": {"model": {"hidden": [16, 8]}, "lr": 1e-3, "name": "bald"},
        "rows": [{"seed": 0, "acc": np.float32(0.75), "n": np.int64(20)}, {"nll": float("nan")}],
        "order": np.arange(3),
        "none": None,
    }
    with open_ckpt(tmp_path) as ckpt:
        ckpt.save(0, {"x": jnp.zeros(2)}, meta)
        _, got = ckpt.restore(0, template={"x": jnp.zeros(2)})
    assert got["config"] == {"model": {"hidden": [16, 8]}, "lr": 1e-3, "name": "bald"}
    assert got["rows"][0] == {"seed": 0, "acc": 0.75, "n": 20}
    assert np.isnan(got["rows"][1]["nll"])
    assert got["order"] == [0, 1, 2] and got["none"] is None


def test_layout_mismatch_is_an_error_not_a_fallback(tmp_path):
    state = make_state(0)
    with open_ckpt(tmp_path) as ckpt:
        ckpt.save(0, state, {})
        ckpt.save(1, state, {})
        wrong = state._replace(order=jnp.zeros((S, BUDGET + 1), jnp.int32))
        with pytest.raises(LayoutMismatchError, match="order"):
            ckpt.restore(template=wrong)
        with pytest.raises(LayoutMismatchError):
            ckpt.restore_latest_good(template=state._replace(num_labeled=jnp.zeros(S)))
        with pytest.raises(LayoutMismatchError):
            ckpt.restore_latest_good(template={"other": jnp.zeros(1)})


# --- steps, pruning, async ---------------------------------------------------


def test_max_to_keep_prunes_and_async_save_waits(tmp_path):
    with open_ckpt(tmp_path, max_to_keep=2, async_save=True) as ckpt:
        assert ckpt.latest_step() is None
        for step in range(5):
            ckpt.save(step, make_state(step), {"round": step})
        ckpt.wait()
        assert ckpt.all_steps() == [3, 4] and ckpt.latest_step() == 4
    on_disk = sorted(int(n) for n in os.listdir(tmp_path / "checkpoints") if n.isdigit())
    assert on_disk == [3, 4]
    with open_ckpt(tmp_path) as ckpt:
        got, meta = ckpt.restore(3, template=make_state(0))
    assert meta == {"round": 3}
    assert_same_tree(got, make_state(3))


def test_sync_save_and_replacing_a_step(tmp_path):
    with open_ckpt(tmp_path, async_save=False) as ckpt:
        ckpt.save(0, make_state(0), {"v": "first"})
        ckpt.save(0, make_state(5), {"v": "second"})
        got, meta = ckpt.restore(0, template=make_state(0))
    assert meta == {"v": "second"}
    assert_same_tree(got, make_state(5))


def test_empty_directory(tmp_path):
    with open_ckpt(tmp_path) as ckpt:
        assert ckpt.latest_step() is None and ckpt.all_steps() == []
        assert ckpt.restore_latest_good(template=make_state(0)) is None
        with pytest.raises(FileNotFoundError):
            ckpt.restore(template=make_state(0))


# --- corruption --------------------------------------------------------------


def _files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _corrupt(step_dir, how):
    state_dir = os.path.join(step_dir, "state")
    if how == "delete_array_data":
        for f in _files(state_dir):
            if os.sep + "d" + os.sep in f:
                os.remove(f)
    elif how == "truncate_array_data":
        for f in _files(state_dir):
            if os.sep + "d" + os.sep in f:
                _truncate(f)
    elif how == "truncate_meta":
        _truncate(os.path.join(step_dir, "meta", "metadata"))
    elif how == "delete_state_item":
        for f in reversed(_files(state_dir)):
            os.remove(f)
    elif how == "no_commit_marker":
        os.remove(os.path.join(step_dir, "commit_success.txt"))
    else:
        raise ValueError(how)


CORRUPTIONS = [
    "delete_array_data",
    "truncate_array_data",
    "truncate_meta",
    "delete_state_item",
    "no_commit_marker",
]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupted_latest_falls_back_with_warning(tmp_path, how):
    with open_ckpt(tmp_path, async_save=False) as ckpt:
        for step in range(3):
            ckpt.save(step, make_state(step), {"round": step})
    _corrupt(os.path.join(tmp_path, "checkpoints", "2"), how)
    with open_ckpt(tmp_path) as ckpt:
        with pytest.warns(CheckpointWarning, match=r"step 2\b") as rec:
            step, state, meta = ckpt.restore_latest_good(template=make_state(0))
        assert step == 1 and meta == {"round": 1}
        assert_same_tree(state, make_state(1))
        assert not any("step 1 " in str(w.message) for w in rec)
        # The resumed run writes step 2 again; it replaces the bad one.
        ckpt.save(2, make_state(7), {"round": 2})
        with warnings.catch_warnings():
            warnings.simplefilter("error", CheckpointWarning)
            step, state, meta = ckpt.restore_latest_good(template=make_state(0))
    assert step == 2
    assert_same_tree(state, make_state(7))


def test_every_step_corrupted_gives_none(tmp_path):
    with open_ckpt(tmp_path, async_save=False) as ckpt:
        for step in range(2):
            ckpt.save(step, make_state(step), {})
    for step in range(2):
        _corrupt(os.path.join(tmp_path, "checkpoints", str(step)), "truncate_meta")
    with open_ckpt(tmp_path) as ckpt, pytest.warns(CheckpointWarning):
        assert ckpt.restore_latest_good(template=make_state(0)) is None


def test_leftover_temporary_directory_is_ignored(tmp_path):
    with open_ckpt(tmp_path, async_save=False) as ckpt:
        ckpt.save(0, make_state(0), {"round": 0})
    # What a kill during the save of step 1 leaves behind: a half-written tmp dir.
    tmp = os.path.join(tmp_path, "checkpoints", "1.orbax-checkpoint-tmp")
    os.makedirs(os.path.join(tmp, "state"))
    with open(os.path.join(tmp, "state", "_METADATA"), "w") as f:
        f.write('{"tree_metadata": ')
    with open_ckpt(tmp_path) as ckpt:
        assert ckpt.latest_step() == 0
        step, state, meta = ckpt.restore_latest_good(template=make_state(0))
        assert not os.path.exists(tmp)  # cleaned up on open
        ckpt.save(1, make_state(1), {"round": 1})  # the resumed run can write step 1
        assert ckpt.latest_step() == 1
    assert step == 0 and meta == {"round": 0}
    assert_same_tree(state, make_state(0))


# --- SIGKILL during saves ----------------------------------------------------

_CHILD = """
import os, sys
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, {repo!r})
import jax, jax.numpy as jnp, numpy as np
from jaxal.checkpoint import RunCheckpointer
ckpt = RunCheckpointer({directory!r}, max_to_keep=3, async_save=True)
for step in range(100000):
    # ~4 MB per step so that writes take a while and the kill lands mid-save.
    x = jnp.full((1 << 20,), step, jnp.float32)
    state = {{"x": x, "key": jax.random.split(jax.random.key(step), 4), "step": jnp.int32(step)}}
    ckpt.save(step, state, {{"step": step}})
"""


def test_sigkill_during_saves_leaves_a_consistent_checkpoint(tmp_path):
    directory = str(tmp_path / "checkpoints")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD.format(repo=REPO, directory=directory)))
    child = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = os.listdir(directory) if os.path.isdir(directory) else []
            done = [n for n in names if n.isdigit()]
            in_flight = [n for n in names if "tmp" in n]
            if len(done) >= 2 and in_flight:
                break  # kill while a save is being written
            assert child.poll() is None, "checkpoint child exited early"
            time.sleep(0.005)
        else:
            pytest.fail("child never wrote two checkpoints")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    committed = sorted(int(n) for n in os.listdir(directory) if n.isdigit())
    template = {
        "x": jnp.zeros((1 << 20,), jnp.float32),
        "key": jax.random.split(jax.random.key(0), 4),
        "step": jnp.int32(0),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)  # a bad latest is allowed here
        with RunCheckpointer(directory) as ckpt:
            found = ckpt.restore_latest_good(template=template)
    assert found is not None
    step, state, meta = found
    assert step in committed[-2:]  # the latest, or the one before if the latest is bad
    assert meta == {"step": step} and int(state["step"]) == step
    np.testing.assert_array_equal(np.asarray(state["x"]), np.full(1 << 20, step, np.float32))
    want_key = jax.random.key_data(jax.random.split(jax.random.key(step), 4))
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(state["key"])), want_key)
    leftovers = [n for n in os.listdir(directory) if "tmp" in n]
    assert leftovers == []  # reopening cleaned up the partial save


# --- two processes -----------------------------------------------------------

_WORKER = """
import os, sys
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
sys.path.insert(0, {repo!r})
import jax, numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
pid = int(sys.argv[1])
jax.distributed.initialize("localhost:{port}", num_processes=2, process_id=pid)
from jaxal.checkpoint import RunCheckpointer
mesh = jax.make_mesh((4,), ("seed",), axis_types=(AxisType.Auto,))
seed, rep = NamedSharding(mesh, P("seed")), NamedSharding(mesh, P())
x = np.arange(12, dtype=np.float32).reshape(4, 3)
kd = np.arange(8, dtype=np.uint32).reshape(4, 2)
state = {{
    "x": jax.make_array_from_callback(x.shape, seed, lambda i: x[i]),
    "key": jax.random.wrap_key_data(jax.make_array_from_callback(kd.shape, seed, lambda i: kd[i])),
    "n": jax.make_array_from_callback((), rep, lambda i: np.int32(3)),
}}
with RunCheckpointer({directory!r}, max_to_keep=2) as ckpt:
    for step in range(3):
        ckpt.save(step, state, {{"step": step}})
    step, got, meta = ckpt.restore_latest_good(template=state)
    ok = step == 2 and meta == {{"step": 2}} and got["x"].sharding == seed
    for s in got["x"].addressable_shards:
        ok &= bool(np.array_equal(np.asarray(s.data), x[s.index]))
    for s in jax.random.key_data(got["key"]).addressable_shards:
        ok &= bool(np.array_equal(np.asarray(s.data), kd[s.index]))
    print("RESULT", pid, ok, ckpt.all_steps(), flush=True)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_save_their_shards_and_a_single_process_restores(tmp_path):
    directory = str(tmp_path / "checkpoints")
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(repo=REPO, port=_free_port(), directory=directory))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=90)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, out in enumerate(outs):
        assert f"RESULT {i} True [1, 2]" in out, out[-3000:]
    # Each process wrote its own shards.
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(f"{directory}/2/state"))
    # A single process with another device layout resumes from it.
    mesh = jax.make_mesh((2,), ("seed",), axis_types=(AxisType.Auto,), devices=jax.devices()[:2])
    template = jax.device_put(
        {
            "x": jnp.zeros((4, 3), jnp.float32),
            "key": jax.random.split(jax.random.key(0), 4),
            "n": jnp.int32(0),
        },
        NamedSharding(mesh, P()),
    )
    with RunCheckpointer(directory) as ckpt:
        step, got, meta = ckpt.restore_latest_good(template=template)
    assert step == 2 and meta == {"step": 2} and int(got["n"]) == 3
    np.testing.assert_array_equal(np.asarray(got["x"]), np.arange(12).reshape(4, 3))
    np.testing.assert_array_equal(
        np.asarray(jax.random.key_data(got["key"])), np.arange(8).reshape(4, 2)
    )
