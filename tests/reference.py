"""Plain-numpy reference implementations of acquisition scores, written from
the papers' definitions with explicit loops (slow, obvious, float64).

Conventions: ``probs`` is ``[T, N, C]`` (T MC-dropout samples / ensemble
members); scores are "higher = more informative"; entropies in nats.
"""

from __future__ import annotations

import itertools

import numpy as np


def entropy(p) -> float:
    """``-sum_c p_c log p_c`` of one distribution, ``0 log 0 = 0``."""
    return float(-sum(x * np.log(x) for x in np.asarray(p, np.float64) if x > 0))


def bald(probs) -> np.ndarray:
    """Houlsby 2011: ``H[mean_t p_t] - mean_t H[p_t]`` per point."""
    probs = np.asarray(probs, np.float64)
    num_t, num_n, _ = probs.shape
    out = np.zeros(num_n)
    for n in range(num_n):
        mean = probs[:, n].mean(axis=0)
        out[n] = entropy(mean) - np.mean([entropy(probs[t, n]) for t in range(num_t)])
    return out


def _votes(probs, n) -> np.ndarray:
    probs = np.asarray(probs, np.float64)
    counts = np.zeros(probs.shape[-1])
    for t in range(probs.shape[0]):
        counts[int(np.argmax(probs[t, n]))] += 1  # first max on ties
    return counts


def variation_ratios(probs) -> np.ndarray:
    """``1 - f_mode / T`` with ``f_mode`` the count of the modal argmax class."""
    probs = np.asarray(probs)
    return np.array([1 - _votes(probs, n).max() / probs.shape[0] for n in range(probs.shape[1])])


def vote_entropy(probs) -> np.ndarray:
    """Entropy of the vote fractions ``V_c / T`` of the members' argmaxes."""
    probs = np.asarray(probs)
    return np.array([entropy(_votes(probs, n) / probs.shape[0]) for n in range(probs.shape[1])])


def mean_std(probs) -> np.ndarray:
    """Kampffmeyer 2016: ``mean_c sqrt(E_t[p^2] - E_t[p]^2)``."""
    probs = np.asarray(probs, np.float64)
    num_t, num_n, num_c = probs.shape
    out = np.zeros(num_n)
    for n in range(num_n):
        stds = []
        for c in range(num_c):
            x = probs[:, n, c]
            stds.append(np.sqrt(max(np.mean(x**2) - np.mean(x) ** 2, 0.0)))
        out[n] = np.mean(stds)
    return out


def top_k(scores, labeled, k: int) -> np.ndarray:
    """Masked top-k: unlabeled only, NaN/-inf after real scores, ties to lower index."""
    scores = np.asarray(scores, np.float64)
    labeled = np.asarray(labeled, bool)
    good = [i for i in range(len(scores)) if not labeled[i] and np.isfinite(scores[i])]
    good += [i for i in range(len(scores)) if not labeled[i] and scores[i] == np.inf]
    good.sort(key=lambda i: (-scores[i], i))
    bad = [i for i in range(len(scores)) if not labeled[i] and i not in good]
    return np.array((good + bad)[:k], np.int32)


def joint_entropy(probs, points) -> float:
    """``H(y_points)`` by enumerating all ``C**len(points)`` label configurations:
    ``p(y) = mean_t prod_j p_t(y_j)``."""
    probs = np.asarray(probs, np.float64)
    num_t, _, num_c = probs.shape
    total = 0.0
    for ys in itertools.product(range(num_c), repeat=len(points)):
        pairs = list(zip(points, ys, strict=True))
        p = np.mean([np.prod([probs[t, n, y] for n, y in pairs]) for t in range(num_t)])
        if p > 0:
            total -= p * np.log(p)
    return total


def joint_mutual_information(probs, points) -> float:
    """BatchBALD's ``H(y_points) - sum_j E_t H(y_j | ω_t)``."""
    probs = np.asarray(probs, np.float64)
    cond = sum(np.mean([entropy(probs[t, n]) for t in range(probs.shape[0])]) for n in points)
    return joint_entropy(probs, points) - cond


def batchbald_gains(probs, labeled, batch) -> np.ndarray:
    """Joint MI of ``batch + [n]`` for every point ``n`` (NaN for labeled / in batch)."""
    num_n = np.asarray(probs).shape[1]
    out = np.full(num_n, np.nan)
    for n in range(num_n):
        if not labeled[n] and n not in batch:
            out[n] = joint_mutual_information(probs, list(batch) + [n])
    return out


def batchbald_greedy(probs, labeled, k: int) -> np.ndarray:
    """Greedy BatchBALD with exact joint entropies (Kirsch et al. 2019, Alg. 1)."""
    batch: list[int] = []
    for _ in range(k):
        batch.append(int(np.nanargmax(batchbald_gains(probs, labeled, batch))))
    return np.array(batch, np.int32)


def plackett_luce_first(weights, labeled) -> np.ndarray:
    """P(first draw = i) for sampling without replacement ∝ weights (0 if labeled)."""
    w = np.where(np.asarray(labeled, bool), 0.0, np.asarray(weights, np.float64))
    return w / w.sum()


def plackett_luce_pairs(weights, labeled) -> np.ndarray:
    """P(first = i, second = j) = w_i/W · w_j/(W - w_i), ``[N, N]``."""
    w = np.where(np.asarray(labeled, bool), 0.0, np.asarray(weights, np.float64))
    total = w.sum()
    out = np.zeros((len(w), len(w)))
    for i in range(len(w)):
        for j in range(len(w)):
            if i != j and w[i] > 0:
                out[i, j] = w[i] / total * w[j] / (total - w[i])
    return out


def ranks_desc(scores, labeled) -> np.ndarray:
    """Rank 1 = highest score among unlabeled points (ties to the lower index)."""
    order = [i for i in np.argsort(-np.asarray(scores, np.float64), kind="stable")]
    order = [i for i in order if not labeled[i]]
    ranks = np.zeros(len(scores))
    for r, i in enumerate(order, start=1):
        ranks[i] = r
    return ranks


# A base strategy with hand-set scores, for the wrapper tests -------------------


def fixed_scores():
    """A jaxal base strategy whose score is ``embeddings[:, 0]``: hand-set scores."""
    from jaxal.strategies.base import Needs, Strategy, masked_top_k

    def score(outputs):
        return outputs.embeddings[:, 0]

    def select(key, outputs, labeled, k):
        del key
        return masked_top_k(score(outputs), labeled, k)

    return Strategy("fixed", Needs(embeddings=True), select, score=score)


def score_outputs(scores):
    """``Outputs`` carrying per-point ``scores`` for :func:`fixed_scores`."""
    import jax.numpy as jnp

    from jaxal.strategies.base import Outputs

    return Outputs(embeddings=jnp.asarray(scores, jnp.float32)[:, None])
