"""Batch-aware acquisition: BatchBALD.

(The selection helpers every strategy shares — ``check_k``, tiered ranking
keys, Gumbel-top-k — are in :mod:`jaxal.strategies.select`; ``check_k`` and
``rank_key`` are re-exported here for older imports.)

BatchBALD (Kirsch, van Amersfoort & Gal 2019) picks the batch greedily: the
i-th point maximises the joint mutual information

    a(x_1..x_i) = H(y_1, .., y_i) - sum_j E_t H(y_j | ω_t)

between the batch's labels and the model. The second term is a per-point sum
(computed once); the joint entropy is where the work is. Write ``y_b`` for a
configuration of the labels already picked and ``q_b(n) = p(y_n | y_b)``; then

    H(y_b, y_n) = H(y_b) + sum_b p(y_b) H(q_b(n)),
    q_b(n)_c = sum_t p(ω_t | y_b) p_t(y_n = c)

with ``p(ω_t | y_b) ∝ prod_j p_t(y_j)``. Only the second term depends on the
candidate ``n``. While the batch is small (``C**i <= num_samples``) the sum runs
over all ``C**i`` configurations exactly; after that it runs over
``num_samples`` configurations sampled from ``p(y_b)`` -- stratified over the
samples ``ω`` as in batchbald_redux, then each label drawn from ``p_ω`` -- with
weight ``1/M`` (the sampled estimator of the paper; the inner ``H(q_b(n))`` stays
exact, which lowers its variance). The posterior ``p(ω | y_b)`` is kept in log
space, so long batches do not underflow. Candidates are scored in chunks of
``chunk_size`` pool points: memory is ``O(chunk_size · M · C)``, never ``N·M·C``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal.strategies.base import Array, Needs, Outputs, Strategy
from jaxal.strategies.bayesian import _entropy, bald_scores, require_samples
from jaxal.strategies.select import check_k, check_static_k, gumbel_top_k, rank_key

__all__ = [
    "batchbald",
    "check_k",
    "check_static_k",
    "exact_joint_entropy",
    "gumbel_top_k",
    "rank_key",
    "sampled_joint_entropy",
]

# The joint predictive p(y_1..y_n) = mean_t prod_j p_t(y_j) is only the model's
# if sample t is one network draw ω_t for every point: consistent MC dropout.
CONSISTENT_SAMPLES = Needs(probs=True, samples=True, consistent=True)

# BatchBALD ---------------------------------------------------------------------


class _Configs(NamedTuple):
    """Label configurations ``y_b`` of the points picked so far."""

    log_lik: Array  # [M, T] log p(y_b^m | ω_t)
    weight: Array | None  # [M] p(y_b^m) (exact); None: sampled, weight 1/M


def _posterior(log_lik: Array) -> tuple[Array, Array]:
    """``p(ω_t | y_b^m)`` ``[M, T]`` and ``log p(y_b^m)`` ``[M]``."""
    num_t = log_lik.shape[1]
    lse = jax.nn.logsumexp(log_lik, axis=1)  # [M]
    ok = jnp.isfinite(lse)  # impossible configurations: any posterior, weight 0
    post = jnp.exp(log_lik - jnp.where(ok, lse, 0.0)[:, None])
    post = jnp.where(ok[:, None], post, 1.0 / num_t)
    return post, lse - math.log(num_t)


def _extend_exact(cfg: _Configs, log_p_tc: Array) -> _Configs:
    """Append one point (``log_p_tc``: ``[T, C]``) to all ``M`` configs: ``M·C``."""
    log_lik = cfg.log_lik[:, None, :] + log_p_tc.T[None]  # [M, C, T]
    log_lik = log_lik.reshape(-1, log_lik.shape[-1])
    _, log_marg = _posterior(log_lik)
    return _Configs(log_lik, jnp.exp(log_marg))


def _extend_sampled(cfg: _Configs, log_p_tc: Array, omega: Array, key: Array) -> _Configs:
    """Draw each sampled configuration's label of one more point from ``p_ω``."""
    labels = jax.random.categorical(key, log_p_tc[omega])  # [M]
    return _Configs(cfg.log_lik + log_p_tc[:, labels].T, None)


