"""What every round starts from: unsupervised pretraining (DeepCluster) and variable files.

The round-start hook (``train.init_from``)
------------------------------------------

With ``train.reinit = True`` (the default) a round's model normally starts from
``model.init`` with that seed's and round's key. ``train.init_from`` replaces
that draw by fixed variables, the same for every seed, round and strategy:

* ``""`` (default): ``model.init`` as before;
* ``"pretrain"``: the model pretrained on the pool without labels
  (:func:`deepcluster`, settings ``config.pretrain``), trained once per run on
  the host side before the first round and cached in ``pretrain.cache_dir``
  (default ``<workdir>/pretrain/deepcluster-<hash>.npz``; the hash covers the
  settings, the model and the pool's bytes), so every strategy, seed, resumed
  run -- and, with a shared ``cache_dir``, every unit of a sweep -- reuses it;
* ``"file:PATH"``: the variables in an ``.npz`` written by
  :func:`save_variables` (one array per leaf, named by its path,
  ``params/backbone/Dense_0/kernel``; a pretraining cache file is one too).
  Every leaf of the model must be there with its shape (a pretrained backbone
  with a fresh head: save the whole tree, e.g. a fresh ``model.init`` with the
  backbone's leaves replaced).

With ``train.reinit = False`` (warm start) the first round starts from these
variables and every later round from the previous round's model, as before.

The variables are data, not program constants: :class:`jaxal.assemble.Run`
puts them into ``Data.init_variables`` (replicated on every device, like the
pool), and ``make_train_phases``'s ``start_variables`` returns them in place
of ``model.init``. Nothing recompiles, and the checkpointed seed state does
not grow.

DeepCluster pretraining (the paper's 7th strategy)
--------------------------------------------------

*The Influence of Feature Space Complexity on Optimal Data Selection in Deep
Active Learning* (``/work/shared/papers/feature-space-architectures.txt``),
§3.1 item 7 ("Unsupervised Pretraining", after Siméoni et al. 2021) and §4.1
("UPO", after Siméoni et al. 2021 and Caron et al. 2018): "We begin with random
initialization of the network parameters and the features from the
penultimate layers are clustered using k-means clustering. These generated
pseudo-labels are then utilized as the ground truth for a subsequent
supervised classification task which in turn updates the network parameters.
The networks, once fully trained, serve as the initial models for all
subsequent active learning experiments."

:func:`deepcluster` does, for ``pretrain.rounds`` rounds, what DeepCluster
(Caron et al. 2018, §3 and their code) does every epoch:

1. the penultimate features (the model's embedding, eval mode) of the whole
   pool, PCA-whitened to ``pretrain.pca_dim`` dimensions and L2-normalised
   (:func:`preprocess_features`);
2. k-means with ``k = pretrain.clusters`` (0: the number of classes; §4.2 of
   the paper found results improve as k approaches the number of labels),
   k-means++ seeding then Lloyd, jitted on device
   (:func:`jaxal.initial.kmeans_labels`);
3. a fresh last layer (its ``k`` outputs mean nothing across clusterings;
   DeepCluster re-draws its "top layer" each time);
4. ``pretrain.epochs`` epochs of jaxal's own training (:func:`jaxal.train.make_fit`:
   ``train.optimizer``, augmentation, exact epochs; ``pretrain.learning_rate``
   / ``batch_size`` if set) on the pseudo-labels, over a sample of N pool
   indices drawn uniformly over the non-empty clusters
   (:func:`uniform_cluster_sample`, DeepCluster's ``UnifLabelSampler``; it
   keeps one big cluster from taking over).

The result keeps every leaf but the last layer's; that layer is a fresh
C-class draw from ``pretrain.seed`` (the leaves that depend on the number of
classes are found by building the model for C and C + 1 classes,
:func:`top_layer_paths`). Not done here: DeepCluster's Sobel filter on the
input and its optimizer state carried across epochs (jaxal's ``fit`` starts a
fresh optimizer state each clustering round).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import interrupt
from jaxal import train as train_lib
from jaxal.initial import kmeans_labels
from jaxal.models.base import Model
from jaxal.predict import map_chunks
from jaxal.settings import PretrainSettings, TrainSettings

Array = jax.Array

METHODS = ("deepcluster",)
CACHE_VERSION = 1
_MAX_INT = 2**31 - 1
_HISTORY = "pretrain/"  # npz keys of the training history (not variables)


def _bad(key: str, value, why: str) -> ValueError:
    return ValueError(f"config.{key}={value!r} is invalid; {why}")


def _is_int(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _get(cfg, key, default=None):
    if cfg is None:
        return default
    if isinstance(cfg, PretrainSettings):
        return getattr(cfg, key, default)
    return cfg.get(key, default) if hasattr(cfg, "get") else default


# --- validation -------------------------------------------------------------------


def validate(init_from, pretrain_cfg, ensemble_size: int = 1) -> None:
    """Checks ``train.init_from`` and ``config.pretrain`` (no data needed).

    Raises:
      ValueError: ``config.<key>=<value> is invalid; ...`` (one line).
    """
    if not isinstance(init_from, str):
        raise _bad("train.init_from", init_from, "must be a string: '', 'pretrain' or 'file:PATH'")
    if init_from not in ("", "pretrain") and not init_from.startswith("file:"):
        raise _bad("train.init_from", init_from, "allowed: '', 'pretrain', 'file:PATH' (an .npz)")
    if init_from.startswith("file:"):
        path = init_from[len("file:") :]
        if not path.endswith(".npz"):
            raise _bad("train.init_from", init_from, "the file must be an .npz of variables")
        if not os.path.isfile(path):
            raise _bad("train.init_from", init_from, "no such file")
    if pretrain_cfg is None:
        return
    method = _get(pretrain_cfg, "method", "deepcluster")
    if method not in METHODS:
        raise _bad("pretrain.method", method, f"allowed: {', '.join(METHODS)}")
    for key, lo in (("rounds", 1), ("epochs", 1), ("clusters", 0), ("pca_dim", 0)):
        v = _get(pretrain_cfg, key, lo)
        if not _is_int(v) or not lo <= v <= _MAX_INT:
            raise _bad(f"pretrain.{key}", v, f"must be an integer >= {lo}")
    for key in ("kmeans_iters", "seed"):
        v = _get(pretrain_cfg, key, 1)
        lo = 0 if key == "seed" else 1
        if not _is_int(v) or not lo <= v <= _MAX_INT:
            raise _bad(f"pretrain.{key}", v, f"must be an integer >= {lo}")
    if _get(pretrain_cfg, "clusters", 0) == 1:
        raise _bad("pretrain.clusters", 1, "k-means needs k >= 2 (0 = the number of classes)")
    lr = _get(pretrain_cfg, "learning_rate")
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0
    ):
        raise _bad("pretrain.learning_rate", lr, "must be a positive number or None (train's)")
    bs = _get(pretrain_cfg, "batch_size")
    if bs is not None and (not _is_int(bs) or not 1 <= bs <= _MAX_INT):
        raise _bad("pretrain.batch_size", bs, "must be a positive integer or None (train's)")
    cache = _get(pretrain_cfg, "cache_dir")
    if cache is not None and not isinstance(cache, str):
        raise _bad("pretrain.cache_dir", cache, "must be a string or None")
    if init_from == "pretrain" and int(ensemble_size) > 1:
        raise _bad(
            "train.init_from",
            init_from,
            "pretraining trains one network; with ensemble_size > 1 give each member's "
            "variables in a file (file:PATH) or use ensemble_size = 1",
        )


def check_model(init_from: str, pretrain: PretrainSettings, model: Model, x_pool, *, custom: bool):
    """Checks against the built model and the pool (traced shapes only, nothing compiles).

    Raises:
      ValueError: one line naming ``train.init_from`` or ``pretrain.clusters``.
    """
    if init_from == "pretrain":
        if custom:
            raise _bad(
                "train.init_from",
                init_from,
                "pretraining rebuilds the model by name (config.model); a model given from "
                "Python needs its variables in a file: file:PATH",
            )
        n = int(np.shape(x_pool)[0])
        if pretrain.clusters > n:
            why = f"more clusters than the {n} pool points"
            raise _bad("pretrain.clusters", pretrain.clusters, why)
    elif init_from.startswith("file:"):
        load_variables(init_from[len("file:") :], template(model, x_pool))


def template(model: Model, x_pool) -> Any:
    """The model's variables as shapes (``jax.eval_shape`` of ``init``: nothing runs)."""
    x = jax.ShapeDtypeStruct((1, *np.shape(x_pool)[1:]), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), x)


