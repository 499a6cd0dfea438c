"""One seed of a whole active-learning experiment in PyTorch: baal's standard
loop or a lean hand-written loop (``benchmarks/experiment.py``, issue 9).

Run by ``benchmarks/experiment.py`` with the peer venv's python, one process
per (implementation, seed); all strategies of the protocol run one after
another in that process. Inputs: ``--data`` (the ``.npz`` the driver exported
from ``jaxal.data``: ``x_train, y_train, x_test, y_test`` byte-identical to
what jaxal trains on, and ``initial [S, n0]``, jaxal's class-balanced initial
pool of every seed) and ``--spec`` (the protocol as JSON). Prints one line
``RESULT {json}`` with a row per (strategy, round) and the phase timings.

Both implementations, every round: a fresh model (initialised from
``torch.manual_seed(seed * 10_000 + round)``, the same for every strategy of
a seed, as in jaxal), a fresh Adam, ``epochs`` epochs over the labeled set in
shuffled batches (last batch smaller), test accuracy with dropout off, then
(unless the budget is reached) score the unlabeled pool and label the top
``query_size``.

* ``baal``: ``ActiveLearningDataset`` over a ``TensorDataset``, the initial
  pool labeled with ``active_set.label(indices)``; ``ModelWrapper(model,
  TrainingArgs(...))`` (``workers=0``) with ``train_on_dataset`` /
  ``test_on_dataset`` (exact accuracy: torchmetrics' micro accuracy through
  ``add_metric``); ``ActiveLearningLoop(active_set,
  wrapper.predict_on_dataset, heuristic, query_size, iterations=T).step()``
  with ``heuristics.BALD / Random / Certainty / Margin / Entropy``; the model
  in ``MCDropoutModule`` when it has dropout. MC dropout stays on in baal's
  patched layers, so for the test pass their rate is set to 0 (identity) and
  restored afterwards.
* ``torch``: plain tensors, ``torch.randperm`` batches, the same module,
  BALD = H[mean_t p_t] - mean_t H[p_t] from T dropout-on passes (``--mc full``:
  whole network T times per chunk; ``head``: the conv trunk once, the dropout
  head T times, as jaxal's ``mc.mode=head``), top-k among the unlabeled.

Batch sizes: training uses the protocol's batch everywhere. baal's
``ModelWrapper`` tests and predicts with that same batch (its one
``batch_size``; ``predict_on_dataset`` replicates each batch T times); the lean
loop tests in chunks of jaxal's ``train.eval_batch_size`` and scores in chunks
of ``score_batch_size``, as jaxal does.

Phases (``time.perf_counter``), as jaxal splits them: ``train`` = fitting;
``eval`` = the test pass; ``score`` = the model's forward passes over the pool;
``select`` = the acquisition function on those predictions, the ranking / top-k
and the labeling.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Models (the same architectures as jaxal/models/cnn.py and mlp.py)
# ---------------------------------------------------------------------------


def build_model(spec: dict, in_shape, init: str):
    """``cnn``: Conv32-ReLU-Conv32-ReLU-MaxPool2-Dropout(conv_dropout)-Flatten-
    Dense128-ReLU-Dropout(dropout)-Dense(C) (VALID convs); ``mlp``: Flatten-
    [Dense(w)-ReLU]-Dropout(dropout)-Dense(C). ``init="flax"`` draws kernels as
    Flax's default (LeCun normal: truncated normal, variance 1/fan_in) with zero
    biases, as jaxal's models; ``"torch"`` keeps PyTorch's default init."""
    from torch import nn

    c = int(spec["num_classes"])

    class Net(nn.Module):
        def __init__(self, trunk, head):
            super().__init__()
            self.trunk, self.head = trunk, head

        def forward(self, x):
            return self.head(self.trunk(x))

    if spec["model"] == "cnn":
        ch, h, w = in_shape
        trunk = nn.Sequential(
            nn.Conv2d(ch, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2)
        )
        feat = 32 * ((h - 4) // 2) * ((w - 4) // 2)
        head = [nn.Dropout(spec["conv_dropout"])] if spec["conv_dropout"] else []
        head += [nn.Flatten(), nn.Linear(feat, 128), nn.ReLU()]
        head += [nn.Dropout(spec["dropout"])] if spec["dropout"] else []
        head += [nn.Linear(128, c)]
        net = Net(trunk, nn.Sequential(*head))
    elif spec["model"] == "mlp":
        layers, d = [nn.Flatten()], int(np.prod(in_shape))
        for width in spec["hidden"]:
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        net = Net(
            nn.Sequential(*layers),
            nn.Sequential(
                *([nn.Dropout(spec["dropout"])] if spec["dropout"] else []), nn.Linear(d, c)
            ),
        )
    else:
        raise ValueError(spec["model"])
    if init == "flax":
        import torch

        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    fan_in = m.weight[0].numel()
                    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
                    nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std)
                    nn.init.zeros_(m.bias)
    return net


def has_dropout(net) -> bool:
    from torch import nn

    return any(isinstance(m, nn.Dropout) for m in net.modules())


# ---------------------------------------------------------------------------
# Scores (higher = more informative, as jaxal defines them)
# ---------------------------------------------------------------------------


def uncertainty(name: str, p):
    import torch

    if name == "least_confidence":
        return 1.0 - p.max(dim=1).values
    if name == "margin":
        top2 = p.topk(2, dim=1).values
        return top2[:, 1] - top2[:, 0]
    if name == "entropy":
        return -torch.special.xlogy(p, p).sum(1)
    raise ValueError(name)


def bald_score(ps):
    """``ps [T, n, C]`` -> ``H[mean p] - mean H[p]``, ``[n]``."""
    import torch

    pm = ps.mean(0)
    return -torch.special.xlogy(pm, pm).sum(-1) + torch.special.xlogy(ps, ps).sum(-1).mean(0)


SAMPLE_BASED = ("bald",)
BAAL_HEURISTIC = {
    "random": "Random",
    "bald": "BALD",
    "least_confidence": "Certainty",
    "margin": "Margin",
    "entropy": "Entropy",
}


# ---------------------------------------------------------------------------
# The lean loop
# ---------------------------------------------------------------------------


class Lean:
    def __init__(self, spec, data, threads, mc):
        import torch

        self.torch, self.spec, self.mc = torch, spec, mc
        self.x = torch.from_numpy(data["x_train"])
        self.y = torch.from_numpy(data["y_train"].astype(np.int64))
        self.x_test = torch.from_numpy(data["x_test"])
        self.y_test = torch.from_numpy(data["y_test"].astype(np.int64))

    def fit(self, net, labeled_idx):
        torch, s = self.torch, self.spec
        F = torch.nn.functional
        opt = torch.optim.Adam(net.parameters(), lr=s["learning_rate"])
        x, y = self.x[labeled_idx], self.y[labeled_idx]
        n, bs = len(y), s["batch_size"]
        net.train()
        for _ in range(s["epochs"]):
            perm = torch.randperm(n)
            for i in range(0, n, bs):
                b = perm[i : i + bs]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x[b]), y[b]).backward()
                opt.step()

    def evaluate(self, net) -> float:
        torch = self.torch
        net.eval()
        correct, eb = 0, self.spec["eval_batch_size"]
        with torch.no_grad():
            for i in range(0, len(self.y_test), eb):
                pred = net(self.x_test[i : i + eb]).argmax(1)
                correct += int((pred == self.y_test[i : i + eb]).sum())
        return correct / len(self.y_test)

    def predict(self, net, idx, strategy):
        """Probabilities of the pool points ``idx``: ``[n, C]``, or ``[T, n, C]``
        for a sample-based strategy (dropout on)."""
        torch, s = self.torch, self.spec
        chunk, t = s["score_batch_size"], s["mc_samples"]
        out = []
        with torch.no_grad():
            if strategy in SAMPLE_BASED:
                net.train()  # dropout on (no batch norm in these models)
                for i in range(0, len(idx), chunk):
                    xb = self.x[idx[i : i + chunk]]
                    if self.mc == "head":
                        h = net.trunk(xb)
                        ps = [torch.softmax(net.head(h), -1) for _ in range(t)]
                    else:
                        ps = [torch.softmax(net(xb), -1) for _ in range(t)]
                    out.append(torch.stack(ps))
                return torch.cat(out, 1)
            net.eval()
            for i in range(0, len(idx), chunk):
                out.append(torch.softmax(net(self.x[idx[i : i + chunk]]), -1))
            return torch.cat(out, 0)

    def run_strategy(self, strategy, seed, initial, log):
        torch, s = self.torch, self.spec
        labeled = np.zeros(len(self.y), bool)
        labeled[initial] = True
        order = [int(i) for i in initial]
        rnd = 0
        while True:
            torch.manual_seed(seed * 10_000 + rnd)
            net = build_model(s, tuple(self.x.shape[1:]), s["torch_init"])
            t0 = time.perf_counter()
            self.fit(net, torch.from_numpy(np.flatnonzero(labeled)))
            t1 = time.perf_counter()
            acc = self.evaluate(net)
            t2 = time.perf_counter()
            row = dict(
                strategy=strategy,
                seed=seed,
                round=rnd,
                num_labeled=int(labeled.sum()),
                test_accuracy=acc,
                train_seconds=t1 - t0,
                eval_seconds=t2 - t1,
                score_seconds=0.0,
                select_seconds=0.0,
            )
            if labeled.sum() >= s["budget"]:
                log.append(row)
                return order
            k = min(s["query_size"], s["budget"] - int(labeled.sum()))
            unl = np.flatnonzero(~labeled)
            t3 = time.perf_counter()
            if strategy == "random":
                t4 = t3
                rng = np.random.default_rng([seed, rnd])
                pick = unl[rng.choice(len(unl), k, replace=False)]
            else:
                p = self.predict(net, torch.from_numpy(unl), strategy)
                t4 = time.perf_counter()
                sc = bald_score(p) if strategy in SAMPLE_BASED else uncertainty(strategy, p)
                pick = unl[torch.topk(sc, k).indices.numpy()]
            labeled[pick] = True
            order += [int(i) for i in pick]
            t5 = time.perf_counter()
            row.update(score_seconds=t4 - t3, select_seconds=t5 - t4)
            log.append(row)
            rnd += 1


# ---------------------------------------------------------------------------
# baal's standard components
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def mc_dropout_off(model):
    """baal's MC dropout layers ignore ``eval()``; rate 0 makes them the identity."""
    from baal.bayesian.dropout import Dropout, Dropout2d

    layers = [m for m in model.modules() if isinstance(m, (Dropout, Dropout2d))]
    rates = [m.p for m in layers]
    for m in layers:
        m.p = 0.0
    try:
        yield
    finally:
        for m, p in zip(layers, rates, strict=True):
            m.p = p


