"""What training and scoring ask of a model — single or ensemble — in one place.

A deep ensemble (:mod:`jaxal.models.ensemble`) is a :class:`Model` whose
``members`` returns every member's logits; a single model has none. Training
and pool scoring call these two functions and never branch on ensembles.
"""

from __future__ import annotations

import jax

from jaxal.models.base import Array, Model, Variables

# Dropout-mask elements drawn at once by head-mode MC passes (16 Mi: 64 MB as float32).
MASK_ELEMENTS = 1 << 24


def training_logits(
    model: Model, variables: Variables, x: Array, dropout_key: Array | None
) -> tuple[Array, Array, object]:
    """Logits of a training step.

    Returns:
      ``(member_logits [M, B, C], logits [B, C], batch_stats)``: each member
      minimises its own cross-entropy on ``member_logits`` (``M = 1`` for a
      single model); ``logits`` is the prediction reported as the training
      loss and accuracy (an ensemble's is the log of its mean probability).
    """
    if model.members is None:
        logits, _, batch_stats = model.apply(variables, x, train=True, dropout_key=dropout_key)
        return logits[None], logits, batch_stats
    member_logits, _, batch_stats = model.members(variables, x, train=True, dropout_key=dropout_key)
    logits = jax.nn.logsumexp(jax.nn.log_softmax(member_logits), axis=0)
    return member_logits, logits, batch_stats


def sample_logits(
    model: Model,
    variables: Variables,
    x: Array,
    keys: Array,
    mode: str,
    *,
    consistent: bool = False,
) -> Array:
    """``[T, B, C]`` logits of the predictive samples of ``x``.

    An ensemble's samples are its M members' deterministic predictions
    (``keys`` unused; consistent by construction); otherwise T = ``len(keys)``
    MC-dropout passes in eval mode: ``full`` through the whole network,
    ``head`` through the dropout head only, on the backbone's features computed
    once.

    ``consistent=False``: pass t runs the batch with key ``keys[t]``, so every
    row gets its own dropout mask. ``consistent=True``: pass t applies the
    network to each row on its own (``vmap`` over rows of a batch of one) with
    the same key ``keys[t]``: the mask is drawn once, for a batch of one, and
    broadcast, so every row sees the identical mask -- the same network draw
    ω_t for all of ``x`` (any dropout layer, conv or dense, in any model:
    nothing model-specific is assumed). A row's result does not depend on the
    other rows, so chunks called with the same ``keys`` share the draw too.
    The cost is that of the batched pass (``vmap`` batches the row
    computations back together; only the mask is not batched).
    """
    if model.members is not None:
        return model.members(variables, x, train=False)[0]
    if mode == "head":
        inputs = model.features(variables, x)

        def one_pass(k, rows):  # [B, ...] features -> [B, C] logits
            return model.head(variables, rows, dropout_key=k)[0]

    else:
        inputs = x

        def one_pass(k, rows):  # [B, ...] inputs -> [B, C] logits
            return model.apply(variables, rows, train=False, dropout_key=k)[0]

    if consistent:  # one batch-of-one mask per key, broadcast to every row
        return jax.vmap(lambda k: jax.vmap(lambda r: one_pass(k, r[None])[0])(inputs))(keys)
    if mode == "head":
        # Passes in groups (same keys, same masks): vmapping all T at once would
        # hold T dropout masks of the features at a time ([T, B, D] uniforms,
        # bits and products: GBs for the CNN's 4,608 features at B = 1,024).
        per = max(1, min(len(keys), MASK_ELEMENTS // max(1, inputs[0].size * len(inputs))))
        return jax.lax.map(lambda k: one_pass(k, inputs), keys, batch_size=per)
    return jax.vmap(lambda k: one_pass(k, inputs))(keys)