# --- variables <-> npz ------------------------------------------------------------


def _path_name(path) -> str:
    return "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)


def flatten_variables(variables) -> dict[str, np.ndarray]:
    """``{"params/backbone/Dense_0/kernel": array, ...}`` (host numpy)."""
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    return {_path_name(p): np.asarray(a) for p, a in leaves}


def unflatten_variables(flat: dict, like, *, source: str = "the file"):
    """``flat`` (:func:`flatten_variables`) in the structure of ``like``; every
    leaf must be present with ``like``'s shape (cast to its dtype), and no other
    leaf of ``like``'s collections may be there.

    Raises:
      ValueError: one line naming the first missing, extra or misshapen leaf.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [_path_name(p) for p, _ in leaves]
    collections = {n.split("/", 1)[0] for n in names}
    extra = sorted(k for k in flat if k.split("/", 1)[0] in collections and k not in set(names))
    out = []
    for name, (_, leaf) in zip(names, leaves, strict=True):
        if name not in flat:
            raise ValueError(f"{source} has no variable {name!r} (shape {tuple(leaf.shape)})")
        a = np.asarray(flat[name])
        if tuple(a.shape) != tuple(leaf.shape):
            raise ValueError(
                f"{source}: variable {name!r} has shape {tuple(a.shape)}; the model's is "
                f"{tuple(leaf.shape)}"
            )
        out.append(a.astype(leaf.dtype, copy=False))
    if extra:
        raise ValueError(f"{source} has variable {extra[0]!r}, which the model does not have")
    return jax.tree.unflatten(treedef, out)


def save_variables(path: str, variables, **extra) -> None:
    """Write ``variables`` (and ``extra`` arrays) as an ``.npz`` that
    ``train.init_from=file:PATH`` reads; atomic (temporary name, then rename)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + f".tmp{os.getpid()}.npz"
    np.savez(tmp, **flatten_variables(variables), **extra)
    os.replace(tmp, path)