class Baal:
    def __init__(self, spec, data, threads, mc):
        import structlog
        import torch

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        warnings.filterwarnings("ignore")
        from baal.active import ActiveLearningDataset, ActiveLearningLoop, heuristics
        from baal.bayesian.dropout import MCDropoutModule
        from baal.modelwrapper import ModelWrapper, TrainingArgs
        from torchmetrics.classification import MulticlassAccuracy

        self.torch, self.spec = torch, spec
        self.ALD, self.Loop, self.heuristics = ActiveLearningDataset, ActiveLearningLoop, heuristics
        self.MCDropoutModule, self.ModelWrapper, self.TrainingArgs = (
            MCDropoutModule,
            ModelWrapper,
            TrainingArgs,
        )
        self.Accuracy = MulticlassAccuracy
        x = torch.from_numpy(data["x_train"])
        self.in_shape = tuple(x.shape[1:])
        self.train_set = torch.utils.data.TensorDataset(
            x, torch.from_numpy(data["y_train"].astype(np.int64))
        )
        self.test_set = torch.utils.data.TensorDataset(
            torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"].astype(np.int64))
        )

    def run_strategy(self, strategy, seed, initial, log):
        torch, s = self.torch, self.spec
        active_set = self.ALD(self.train_set)
        active_set.label([int(i) for i in initial])
        order = [int(i) for i in initial]
        heuristic = getattr(self.heuristics, BAAL_HEURISTIC[strategy])()
        sample_based = strategy in SAMPLE_BASED
        t_score = [0.0]

        def get_probabilities(pool, **kw):
            t = time.perf_counter()
            out = wrapper.predict_on_dataset(pool, **kw)  # [n, C, T] logits
            if not sample_based:  # Certainty reads its input as probabilities
                out = torch.softmax(torch.from_numpy(out), 1).numpy()
            t_score[0] += time.perf_counter() - t
            return out

        rnd = 0
        while True:
            torch.manual_seed(seed * 10_000 + rnd)
            net = build_model(s, self.in_shape, s["torch_init"])
            model = self.MCDropoutModule(net) if has_dropout(net) else net
            args = self.TrainingArgs(
                optimizer=torch.optim.Adam(model.parameters(), lr=s["learning_rate"]),
                criterion=torch.nn.CrossEntropyLoss(),
                batch_size=s["batch_size"],
                epoch=s["epochs"],
                use_cuda=False,
                workers=0,
            )
            wrapper = self.ModelWrapper(model, args)
            wrapper.add_metric(
                "accuracy", lambda: self.Accuracy(num_classes=s["num_classes"], average="micro")
            )
            t0 = time.perf_counter()
            wrapper.train_on_dataset(active_set)
            t1 = time.perf_counter()
            with mc_dropout_off(model):
                wrapper.test_on_dataset(self.test_set)
            acc = float(wrapper.get_metrics("test")["test_accuracy"])
            t2 = time.perf_counter()
            n_lab = len(active_set)
            row = dict(
                strategy=strategy,
                seed=seed,
                round=rnd,
                num_labeled=n_lab,
                test_accuracy=acc,
                train_seconds=t1 - t0,
                eval_seconds=t2 - t1,
                score_seconds=0.0,
                select_seconds=0.0,
            )
            if n_lab >= s["budget"]:
                log.append(row)
                return order
            k = min(s["query_size"], s["budget"] - n_lab)
            loop = self.Loop(
                active_set,
                get_probabilities,
                heuristic=heuristic,
                query_size=k,
                iterations=s["mc_samples"] if sample_based else 1,
                verbose=False,
            )
            np.random.seed(seed * 10_000 + rnd)  # baal's Random draws from np.random
            before = active_set.labelled.copy()
            t_score[0] = 0.0
            t3 = time.perf_counter()
            loop.step()
            t5 = time.perf_counter()
            new = np.flatnonzero(active_set.labelled & ~before)
            order += [int(i) for i in new]
            row.update(score_seconds=t_score[0], select_seconds=t5 - t3 - t_score[0])
            log.append(row)
            rnd += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impl", choices=("baal", "torch"), required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--spec", required=True, help="the protocol, a JSON file")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mc", choices=("full", "head"), default="full", help="lean BALD passes")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    versions = {"torch": torch.__version__}
    if args.impl == "baal":
        from importlib.metadata import version

        import baal  # noqa: F401

        versions["baal"] = version("baal")
    t_import = time.perf_counter()
    with open(args.spec) as f:
        spec = json.load(f)
    with np.load(args.data) as f:
        data = {k: f[k] for k in f.files}
    for k in ("x_train", "x_test"):  # NHWC -> NCHW (a copy; the values are untouched)
        data[k] = np.ascontiguousarray(data[k].transpose(0, 3, 1, 2))
    hashes = {
        k: _sha(np.ascontiguousarray(data[k].transpose(0, 2, 3, 1))) for k in ("x_train", "x_test")
    }
    hashes.update({k: _sha(data[k]) for k in ("y_train", "y_test")})
    initial = data["initial"][args.seed - int(data["seed0"])]
    impl = (Baal if args.impl == "baal" else Lean)(spec, data, args.threads, args.mc)
    t_setup = time.perf_counter()
    rows, orders = [], {}
    for strategy in spec["strategies"]:
        orders[strategy] = impl.run_strategy(strategy, args.seed, initial, rows)
    t_end = time.perf_counter()
    print(
        "RESULT "
        + json.dumps(
            {
                "impl": args.impl,
                "seed": args.seed,
                "threads": args.threads,
                "mc": args.mc if args.impl == "torch" else "full",
                "versions": versions,
                "import_s": t_import - T_START,
                "setup_s": t_setup - t_import,
                "run_s": t_end - t_setup,
                "inner_wall_s": t_end - T_START,
                "peak_rss_mb_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "hashes": hashes,
                "rows": rows,
                "orders": orders,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
