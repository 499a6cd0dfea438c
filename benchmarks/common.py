"""Shared pieces of the benchmark worker processes: timing, peak memory, JSON
results and the plain-numpy reference kernels.

Only the standard library and numpy are imported here, so the same file serves
the jaxal environment and the PyTorch peer environment (the peer scripts put
this folder on ``sys.path``). Every worker process:

1. sets its thread count (through the environment its parent gave it),
2. imports its library and loads the shared ``.npz`` inputs,
3. records the baseline RSS and resets the peak counter (:class:`Meter`),
4. warms up, then times ``repeats`` runs (:func:`time_runs`),
5. prints one ``RESULT {json}`` line (:func:`emit`): ``{"impl", "workload",
   "runs": {name: {"median_s", "min_s", "runs_s", "peak_delta_mb", ...}}}``.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

# Environment variables that fix the thread count of BLAS / OpenMP pools.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

UNCERTAINTY = ("entropy", "margin", "least_confidence")


def peak_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_runs(fn: Callable[[], object], repeats: int, warmup: Callable[[], object] | None = None):
    """Times ``fn()`` ``repeats`` times after one warm-up call.

    Args:
      fn: the workload; it must block until its result is ready.
      repeats: timed runs (the median is reported).
      warmup: the warm-up call (default ``fn``); slow peers warm up on a
        smaller instance of the same routine.

    Returns:
      ``(last result, {"median_s", "min_s", "runs_s"})``.
    """
    (warmup or fn)()
    runs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return out, {"median_s": statistics.median(runs), "min_s": min(runs), "runs_s": runs}


def reset_peak() -> None:
    """Resets this process's peak RSS to its current RSS (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not Linux: the peak then also covers the setup
        pass


class Meter:
    """Peak-memory bookkeeping around each timed workload of a worker process.

    ``start()`` is called once the inputs are loaded (and, for jaxal, compiled):
    it resets the peak counter and takes the current RSS as the baseline.
    ``stop(rec)`` then records ``peak_delta_mb`` (what the workload itself
    added above that baseline) and ``peak_mb`` (the absolute peak of the
    process so far, setup included).
    """

    def __init__(self):
        self.lifetime = peak_mb()

    def start(self) -> dict:
        self.lifetime = max(self.lifetime, peak_mb())
        reset_peak()
        return {"baseline_mb": peak_mb()}

    def stop(self, rec: dict) -> dict:
        peak = peak_mb()
        self.lifetime = max(self.lifetime, peak)
        rec.update(peak_delta_mb=peak - rec["baseline_mb"], peak_mb=self.lifetime)
        return rec


def emit(result: dict) -> None:
    """Prints the one line the orchestrator parses."""
    print("RESULT " + json.dumps(result), flush=True)


# The inputs each workload reads (the scalar sizes are always read).
INPUTS = {
    "uncertainty": ("probs",),
    "coreset": ("emb", "labeled"),
    "badge": ("probs", "emb", "labeled", "uniforms"),
    "bald": ("images",),
}


def load(path: str, workload: str) -> dict[str, np.ndarray]:
    """The arrays ``workload`` reads from the shared input file, loaded eagerly."""
    with np.load(path) as f:
        return {n: f[n] for n in f.files if f[n].ndim == 0 or n in INPUTS[workload]}


def picks(idx) -> list[int]:
    """Indices as a JSON-able list."""
    return [int(i) for i in np.asarray(idx).reshape(-1)]


# Plain-numpy references -------------------------------------------------------


def np_scores(method: str, probs: np.ndarray) -> np.ndarray:
    """Higher = more informative, as jaxal defines the scores. ``[N]``."""
    if method == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=1)
    if method == "margin":
        top2 = np.partition(probs, -2, axis=1)[:, -2:]
        return top2[:, 0] - top2[:, 1]
    if method == "least_confidence":
        return 1.0 - probs.max(axis=1)
    raise ValueError(method)


