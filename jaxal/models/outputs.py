"""What training and scoring ask of a model — single or ensemble — in one place.

A deep ensemble (:mod:`jaxal.models.ensemble`) is a :class:`Model` whose
``members`` returns every member's logits; a single model has none. Training
and pool scoring call these two functions and never branch on ensembles.
"""

from __future__ import annotations

import jax

from jaxal.models.base import Array, Model, Variables


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
    member_logits, _, batch_stats = model.members(
        variables, x, train=True, dropout_key=dropout_key
    )
    logits = jax.nn.logsumexp(jax.nn.log_softmax(member_logits), axis=0)
    return member_logits, logits, batch_stats


def sample_logits(model: Model, variables: Variables, x: Array, keys: Array, mode: str) -> Array:
    """``[T, B, C]`` logits of the predictive samples of ``x``.

    An ensemble's samples are its M members' deterministic predictions
    (``keys`` unused); otherwise T = ``len(keys)`` MC-dropout passes in eval
    mode: ``full`` through the whole network, ``head`` through the dropout
    head only, on the backbone's features computed once.
    """
    if model.members is not None:
        return model.members(variables, x, train=False)[0]
    if mode == "head":
        h = model.features(variables, x)
        return jax.vmap(lambda k: model.head(variables, h, dropout_key=k)[0])(keys)
    return jax.vmap(lambda k: model.apply(variables, x, train=False, dropout_key=k)[0])(keys)
