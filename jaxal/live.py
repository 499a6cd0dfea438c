"""Live logging: per-round scalars written as the run goes, not at its end.

* ``metrics.jsonl`` in the workdir: one JSON object per (strategy, round), with
  the per-seed values and their means — test accuracy and NLL, labels, train
  accuracy, divergence flags, phase seconds — appended and flushed after every
  round (``tail -f`` it, or read it with pandas ``read_json(lines=True)``).
* ``tensorboard/<strategy>/``: TensorBoard event files, one event per round
  (step = number of labels): ``test_accuracy/mean``, ``test_accuracy/std``,
  ``test_nll/mean``, ``train_accuracy/mean`` and ``seconds/{train,eval,score,
  select}`` (wall time of the phase for all seeds), plus the run's config as
  HParams (TensorBoard's HParams tab). Written with TensorBoard's own event
  writer and protos, so no TensorFlow is needed (``clu.metric_writers``
  imports TensorFlow; it is not used).

* Weights & Biases (``config.live.wandb=True``, offline by default) and MLflow
  (``config.live.mlflow=True``, a file store in the workdir by default): the
  same scalars, per series, step = number of labels; optional extras
  (``pip install 'jaxal[wandb]'`` / ``'jaxal[mlflow]'``), off by default.

TensorBoard and the optional writers get one series per strategy (per
``strategy@setting`` in a grid run), over the lanes still running. Only
process 0 of a multi-process run writes. Without the ``tensorboard`` package
only ``metrics.jsonl`` is written.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from jaxal.loop import RoundRecord


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class LiveLog:
    """Writes each finished round to ``metrics.jsonl``, TensorBoard and, when
    ``config.live`` asks for them, Weights & Biases and MLflow."""

    def __init__(self, workdir: str, config_json: dict, *, enabled: bool = True):
        self.workdir, self.enabled = workdir, enabled
        self.hparams = {
            k: v for k, v in _flat(config_json).items() if isinstance(v, bool | int | float | str)
        }
        self._writers: dict = {}
        self._extra: list = []
        if enabled:
            live = config_json.get("live") or {}
            if live.get("wandb"):
                self._extra.append(WandbWriter(workdir, self.hparams, live))
            if live.get("mlflow"):
                self._extra.append(MlflowWriter(workdir, self.hparams, live))

    def round(self, label: str, seeds, rec: RoundRecord) -> None:
        if not self.enabled:
            return
        acc, nll = np.asarray(rec.test_accuracy, float), np.asarray(rec.test_nll, float)
        entry = {
            "time": time.time(),
            "strategy": label,
            "round": rec.round,
            "num_labeled": rec.num_labeled,
            "seeds": [int(s) for s in getattr(seeds, "seed", seeds)],
            **(
                {"settings": [seeds.names[g] for g in seeds.setting]}
                if getattr(seeds, "grid", False)
                else {}
            ),
            "test_accuracy": acc.tolist(),
            "test_accuracy_mean": float(acc.mean()),
            "test_nll": nll.tolist(),
            "test_nll_mean": float(nll.mean()),
            "train_accuracy": np.asarray(rec.train_accuracy, float).tolist(),
            "diverged": np.asarray(rec.diverged, bool).astype(int).tolist(),
            "seconds": {
                "train": rec.train_seconds,
                "eval": rec.eval_seconds,
                "score": rec.score_seconds,
                "select": rec.select_seconds,
            },
        }
        with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
        for name, mask in _series(label, seeds, rec):
            scalars = round_scalars(rec, mask)
            step = int(rec.num_labeled)
            self._tensorboard(name, step, scalars)
            for writer in self._extra:
                writer.log(name, step, rec.round, scalars)

    def _tensorboard(self, label: str, step: int, scalars: dict) -> None:
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            return
        if label not in self._writers:
            writer = EventFileWriter(os.path.join(self.workdir, "tensorboard", label))
            writer.add_event(event_pb2.Event(step=0, summary=self._hparams_summary(label)))
            self._writers[label] = writer
        values = [
            summary_pb2.Summary.Value(tag=t, simple_value=float(v)) for t, v in scalars.items()
        ]
        writer = self._writers[label]
        writer.add_event(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=values)))
        writer.flush()

    def _hparams_summary(self, label: str):
        """The HParams plugin's session-start summary (the config, and the strategy)."""
        from google.protobuf import struct_pb2
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2

        info = plugin_data_pb2.SessionStartInfo(group_name=label, start_time_secs=time.time())
        for key, value in {**self.hparams, "strategy": label}.items():
            v = struct_pb2.Value()
            if isinstance(value, bool):
                v.bool_value = value
            elif isinstance(value, int | float):
                v.number_value = float(value)
            else:
                v.string_value = str(value)
            info.hparams[key].CopyFrom(v)
        content = plugin_data_pb2.HParamsPluginData(version=0, session_start_info=info)
        meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(
                plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
            )
        )
        return summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=metadata.SESSION_START_INFO_TAG, metadata=meta)]
        )

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
        for writer in self._extra:
            writer.close()
        self._extra = []


def _series(label: str, seeds, rec: RoundRecord) -> list[tuple[str, np.ndarray]]:
    """``(series name, lane mask)``: the strategy, or one per grid setting; lanes
    that stopped in an earlier round (``stop.patience``) left out."""
    n = len(np.asarray(rec.test_accuracy))
    out = seeds.series(label) if getattr(seeds, "grid", False) else [(label, np.ones(n, bool))]
    active = np.ones(n, bool) if rec.active is None else np.asarray(rec.active, bool)
    return [(name, mask & active) for name, mask in out if (mask & active).any()]


