"""End-to-end: the demo study runs, recovers its three planted findings, and reruns only what a change touches.

One full run of the workflow (about a few minutes on 2 cores) is shared by every test here through a
session-scoped fixture; it runs in a temporary copy of the repository so the developer's ``results/`` is
never touched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, planned_jobs, planned_outputs, snakemake

pytestmark = pytest.mark.slow


def test_all_outputs_exist(study):
    res = study / "results" / "demo"
    for name in ("layer_profile", "window_profile", "model_ranking", "prosody_groups", "topography",
                 "metric_agreement", "affective_dissociation"):
        assert (res / "tables" / f"{name}.tsv").stat().st_size > 0
    pngs = sorted(p.name for p in (res / "figures").glob("*.png"))
    assert len(pngs) == 10 and all((res / "figures" / p).stat().st_size > 10_000 for p in pngs)
    assert (res / "provenance.json").exists()
    assert (res / "derivatives" / "hearlike" / "dataset_description.json").exists()


def test_table_columns(tables):
    assert {"model", "layer", "relative_depth", "metric", "mean", "ci_low", "ci_high", "n_subjects"} <= set(
        tables["layer_profile"].columns)
    assert {"model", "layer", "metric", "window", "start_ms", "end_ms", "mean", "ci_low", "ci_high"} <= set(
        tables["window_profile"].columns)
    assert {"model", "metric", "rank", "best_layer", "score"} <= set(tables["model_ranking"].columns)
    assert {"model", "layer", "metric", "group", "mean", "n"} <= set(tables["prosody_groups"].columns)


def test_planted_layer_peaks_in_the_planted_model(tables, demo_config):
    """Finding (i): the planted model's layer profile peaks at the planted layer, for RSA and dependence."""
    prof = tables["layer_profile"]
    model = prof[prof["model"] == demo_config["planted_model"]]
    for metric in ("rsa_spearman", "cka_linear", "dcor"):
        rows = model[model["metric"] == metric].set_index("layer")["mean"]
        assert rows.idxmax() == demo_config["planted_layer"], (metric, rows.to_dict())
        others = rows.drop(demo_config["planted_layer"])
        assert rows[demo_config["planted_layer"]] > others.max()
    planted = model[(model["metric"] == "rsa_spearman") & (model["layer"] == demo_config["planted_layer"])].iloc[0]
    assert planted["ci_low"] > 0 and planted["p_signflip"] < 0.05


def test_planted_model_ranks_first(tables, demo_config):
    rank = tables["model_ranking"]
    rsa = rank[rank["metric"] == "rsa_spearman"].set_index("model")
    assert rsa.loc[demo_config["planted_model"], "rank"] == 1
    assert rsa.loc[demo_config["planted_model"], "best_layer"] == demo_config["planted_layer"]


def test_late_window_beats_early_windows(tables, demo_config):
    """Finding (ii): with latency in 250–500 ms, the 250–500 ms window beats the early ERP windows."""
    win = tables["window_profile"]
    sel = win[(win["model"] == demo_config["planted_model"]) & (win["layer"] == demo_config["planted_layer"])
              & (win["metric"] == "rsa_spearman")].set_index("window")["mean"]
    assert sel["w250_500_paper"] > sel["N100"]
    assert sel["w250_500_paper"] > sel["P200"]
    sliding = win[(win["model"] == demo_config["planted_model"]) & (win["layer"] == demo_config["planted_layer"])
                  & (win["metric"] == "rsa_spearman") & win["window"].str.startswith("sl")]
    best = sliding.loc[sliding["mean"].idxmax()]
    centre = (best["start_ms"] + best["end_ms"]) / 2
    assert 250 <= centre <= 500, best.to_dict()


