"""Whole-study null run and weak-effect run (tests/configs/null_and_weak.yaml).

``demo_null`` is the demo generator with every planted gain at 0: the EEG is independent of every model, so
no layer, window, window contrast or dissociation cell may reach q < 0.05. ``demo_weak`` plants the demo's
response at an SNR that gives within-sentence RSA of a few hundredths, as real EEG does; its planted layer,
lag and window must still be recovered.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake

pytestmark = pytest.mark.slow
CONFIG = ROOT / "tests" / "configs" / "null_and_weak.yaml"


@pytest.fixture(scope="module")
def null_weak(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("null_weak"))
    shutil.copytree(ROOT / "tests" / "configs", work / "tests" / "configs")
    snakemake(work, "--configfile", "tests/configs/null_and_weak.yaml", timeout=3000)
    return work


def _table(work: Path, ds: str, name: str) -> pd.DataFrame:
    return pd.read_csv(work / "results" / ds / "tables" / f"{name}.tsv", sep="\t")


def _demo(ds: str) -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())["datasets"][ds]["demo"]


def test_null_demo_has_no_planted_response() -> None:
    assert _demo("demo_null")["planted_gain"] == 0.0 and _demo("demo")["planted_gain"] == 1.0


def test_null_study_finds_nothing(null_weak: Path) -> None:
    """No layer (at the held-out lag or at lag 0), window, window contrast or dissociation cell at q < 0.05."""
    prof = _table(null_weak, "demo_null", "layer_profile")
    assert len(prof) and prof["q_fdr"].notna().any()
    assert not (prof["q_fdr"] < 0.05).any(), prof.loc[prof["q_fdr"] < 0.05, ["model", "layer", "metric", "q_fdr"]]
    assert not (prof["q_fdr_lag0"] < 0.05).any()
    win = _table(null_weak, "demo_null", "window_profile")
    assert not (win["q_fdr"] < 0.05).any(), win.loc[win["q_fdr"] < 0.05, ["model", "layer", "window", "q_fdr"]]
    contrast = null_weak / "results" / "demo_null" / "tables" / "window_contrast.tsv"
    if contrast.exists():
        assert not (pd.read_csv(contrast, sep="\t")["q_fdr"] < 0.05).any()
    diss = _table(null_weak, "demo_null", "affective_dissociation")
    assert not (diss["q_fdr"] < 0.05).any(), diss.loc[diss["q_fdr"] < 0.05, ["model", "layer", "metric", "q_fdr"]]


def test_weak_effect_is_real_eeg_sized_and_recovered(null_weak: Path) -> None:
    """Planted RSA of a few hundredths above the null; the planted layer peaks, at the planted lag, and
    is significant; the planted model ranks first."""
    demo = _demo("demo_weak")
    prof = _table(null_weak, "demo_weak", "layer_profile")
    rsa = prof[(prof["model"] == demo["planted_model"]) & (prof["metric"] == "rsa_spearman")].set_index("layer")
    planted = rsa.loc[demo["planted_layer"]]
    assert 0.005 <= planted["above_null"] <= 0.06, planted.to_dict()
    assert rsa["above_null"].idxmax() == demo["planted_layer"], rsa["above_null"].to_dict()
    assert planted["lag_ms"] == demo["latency_ms"]
    assert planted["q_fdr"] < 0.05
    ranking = _table(null_weak, "demo_weak", "model_ranking")
    first = ranking[(ranking["metric"] == "rsa_spearman") & (ranking["rank"] == 1)]
    assert list(first["model"]) == [demo["planted_model"]]


def test_weak_effect_window_is_recovered(null_weak: Path) -> None:
    """The planted 300 ms response: the paper's 250–500 ms window beats the early windows above the null."""
    demo = _demo("demo_weak")
    win = _table(null_weak, "demo_weak", "window_profile")
    sel = win[(win["model"] == demo["planted_model"]) & (win["layer"] == demo["planted_layer"])
              & (win["metric"] == "rsa_spearman")].set_index("window")
    col = "above_null" if "above_null" in sel else "mean"
    assert sel.loc["w250_500_paper", col] > max(sel.loc["N100", col], sel.loc["P200", col])
