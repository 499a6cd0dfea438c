"""Plain-numpy references for the diversity strategies, written from the papers'
definitions with explicit (float64) distance matrices and embeddings.

They are deliberately naive: full ``N x N`` matrices, explicit BADGE gradient
embeddings, Python loops. Only for tiny test inputs.
"""

from __future__ import annotations

import numpy as np


def sq_dist_matrix(a, b):
    """Explicit ``|a_i - b_j|^2`` from coordinate differences. ``[n, m]``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


# Core-Set: greedy k-center (Sener & Savarese 2018, Alg. 1) -------------------


def kcenter_greedy(x, labeled, k, first=None):
    """Centres = labeled points; repeatedly add argmax_i min_j d(x_i, centre_j).

    ``first`` fixes the first pick when nothing is labeled.
    """
    d = sq_dist_matrix(x, x)
    labeled = np.asarray(labeled, bool)
    centres = list(np.flatnonzero(labeled))
    picks = []
    for _ in range(k):
        if not centres:
            c = first
        else:
            mind = d[:, centres].min(axis=1)
            mind[labeled] = -1
            mind[picks] = -1
            c = int(np.argmax(mind))
        picks.append(c)
        centres.append(c)
    return np.array(picks)


# k-means++ seeding with inverse-CDF draws ------------------------------------


def draw(weights, u):
    """First index whose cumulative weight exceeds ``u * total``."""
    cdf = np.cumsum(weights)
    return int(np.flatnonzero(cdf > u * cdf[-1])[0])


def kmeanspp(g, avail, uniforms, first=None):
    """k-means++ over the rows ``avail`` of explicit vectors ``g``.

    Centre 0 is ``first`` or a uniform draw with ``uniforms[0]``; centre ``j`` is
    drawn ``∝ D^2`` (squared distance to the nearest chosen centre) with
    ``uniforms[j]``; uniform over the unchosen if all ``D^2`` are 0.
    Works on the compacted candidate list, then maps back to pool indices.
    """
    cand = np.flatnonzero(avail)
    gc = np.asarray(g, np.float64)[cand]
    if first is None:
        first_local = draw(np.ones(len(cand)), uniforms[0])
    else:
        first_local = int(np.flatnonzero(cand == first)[0])
    chosen = [first_local]
    for j in range(1, len(uniforms)):
        d2 = sq_dist_matrix(gc, gc[chosen]).min(axis=1)
        d2[chosen] = 0.0
        if d2.sum() == 0:
            d2 = np.ones(len(cand))
            d2[chosen] = 0.0
        chosen.append(draw(d2, uniforms[j]))
    return cand[chosen]


# BADGE (Ash et al. 2020) -----------------------------------------------------


def mean_probs(probs):
    """``[N, C]`` mean probs from ``[N, C]`` or ``[T, N, C]``."""
    probs = np.asarray(probs, np.float64)
    return probs.mean(0) if probs.ndim == 3 else probs


def badge_embeddings(probs, h):
    """Explicit ``g_i = (p_i - onehot(argmax p_i)) ⊗ h_i``, ``[N, C * D]``."""
    p = mean_probs(probs)
    a = p - np.eye(p.shape[1])[p.argmax(1)]
    return np.einsum("nc,nd->ncd", a, np.asarray(h, np.float64)).reshape(len(p), -1)


def badge(probs, h, labeled, uniforms):
    """BADGE code's ``init_centers`` on the unlabeled gradient embeddings."""
    g = badge_embeddings(probs, h)
    norms = np.linalg.norm(g, axis=1)
    norms[np.asarray(labeled, bool)] = -1
    return kmeanspp(g, ~np.asarray(labeled, bool), uniforms, first=int(np.argmax(norms)))


# k-means ---------------------------------------------------------------------


def lloyd(x, w, c0, num_active, num_iters):
    """Weighted Lloyd: assign to nearest of the first ``num_active`` centroids,
    move each to the weighted mean of its points (empty: stays); ``num_iters`` times.
    Returns (centroids of the active, assignment)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    c = np.asarray(c0, np.float64)[:num_active].copy()
    labels = sq_dist_matrix(x, c).argmin(1)
    for _ in range(num_iters):
        for j in range(num_active):
            members = (labels == j) & (w > 0)
            if members.any():
                c[j] = (w[members, None] * x[members]).sum(0) / w[members].sum()
        labels = sq_dist_matrix(x, c).argmin(1)
    return c, labels


def nearest_distinct(x, centroids, avail):
    """For each centroid in order, the nearest available point not taken before."""
    d = sq_dist_matrix(x, centroids)
    avail = np.asarray(avail, bool).copy()
    picks = []
    for j in range(len(centroids)):
        dj = np.where(avail, d[:, j], np.inf)
        i = int(np.argmin(dj))
        picks.append(i)
        avail[i] = False
    return np.array(picks)


def kmeans_sampling(x, labeled, uniforms, num_iters):
    """k-means++ on the unlabeled, Lloyd on the unlabeled, nearest point per centroid."""
    unl = ~np.asarray(labeled, bool)
    seeds = kmeanspp(x, unl, uniforms)
    c, _ = lloyd(x, unl.astype(float), np.asarray(x)[seeds], len(uniforms), num_iters)
    return nearest_distinct(x, c, unl)


# TypiClust (Hacohen et al. 2022) ---------------------------------------------


def typiclust_from_clusters(x, clusters, labeled, k, knn=20, min_cluster_size=5):
    """TypiClust selection given cluster ids (see jaxal docstring for the rules)."""
    x = np.asarray(x, np.float64)
    clusters = np.asarray(clusters)
    avail = ~np.asarray(labeled, bool)
    ids = np.unique(clusters)
    info = []  # (not eligible, existing, -size, id)
    for c in ids:
        size = int((clusters == c).sum())
        existing = int(((clusters == c) & ~avail).sum())
        info.append((size <= min_cluster_size, existing, -size, int(c)))
    info.sort()
    order = [t[3] for t in info]
    eligible = [t[3] for t in info if not t[0]]
    others = [t[3] for t in info if t[0]]
    picks = []
    for i in range(k):
        if eligible:
            s = i % len(eligible)
            sequence = eligible[s:] + eligible[:s] + others
        else:
            sequence = order
        c = next(c for c in sequence if (avail & (clusters == c)).any())
        members = np.flatnonzero(avail & (clusters == c))
        kk = min(knn, len(members) // 2)
        d = np.sqrt(sq_dist_matrix(x[members], x[members]))
        np.fill_diagonal(d, np.inf)
        mean = np.sort(d, axis=1)[:, :kk].mean(1) if kk > 0 else np.zeros(len(members))
        typicality = 1.0 / mean  # mean > 0 for distinct points
        best = members[int(np.argmax(typicality))]
        picks.append(best)
        avail[best] = False
    return np.array(picks)


# ProbCover (Yehuda et al. 2022) ----------------------------------------------


def probcover(x, labeled, k, delta):
    """Greedy max coverage on the graph i -> j iff |x_i - x_j| < delta."""
    adj = np.sqrt(sq_dist_matrix(x, x)) < delta  # [N, N], i covers j
    labeled = np.asarray(labeled, bool)
    covered = adj[labeled].any(0)
    taken = labeled.copy()
    picks = []
    for _ in range(k):
        degree = (adj & ~covered[None, :]).sum(1)
        degree[taken] = -1
        c = int(np.argmax(degree))
        picks.append(c)
        taken[c] = True
        covered |= adj[c]
    return np.array(picks)