def test_negative_prosody_dissociation(tables, demo_config):
    """Finding (iii): negative sentences have lower geometric and higher dependence similarity.

    Checked on the subject-level, duration-adjusted paired differences (negative − other) of the planted
    layer, and on the plain group means.
    """
    d = tables["affective_dissociation"]
    d = d[(d["model"] == demo_config["planted_model"]) & (d["layer"] == demo_config["planted_layer"])]
    diff = d.set_index("metric")["diff"]
    for metric in ("rsa_spearman", "rsa_pearson"):
        assert diff[metric] < 0, diff.to_dict()
    for metric in ("gcmi", "hsic_rbf"):
        assert diff[metric] > 0, diff.to_dict()
    g = tables["prosody_groups"]
    g = g[(g["model"] == demo_config["planted_model"]) & (g["layer"] == demo_config["planted_layer"])]
    wide = g.pivot_table(index="metric", columns="group", values="mean")
    assert wide.loc["rsa_spearman", "negative"] < wide.loc["rsa_spearman", "other"]
    assert wide.loc["gcmi", "negative"] > wide.loc["gcmi", "other"]


def test_tnc_recovers_planted_negatives_better_than_chance(study):
    labels = pd.read_csv(study / "results/demo/prosody/tnc.tsv", sep="\t")
    truth = pd.read_csv(ROOT / "resources/demo/stimuli/sentences_truth.tsv", sep="\t")
    merged = labels.merge(truth, on="sentence_id")
    called = merged["group"] == "negative"
    planted = merged["prosody"] == "negative"
    precision = (called & planted).sum() / max(called.sum(), 1)
    recall = (called & planted).sum() / planted.sum()
    base_rate = planted.mean()
    assert precision > base_rate and recall >= 0.5, (precision, recall, base_rate)


def test_second_run_has_nothing_to_do(study):
    assert planned_jobs(study) == {}


def test_changing_one_metric_setting_reruns_only_that_metric(study, tmp_path):
    cfg = yaml.safe_load((study / "config.yaml").read_text())
    cfg["metrics"]["settings"]["cka_rbf"] = {"bandwidth": 2.0}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(study, "--configfile", str(changed))
    assert jobs["metric"] == len(cfg["models"])  # one metric × every model
    assert not {"extract_activations", "build_demo_model", "model_features", "align", "windows", "preprocess",
                "segment", "demo_bids"} & set(jobs)
    outputs = planned_outputs(study, "metric", "--configfile", str(changed))
    assert outputs, "the dry run planned no metric job"
    assert {re.sub(r"(_electrodes)?\.tsv$", "", Path(f).name) for f in outputs} == {"cka_rbf"}


def test_editing_a_metric_module_reruns_only_its_metric(study):
    """An edit to dcor.py (its content, whatever the timestamps) reruns the dcor jobs and nothing upstream."""
    from hearlike.metrics import module_paths

    cfg = yaml.safe_load((study / "config.yaml").read_text())
    src = module_paths("dcor")[0]
    owners = [m for m in cfg["metrics"]["set"] if src in module_paths(m)]
    original = src.read_bytes()
    stat = src.stat()
    try:
        src.write_bytes(original + b"\n# an edit\n")
        os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # content changes, timestamp does not
        jobs = planned_jobs(study)
    finally:
        src.write_bytes(original)
        os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert jobs.get("metric") == len(owners) * len(cfg["models"]), jobs
    assert not {"extract_activations", "align", "windows", "model_features"} & set(jobs)


def test_unknown_config_key_is_named(study, tmp_path):
    cfg = yaml.safe_load((study / "config.yaml").read_text())
    cfg["metrics"]["sett1ngs"] = {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake(study, "--dry-run", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "sett1ngs" in proc.stdout + proc.stderr


def test_layer_profile_is_finite_and_within_metric_ranges(tables):
    from hearlike.metrics import METRICS

    prof = tables["layer_profile"]
    assert prof["mean"].notna().all()
    for metric, rows in prof.groupby("metric"):
        lo, hi = METRICS[metric].value_range
        assert (rows["mean"] >= lo - 1e-9).all() and (rows["mean"] <= hi + 1e-9).all(), metric
    assert np.all(prof["ci_low"] <= prof["mean"] + 1e-12) and np.all(prof["mean"] <= prof["ci_high"] + 1e-12)