def load_variables(path: str, like):
    """The variables of ``path`` (an ``.npz`` of :func:`save_variables`) shaped like ``like``.

    Raises:
      ValueError: ``config.train.init_from='file:PATH' is invalid; ...`` (one line).
    """
    spec = f"file:{path}"
    try:
        with np.load(path, allow_pickle=False) as f:
            flat = {k: f[k] for k in f.files if not k.startswith(_HISTORY) and k != "cache_key"}
    except (OSError, ValueError) as e:
        why = f"could not be read: {' '.join(str(e).split())}"
        raise _bad("train.init_from", spec, why) from None
    try:
        return unflatten_variables(flat, like, source=path)
    except ValueError as e:
        raise _bad("train.init_from", spec, str(e)) from None


# --- the top layer -------------------------------------------------------------------


def top_layer_paths(make_model: Callable[[int], Model], num_classes: int, x) -> set[str]:
    """Names of the leaves whose shape depends on the number of classes (the last
    layer), found by building the model for ``num_classes`` and ``num_classes + 1``
    (traced only)."""
    a = flatten_shapes(template(make_model(num_classes), x))
    b = flatten_shapes(template(make_model(num_classes + 1), x))
    return {k for k in a if a[k] != b.get(k)}


def flatten_shapes(tree) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_path_name(p): tuple(a.shape) for p, a in leaves}


