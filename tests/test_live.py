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
