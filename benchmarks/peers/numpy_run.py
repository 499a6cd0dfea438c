"""The plain-numpy references of ``common`` on the shared benchmark inputs.

Uncertainty: scores + ``argpartition`` top-k; Core-Set: running-min k-center
greedy (one mat-vec per pick); BADGE: factorised k-means++ with the same
uniforms jaxal draws. Run by ``benchmarks/acquisition.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def run(args) -> dict:
    data = common.load(args.data, args.workload)
    meter = common.Meter()
    k = int(data["k"])
    runs = {}

    def bench(name, fn, warmup=None):
        rec = meter.start()
        out, timing = common.time_runs(fn, args.repeats, warmup)
        runs[name] = meter.stop(rec)
        runs[name].update(timing, picks=common.picks(out))

    if args.workload == "uncertainty":
        p = data["probs"]
        no_labels = np.zeros(len(p), bool)
        for name in common.UNCERTAINTY:
            bench(name, lambda m=name: common.np_top_k(common.np_scores(m, p), no_labels, k))
    elif args.workload == "coreset":
        x, lab = data["emb"], data["labeled"]
        bench("coreset", lambda: common.np_kcenter(x, lab, k), lambda: common.np_kcenter(x, lab, 5))
        runs["coreset"]["matvec_floor_s"] = common.matvec_floor_s(x, k)
    elif args.workload == "badge":
        p, x, lab, u = data["probs"], data["emb"], data["labeled"], data["uniforms"]
        bench(
            "badge",
            lambda: common.np_badge(p, x, lab, u),
            lambda: common.np_badge(p, x, lab, u[:5]),
        )
    else:
        raise ValueError(args.workload)
    return runs


if __name__ == "__main__":
    common.worker_main("numpy", run)