def replace_leaves(tree, source, names: set[str], *, keep: bool = False):
    """``tree`` with the leaves named in ``names`` taken from ``source`` (a tree of
    the same structure) -- or, with ``keep=True``, every leaf *not* named."""
    src = {_path_name(p): a for p, a in jax.tree_util.tree_flatten_with_path(source)[0]}
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    out = []
    for p, a in leaves:
        name = _path_name(p)
        out.append(src[name] if (name in names) != keep else a)
    return jax.tree.unflatten(treedef, out)


# --- DeepCluster ---------------------------------------------------------------------


def preprocess_features(features, pca_dim: int) -> np.ndarray:
    """DeepCluster's feature preprocessing: centre, PCA-whiten to ``pca_dim``
    dimensions (each principal component divided by the square root of its
    variance, as faiss's ``PCAMatrix(eigen_power=-0.5)``; ``0`` or ``>= D``: all
    D components), then L2-normalise each row. Host numpy, float64 inside.

    Components with (near) zero variance are regularised by ``1e-5`` x the
    largest variance instead of being blown up.
    """
    f = np.asarray(features, np.float64)
    f = f - f.mean(axis=0)
    if pca_dim:
        d = f.shape[1]
        cov = f.T @ f / max(f.shape[0] - 1, 1)
        evals, evecs = np.linalg.eigh(cov)
        top = np.argsort(evals)[::-1][: min(pca_dim, d)]
        lam = np.maximum(evals[top], 0.0)
        f = f @ evecs[:, top] / np.sqrt(lam + 1e-5 * max(lam.max(), 1e-30))
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return (f / np.maximum(norms, 1e-12)).astype(np.float32)


def uniform_cluster_sample(labels, num_clusters: int, n: int, rng: np.random.Generator):
    """``int32[n]`` pool indices drawn uniformly over the non-empty clusters
    (DeepCluster's ``UnifLabelSampler``): ``ceil(n / K')`` per non-empty cluster
    (with replacement when a cluster is smaller), shuffled, the first ``n``."""
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == c) for c in range(num_clusters)]
    members = [m for m in members if m.size]
    per = -(-n // len(members))
    picks = [rng.choice(m, per, replace=m.size < per) for m in members]
    out = np.concatenate(picks)
    rng.shuffle(out)
    return out[:n].astype(np.int32)


def _nmi(a, b) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(a, b))


def pretrain_train_settings(s: PretrainSettings, train: TrainSettings) -> TrainSettings:
    """The run's training settings for pretraining: ``pretrain.epochs`` per
    clustering, constant rate ``pretrain.learning_rate`` (or train's), no early
    stopping or warm-up; optimizer, momentum, weight decay and augmentation as train's."""
    return dataclasses.replace(
        train,
        epochs=s.epochs,
        learning_rate=s.learning_rate or train.learning_rate,
        batch_size=s.batch_size or train.batch_size,
        schedule="constant",
        warmup_epochs=0,
        early_stop_accuracy=None,
        patience=None,
    )


def _make_fit(model: Model, ts: TrainSettings, step_loop: str) -> Callable:
    """One seed's jitted ``fit(variables, order, n, key, data)`` (device or host step loop)."""
    if step_loop == "device":
        return jax.jit(train_lib.make_fit(model, ts, ts.eval_batch_size))
    parts = train_lib.make_fit_parts(model, ts, ts.eval_batch_size)
    return train_lib.host_fit(parts.map(jax.jit), ts.batch_size)


