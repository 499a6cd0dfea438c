"""baal 2.1.0 on the shared benchmark inputs (one workload).

* uncertainty: ``heuristics.Entropy`` / ``Margin`` / ``Certainty`` ranks of the
  pool probabilities; the top-k is the first k of the ranking.
* BALD: the BALD-paper CNN (same architecture and input size as
  ``jaxal/models/cnn.py``; weights differ) wrapped in ``MCDropoutModule``,
  ``ModelWrapper.predict_on_dataset(iterations=T)`` with the same batch size as
  jaxal's chunk, then ``heuristics.BALD``.

Run with the peer venv's python by ``benchmarks/acquisition.py``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402


def bald_cnn(num_classes: int):
    """``Conv(32,3x3)-ReLU-Conv(32,3x3)-ReLU-MaxPool(2)-Dropout(.25)-Flatten-
    Dense(128)-ReLU-Dropout(.5)-Dense(C)`` on 28x28x1 (as jaxal's ``cnn``)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(12 * 12 * 32, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )


def run(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from baal.active import heuristics
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs

    warnings.filterwarnings("ignore")
    data = common.load(args.data, args.workload)
    meter = common.Meter()
    k = int(data["k"])
    runs = {}

    if args.workload == "uncertainty":
        probs = data["probs"]
        heur = {
            "entropy": heuristics.Entropy,
            "margin": heuristics.Margin,
            "least_confidence": heuristics.Certainty,
        }
        for name, cls in heur.items():
            h = cls()
            rec = meter.start()
            out, timing = common.time_runs(lambda h=h: h(probs)[:k], args.repeats)
            runs[name] = meter.stop(rec)
            runs[name].update(timing, picks=common.picks(out))
    elif args.workload == "bald":
        images = torch.from_numpy(np.ascontiguousarray(data["images"].transpose(0, 3, 1, 2)))
        dataset = torch.utils.data.TensorDataset(images)  # [n, 1, 28, 28]
        model = MCDropoutModule(bald_cnn(int(data["c"])))
        wrapper = ModelWrapper(
            model, TrainingArgs(batch_size=int(data["batch"]), workers=0, use_cuda=False)
        )
        bald = heuristics.BALD()
        t = int(data["t"])
        small = torch.utils.data.Subset(dataset, range(min(len(dataset), 2 * int(data["batch"]))))

        def select(ds):
            preds = wrapper.predict_on_dataset(ds, iterations=t, verbose=False)  # [n, C, T] logits
            return bald(preds)[:k]

        rec = meter.start()
        out, timing = common.time_runs(lambda: select(dataset), args.repeats, lambda: select(small))
        runs["bald"] = meter.stop(rec)
        runs["bald"].update(timing, picks=common.picks(out))
    else:
        raise ValueError(args.workload)
    return runs


if __name__ == "__main__":
    common.worker_main("baal", run)