def np_top_k(scores: np.ndarray, labeled: np.ndarray, k: int) -> np.ndarray:
    """Masked top-k by ``argpartition``, then the k winners sorted (highest first)."""
    s = np.where(labeled, -np.inf, scores)
    part = np.argpartition(-s, k - 1)[:k]
    return part[np.argsort(-s[part], kind="stable")]


def np_kcenter(x: np.ndarray, labeled: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Greedy k-center with a running min-distance vector (one mat-vec per pick).

    Squared distances by ``|a|^2 + |b|^2 - 2ab`` in float32, taken points at -1,
    ties to the lowest index (``np.argmax``), as jaxal's ``coreset``.
    """
    x_sq = np.einsum("nd,nd->n", x, x)
    mind = np.full(x.shape[0], np.inf, np.float32)
    members = np.flatnonzero(labeled)
    for s in range(0, len(members), chunk):
        m = members[s : s + chunk]
        d = x_sq[:, None] + x_sq[None, m] - 2.0 * (x @ x[m].T)
        np.minimum(mind, d.min(axis=1), out=mind)
    mind[labeled] = -1.0
    out = np.empty(k, np.int64)
    for j in range(k):
        c = int(np.argmax(mind))
        out[j] = c
        d = x_sq + x_sq[c] - 2.0 * (x @ x[c])
        np.minimum(mind, d, out=mind)
        mind[c] = -1.0
    return out


def np_badge(probs: np.ndarray, h: np.ndarray, labeled: np.ndarray, uniforms: np.ndarray):
    """BADGE k-means++ seeding on factorised gradient embeddings ``g = a ⊗ h``.

    ``|g_n - g_c|^2 = |a_n|^2|h_n|^2 + |a_c|^2|h_c|^2 - 2 (a_n.a_c)(h_n.h_c)``:
    two mat-vecs per pick, never the ``N x C·D`` matrix. First pick: largest
    ``|g|``; pick ``j`` draws ``∝ D^2`` by inverse CDF with ``uniforms[j]``.
    """
    a = probs.copy()
    a[np.arange(len(a)), probs.argmax(axis=1)] -= 1.0
    a_sq, h_sq = np.einsum("nc,nc->n", a, a), np.einsum("nd,nd->n", h, h)
    g_sq = a_sq * h_sq
    avail = ~labeled
    k = len(uniforms)
    out = np.empty(k, np.int64)
    c = int(np.argmax(np.where(avail, g_sq, -1.0)))
    mind = np.full(len(a), np.inf, np.float32)
    for j in range(k):
        if j:
            w = np.where(avail, mind, 0.0).astype(np.float64)
            if w.sum() <= 0:  # every distance 0: uniform over the available points
                w = avail.astype(np.float64)
            cdf = np.cumsum(w)
            c = int(np.searchsorted(cdf, uniforms[j] * cdf[-1], side="right"))
            c = min(c, int(np.flatnonzero(w > 0)[-1]))
        out[j] = c
        avail[c] = False
        d = g_sq + g_sq[c] - 2.0 * (a @ a[c]) * (h @ h[c])
        np.minimum(mind, np.maximum(d, 0.0), out=mind)
    return out


def matvec_floor_s(x: np.ndarray, k: int, reps: int = 50) -> float:
    """Seconds for ``k`` mat-vecs ``x @ v`` (the per-pick memory floor, measured now)."""
    v = x[0].copy()
    x @ v
    t0 = time.perf_counter()
    for _ in range(reps):
        x @ v
    return (time.perf_counter() - t0) / reps * k


# Worker entry point -------------------------------------------------------------


def worker_main(impl: str, run) -> None:
    """Parses the worker command line, calls ``run(args) -> runs``, prints the RESULT.

    Command line: ``--workload W --data inputs.npz --repeats R --threads T
    [--k-small K]`` (``--threads`` is also set in the environment by the parent;
    torch workers pass it to ``torch.set_num_threads``).
    """
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k-small", type=int, default=None)
    args = ap.parse_args()
    emit({"impl": impl, "workload": args.workload, "runs": run(args)})
