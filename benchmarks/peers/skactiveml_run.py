"""scikit-activeml 1.0.1 on the shared benchmark inputs (uncertainty only).

``UncertaintySampling.query`` computes ``uncertainty_scores(probas, method)``
and picks the batch with ``simple_batch(utilities, batch_size=k)``; those two
functions are called here on the pool probabilities (the classifier call they
sit behind is skipped). Run with the peer venv's python by
``benchmarks/acquisition.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def run(args) -> dict:
    import threadpoolctl

    threadpoolctl.threadpool_limits(args.threads)
    from skactiveml.pool._uncertainty_sampling import uncertainty_scores
    from skactiveml.utils import simple_batch

    data = common.load(args.data, args.workload)
    meter = common.Meter()
    k = int(data["k"])
    probs = data["probs"]
    methods = {
        "entropy": "entropy",
        "margin": "margin_sampling",
        "least_confidence": "least_confident",
    }
    runs = {}
    if args.workload != "uncertainty":
        raise ValueError(args.workload)
    for name, method in methods.items():
        fn = lambda m=method: simple_batch(uncertainty_scores(probs, method=m), 0, batch_size=k)
        rec = meter.start()
        out, timing = common.time_runs(fn, args.repeats)
        runs[name] = meter.stop(rec)
        runs[name].update(timing, picks=common.picks(out))
    return runs


if __name__ == "__main__":
    common.worker_main("skactiveml", run)