def deepcluster(
    make_model: Callable[[int], Model],
    num_classes: int,
    x_pool: np.ndarray,
    s: PretrainSettings,
    train: TrainSettings,
    *,
    step_loop: str = "device",
    log=None,
    y_for_log: np.ndarray | None = None,
) -> tuple[Any, dict[str, np.ndarray]]:
    """DeepCluster pretraining on the unlabeled pool (see the module docstring).

    Args:
      make_model: ``k -> Model`` with ``k`` outputs (the run's model, by name).
      num_classes: C, the classes of the active-learning task (and k when
        ``s.clusters == 0``).
      x_pool: the pool, host numpy ``[N, ...]``.
      s: the pretraining settings.
      train: the run's training settings (optimizer, augmentation; see
        :func:`pretrain_train_settings`).
      step_loop: ``device`` or ``host`` (resolved).
      log: ``log(str)`` for one line per clustering round.
      y_for_log: the pool's true labels, **only** to log the NMI between them and
        the clusters (DeepCluster's diagnostic); never used for training.

    Returns:
      ``(variables, history)``: C-class variables whose leaves but the last
      layer's are the pretrained ones; ``history`` holds per round the NMI with
      the previous clustering (``nmi_prev``; nan in round 0), with the labels
      (``nmi_labels``; nan without ``y_for_log``), the smallest and largest
      cluster and the last epoch's training accuracy on the pseudo-labels.
    """
    k = s.clusters or num_classes
    n = int(x_pool.shape[0])
    net = make_model(k)
    x = jax.device_put(jnp.asarray(x_pool, jnp.float32), jax.local_devices()[0])
    root = jax.random.key(s.seed)
    top = top_layer_paths(make_model, k, x)
    init = jax.jit(net.init)
    variables = init(jax.random.fold_in(root, 0), x[:1])
    ts = pretrain_train_settings(s, train)
    fit = _make_fit(net, ts, step_loop)
    chunk = int(train.eval_batch_size)
    embed = jax.jit(
        lambda v, xs: map_chunks(lambda xb, _: net.apply(v, xb, train=False)[1], xs, chunk)
    )
    kmeans = jax.jit(lambda key, f: kmeans_labels(key, f, k, s.kmeans_iters))
    empty = x[:0]
    hist = {key: [] for key in ("nmi_prev", "nmi_labels", "min_cluster", "max_cluster", "accuracy")}
    prev = None
    for r in range(s.rounds):
        interrupt.check()
        kr = jax.random.fold_in(root, r + 1)
        k_means, k_top, k_fit = jax.random.split(kr, 3)
        feats = preprocess_features(np.asarray(embed(variables, x)), s.pca_dim)
        pseudo = np.asarray(kmeans(k_means, jnp.asarray(feats)))
        sizes = np.bincount(pseudo, minlength=k)
        rng = np.random.default_rng([s.seed, r])
        order = jnp.asarray(uniform_cluster_sample(pseudo, k, n, rng))
        variables = replace_leaves(variables, init(k_top, x[:1]), top)  # a fresh top layer
        y = jnp.asarray(pseudo, jnp.int32)
        data = train_lib.Data(x, y, empty, y[:0], empty, y[:0])
        variables, fm = fit(variables, order, jnp.int32(n), k_fit, data)
        hist["nmi_prev"].append(np.nan if prev is None else _nmi(prev, pseudo))
        hist["nmi_labels"].append(np.nan if y_for_log is None else _nmi(y_for_log, pseudo))
        hist["min_cluster"].append(int(sizes.min()))
        hist["max_cluster"].append(int(sizes.max()))
        hist["accuracy"].append(float(fm.train_accuracy))
        prev = pseudo
        if log is not None:
            log(
                f"  deepcluster round {r + 1}/{s.rounds}: clusters {sizes.min()}..{sizes.max()} "
                f"points, NMI with the last clustering {hist['nmi_prev'][-1]:.3f}"
                + ("" if y_for_log is None else f", with the labels {hist['nmi_labels'][-1]:.3f}")
                + f", pseudo-label train accuracy {hist['accuracy'][-1]:.3f}"
            )
    final_model = make_model(num_classes)
    fresh = jax.jit(final_model.init)(jax.random.fold_in(root, s.rounds + 1), x[:1])
    final_top = top_layer_paths(make_model, num_classes, x)
    out = replace_leaves(fresh, variables, final_top, keep=True)  # all but the top layer
    return out, {key: np.asarray(v) for key, v in hist.items()}


# --- once per run, cached -------------------------------------------------------------


def resolve_cache_dir(s: PretrainSettings, workdir: str | None) -> str | None:
    """``pretrain.cache_dir`` (relative paths from the workdir); ``None`` =
    ``<workdir>/pretrain`` (no caching without a workdir)."""
    if s.cache_dir is None:
        return None if workdir is None else os.path.join(workdir, "pretrain")
    if os.path.isabs(s.cache_dir) or workdir is None:
        return s.cache_dir
    return os.path.normpath(os.path.join(workdir, s.cache_dir))


