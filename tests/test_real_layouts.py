"""The whole study on synthetic copies of the two real layouts (ds004408 1.0.8 and nm000180 1.1.3).

The copies (``hearlike.demo.layouts``) hold the datasets' real metadata from ``tests/data`` and synthetic
signals; the study runs on them with nothing but config.yaml changed: the datasets point at the copies
(``download: none``), a subset of subjects and runs, two demo models and a smaller metric set and null
count so that the run stays within a few minutes. Runtime (2 shared cores): ~1 min to write the copies,
~6–10 min for the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow, planned_jobs, snakemake

from hearlike.demo.layouts import write_alice_copy, write_ds004408_copy

pytestmark = pytest.mark.slow

DS_SUBJECTS = ["001", "002"]
DS_RUNS = ["01", "02"]
ALICE_SUBJECTS = ["001", "026"]  # sub-026's real events are labelled one segment early


def layout_config(work: Path, data: Path) -> dict:
    """config.yaml with the datasets pointed at the copies (the only kind of change a user makes)."""
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["run"] = ["ds004408", "alice"]
    ds = cfg["datasets"]["ds004408"]
    ds.update(bids_root=str(data / "ds004408"), stimuli_dir=str(data / "ds004408" / "stimuli"),
              subjects=DS_SUBJECTS, download="none", sentence_text_dir=str(data / "ds004408_text"))
    ds["options"] = {"sentence_dir": "resources/ds004408", "runs": DS_RUNS}
    alice = cfg["datasets"]["alice"]
    alice.update(bids_root=str(data / "nm000180"), stimuli_dir=str(data / "nm000180" / "stimuli"),
                 subjects=ALICE_SUBJECTS, download="none")
    alice["options"] = {"shift_policy": "relabel", "audio_check": True, "decisions_file": None}
    cfg["models"] = ["demo-whisper", "demo-wavlm"]
    cfg["metrics"]["set"] = ["rsa_spearman", "cka_linear", "dcor"]
    cfg["metrics"]["topography"] = ["rsa_spearman"]
    cfg["nulls"].update(circular_shift=10, sentence_mismatch=4, frame_permutation=10)
    cfg["statistics"].update(n_bootstrap=200, n_signflip=1000)
    cfg["windows"]["max_items"] = 200
    return cfg


@pytest.fixture(scope="module")
def layout_study(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("real_layouts")
    data = base / "data"
    write_ds004408_copy(data / "ds004408", metadata=ROOT / "tests/data/ds004408",
                        demo_stimuli=ROOT / "resources/demo/stimuli", text_dir=data / "ds004408_text",
                        subjects=DS_SUBJECTS, runs=DS_RUNS)
    write_alice_copy(data / "nm000180", metadata=ROOT / "tests/data/nm000180", subjects=ALICE_SUBJECTS)
    (base / "work").mkdir()
    work = copy_workflow(base / "work")
    for stale in (work / "resources" / "ds004408").glob("sentences_run*.tsv"):
        stale.unlink()
    (work / "config.yaml").write_text(yaml.safe_dump(layout_config(work, data), sort_keys=False))
    snakemake(work, timeout=3600)
    return work


def test_every_result_is_written_for_both_layouts(layout_study):
    for ds in ("ds004408", "alice"):
        root = layout_study / "results" / ds
        profile = pd.read_csv(root / "tables" / "layer_profile.tsv", sep="\t")
        assert set(profile["model"]) == {"demo-whisper", "demo-wavlm"}
        assert set(profile["metric"]) == {"rsa_spearman", "cka_linear", "dcor"}
        assert np.isfinite(profile["mean"]).all(), ds
        assert list((root / "figures").glob("*.png")), ds
        provenance = json.loads((root / "provenance.json").read_text())
        assert ds in json.dumps(provenance)


def test_nothing_left_to_do(layout_study):
    assert planned_jobs(layout_study) == {}


def test_ds004408_sentences_come_from_the_reviewed_text_tables(layout_study):
    truth = pd.read_csv(ROOT / "resources/demo/stimuli/sentences_truth.tsv", sep="\t")
    for k, run in enumerate(DS_RUNS, start=1):
        table = pd.read_csv(layout_study / f"resources/ds004408/sentences_run{run}.tsv", sep="\t")
        assert table["method"].eq("text").all()
        expected = truth.loc[truth["stim_file"] == f"run-{k:02d}.wav", "text"]
        assert len(table) == len(expected)
    sentences = pd.read_csv(layout_study / "results/ds004408/sentences/sentences.tsv", sep="\t")
    assert len(sentences) == len(truth)
    assert sorted(sentences["sentence_id"] // 1000) == sorted([1] * 12 + [2] * 12)


def sentence_keys(path: Path) -> set[str]:
    with np.load(path, allow_pickle=False) as z:
        return {k for k in z.files if k.startswith("s") and not k.endswith(".post")}


def test_ds004408_sentences_start_at_their_first_word(layout_study):
    """EEG t = 0 is audio t = 0, so a sentence's span starts at its first word's TextGrid onset."""
    sentences = pd.read_csv(layout_study / "results/ds004408/sentences/sentences.tsv", sep="\t")
    words = pd.read_csv(ROOT / "resources/demo/stimuli/words.tsv", sep="\t")
    first = np.sort(words.groupby("sentence_id")["onset_s"].min().to_numpy())
    assert np.allclose(np.sort(sentences["onset_s"].to_numpy()), first, atol=1e-3)
    for sub in DS_SUBJECTS:
        assert len(sentence_keys(layout_study / f"results/ds004408/eeg/sub-{sub}_segments.npz")) == len(sentences)


def test_alice_shifted_subject_is_relabelled_and_analysed(layout_study):
    sentences = pd.read_csv(layout_study / "results/alice/sentences/sentences.tsv", sep="\t")
    assert sentences["sentence_id"].nunique() == 84  # AliceChapterOne-EEG.csv's sentences
    inventory = pd.read_csv(layout_study / "results/alice/ingest/recordings.tsv", sep="\t", dtype={"subject": str})
    actions = inventory.groupby("subject")["segment_action"].first().to_dict()
    assert actions == {"001": "keep", "026": "relabel"}
    assert "sub-026: segments relabel" in (layout_study / "results/logs/ingest/alice.log").read_text()
    # sub-026's recording began after segment 1 had played: those sentences are missing, the rest are there
    first_segment = set(sentences.loc[sentences["stim_file"].str.endswith("SoundFile1.wav"), "sentence_id"])
    keys001 = sentence_keys(layout_study / "results/alice/eeg/sub-001_segments.npz")
    keys026 = sentence_keys(layout_study / "results/alice/eeg/sub-026_segments.npz")
    assert len(keys001) == 84 and len(keys001 - keys026) == len(first_segment) and keys026 < keys001
    values = pd.read_csv(layout_study / "results/alice/tables/subject_layer_values.tsv", sep="\t",
                         dtype={"subject": str})
    assert set(values["subject"]) == set(ALICE_SUBJECTS)
