"""DISTIL 0.2.0 (decile-distil) on the shared benchmark inputs (one workload).

Calls DISTIL's own code paths on the precomputed outputs:

* uncertainty: ``EntropySampling`` / ``MarginSampling`` / ``LeastConfidence``
  ``.select(k)`` with ``predict_prob`` returning the pool probabilities;
* Core-Set: ``CoreSet.furthest_first(X_unlabeled, X_labeled, k)``;
* BADGE: the explicit ``N x C·D`` gradient embedding built as
  ``Strategy.get_grad_embedding`` builds it, then ``badge.init_centers``.
  ``--k-small K``: run ``init_centers`` with K picks and extrapolate linearly
  in k (the per-pick cost does not depend on k; the fixed first-pick cost is
  measured with K=1 and kept out of the slope).

Run with the peer venv's python by ``benchmarks/acquisition.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def run(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from distil.active_learning_strategies import badge as distil_badge
    from distil.active_learning_strategies.core_set import CoreSet
    from distil.active_learning_strategies.entropy_sampling import EntropySampling
    from distil.active_learning_strategies.least_confidence import LeastConfidence
    from distil.active_learning_strategies.margin_sampling import MarginSampling

    data = common.load(args.data, args.workload)
    meter = common.Meter()
    k = int(data["k"])
    runs = {}

    if args.workload == "uncertainty":
        probs = torch.from_numpy(data["probs"])
        classes = {
            "entropy": EntropySampling,
            "margin": MarginSampling,
            "least_confidence": LeastConfidence,
        }
        for name, cls in classes.items():
            s = cls(None, None, None, None, None, probs.shape[1], {})
            s.predict_prob = lambda x, probs=probs: probs  # the pool outputs, precomputed
            rec = meter.start()
            out, timing = common.time_runs(lambda s=s: s.select(k), args.repeats)
            runs[name] = meter.stop(rec)
            runs[name].update(timing, picks=common.picks(out))
    elif args.workload == "coreset":
        lab = data["labeled"]
        unl = np.flatnonzero(~lab)
        x_unl, x_lab = data["emb"][unl], data["emb"][lab]
        ff = lambda n: CoreSet.furthest_first(None, x_unl, x_lab, n)
        rec = meter.start()
        out, timing = common.time_runs(lambda: ff(k), args.repeats, warmup=lambda: ff(2))
        runs["coreset"] = meter.stop(rec)
        runs["coreset"].update(timing, picks=common.picks(unl[np.asarray(out)]))
    elif args.workload == "badge":
        lab = data["labeled"]
        unl = np.flatnonzero(~lab)
        p = torch.from_numpy(data["probs"][unl])
        h = torch.from_numpy(data["emb"][unl])
        c, d = p.shape[1], h.shape[1]

        def grad_embedding():  # as Strategy.get_grad_embedding(bias_grad=False) builds it
            onehot = torch.zeros_like(p).scatter_(1, p.argmax(1, keepdim=True), 1)
            l0 = p - onehot
            return (torch.repeat_interleave(l0, d, dim=1) * h.repeat(1, c)).numpy()

        ks = min(args.k_small or k, k)

        def select(n):
            np.random.seed(0)  # init_centers draws with scipy.stats.rv_discrete
            t0 = time.perf_counter()
            g = grad_embedding()  # [N_unl, C*D]
            t1 = time.perf_counter()
            idx = distil_badge.init_centers(g, n, "cpu")
            t2 = time.perf_counter()
            return idx, t1 - t0, t2 - t1

        rec = meter.start()
        fixed = select(1)  # warm-up; also the fixed (first-pick) cost of init_centers
        tries = [select(ks) for _ in range(args.repeats)]
        meter.stop(rec)
        embed_s = float(np.median([t[1] for t in tries]))
        init_s = float(np.median([t[2] for t in tries]))
        first_s = fixed[2]
        est = embed_s + first_s + (init_s - first_s) * (k - 1) / max(ks - 1, 1)
        runs["badge"] = rec
        rec.update(
            median_s=est if ks < k else embed_s + init_s,
            runs_s=[t[1] + t[2] for t in tries],
            embed_s=embed_s,
            init_centers_s=init_s,
            first_pick_s=first_s,
            k_run=ks,
            extrapolated=ks < k,
            explicit_mb=c * d * len(unl) * 4 / 2**20,
            picks=common.picks(unl[np.asarray(tries[-1][0])]),
        )
    else:
        raise ValueError(args.workload)
    return runs


if __name__ == "__main__":
    common.worker_main("distil", run)
