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

Only process 0 of a multi-process run writes. Without the ``tensorboard``
package only ``metrics.jsonl`` is written.
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
    """Writes each finished round to ``metrics.jsonl`` and TensorBoard."""

    def __init__(self, workdir: str, config_json: dict, *, enabled: bool = True):
        self.workdir, self.enabled = workdir, enabled
        self.hparams = {
            k: v for k, v in _flat(config_json).items() if isinstance(v, bool | int | float | str)
        }
        self._writers: dict = {}

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
        self._tensorboard(label, rec, acc, nll)

    def _tensorboard(self, label, rec: RoundRecord, acc, nll) -> None:
        try:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            return
        if label not in self._writers:
            writer = EventFileWriter(os.path.join(self.workdir, "tensorboard", label))
            writer.add_event(event_pb2.Event(step=0, summary=self._hparams_summary(label)))
            self._writers[label] = writer
        scalars = {
            "test_accuracy/mean": acc.mean(),
            "test_accuracy/std": acc.std(),
            "test_nll/mean": nll.mean(),
            "train_accuracy/mean": np.mean(rec.train_accuracy),
            "seconds/train": rec.train_seconds,
            "seconds/eval": rec.eval_seconds,
            "seconds/score": rec.score_seconds,
            "seconds/select": rec.select_seconds,
        }
        values = [
            summary_pb2.Summary.Value(tag=t, simple_value=float(v)) for t, v in scalars.items()
        ]
        writer = self._writers[label]
        writer.add_event(
            event_pb2.Event(step=int(rec.num_labeled), summary=summary_pb2.Summary(value=values))
        )
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
