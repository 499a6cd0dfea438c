"""The one small adapter every model sits behind (see DESIGN.md, "Models").

The rest of jaxal sees only :class:`Model`; swapping Linen for NNX touches only
``jaxal/models``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

Array = jax.Array
Variables = Any  # {"params": ..., optionally "batch_stats": ...}


class Model(NamedTuple):
    """Pure functions of a classifier returning logits and its penultimate embedding.

    Attributes:
      init: ``init(key, x) -> variables`` (``x`` is a sample batch ``[B, ...]``).
      apply: ``apply(variables, x, *, train, dropout_key=None)
        -> (logits [B, C], embedding [B, D], batch_stats)``.
        ``train=True``: batch norm uses and updates batch statistics, the new
        ``batch_stats`` collection is returned (``{}`` for models without BN).
        ``train=False``: batch norm uses running statistics, returns ``{}``.
        Dropout is active iff ``dropout_key`` is given, independently of
        ``train`` — MC dropout is ``train=False, dropout_key=k`` and never
        touches batch-norm statistics.
      features: ``features(variables, x) -> h``: the deterministic part of the
        network, up to (not including) the first dropout layer of the head.
      head: ``head(variables, h, *, dropout_key=None) -> (logits, embedding)``:
        the rest of the network in eval mode. ``head(v, features(v, x), k)`` equals
        ``apply(v, x, train=False, dropout_key=k)[:2]`` exactly when all dropout
        lives in the head (MC "head" mode: backbone once, T cheap head passes).
      embedding_dim: D.
      members: for ensembles (:func:`jaxal.models.ensemble.ensemble`),
        ``members(variables, x, *, train, dropout_key=None) -> (logits [M, B, C],
        embeddings [M, B, D], batch_stats)``; ``None`` for a single model.
      ensemble_size: M (1 for a single model).
      supports_head: whether ``features``/``head`` work (MC "head" mode); ``False``
        for user modules (:mod:`jaxal.models.user`), which have no backbone/head split.
      mc_dropout: whether eval-mode MC dropout (``train=False`` with a dropout key,
        MC "full" mode) is possible, known without tracing anything; ``False`` for a
        user module that declares batch norm without a separate dropout flag.
    """

    name: str
    init: Callable[..., Variables]
    apply: Callable[..., tuple[Array, Array, Any]]
    features: Callable[..., Array]
    head: Callable[..., tuple[Array, Array]]
    embedding_dim: int
    members: Callable[..., tuple[Array, Array, Any]] | None = None
    ensemble_size: int = 1
    supports_head: bool = True
    mc_dropout: bool = True
