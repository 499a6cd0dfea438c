"""Live logging: per-round scalars in metrics.jsonl and TensorBoard as the run goes."""

import csv
import json
import os
import subprocess
import time

import numpy as np
from conftest import smoke_cmd
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata, plugin_data_pb2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _jsonl(work):
    with open(work / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_rounds_are_logged_while_the_run_goes_and_match_results_and_hparams(tmp_path):
    work = tmp_path / "w"
    p = subprocess.Popen(smoke_cmd(work), cwd=REPO, stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if "random r1 " in line:  # mid-run: the rounds so far are already on disk
            time.sleep(0.2)
            live = _jsonl(work)
            assert [(e["strategy"], e["round"]) for e in live][:2] == [("random", 0), ("random", 1)]
            acc = EventAccumulator(str(work / "tensorboard" / "random"))
            acc.Reload()
            assert [e.step for e in acc.Scalars("test_accuracy/mean")][:2] == [20, 30]
            break
    p.communicate(timeout=180)
    assert p.returncode == 0
    entries = _jsonl(work)
    with open(work / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(entries) == len({(r["strategy"], r["round"]) for r in rows}) == 8
    for e in entries:  # every logged value is the rows' (independently averaged)
        sub = [r for r in rows if r["strategy"] == e["strategy"] and int(r["round"]) == e["round"]]
        want = np.mean([float(r["test_accuracy"]) for r in sub])
        np.testing.assert_allclose(e["test_accuracy_mean"], want, rtol=1e-5)
        assert e["num_labeled"] == int(sub[0]["num_labeled"]) and e["seeds"] == [0, 1]
    acc = EventAccumulator(str(work / "tensorboard" / "margin"))
    acc.Reload()
    assert "seconds/train" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("test_accuracy/mean")] == [20, 30, 40, 50]
    # The config as HParams (TensorBoard's HParams tab).
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert info.hparams["strategy"].string_value == "margin"
    assert info.hparams["train.epochs"].number_value == 5
    assert info.hparams["dataset.name"].string_value == "digits"


def test_wandb_offline_and_mlflow_file_store_get_each_series_scalars(tmp_path, monkeypatch):
    """The optional writers (``config.live``), in their offline modes, on a grid
    run: one series per strategy@setting, values = the rows' means."""
    import glob

    from conftest import tiny_config
    from mlflow.tracking import MlflowClient

    from jaxal.experiment import run_experiment
    from jaxal.live import _mlflow_key

    monkeypatch.setenv("WANDB_SILENT", "true")
    work = tmp_path / "w"
    cfg = tiny_config(
        grid="learning_rate=0.01;learning_rate=0.003",
        **{"live.wandb": True, "live.mlflow": True, "train.epochs": 2},
    )
    rows = run_experiment(cfg, str(work), progress=False)
    series = sorted({f"{r['strategy']}@{r['setting']}" for r in rows})
    assert len(series) == 2

    def mean_at(name, n):  # the rows' own mean over seeds
        return np.mean(
            [
                r["test_accuracy"]
                for r in rows
                if f"{r['strategy']}@{r['setting']}" == name and r["num_labeled"] == n
            ]
        )

    with open(work / "live" / "mlflow_run_id") as f:
        run_id = f.read().strip()
    client = MlflowClient(tracking_uri="file://" + str(work / "mlruns"))
    for name in series:
        hist = client.get_metric_history(run_id, _mlflow_key(f"{name}/test_accuracy/mean"))
        assert [m.step for m in hist] == [10, 15, 20, 25]
        for m in hist:
            assert abs(m.value - mean_at(name, m.step)) < 1e-6
        assert (work / "tensorboard" / name).is_dir()  # TensorBoard: per series too
    assert client.get_run(run_id).data.params["grid"] == cfg.grid
    assert client.get_run(run_id).info.status == "FINISHED"
    (log,) = glob.glob(str(work / "wandb" / "offline-run-*" / "run-*.wandb"))
    history = _wandb_history(log)
    for name in series:
        logged = [h for h in history if f"{name}/test_accuracy/mean" in h]
        assert [h[f"{name}/num_labeled"] for h in logged] == [10, 15, 20, 25]
        for h in logged:
            assert (
                abs(h[f"{name}/test_accuracy/mean"] - mean_at(name, h[f"{name}/num_labeled"]))
                < 1e-6
            )


def _wandb_history(path) -> list[dict]:
    """The history records of an offline W&B run file (LevelDB-style log of
    32 KiB blocks of CRC + length + type chunks holding ``Record`` protos)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    pos, block, records, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            records.append(buf + chunk)
    out = []
    for d in records:
        r = pb.Record()
        r.ParseFromString(d)
        if r.WhichOneof("record_type") == "history":
            out.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            )
    return out
