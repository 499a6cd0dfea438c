"""Wraps a Flax Linen backbone + head pair into the :class:`~jaxal.models.base.Model` adapter.

Every jaxal model is split the same way:

* a **backbone** ``backbone(x, train) -> h``: deterministic (no dropout); its
  batch norm uses batch statistics iff ``train``;
* a **head** ``head(h, deterministic) -> (logits, embedding)``: everything from
  the first dropout layer on. All dropout of every jaxal model lives in its head,
  so MC "head" mode (backbone once, T stochastic head passes) is exact.

Batch norm (``train``) and dropout (``deterministic``) are two separate flags:
MC dropout is ``train=False`` with a dropout key, and never touches batch stats.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.base import Array, Model, Variables
from jaxal.models.dropout import Dropout


class Classifier(nn.Module):
    """``backbone`` then ``classifier``, with each part exposed as a method.

    The parameter tree is ``{"backbone": ..., "classifier": ...}``.
    """

    backbone: nn.Module  # __call__(x, train: bool) -> h
    classifier: nn.Module  # __call__(h, deterministic: bool) -> (logits, embedding)

    def __call__(self, x: Array, train: bool, deterministic: bool) -> tuple[Array, Array]:
        return self.classifier(self.backbone(x, train), deterministic)

    def features(self, x: Array) -> Array:
        return self.backbone(x, False)

    def head(self, h: Array, deterministic: bool) -> tuple[Array, Array]:
        return self.classifier(h, deterministic)


class DenseHead(nn.Module):
    """``Dropout(rate) -> Dense(num_classes)``; the embedding is the input ``h [B, D]``."""

    num_classes: int
    rate: float = 0.0

    @nn.compact
    def __call__(self, h: Array, deterministic: bool) -> tuple[Array, Array]:
        z = Dropout(self.rate)(h, deterministic=deterministic)
        return nn.Dense(self.num_classes)(z), h


def batch_norm() -> nn.BatchNorm:
    """The batch norm every jaxal conv net uses (PyTorch defaults: momentum 0.1, eps 1e-5).

    Flax's ``momentum`` is the decay of the running average, hence 0.9.
    """
    return nn.BatchNorm(momentum=0.9, epsilon=1e-5, use_fast_variance=False)


def _rngs(dropout_key: Array | None) -> dict[str, Array]:
    return {} if dropout_key is None else {"dropout": dropout_key}


def from_linen(
    name: str,
    backbone: nn.Module,
    head: nn.Module,
    *,
    embedding_dim: int,
    has_batch_norm: bool,
) -> Model:
    """Builds the pure-function :class:`Model` of a Linen backbone/head pair.

    Args:
      name: config name of the model.
      backbone: Linen module, ``backbone(x, train) -> h``; no dropout inside.
      head: Linen module, ``head(h, deterministic) -> (logits [B, C], embedding [B, D])``.
      embedding_dim: D.
      has_batch_norm: whether ``backbone`` holds a ``batch_stats`` collection.

    Returns:
      The :class:`Model`; all its functions are pure (jit-, vmap- and grad-able).
    """
    module = Classifier(backbone=backbone, classifier=head)

    def init(key: Array, x: Array) -> Variables:
        variables = module.init({"params": key}, jnp.asarray(x, jnp.float32), False, True)
        return dict(variables)

    def apply(
        variables: Variables, x: Array, *, train: bool, dropout_key: Array | None = None
    ) -> tuple[Array, Array, Any]:
        x = jnp.asarray(x, jnp.float32)
        deterministic = dropout_key is None
        rngs = _rngs(dropout_key)
        if train and has_batch_norm:
            (logits, emb), updates = module.apply(
                variables, x, True, deterministic, rngs=rngs, mutable=["batch_stats"]
            )
            return logits, emb, updates["batch_stats"]
        logits, emb = module.apply(variables, x, train, deterministic, rngs=rngs)
        return logits, emb, {}

    def features(variables: Variables, x: Array) -> Array:
        return module.apply(variables, jnp.asarray(x, jnp.float32), method=Classifier.features)

    def head_fn(
        variables: Variables, h: Array, *, dropout_key: Array | None = None
    ) -> tuple[Array, Array]:
        return module.apply(
            variables,
            h,
            dropout_key is None,
            rngs=_rngs(dropout_key),
            method=Classifier.head,
        )

    return Model(
        name=name,
        init=init,
        apply=apply,
        features=features,
        head=head_fn,
        embedding_dim=embedding_dim,
    )


__all__ = ["Classifier", "DenseHead", "batch_norm", "from_linen"]
