"""Deep ensembles as an array axis: M members' variables stacked on a leading
``[M]`` axis and run with ``vmap`` (one program, no Python loop over members).

The ensemble is itself a :class:`Model`: ``apply`` returns the log of the mean
member probability (so evaluation and deterministic strategies see the
ensemble's predictive distribution) and member 0's embedding; ``members``
returns every member's logits for training (each member minimises its own
cross-entropy) and for sample-based strategies (``[M, N, C]`` probabilities:
BALD, variation ratios, vote entropy, ... over members).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.models.base import Model


def _mean_log_prob(logits):  # [M, B, C] -> [B, C]
    m = logits.shape[0]
    return jax.nn.logsumexp(jax.nn.log_softmax(logits.astype(jnp.float32)), axis=0) - jnp.log(m)


def ensemble(model: Model, size: int) -> Model:
    """``size`` independently initialised copies of ``model`` as one Model.

    Members differ by their initialisation (member m's key is the m-th split of
    the init key) and dropout masks; they see the same minibatches.
    """
    if size < 1:
        raise ValueError(f"ensemble size must be >= 1, got {size}")

    def init(key, x):
        return jax.vmap(lambda k: model.init(k, x))(jax.random.split(key, size))

    def members(variables, x, *, train, dropout_key=None):
        if dropout_key is None:
            return jax.vmap(lambda v: model.apply(v, x, train=train))(variables)
        keys = jax.random.split(dropout_key, size)
        return jax.vmap(lambda v, k: model.apply(v, x, train=train, dropout_key=k))(variables, keys)

    def apply(variables, x, *, train, dropout_key=None):
        logits, emb, batch_stats = members(variables, x, train=train, dropout_key=dropout_key)
        return _mean_log_prob(logits), emb[0], batch_stats

    def features(variables, x):
        return jax.vmap(lambda v: model.features(v, x))(variables)

    def head(variables, h, *, dropout_key=None):
        if dropout_key is None:
            logits, emb = jax.vmap(lambda v, hm: model.head(v, hm))(variables, h)
        else:
            keys = jax.random.split(dropout_key, size)
            logits, emb = jax.vmap(lambda v, hm, k: model.head(v, hm, dropout_key=k))(
                variables, h, keys
            )
        return _mean_log_prob(logits), emb[0]

    return Model(
        name=f"{model.name}x{size}",
        init=init,
        apply=apply,
        features=features,
        head=head,
        embedding_dim=model.embedding_dim,
        members=members,
        ensemble_size=size,
    )