def round_scalars(rec: RoundRecord, mask: np.ndarray) -> dict[str, float]:
    """The scalars of one round over the lanes in ``mask`` (TensorBoard tag names)."""
    pick = lambda a: np.asarray(a, float)[mask]  # noqa: E731
    acc = pick(rec.test_accuracy)
    out = {
        "test_accuracy/mean": acc.mean(),
        "test_accuracy/std": acc.std(),
        "test_nll/mean": pick(rec.test_nll).mean(),
        "train_accuracy/mean": pick(rec.train_accuracy).mean(),
    }
    for key in ("val_accuracy", "val2_accuracy"):
        v = getattr(rec, key)
        if v is not None and np.isfinite(pick(v)).all():
            out[f"{key}/mean"] = pick(v).mean()
    out.update(
        {
            "seconds/train": rec.train_seconds,
            "seconds/eval": rec.eval_seconds,
            "seconds/score": rec.score_seconds,
            "seconds/select": rec.select_seconds,
        }
    )
    return {k: float(v) for k, v in out.items()}


def _remembered_id(workdir: str, name: str) -> str | None:
    path = os.path.join(workdir, "live", name)
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip() or None
    return None


def _remember_id(workdir: str, name: str, value: str) -> None:
    os.makedirs(os.path.join(workdir, "live"), exist_ok=True)
    tmp = os.path.join(workdir, "live", name + ".tmp")
    with open(tmp, "w") as f:
        f.write(value)
    os.replace(tmp, os.path.join(workdir, "live", name))


class WandbWriter:
    """Weights & Biases (``config.live.wandb``; ``pip install 'jaxal[wandb]'``).

    One W&B run per workdir (its id is kept in ``live/wandb_id``, so a resumed
    run appends to it); metrics are ``<series>/<tag>`` with ``<series>/num_labeled``
    as their x axis. ``live.wandb_mode`` is ``offline`` by default (files under
    ``<workdir>/wandb``, ``wandb sync`` uploads them later)."""

    def __init__(self, workdir: str, hparams: dict, live: dict):
        import uuid

        import wandb

        run_id = _remembered_id(workdir, "wandb_id") or uuid.uuid4().hex[:12]
        _remember_id(workdir, "wandb_id", run_id)
        self._run = wandb.init(
            project=live.get("wandb_project") or "jaxal",
            mode=live.get("wandb_mode") or "offline",
            dir=workdir,
            id=run_id,
            resume="allow",
            name=os.path.basename(os.path.normpath(workdir)),
            config=hparams,
            reinit="create_new",
        )
        self._defined: set = set()

    def log(self, name: str, step: int, round_: int, scalars: dict) -> None:
        if name not in self._defined:
            self._run.define_metric(f"{name}/num_labeled")
            self._run.define_metric(f"{name}/*", step_metric=f"{name}/num_labeled")
            self._defined.add(name)
        values = {f"{name}/{k}": v for k, v in scalars.items()}
        self._run.log({**values, f"{name}/num_labeled": step, f"{name}/round": round_})

    def close(self) -> None:
        self._run.finish()


class MlflowWriter:
    """MLflow (``config.live.mlflow``; ``pip install 'jaxal[mlflow]'``).

    Tracks to ``live.mlflow_tracking_uri`` (default: MLflow's file store in
    ``<workdir>/mlruns``, which needs no database; a ``sqlite:///`` or server
    URI needs the full ``mlflow`` package), experiment ``live.mlflow_experiment``; one MLflow run
    per workdir (id kept in ``live/mlflow_run_id`` for resumes); the config as
    params; metrics ``<series>/<tag>`` (characters MLflow refuses become ``_``)
    with step = number of labels."""

    def __init__(self, workdir: str, hparams: dict, live: dict):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = live.get("mlflow_tracking_uri")
        if not uri:  # the local file store (MLflow 3 asks for an opt-in to use it)
            uri = "file://" + os.path.abspath(os.path.join(workdir, "mlruns"))
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._client = MlflowClient(tracking_uri=uri)
        name = live.get("mlflow_experiment") or "jaxal"
        exp = self._client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else self._client.create_experiment(name)
        run_id = _remembered_id(workdir, "mlflow_run_id")
        if run_id is None:
            run = self._client.create_run(
                exp_id, run_name=os.path.basename(os.path.normpath(workdir))
            )
            run_id = run.info.run_id
            _remember_id(workdir, "mlflow_run_id", run_id)
            params = [Param(_mlflow_key(k), str(v)[:500]) for k, v in sorted(hparams.items())]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
                self._client.log_batch(run_id, params=params[i : i + 100])
        else:
            self._client.update_run(run_id, status="RUNNING")
        self._run_id = run_id

    def log(self, name: str, step: int, round_: int, scalars: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(_mlflow_key(f"{name}/{k}"), v, now, step) for k, v in scalars.items()
        ]
        metrics.append(Metric(_mlflow_key(f"{name}/round"), float(round_), now, step))
        self._client.log_batch(self._run_id, metrics=metrics)

    def close(self) -> None:
        self._client.set_terminated(self._run_id)


def _mlflow_key(key: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / `` and spaces."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", key)