def _omega(num_samples: int, num_t: int) -> Array:
    """Stratified model samples for the configurations: ``m mod T``."""
    return jnp.arange(num_samples) % num_t


def _batch_entropy(cfg: _Configs) -> Array:
    """``H(y_b)``: exact sum, or the Monte-Carlo mean of ``-log p(y_b^m)``."""
    _, log_marg = _posterior(cfg.log_lik)
    if cfg.weight is None:
        return -log_marg.mean()
    return -jnp.sum(jnp.where(cfg.weight > 0, cfg.weight * log_marg, 0.0))


def _conditional_entropies(cfg: _Configs, p_ntc: Array, chunk_size: int) -> Array:
    """``sum_b p(y_b) H(y_n | y_b)`` for every point ``n``: ``[N]``, chunked."""
    post, _ = _posterior(cfg.log_lik)  # [M, T]
    num = post.shape[0]
    weight = jnp.full((num,), 1.0 / num) if cfg.weight is None else cfg.weight

    def one(p_tc):  # [T, C] -> scalar; lax.map vmaps it over a chunk
        return _entropy(post @ p_tc) @ weight  # q: [M, C]

    return jax.lax.map(one, p_ntc, batch_size=min(chunk_size, p_ntc.shape[0]))


def exact_joint_entropy(probs: Array) -> Array:
    """Exact ``H(y_1, .., y_B)`` of B points under ``[T, B, C]`` sampled predictions.

    Enumerates all ``C**(B-1)`` configurations of the first ``B-1`` points (the
    last one is summed analytically); for small ``B`` only.
    """
    probs = require_samples(probs, "exact_joint_entropy")
    log_p = jnp.log(probs)
    cfg = _Configs(jnp.zeros((1, probs.shape[0])), jnp.ones((1,)))
    for j in range(probs.shape[1] - 1):
        cfg = _extend_exact(cfg, log_p[:, j])
    last = jnp.swapaxes(probs[:, -1:], 0, 1)  # [1, T, C]
    return _batch_entropy(cfg) + _conditional_entropies(cfg, last, 1)[0]


def sampled_joint_entropy(key: Array, probs: Array, num_samples: int) -> Array:
    """BatchBALD's sampled estimate of ``H(y_1, .., y_B)`` (``[T, B, C]`` input).

    ``num_samples`` configurations of the first ``B-1`` labels are drawn from
    their joint predictive; the last label's conditional entropy is exact.
    """
    probs = require_samples(probs, "sampled_joint_entropy")
    log_p = jnp.log(probs)
    omega = _omega(num_samples, probs.shape[0])
    cfg = _Configs(jnp.zeros((num_samples, probs.shape[0])), None)
    for j in range(probs.shape[1] - 1):
        cfg = _extend_sampled(cfg, log_p[:, j], omega, jax.random.fold_in(key, j))
    last = jnp.swapaxes(probs[:, -1:], 0, 1)
    return _batch_entropy(cfg) + _conditional_entropies(cfg, last, 1)[0]


def num_exact_steps(num_classes: int, k: int, num_samples: int) -> int:
    """How many of the ``k`` greedy steps enumerate configurations exactly.

    Step ``i`` (``i`` points already picked) is exact while ``C**i <= num_samples``.
    """
    steps = 0
    while steps < k and num_classes**steps <= num_samples:
        steps += 1
    return steps