def cache_key(
    s: PretrainSettings, train: TrainSettings, model_id: str, num_classes: int, data_hash: str
) -> str:
    """What the pretrained variables depend on (where the step loop runs does not)."""
    ts = dataclasses.asdict(pretrain_train_settings(s, train))
    for k in ("step_loop", "reinit", "eval_batch_size"):
        ts.pop(k, None)
    pre = dataclasses.asdict(s)
    pre.pop("cache_dir")
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "pretrain": pre,
            "train": ts,
            "model": model_id,
            "classes": int(num_classes),
            "data": data_hash,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def pretrained(
    make_model: Callable[[int], Model],
    model_id: str,
    num_classes: int,
    x_pool: np.ndarray,
    s: PretrainSettings,
    train: TrainSettings,
    *,
    cache_dir: str | None,
    step_loop: str = "device",
    write: bool = True,
    log=None,
    y_for_log: np.ndarray | None = None,
):
    """:func:`deepcluster`, cached in ``cache_dir`` as ``deepcluster-<hash>.npz``
    (variables by path, the history under ``pretrain/``), under a file lock so
    concurrent runs sharing the directory train it once. Returns the variables."""
    from jaxal import ssl

    like = template(make_model(num_classes), x_pool)

    def train_it():
        if log is not None:
            log(
                f"pretraining: DeepCluster on the pool ({x_pool.shape[0]} points, "
                f"{s.rounds} clusterings x {s.epochs} epochs, k = {s.clusters or num_classes})"
                + (f"; cached in {path}" if cache_dir is not None else "")
            )
        return deepcluster(
            make_model, num_classes, x_pool, s, train, step_loop=step_loop, log=log,
            y_for_log=y_for_log,
        )

    if cache_dir is None:
        path = None
        return train_it()[0]
    key = cache_key(s, train, model_id, num_classes, ssl.fingerprint(x_pool))
    path = os.path.join(cache_dir, f"{s.method}-{key}.npz")
    with ssl._locked(path):
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as f:
                if "cache_key" in f.files and str(f["cache_key"]) == key:
                    if log is not None:
                        log(f"pretraining: DeepCluster variables from the cache {path}")
                    flat = {k: f[k] for k in f.files if not k.startswith(_HISTORY)}
                    flat.pop("cache_key")
                    return unflatten_variables(flat, like, source=path)
        variables, hist = train_it()
        if write:
            extra = {_HISTORY + k: v for k, v in hist.items()}
            save_variables(path, variables, cache_key=np.asarray(key), **extra)
    return variables


def prepare(
    init_from: str,
    s: PretrainSettings,
    train: TrainSettings,
    *,
    model: Model,
    make_model: Callable[[int], Model] | None,
    model_id: str,
    num_classes: int,
    x_pool: np.ndarray,
    cache_dir: str | None = None,
    step_loop: str = "device",
    write: bool = True,
    log=None,
    y_for_log: np.ndarray | None = None,
):
    """The variables every round starts from (host or device arrays), or ``None``
    for ``init_from=""``. ``model`` is the run's model (the file's template);
    ``make_model(k)`` builds it with k outputs (pretraining)."""
    if not init_from:
        return None
    if init_from.startswith("file:"):
        return load_variables(init_from[len("file:") :], template(model, x_pool))
    if make_model is None:
        raise ValueError("train.init_from='pretrain' needs the model by name (config.model)")
    return pretrained(
        make_model,
        model_id,
        num_classes,
        np.asarray(x_pool),
        s,
        train,
        cache_dir=cache_dir,
        step_loop=step_loop,
        write=write,
        log=log,
        y_for_log=y_for_log,
    )


__all__ = [
    "METHODS",
    "check_model",
    "deepcluster",
    "flatten_variables",
    "load_variables",
    "prepare",
    "preprocess_features",
    "resolve_cache_dir",
    "save_variables",
    "top_layer_paths",
    "uniform_cluster_sample",
    "unflatten_variables",
    "validate",
]
