"""Paper scale: the full study's DAG (12 Audio LLMs × ds004408 + Alice, all subjects) builds fast and stays small.

Runtime (2 shared cores): about 1 minute (placeholder layout, then 3 timed dry runs of ~8–15 s each).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_paper_scale_dag_is_fast_and_small(tmp_path):
    out = tmp_path / "paper_scale.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/paper_scale.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-5000:]
    record = json.loads(out.read_text())
    assert proc.returncode == 0, (record["dag_seconds_all"], record["n_jobs"])
    assert record["dag_seconds"] < 20 and record["n_jobs"] < 20_000

    # the DAG has exactly the study's shape: per model, per subject and per dataset jobs
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    registry = yaml.safe_load((ROOT / "resources/models.yaml").read_text())["models"]
    models = [k for k, e in registry.items() if e["role"] == "paper"]
    assert record["models"] == models and len(models) == 12
    decisions = pd.read_csv(ROOT / "resources/alice/segment_decisions.tsv", sep="\t", dtype=str)
    subjects = {"ds004408": 19, "alice": int((decisions["action"] != "exclude").sum())}
    assert subjects["alice"] == 31
    n_sub, n_ds, n_mod, n_met = sum(subjects.values()), len(subjects), len(models), len(config["metrics"]["set"])
    expected = {
        "align": n_mod * n_sub, "windows": n_mod * n_sub, "metric": n_mod * n_met * n_ds,
        "preprocess": n_sub, "segment": n_sub, "extract_activations": n_mod * n_ds, "model_features": n_mod * n_ds,
        **{rule: n_ds for rule in ("ingest", "sentences", "prosody", "tnc", "aggregate", "aggregate_windows",
                                   "rank_models", "prosody_groups", "figures", "provenance")},
        "all": 1,
    }
    assert record["jobs_per_rule"] == expected
    assert record["n_jobs"] == sum(expected.values())
