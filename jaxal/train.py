"""Training on the labeled set: optimizer from config, pure steps, one jitted fit.

``make_fit`` returns ``fit(variables, order, num_labeled, key, data)`` that runs
every epoch of one round inside a single jitted program. The labeled set enters
as a fixed-capacity index buffer ``order[capacity]`` (pool indices, ``-1``
padded) plus the traced count ``num_labeled``, so the same executable serves
every round: nothing recompiles as the labeled set grows.

Epoch semantics are exact: each epoch is a fresh permutation of the labeled
points cut into ``ceil(n / B)`` batches of static size ``B``. The last batch is
filled up with earlier points of the same permutation whose loss weight is 0,
so every example is seen exactly once per epoch and the gradient equals that of
a true partial batch (batch-norm statistics do see the filler examples).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxal.models.base import Model
from jaxal.predict import map_chunks

Array = jax.Array

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")


class Data(NamedTuple):
    """Device arrays of one dataset; passed as arguments (never baked into programs)."""

    x_pool: Array  # [N, ...]
    y_pool: Array  # [N]
    x_test: Array
    y_test: Array
    x_val: Array  # [0, ...] when there is no validation split
    y_val: Array


class FitMetrics(NamedTuple):
    epochs: Array  # epochs actually run (early stopping may end sooner)
    steps: Array
    train_loss: Array  # mean loss of the last epoch
    train_accuracy: Array  # accuracy of the last epoch
    val_accuracy: Array  # best validation accuracy (nan without a validation split)


def make_optimizer(cfg) -> optax.GradientTransformation:
    """An optax optimizer whose learning rate is an injected hyperparameter.

    Args:
      cfg: the ``train`` config: ``optimizer`` in ``OPTIMIZERS``, ``learning_rate``,
        ``momentum`` (sgd), ``weight_decay`` (decoupled for adamw, L2-style
        ``add_decayed_weights`` for sgd/adam).
    """

    def factory(learning_rate):
        if cfg.optimizer == "sgd":
            opt = optax.sgd(learning_rate, momentum=cfg.momentum or None, nesterov=False)
        elif cfg.optimizer == "adam":
            opt = optax.adam(learning_rate)
        elif cfg.optimizer == "adamw":
            return optax.adamw(learning_rate, weight_decay=cfg.weight_decay)
        else:
            raise ValueError(f"train.optimizer={cfg.optimizer!r}; allowed: {OPTIMIZERS}")
        if cfg.weight_decay:
            opt = optax.chain(optax.add_decayed_weights(cfg.weight_decay), opt)
        return opt

    return optax.inject_hyperparams(factory)(learning_rate=cfg.learning_rate)


def learning_rate(cfg, step: Array, total_steps: Array) -> Array:
    """The scheduled rate at ``step`` of a round of ``total_steps`` (both traced)."""
    if cfg.schedule == "constant":
        return jnp.asarray(cfg.learning_rate, jnp.float32)
    if cfg.schedule == "cosine":
        frac = step.astype(jnp.float32) / jnp.maximum(total_steps, 1).astype(jnp.float32)
        return cfg.learning_rate * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    raise ValueError(f"train.schedule={cfg.schedule!r}; allowed: {SCHEDULES}")


def augment(key: Array, x: Array, crop_padding: int, flip: bool) -> Array:
    """On-device random crop (zero padding) and horizontal flip of ``x [B, H, W, C]``."""
    if x.ndim != 4 or (not crop_padding and not flip):
        return x
    b, h, w, _ = x.shape
    k_crop, k_flip = jax.random.split(key)
    if crop_padding:
        p = crop_padding
        padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        off = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
        x = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, x.shape[3])))(
            padded, off
        )
    if flip:
        do = jax.random.bernoulli(k_flip, 0.5, (b,))
        x = jnp.where(do[:, None, None, None], x[:, :, ::-1, :], x)
    return x


def epoch_permutation(key: Array, order: Array, num_labeled: Array) -> Array:
    """A uniform permutation of the ``num_labeled`` valid entries of ``order``.

    Returns ``int32[capacity]`` whose first ``num_labeled`` entries are the labeled
    pool indices in random order (the rest is padding).
    """
    capacity = order.shape[0]
    u = jax.random.uniform(key, (capacity,))
    u = jnp.where(jnp.arange(capacity) < num_labeled, u, 2.0)
    return order[jnp.argsort(u)]


def batch_indices(perm: Array, num_labeled: Array, step: Array, batch_size: int):
    """Pool indices and loss weights of batch ``step`` of an epoch.

    Batches are consecutive slices of ``perm``; the last one is filled up with
    the epoch's first examples again, at weight 0, so shapes stay static.
    """
    pos = step * batch_size + jnp.arange(batch_size)
    weight = (pos < num_labeled).astype(jnp.float32)
    return perm[pos % jnp.maximum(num_labeled, 1)], weight


def _merge(params, batch_stats) -> dict:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def make_evaluate(model: Model, batch_size: int) -> Callable:
    """``evaluate(variables, x, y) -> (accuracy, nll)`` over a whole split, chunked."""

    def evaluate(variables, x: Array, y: Array):
        if x.shape[0] == 0:
            return jnp.float32(jnp.nan), jnp.float32(jnp.nan)
        logits = map_chunks(
            lambda xb, _: model.apply(variables, xb, train=False)[0], x, batch_size
        )
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        acc = (logits.argmax(-1) == y).mean()
        return acc.astype(jnp.float32), nll.astype(jnp.float32)

    return evaluate


def make_fit(model: Model, cfg, eval_batch_size: int = 512) -> Callable:
    """Build the per-seed, per-round training function.

    Args:
      model: the model adapter.
      cfg: the ``train`` config (``optimizer, learning_rate, momentum,
        weight_decay, schedule, epochs, batch_size, augment.{crop_padding,flip},
        early_stop.{train_accuracy, patience}``).
      eval_batch_size: chunk size for validation passes.

    Returns:
      ``fit(variables, order, num_labeled, key, data) -> (variables, FitMetrics)``;
      pure and jit/vmap-able. ``order`` is the ``int32[capacity]`` labeled-index
      buffer (capacity = the run's budget).
    """
    tx = make_optimizer(cfg)
    bsz = int(cfg.batch_size)
    evaluate = make_evaluate(model, eval_batch_size)
    acc_stop = cfg.early_stop.train_accuracy
    patience = cfg.early_stop.patience
    crop, flip = int(cfg.augment.crop_padding), bool(cfg.augment.flip)

    def loss_fn(params, batch_stats, x, y, w, dropout_key):
        logits, _, new_bs = model.apply(
            _merge(params, batch_stats), x, train=True, dropout_key=dropout_key
        )
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        loss = jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1.0)
        correct = jnp.sum(w * (logits.argmax(-1) == y))
        return loss, (new_bs, correct, jnp.sum(w * ce))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def fit(variables, order: Array, num_labeled: Array, key: Array, data: Data):
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        opt_state = tx.init(params)
        n = num_labeled.astype(jnp.int32)
        steps_per_epoch = (n + bsz - 1) // bsz
        total_steps = steps_per_epoch * cfg.epochs

        def epoch_body(carry):
            epoch, step0, params, batch_stats, opt_state, best, _, _, _ = carry
            k_epoch = jax.random.fold_in(key, epoch)
            perm = epoch_permutation(jax.random.fold_in(k_epoch, 0), order, n)

            def step_body(i, c):
                params, batch_stats, opt_state, correct, loss_sum = c
                idx, w = batch_indices(perm, n, i, bsz)
                k_step = jax.random.fold_in(k_epoch, i + 1)
                k_aug, k_drop = jax.random.split(k_step)
                x = augment(k_aug, data.x_pool[idx], crop, flip)
                (_, (new_bs, corr, lsum)), grads = grad_fn(
                    params, batch_stats, x, data.y_pool[idx], w, k_drop
                )
                opt_state.hyperparams["learning_rate"] = learning_rate(
                    cfg, step0 + i, total_steps
                )
                updates, opt_state = tx.update(grads, opt_state, params)
                params = optax.apply_updates(params, updates)
                return params, new_bs, opt_state, correct + corr, loss_sum + lsum

            params, batch_stats, opt_state, correct, loss_sum = jax.lax.fori_loop(
                0,
                steps_per_epoch,
                step_body,
                (params, batch_stats, opt_state, jnp.float32(0), jnp.float32(0)),
            )
            nf = jnp.maximum(n, 1).astype(jnp.float32)
            train_acc, train_loss = correct / nf, loss_sum / nf
            best_acc, best_params, best_bs, bad = best
            if patience is not None:
                val_acc, _ = evaluate(_merge(params, batch_stats), data.x_val, data.y_val)
                improved = val_acc > best_acc
                best_params = jax.tree.map(
                    lambda a, b: jnp.where(improved, a, b), params, best_params
                )
                best_bs = jax.tree.map(lambda a, b: jnp.where(improved, a, b), batch_stats, best_bs)
                best_acc = jnp.where(improved, val_acc, best_acc)
                bad = jnp.where(improved, 0, bad + 1)
            stop = jnp.bool_(False)
            if acc_stop is not None:
                stop = stop | (train_acc >= acc_stop)
            if patience is not None:
                stop = stop | (bad >= patience)
            best = (best_acc, best_params, best_bs, bad)
            return (
                epoch + 1,
                step0 + steps_per_epoch,
                params,
                batch_stats,
                opt_state,
                best,
                stop,
                train_loss,
                train_acc,
            )

        def cond(carry):
            epoch, stop = carry[0], carry[6]
            return (epoch < cfg.epochs) & ~stop

        best0 = (jnp.float32(-1.0), params, batch_stats, jnp.int32(0))
        carry = (
            jnp.int32(0),
            jnp.int32(0),
            params,
            batch_stats,
            opt_state,
            best0,
            jnp.bool_(False),
            jnp.float32(jnp.nan),
            jnp.float32(jnp.nan),
        )
        epochs, steps, params, batch_stats, _, best, _, loss, acc = jax.lax.while_loop(
            cond, epoch_body, carry
        )
        val_acc = jnp.float32(jnp.nan)
        if patience is not None:
            # Keep the weights of the best validation epoch.
            params, batch_stats, val_acc = best[1], best[2], best[0]
        metrics = FitMetrics(epochs, steps, loss, acc, val_acc)
        return _merge(params, batch_stats), metrics

    return fit