@functools.partial(jax.jit, static_argnames=("k", "num_samples", "chunk_size"))
def batchbald_select(
    key: Array,
    probs: Array,
    labeled: Array,
    k: int,
    *,
    num_samples: int = 1000,
    chunk_size: int = 1024,
) -> Array:
    """Greedy BatchBALD batch of ``k`` distinct indices (jitted, ``k`` static).

    Args:
      key: PRNG key for the sampled configurations (unused while exact).
      probs: ``[T, N, C]`` sampled predictions.
      labeled: ``bool[N]``.
      k: batch size (static).
      num_samples: configurations ``M`` of the sampled estimator; also the
        exact-enumeration limit (exact while ``C**i <= M``).
      chunk_size: pool points scored at once (memory ``chunk_size · M · C``).

    Returns:
      ``int32[k]`` in acquisition order. NaN joint scores are picked only after
      every finite one; past the unlabeled points, labeled ones (never twice).
    """
    probs = require_samples(probs, "batchbald")
    num_t, num_pool, num_classes = probs.shape
    check_static_k(num_pool, k)
    log_p = jnp.log(probs)  # [T, N, C]; log 0 = -inf is fine
    p_ntc = jnp.swapaxes(probs, 0, 1)  # [N, T, C]: lax.map maps the leading axis
    cond = _entropy(probs).mean(axis=0)  # [N] E_t H(y_n | ω_t)

    def pick(cfg, picked, excluded, i):
        gain = _conditional_entropies(cfg, p_ntc, chunk_size) - cond
        idx = jnp.argmax(rank_key(gain, labeled, excluded)).astype(jnp.int32)
        return picked.at[i].set(idx), excluded.at[idx].set(True)

    picked = jnp.zeros((k,), jnp.int32)
    excluded = jnp.zeros((num_pool,), bool)
    n_exact = num_exact_steps(num_classes, k, num_samples)
    cfg = _Configs(jnp.zeros((1, num_t)), jnp.ones((1,)))
    for i in range(n_exact):  # unrolled: the config count grows by C each step
        if i > 0:
            cfg = _extend_exact(cfg, log_p[:, picked[i - 1]])
        picked, excluded = pick(cfg, picked, excluded, i)
    if n_exact == k:
        return picked

    omega = _omega(num_samples, num_t)
    cfg = _Configs(jnp.zeros((num_samples, num_t)), None)
    for j in range(n_exact):  # fresh samples of the labels picked exactly so far
        cfg = _extend_sampled(cfg, log_p[:, picked[j]], omega, jax.random.fold_in(key, j))

    def body(i, carry):
        log_lik, picked, excluded = carry
        picked, excluded = pick(_Configs(log_lik, None), picked, excluded, i)
        nxt = _extend_sampled(
            _Configs(log_lik, None), log_p[:, picked[i]], omega, jax.random.fold_in(key, i)
        )
        return nxt.log_lik, picked, excluded

    _, picked, _ = jax.lax.fori_loop(n_exact, k, body, (cfg.log_lik, picked, excluded))
    return picked


def batchbald(num_samples: int = 1000, chunk_size: int = 1024) -> Strategy:
    """BatchBALD (Kirsch et al. 2019) on ``[T, N, C]`` sampled predictions.

    Args:
      num_samples: sampled configurations ``M`` (and the exact-enumeration
        limit ``C**i <= M``), as ``num_samples`` in batchbald_redux.
      chunk_size: pool points scored at once.

    ``score`` is the BALD score (the joint score of a one-point batch, and an
    upper bound of each point's marginal gain), so ``history_subsample`` can
    wrap BatchBALD.

    Needs *consistent* samples (``Needs(consistent=True)``): sample t must be
    the same network draw ω_t for every pool point, or ``prod_j p_t(y_j)`` is
    not a joint likelihood under one model (Kirsch et al. 2019, "consistent MC
    dropout"). The loop then draws one dropout mask per sample for the whole
    pool, whatever ``mc.consistent`` says; ensembles are consistent anyway.
    """
    if num_samples < 1 or chunk_size < 1:
        raise ValueError("batchbald: num_samples and chunk_size must be >= 1")

    def select(key: Array, outputs: Outputs, labeled: Array, k: int) -> Array:
        return batchbald_select(
            key, outputs.probs, labeled, k, num_samples=num_samples, chunk_size=chunk_size
        )

    return Strategy(
        name="batchbald",
        needs=CONSISTENT_SAMPLES,
        select=select,
        score=lambda outputs: bald_scores(outputs.probs),
    )
