"""jaxal's acquisition strategies on the shared benchmark inputs (one workload).

Each strategy's ``select`` is jitted; compile time (``lower().compile()``) and
its memory are recorded apart from the timed runs. Inputs are put on the device
before the baseline memory is taken. Run by ``benchmarks/acquisition.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxal import models, strategies
    from jaxal.predict import make_predict
    from jaxal.strategies.base import Outputs

    data = common.load(args.data, args.workload)
    meter = common.Meter()
    key = jax.random.key(int(data["seed"]))
    k = int(data["k"])

    def bench(fn, *inputs) -> dict:
        inputs = jax.block_until_ready(jax.device_put(inputs))
        rec = meter.start()
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(*inputs).compile()
        compile_s = time.perf_counter() - t0
        compile_mb = meter.stop(rec)["peak_delta_mb"]
        rec = meter.start()
        out, timing = common.time_runs(
            lambda: jax.block_until_ready(compiled(*inputs)), args.repeats
        )
        meter.stop(rec)
        rec.update(timing, compile_s=compile_s, compile_peak_delta_mb=compile_mb)
        rec["picks"] = common.picks(out)
        return rec

    runs = {}
    if args.workload == "uncertainty":
        no_labels = np.zeros(len(data["probs"]), bool)
        for name in common.UNCERTAINTY:
            s = strategies.get(name)
            fn = lambda p, lab, s=s: s.select(key, Outputs(probs=p), lab, k)
            runs[name] = bench(fn, data["probs"], no_labels)
    elif args.workload == "coreset":
        s = strategies.get("coreset")
        fn = lambda x, lab: s.select(key, Outputs(embeddings=x), lab, k)
        runs["coreset"] = bench(fn, data["emb"], data["labeled"])
    elif args.workload == "badge":
        s = strategies.get("badge")
        fn = lambda p, x, lab, kk: s.select(kk, Outputs(probs=p, embeddings=x), lab, k)
        runs["badge"] = bench(fn, data["probs"], data["emb"], data["labeled"], key)
        runs["badge"]["input_mb"] = (data["probs"].nbytes + data["emb"].nbytes) / 2**20
    elif args.workload == "bald":
        model = models.get_model("cnn", int(data["c"]))
        images = data["images"]  # [n, 28, 28, 1]
        variables = model.init(jax.random.key(0), jnp.asarray(images[:1]))
        s = strategies.get("bald")
        no_labels = np.zeros(len(images), bool)
        t, chunk = int(data["t"]), int(data["batch"])
        for mode in ("full", "head"):
            predict = make_predict(model, s.needs, samples=t, mode=mode, chunk=chunk)
            fn = lambda v, x, lab, kk, p=predict: s.select(kk, p(v, x, kk), lab, k)
            runs[mode] = bench(fn, variables, images, no_labels, key)
    else:
        raise ValueError(args.workload)
    return runs


if __name__ == "__main__":
    common.worker_main("jaxal", run)
