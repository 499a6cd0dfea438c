"""Initial labeled pools: the labels a run starts from, one home for all of them.

An initial-pool strategy is an :class:`InitialStrategy` registered by name in
:data:`REGISTRY` (``config.initial.strategy``):

* ``size(settings, num_classes) -> int``: how many labels it picks (static);
* ``select(key, y_pool, settings, num_classes, inputs) -> int32[size]``: which
  pool indices, in order (on device, jit-able; ``y_pool`` is the oracle's
  labels, ``inputs`` the seed's :class:`InitialInputs`).

Built in:

* ``random``: ``initial.size`` uniform picks.
* ``class_balanced``: ``initial.per_class`` uniform picks of every class,
  interleaved c0, c1, ...
* ``from_file``: the indices in ``initial.file`` (see :func:`load_index_file`):
  ``[n]`` = the same pool for every seed, ``[S, n]`` = row ``i`` for seed
  ``config.seed + i``. Indices are positions in the run's pool (the train split
  after the ``config.dataset`` options), as a run writes them to
  ``labeled_indices.npz`` (``<strategy>/order``), so a pool collected by one run
  can start another (``initial.file_key``, ``initial.file_take``).
* ``cluster``: Chandra et al. 2021 §3.2.2: k-means with K = the number of classes
  on ``initial.features``; ``initial.cluster_share=equal`` takes ``B/K`` points
  of every cluster, ``proportional`` takes ``|C_j| B / N_U``, uniformly at
  random within each cluster (see :func:`equal_quotas`,
  :func:`proportional_quotas`, :func:`quota_picks`).
* ``hardest``: §3.2.1, Eq. (1): the ``B`` points of highest self-supervised loss
  (``initial.score``; :mod:`jaxal.ssl`).
* ``binned``: §4.1 (after Roy et al. 2018): the points sorted by that loss are
  split into ``n = initial.bins`` equal bins; ``B/n`` highest-scored points of
  each of the top ``n - 1`` bins and ``B/n`` lowest-scored of the last
  (:func:`binned_picks`).

Randomness: every draw comes from the seed's initial-pool key (k-means++ seeding
and the picks within clusters), so seeds differ and the same seed gives the
same pool. ``hardest`` and ``binned`` are deterministic given the encoder, which
is trained once per run (``initial.ssl.seed``), so every seed of a run starts
from the same pool there — as in the paper, where one VAE / SimCLR model scores
the pool for all trials.

k-means runs jitted on device (:func:`jaxal.strategies.diversity.lloyd` after
k-means++ seeding, the same code as the ``kmeans`` acquisition strategy), not
with scikit-learn on the host: the pool is drawn inside each seed's jitted
init program with that seed's key, and a host round trip per seed would be
the only non-device step of a run.

Features and scores are computed once per run on the host side, before any
seed's program runs (:func:`prepare`), and cached on disk by :mod:`jaxal.ssl`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.settings import InitialSettings, SSLSettings
from jaxal.strategies import _distances as dist
from jaxal.strategies.base import masked_top_k

Array = jax.Array

FEATURES = ("simclr", "vae", "ae", "raw")  # or "file:PATH"
# initial.score -> (encoder, its output)
SCORES = {
    "vae": ("vae", "recon"),
    "vae_elbo": ("vae", "elbo"),
    "ae": ("ae", "recon"),
    "simclr": ("simclr", "loss"),
}
SHARES = ("equal", "proportional")
FILE_TYPES = (".npy", ".npz", ".txt", ".csv")
_MAX_INT = 2**31 - 1


class InitialInputs(NamedTuple):
    """What a strategy reads besides the labels (``None`` where unused).

    ``features [N, d]`` and ``scores [N]`` are shared by every seed; ``rows`` is
    ``[S, n]`` for the run (:func:`prepare`) and one seed's ``[n]`` inside
    ``select``.
    """

    features: Array | None = None
    scores: Array | None = None
    rows: Array | None = None


class InitialStrategy(NamedTuple):
    size: Callable[[InitialSettings, int], int]
    select: Callable[..., Array]  # (key, y_pool, settings, num_classes, inputs) -> int32[size]
    size_key: str  # the config key that sets the size (named in errors)


# --- random, class_balanced, from_file ----------------------------------------------


def _random(key, y_pool, s, num_classes, inputs):
    del num_classes, inputs
    n = y_pool.shape[0]
    return masked_top_k(jax.random.uniform(key, (n,)), jnp.zeros(n, bool), int(s.size))


def _class_balanced(key, y_pool, s, num_classes, inputs):
    del inputs
    u = jax.random.uniform(key, (y_pool.shape[0],))
    per = int(s.per_class)
    picks = jax.vmap(lambda c: masked_top_k(u, y_pool != c, per))(jnp.arange(num_classes))
    return picks.T.reshape(-1)  # interleave classes: c0, c1, ..., c0, c1, ...


def _from_file(key, y_pool, s, num_classes, inputs):
    del key, y_pool, s, num_classes
    return jnp.asarray(inputs.rows, jnp.int32)


# --- cluster -------------------------------------------------------------------------


def kmeans_labels(key: Array, features: Array, num_clusters: int, num_iters: int) -> Array:
    """Cluster of every point: k-means++ seeding from ``key``, then Lloyd iterations.

    Returns ``int32[N]`` in ``[0, num_clusters)``.
    """
    from jaxal.strategies.diversity import lloyd

    x = jnp.asarray(features, jnp.float32)
    n = x.shape[0]
    x_sq = dist.sq_norms(x)
    everyone = jnp.ones((n,), bool)
    uniforms = jax.random.uniform(key, (num_clusters,))
    seeds = dist.d2_sampling(lambda i: dist.sq_dists_to_row(x, x_sq, i), everyone, uniforms)
    _, labels = lloyd(
        x, jnp.ones((n,), jnp.float32), x[seeds], jnp.ones((num_clusters,), bool), num_iters
    )
    return labels


def equal_quotas(sizes: Array, total: int, u: Array) -> Array:
    """``B/K`` points per cluster (§3.2.2, equal share), capped by the cluster sizes.

    Water-filling: clusters in ascending size (ties: ascending ``u``) take
    ``min(size, remaining // clusters left)``, so what a small cluster cannot
    give goes to the larger ones, and when ``K`` does not divide ``B`` the
    extra points go to the largest clusters. The quotas sum to
    ``min(B, sum(sizes))``.

    Args:
      sizes: ``int32[K]`` cluster sizes.
      total: B.
      u: ``float[K]`` tie-breaks.
    """
    k = sizes.shape[0]
    order = jnp.lexsort((u, sizes))

    def body(j, state):
        quotas, rem = state
        c = order[j]
        q = jnp.minimum(sizes[c], rem // (k - j))
        return quotas.at[c].set(q), rem - q

    quotas, _ = jax.lax.fori_loop(0, k, body, (jnp.zeros((k,), jnp.int32), jnp.int32(total)))
    return quotas


def proportional_quotas(sizes: Array, total: int, num_points: int, u: Array) -> Array:
    """``|C_j| B / N_U`` points per cluster (§3.2.2, proportional share).

    Rounded by largest remainder (Hamilton): every cluster gets the floor, and
    the ``B - sum(floors)`` points left go to the largest fractional parts
    (ties: ascending ``u``). The quotas sum to ``B``.
    """
    sizes = jnp.asarray(sizes, jnp.int32)
    if num_points * total <= _MAX_INT:  # exact in int32
        prod = sizes * total
        base = prod // num_points
        frac = (prod - base * num_points).astype(jnp.float32) / num_points
    else:
        exact = sizes.astype(jnp.float32) * (total / num_points)
        base = jnp.floor(exact).astype(jnp.int32)
        frac = exact - base
    rem = total - jnp.sum(base)
    rank = jnp.argsort(jnp.lexsort((u, -frac)))  # position of each cluster in that order
    return base + (rank < rem).astype(jnp.int32)


def quota_picks(labels: Array, quotas: Array, u: Array, total: int) -> Array:
    """``quotas[j]`` points of every cluster ``j``: those of lowest ``u`` in it.

    Returned interleaved by rank within the cluster (1st of cluster 0, 1st of
    cluster 1, ..., 2nd of cluster 0, ...). ``sum(quotas)`` must be ``total``.

    Args:
      labels: ``int32[N]`` cluster of every point.
      quotas: ``int32[K]``.
      u: ``float[N]`` uniforms (the random choice within clusters).
      total: the static number of picks.
    """
    n, k = labels.shape[0], quotas.shape[0]
    order = jnp.lexsort((u, labels))  # by cluster, then u
    counts = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), labels, k)
    starts = jnp.cumsum(counts) - counts
    rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n) - starts[labels[order]])
    chosen = rank < quotas[labels]
    sort_key = jnp.where(chosen, rank * k + labels, jnp.iinfo(jnp.int32).max)
    return jnp.argsort(sort_key)[:total].astype(jnp.int32)


def _cluster(key, y_pool, s, num_classes, inputs):
    del y_pool
    k_means, k_tie, k_pick = jax.random.split(key, 3)
    feats = jnp.asarray(inputs.features, jnp.float32)
    n, kk, total = feats.shape[0], int(num_classes), int(s.size)
    labels = kmeans_labels(k_means, feats, kk, int(s.kmeans_iters))
    sizes = jax.ops.segment_sum(jnp.ones((n,), jnp.int32), labels, kk)
    u = jax.random.uniform(k_tie, (kk,))
    if s.cluster_share == "proportional":
        quotas = proportional_quotas(sizes, total, n, u)
    else:
        quotas = equal_quotas(sizes, total, u)
    return quota_picks(labels, quotas, jax.random.uniform(k_pick, (n,)), total)


# --- hardest, binned ------------------------------------------------------------------


def _hardest(key, y_pool, s, num_classes, inputs):
    del key, num_classes
    n = y_pool.shape[0]
    return masked_top_k(inputs.scores, jnp.zeros(n, bool), int(s.size))


def bin_sizes(n: int, bins: int) -> list[int]:
    """Sizes of ``bins`` near-equal bins of ``n`` points (the first ``n % bins`` get one more)."""
    return [n // bins + (i < n % bins) for i in range(bins)]


def binned_picks(scores: Array, total: int, bins: int) -> Array:
    """The binned mix of §4.1: sort by score (descending; ties: lower index
    first), split into ``bins`` near-equal bins, take the ``total/bins``
    highest-scored points of each of the first ``bins - 1`` bins and the
    ``total/bins`` lowest-scored of the last bin (lowest first).

    When ``bins`` does not divide ``total`` the first ``total % bins`` bins give
    one point more (the paper takes ``B/n`` and uses ``n`` in 2, 5, 10).

    Returns ``int32[total]``: the hard picks bin by bin, then the easy ones.
    """
    n = scores.shape[0]
    ranked = masked_top_k(scores, jnp.zeros(n, bool), n)
    sizes, quotas = bin_sizes(n, bins), bin_sizes(total, bins)
    starts = np.cumsum([0] + sizes[:-1])
    parts = [ranked[starts[i] : starts[i] + quotas[i]] for i in range(bins - 1)]
    end = starts[-1] + sizes[-1]
    parts.append(ranked[end - quotas[-1] : end][::-1])
    return jnp.concatenate(parts).astype(jnp.int32)


def _binned(key, y_pool, s, num_classes, inputs):
    del key, y_pool, num_classes
    return binned_picks(jnp.asarray(inputs.scores, jnp.float32), int(s.size), int(s.bins))


# --- registry -----------------------------------------------------------------------


def _file_size(s, c):
    rows, _ = load_index_file(s)
    return int(rows.shape[1])


REGISTRY: dict[str, InitialStrategy] = {
    "random": InitialStrategy(lambda s, c: int(s.size), _random, "size"),
    "class_balanced": InitialStrategy(
        lambda s, c: int(s.per_class) * int(c or 0), _class_balanced, "per_class"
    ),
    "from_file": InitialStrategy(_file_size, _from_file, "file"),
    "cluster": InitialStrategy(lambda s, c: int(s.size), _cluster, "size"),
    "hardest": InitialStrategy(lambda s, c: int(s.size), _hardest, "size"),
    "binned": InitialStrategy(lambda s, c: int(s.size), _binned, "size"),
}
NAMES = tuple(REGISTRY)


def initial_size(settings, num_classes: int | None = None) -> int:
    """Labels in the initial pool."""
    s = InitialSettings.of(settings)
    return REGISTRY[s.strategy].size(s, num_classes)


def size_key(settings) -> str:
    """The config key (``initial.size``, ``.per_class``, ``.file``) that sets the size."""
    s = InitialSettings.of(settings)
    return f"initial.{REGISTRY[s.strategy].size_key}"


def encoder_of(settings) -> str | None:
    """The self-supervised encoder (:mod:`jaxal.ssl`) the strategy needs, if any."""
    s = InitialSettings.of(settings)
    if s.strategy == "cluster" and s.features in ("simclr", "vae", "ae"):
        return s.features
    if s.strategy in ("hardest", "binned"):
        return SCORES[s.score][0]
    return None


# --- index files ----------------------------------------------------------------------


def _bad(key: str, value, why: str) -> ValueError:
    return ValueError(f"config.initial.{key}={value!r} is invalid; {why}")


@functools.lru_cache(maxsize=16)
def _read_index_file(path: str, stamp: tuple, file_key: str | None) -> np.ndarray:
    del stamp  # part of the cache key: a rewritten file is read again
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            a = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as f:
                names = list(f.files)
                if file_key is None:
                    if len(names) != 1:
                        raise _bad(
                            "file",
                            path,
                            f"it holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                            "name one with config.initial.file_key",
                        )
                    a = f[names[0]]
                elif file_key not in names:
                    raise _bad(
                        "file_key", file_key, f"{path} holds: {', '.join(names) or 'nothing'}"
                    )
                else:
                    a = f[file_key]
        else:  # .txt / .csv: one index per line, or rows of indices (one row per seed)
            with open(path) as f:
                text = f.read()
            body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
            delim = "," if "," in body else None
            a = np.loadtxt(path, dtype=np.float64, delimiter=delim, ndmin=1, comments="#")
            if a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
    except ValueError as e:
        if str(e).startswith("config.initial."):
            raise
        raise _bad("file", path, f"could not be read: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise _bad("file", path, f"could not be read: {e.strerror or e}") from None
    return a


def load_index_file(settings) -> tuple[np.ndarray, bool]:
    """The pool indices of ``initial.file`` as ``int64 [R, n]``, and whether the
    file gave one row per seed (a 2-D array with more than one row).

    Formats: ``.npy``; ``.npz`` (``initial.file_key`` names the array — e.g.
    ``margin/order`` of a run's ``labeled_indices.npz`` — and may be left unset
    when the file holds one array); ``.txt`` / ``.csv`` (one index per line, or
    one whitespace- or comma-separated row per seed; ``#`` comments).
    ``initial.file_take = m`` keeps the first ``m`` indices of every row (the
    labels of a run's first rounds, since ``order`` is in acquisition order).

    Checked here (no pool needed): the file exists and reads, holds integers in
    1 or 2 dimensions, at least one index, none negative, none repeated within
    a row. :func:`validate_sizes` checks the range and the number of rows.

    Raises:
      ValueError: one line naming ``config.initial.file`` (or ``file_key``,
        ``file_take``) and what is wrong.
    """
    s = InitialSettings.of(settings)
    path = s.file
    if not path:
        raise _bad("file", path, "strategy 'from_file' needs a file of pool indices")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FILE_TYPES:
        raise _bad("file", path, f"allowed file types: {', '.join(FILE_TYPES)}")
    if not os.path.isfile(path):
        raise _bad("file", path, "no such file")
    st = os.stat(path)
    a = _read_index_file(os.path.abspath(path), (st.st_mtime_ns, st.st_size), s.file_key)
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise _bad("file", path, f"expected integer pool indices, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise _bad("file", path, f"expected [n] or [seeds, n] indices, got shape {a.shape}")
    if a.size == 0:
        raise _bad("file", path, f"holds no indices (shape {a.shape})")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise _bad("file", path, "expected integer pool indices, found non-integers")
    per_seed = a.ndim == 2 and a.shape[0] > 1
    rows = np.asarray(a, np.int64).reshape(-1, a.shape[-1])
    if s.file_take is not None:
        if not 1 <= s.file_take <= rows.shape[1]:
            raise _bad("file_take", s.file_take, f"must be 1..{rows.shape[1]} (indices per row)")
        rows = rows[:, : s.file_take]
    neg = np.argwhere(rows < 0)
    if len(neg):
        r, p = neg[0]
        raise _bad(
            "file",
            path,
            f"negative index {rows[r, p]} at row {r}, position {p} (-1 pads the order of an "
            "unfinished run: keep the labeled part with config.initial.file_take)",
        )
    for r, row in enumerate(rows):
        uniq, first, counts = np.unique(row, return_index=True, return_counts=True)
        if len(uniq) < len(row):
            dup = uniq[counts > 1][0]
            pos = np.flatnonzero(row == dup)[:2]
            raise _bad(
                "file",
                path,
                f"row {r} repeats index {dup} (positions {pos[0]} and {pos[1]}); "
                "an initial pool holds distinct points",
            )
    return rows, per_seed


# --- validation -----------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _get(cfg, key, default=None):
    node = cfg
    for part in key.split("."):
        if isinstance(node, InitialSettings | SSLSettings):
            node = getattr(node, part, default)
        elif hasattr(node, "get"):
            node = node.get(part, default)
        else:
            return default
    return node


def _check_types(cfg) -> None:
    ints = (
        "kmeans_iters",
        "bins",
        "ssl.latent",
        "ssl.hidden",
        "ssl.epochs",
        "ssl.batch_size",
        "ssl.seed",
    )
    for key in ints + ("file_take",):
        v = _get(cfg, key)
        if v is None and key == "file_take":
            continue
        if v is None:
            continue  # an older config without the key: the default applies
        if not _is_int(v) or abs(int(v)) > _MAX_INT:
            raise _bad(key, v, "must be an integer" + (" or None" if key == "file_take" else ""))
    for key in ("ssl.learning_rate", "ssl.weight_decay", "ssl.val_fraction", "ssl.temperature"):
        v = _get(cfg, key)
        if v is not None and not _is_number(v):
            raise _bad(key, v, "must be a finite number")
    for key in ("features", "cluster_share", "score", "ssl.arch", "ssl.step_loop"):
        v = _get(cfg, key)
        if v is not None and not isinstance(v, str):
            raise _bad(key, v, "must be a string")
    for key in ("file", "file_key", "cache_dir"):
        v = _get(cfg, key)
        if v is not None and not isinstance(v, str):
            raise _bad(key, v, "must be a string or None")


def validate(settings) -> None:
    """Checks that need no data (before anything compiles).

    Raises:
      ValueError: ``config.initial.<key>=<value> is invalid; ...`` (one line).
    """
    from jaxal import ssl

    if not isinstance(settings.strategy, str) or settings.strategy not in REGISTRY:
        raise _bad("strategy", settings.strategy, f"allowed: {', '.join(NAMES)}")
    _check_types(settings)
    s = InitialSettings.of(settings)
    key = REGISTRY[s.strategy].size_key
    if key != "file" and getattr(s, key) < 1:
        raise _bad(key, getattr(s, key), "must be >= 1")
    if s.features not in FEATURES and not s.features.startswith("file:"):
        raise _bad("features", s.features, f"allowed: {', '.join(FEATURES)}, file:PATH")
    if s.cluster_share not in SHARES:
        raise _bad("cluster_share", s.cluster_share, f"allowed: {', '.join(SHARES)}")
    if s.kmeans_iters < 1:
        raise _bad("kmeans_iters", s.kmeans_iters, "must be >= 1")
    if s.score not in SCORES:
        raise _bad("score", s.score, f"allowed: {', '.join(SCORES)}")
    if s.bins < 2:
        raise _bad("bins", s.bins, "must be >= 2 (n bins: n - 1 hard, 1 easy)")
    t = s.ssl
    if t.arch not in ssl.ARCHS:
        raise _bad("ssl.arch", t.arch, f"allowed: {', '.join(ssl.ARCHS)}")
    if t.step_loop not in ssl.STEP_LOOPS:
        raise _bad("ssl.step_loop", t.step_loop, f"allowed: {', '.join(ssl.STEP_LOOPS)}")
    for k in ("latent", "hidden", "epochs"):
        if getattr(t, k) < 1:
            raise _bad(f"ssl.{k}", getattr(t, k), "must be >= 1")
    if t.batch_size < 2:
        raise _bad("ssl.batch_size", t.batch_size, "must be >= 2 (SimCLR needs negatives)")
    if t.seed < 0:
        raise _bad("ssl.seed", t.seed, "must be >= 0")
    if not t.learning_rate > 0:
        raise _bad("ssl.learning_rate", t.learning_rate, "must be a positive number")
    if t.weight_decay < 0:
        raise _bad("ssl.weight_decay", t.weight_decay, "must be >= 0")
    if not 0 <= t.val_fraction < 0.5:
        raise _bad("ssl.val_fraction", t.val_fraction, "must be in [0, 0.5)")
    if not t.temperature > 0:
        raise _bad("ssl.temperature", t.temperature, "must be a positive number")
    enc = encoder_of(s)
    if t.arch == "model" and enc in ("ae", "vae"):
        raise _bad(
            "ssl.arch",
            t.arch,
            f"'model' is a SimCLR backbone; the {enc} encoder "
            "needs a decoder: use auto, mlp or conv",
        )
    if s.strategy == "from_file":
        load_index_file(s)
    if s.strategy == "cluster" and s.features.startswith("file:"):
        _load_features_file(s.features)


def _load_features_file(spec: str) -> np.ndarray:
    path = spec[len("file:") :]
    if not os.path.isfile(path):
        raise _bad("features", spec, "no such file")
    try:
        a = np.load(path, allow_pickle=False)
        if isinstance(a, np.lib.npyio.NpzFile):
            with a:
                if len(a.files) != 1:
                    raise _bad("features", spec, f"expected one array, found {', '.join(a.files)}")
                a = a[a.files[0]]
    except ValueError as e:
        if str(e).startswith("config.initial."):
            raise
        raise _bad("features", spec, f"could not be read: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise _bad("features", spec, f"could not be read: {e.strerror or e}") from None
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
        raise _bad("features", spec, f"expected numeric [N, d] features, got {a.dtype} {a.shape}")
    if not np.all(np.isfinite(a)):
        raise _bad("features", spec, "holds NaN or inf")
    return a.astype(np.float32)


def validate_sizes(
    settings,
    y_pool: np.ndarray,
    num_classes: int,
    num_seeds: int | None = None,
    x_shape: tuple | None = None,
) -> None:
    """Checks against the pool (host numpy), still before anything compiles.

    Raises:
      ValueError: one line naming the key.
    """
    from jaxal import ssl

    s = InitialSettings.of(settings)
    n = int(np.asarray(y_pool).shape[0])
    if s.strategy == "class_balanced":
        smallest = int(np.bincount(np.asarray(y_pool), minlength=num_classes).min())
        if s.per_class > smallest:
            raise _bad(
                "per_class", s.per_class, f"the smallest class of the pool has {smallest} points"
            )
    if s.strategy == "from_file":
        rows, per_seed = load_index_file(s)
        if per_seed and num_seeds is not None and rows.shape[0] != num_seeds:
            raise _bad(
                "file",
                s.file,
                f"it has {rows.shape[0]} rows (one per seed) but the run has {num_seeds} seeds; "
                "give [n] indices for every seed or [num_seeds, n]",
            )
        bad = np.argwhere(rows >= n)
        if len(bad):
            r, p = bad[0]
            raise _bad(
                "file",
                s.file,
                f"index {rows[r, p]} at row {r}, position {p} is out of range for the pool of "
                f"{n} points (0..{n - 1})",
            )
    if s.strategy == "cluster" and s.features.startswith("file:"):
        f = _load_features_file(s.features)
        if f.shape[0] != n:
            raise _bad("features", s.features, f"has {f.shape[0]} rows; the pool has {n} points")
    enc = encoder_of(s)
    if (
        enc is not None
        and x_shape is not None
        and s.ssl.arch == "conv"
        and not ssl.conv_fits(x_shape)
    ):
        raise _bad(
            "ssl.arch",
            "conv",
            f"needs [N, H, W, C] images with H and W divisible by 16; the pool is {tuple(x_shape)}",
        )


# --- host-side precompute ---------------------------------------------------------------


def resolve_cache_dir(settings, workdir: str | None) -> str | None:
    """``initial.cache_dir`` (relative paths from the workdir); ``None`` = ``<workdir>/initial``
    (no caching without a workdir)."""
    s = InitialSettings.of(settings)
    if s.cache_dir is None:
        return None if workdir is None else os.path.join(workdir, "initial")
    if os.path.isabs(s.cache_dir) or workdir is None:
        return s.cache_dir
    return os.path.normpath(os.path.join(workdir, s.cache_dir))


def prepare(
    settings,
    x_pool: np.ndarray,
    num_seeds: int,
    *,
    cache_dir: str | None = None,
    model=None,
    model_id: str | None = None,
    write: bool = True,
    log=None,
) -> InitialInputs:
    """The run's :class:`InitialInputs` (host numpy), computed once before the seed loop.

    ``from_file``: the rows ``[S, n]`` (one file row broadcast to every seed);
    ``cluster``: the features (``raw`` = the flattened pool, ``file:PATH``, or
    an encoder's); ``hardest`` / ``binned``: the encoder's score. Encoders are
    trained (or read from ``cache_dir``) by :func:`jaxal.ssl.encode_pool`.
    """
    from jaxal import ssl

    s = InitialSettings.of(settings)
    if s.strategy == "from_file":
        rows, _ = load_index_file(s)
        rows = np.broadcast_to(rows, (num_seeds, rows.shape[1])) if rows.shape[0] == 1 else rows
        return InitialInputs(rows=np.ascontiguousarray(rows, np.int32))
    if s.strategy == "cluster":
        if s.features == "raw":
            return InitialInputs(features=np.asarray(x_pool, np.float32).reshape(len(x_pool), -1))
        if s.features.startswith("file:"):
            return InitialInputs(features=_load_features_file(s.features))
    enc = encoder_of(s)
    if enc is None:
        return InitialInputs()
    out = ssl.encode_pool(
        enc,
        np.asarray(x_pool),
        s.ssl,
        cache_dir=cache_dir,
        model=model,
        model_id=model_id,
        write=write,
        log=log,
    )
    if s.strategy == "cluster":
        return InitialInputs(features=out["features"].astype(np.float32))
    return InitialInputs(scores=out[SCORES[s.score][1]].astype(np.float32))


def initial_pool(
    key: Array,
    y_pool: Array,
    settings,
    num_classes: int,
    capacity: int,
    inputs: InitialInputs | None = None,
):
    """``(labeled bool[N], order int32[capacity], num_labeled)`` of the initial pool.

    ``inputs``: this seed's :class:`InitialInputs` (features, scores, its row of
    indices), needed by ``from_file``, ``cluster``, ``hardest`` and ``binned``.
    """
    s = InitialSettings.of(settings)
    inputs = InitialInputs() if inputs is None else inputs
    picks = REGISTRY[s.strategy].select(key, y_pool, s, num_classes, inputs)
    size = picks.shape[0]
    n = y_pool.shape[0]
    labeled = jnp.zeros(n, bool).at[picks].set(True)
    order = jnp.full((capacity,), -1, jnp.int32).at[:size].set(picks)
    return labeled, order, jnp.int32(size)


def bind_inputs(init_fn: Callable, inputs: InitialInputs | None, placement) -> Callable:
    """``init(keys, *args)`` calling ``init_fn(keys, *args, shared, rows)``.

    ``init_fn`` is a per-seed init wrapped over the lane axis with the two last
    arguments at axes ``None`` (``shared``: features and scores, placed once on
    every device) and ``0`` (``rows``: each lane's row of ``from_file`` indices).
    Lanes are the seeds, tiled once per grid setting (:class:`jaxal.grid.Lanes`:
    ``lane = g * S + s``), so the ``[S, n]`` rows are tiled the same way.
    """
    from jaxal import parallel

    inputs = InitialInputs() if inputs is None else inputs
    shared = inputs._replace(rows=None)
    if placement.mesh is None:
        shared = jax.tree.map(jnp.asarray, shared)
    else:
        shared = parallel.put_shared(shared, placement)
    rows = None if inputs.rows is None else np.asarray(inputs.rows, np.int32)
    placed: dict[int, Array] = {}

    def rows_for(num_lanes: int):
        if rows is None:
            return None
        if num_lanes not in placed:
            if num_lanes % rows.shape[0]:
                raise ValueError(
                    f"{num_lanes} lanes are not a multiple of the {rows.shape[0]} rows of "
                    "initial.file"
                )
            tiled = np.tile(rows, (num_lanes // rows.shape[0], 1))
            placed[num_lanes] = (
                jnp.asarray(tiled)
                if placement.mesh is None
                else parallel.put_seeds(tiled, placement)
            )
        return placed[num_lanes]

    def init(keys, *args):
        return init_fn(keys, *args, shared, rows_for(int(keys.shape[0])))

    return init
