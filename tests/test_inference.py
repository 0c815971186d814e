"""Inference through the production path: the EEG-side mismatch null, real sentence lengths, NaN frames,
the seam-free shift, the held-out lag choice, and calibration under H0 (benchmarks/calibration.py)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hearlike import analysis, nulls
from hearlike.aggregate import heldout_lags, paired_subject_means
from hearlike.align import align_subject, aligned_key
from hearlike.features import min_frames, model_features
from hearlike.io import load_npz_dict, save_npz_dict, sentence_key
from hearlike.metrics import compute
from hearlike.models.cache import write_layer, write_manifest
from hearlike.seeding import rng as seeded_rng
from hearlike.stats import fisher_z

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibration

ALL_METRICS = list(calibration.METRICS)
NULLS = {"sentence_mismatch": 19, "lag_sweep_mismatch": 3, "circular_shift": 0, "min_shift_s": 1.0,
         "frame_permutation": 0}


def _layout(tmp: Path, durations: list[float], *, rates: dict[str, float], n_channels: int = 12,
            nan_frame: tuple[int, float] | None = None, lags: list[float] = (0.0,)) -> tuple[Path, Path]:
    """Activations (two stacks) → features; one subject's segments → aligned EEG at ``lags``."""
    rng = np.random.default_rng(7)
    act = tmp / "act"
    entries = []
    for tb, rate in rates.items():
        for li in range(2):
            items = {}
            for sid, d in enumerate(durations, start=1):
                n = max(1, int(np.floor(d * rate)))
                t = np.arange(n) / rate
                items[sid] = (calibration.smooth(rng, n, 32, 2.0), np.stack([t, t + 1 / rate], 1))
            name = f"{tb}.{li:02d}"
            entries.append({"name": name, "file": f"{name}.safetensors",
                            "sha256": write_layer(act / f"{name}.safetensors", items, store_dtype="float32")})
    write_manifest(act, {"key": {"model": "m"}, "layers": entries})
    feats = tmp / "m.npz"
    model_features(activations_dir=act, out=feats, n_components=20)
    sfreq = 500.0
    arrays = {}
    for sid, d in enumerate(durations, start=1):
        n = round(d * sfreq)
        x = calibration.smooth(rng, n + 500, n_channels, 10.0).T.astype(np.float32)
        if nan_frame is not None and sid == nan_frame[0]:
            a = int(nan_frame[1] * sfreq)
            x[:, a:a + 5] = np.nan
        arrays[sentence_key(sid)] = x[:, :n]
        arrays[sentence_key(sid) + ".post"] = x[:, n:]
    seg = tmp / "seg.npz"
    save_npz_dict(seg, arrays, meta={"ch_names": [f"E{c}" for c in range(n_channels)], "sfreq": sfreq,
                                     "subject": "01", "sentence_ids": list(range(1, len(durations) + 1)),
                                     "post_s": 1.0})
    out = tmp / "aligned.npz"
    align_subject(segments=seg, features=feats, out=out, lags_ms=list(lags))
    return feats, out


def test_subject_metric_equals_a_direct_reference(tmp_path: Path) -> None:
    """value = metric(own EEG, own features); the null draws = metric(partner EEG cropped and re-z-scored,
    own features), partners drawn as documented; null_mean in Fisher z for RSA; p = (#≥ + 1)/(B + 1)."""
    durations = [2.0, 2.6, 3.1, 3.7, 4.4, 5.0, 2.2]
    feats_path, aligned = _layout(tmp_path, durations, rates={"llm": 12.5})
    feats, fmeta = load_npz_dict(feats_path)
    eeg, _ = load_npz_dict(aligned)
    for metric in ("rsa_spearman", "dcor"):
        table, _ = analysis.subject_metric(metric=metric, model="m", aligned=aligned, feats=feats,
                                           layers=fmeta["layers"], settings={}, nulls=NULLS, per_electrode=False,
                                           seed=5)
        n_valid = {sid: len(feats[f"llm/{sentence_key(sid)}.times"]) for sid in range(1, 8)}
        for sid in (1, 3, 7):
            partners = nulls.draw_mismatch_partners(n_frames=n_valid, sentence_id=sid, n_partners=19,
                                                    rng=seeded_rng(5, "mismatch", "01", "m", "llm", 0.0, sid))
            assert all(n_valid[o] >= n_valid[sid] for o in partners) and sid not in partners
            n = n_valid[sid]
            x = analysis.eeg_side(eeg[aligned_key("llm", sid, 0)])
            y = feats[f"llm.01/{sentence_key(sid)}"].astype(float)
            null = np.array([compute(metric, analysis.eeg_side(eeg[aligned_key("llm", o, 0)][:n]), y)
                             for o in partners])
            row = table[(table["sentence_id"] == sid) & (table["layer"] == "llm.01")].iloc[0]
            assert row["value"] == pytest.approx(compute(metric, x, y), abs=1e-9)
            expect = np.tanh(fisher_z(null).mean()) if metric == "rsa_spearman" else null.mean()
            assert row["null_mean"] == pytest.approx(expect, abs=1e-9)
            assert row["n_mismatch"] == len(partners)
            assert row["p_mismatch"] == pytest.approx((np.sum(null >= row["value"] - 1e-12) + 1) / (len(null) + 1))
        # the longest sentence has no partner: a NaN null, never a 0
        longest = table[table["sentence_id"] == 6]
        assert longest["null_mean"].isna().all() and (longest["n_mismatch"] == 0).all()


def test_real_short_sentences_and_nan_frames_run_through_every_metric(tmp_path: Path) -> None:
    """A 0.5 s Alice sentence ('you know') has 6 frames at 12.5 Hz: excluded from that timebase with the reason
    in the table (not a crash), every sentence has the same k = 20 there; a NaN frame drops that frame only."""
    durations = [0.5, 2.1, 3.0, 6.1, 4.2, 9.5, 16.5, 2.8]
    feats_path, aligned = _layout(tmp_path, durations, rates={"encoder": 50.0, "llm": 12.5},
                                  nan_frame=(4, 1.0), lags=[0.0, 300.0])
    feats, fmeta = load_npz_dict(feats_path)
    assert fmeta["excluded"]["llm"] == [1] and fmeta["excluded"]["encoder"] == []
    assert {feats[f"llm.00/{sentence_key(s)}"].shape[1] for s in range(2, 9)} == {20}
    eeg, _ = load_npz_dict(aligned)
    x, y, _ = analysis.sentence_pair(eeg, feats, "encoder", ["encoder.00"], 4)
    assert x.shape[1] == 12  # every channel kept
    assert x.shape[0] == len(feats[f"encoder/{sentence_key(4)}.times"]) - 1 == y.shape[1]
    for metric in ALL_METRICS:
        table = analysis.metric_job(metric=metric, model="m", aligned=[aligned], features=feats_path,
                                    settings=calibration.SETTINGS.get(metric, {}), nulls=NULLS,
                                    per_electrode=metric == "rsa_spearman", seed=1,
                                    out_values=tmp_path / f"{metric}.tsv", out_electrodes=tmp_path / f"{metric}_e.tsv",
                                    eeg_components=10 if metric == "gcmi" else None)
        short = table[(table["sentence_id"] == 1) & table["layer"].str.startswith("llm")]
        assert short["value"].isna().all() and short["reason"].str.contains("fewer than 21 model frames").all()
        ok = table[(table["sentence_id"] != 1) | table["layer"].str.startswith("encoder")]
        if metric == "gcmi":  # 25 encoder frames < 10 EEG + 20 model dimensions: NaN with the reason
            assert ok.loc[ok["value"].isna(), "reason"].str.contains("more frames than dimensions").all()
            ok = ok[ok["n_frames"] > 31]
        assert np.isfinite(ok["value"]).all(), metric
        assert set(table["lag_ms"]) == {0.0, 300.0}


def test_gcmi_sees_a_reduced_eeg_side() -> None:
    """gcmi with 128 channels + 20 PCs against 110 frames is NaN; with the EEG reduced to 10 PCs it is finite."""
    rng = np.random.default_rng(3)
    x = calibration.smooth(rng, 110, 128, 2.0)
    y = calibration.smooth(rng, 110, 20, 2.0)
    assert np.isnan(compute("gcmi", analysis.eeg_side(x), y))
    reduced = analysis.eeg_side(x, n_components=10)
    assert reduced.shape == (110, 10)
    assert np.isfinite(compute("gcmi", reduced, y))


def test_mirror_shifts_are_continuous_windows() -> None:
    """Seam-free shifts: consecutive indices differ by at most one frame (no jump from the end to the start)."""
    idx = nulls.draw_mirror_shifts(n_frames=60, frame_rate_hz=25.0, min_shift_s=1.0, n_shifts=200,
                                   rng=np.random.default_rng(0))
    assert idx.shape == (200, 60)
    assert np.abs(np.diff(idx, axis=1)).max() <= 1
    assert not (idx == np.arange(60)).all(axis=1).any()
    assert nulls.draw_mirror_shifts(n_frames=20, frame_rate_hz=25.0, min_shift_s=1.0, n_shifts=5,
                                    rng=np.random.default_rng(0)).shape == (0, 20)


def test_heldout_lag_never_uses_the_subjects_own_data() -> None:
    """Each subject's lag is the best lag of the other subjects; changing one subject's own curve does not
    move its own lag."""
    rows = []
    for s in range(6):
        for lag in (0.0, 100.0, 300.0):
            diff = 1.0 if lag == 300.0 else 0.0
            if s == 0:
                diff = 1.5 if lag == 0.0 else 0.0  # subject 0 alone prefers lag 0
            rows.append(dict(model="m", metric="rsa_spearman", subject=f"{s:02d}", lag_ms=lag, layer="l", diff=diff))
    chosen = heldout_lags(pd.DataFrame(rows))
    assert (chosen["lag_ms"] == 300.0).all()


@pytest.mark.slow
def test_group_test_is_calibrated_under_h0_through_the_production_path() -> None:
    """Shared stimuli, independent EEG, smooth signals with and without a shared onset transient: the
    layer-profile sign-flip of (value − mismatch null) rejects at about α (the old model-side crop gave 0 %
    for RSA and 95 % for linear CKA). CI-sized: 30 studies × 3 independent layers = 90 tests per metric,
    band [0, 0.12] (binomial 99.9 % bound at α = 0.05); the benchmark runs ≥ 500."""
    metrics = ["rsa_spearman", "cka_linear"]
    hits: dict[str, list[bool]] = {m: [] for m in metrics}
    for i in range(30):
        with tempfile.TemporaryDirectory() as tmp:
            res = calibration.simulate(seed=2000 + i, work=Path(tmp), rate_hz=12.5, sigma_frames=(1.0, 4.0, 12.0)[i % 3],
                                       n_subjects=6, n_sentences=16, durations="ds004408", gain=0.0,
                                       onset=float(i % 2), metrics=metrics, nulls=NULLS, n_layers=3)
        for m in metrics:
            g = res[m][res[m]["level"] == "group"]
            hits[m].extend((g["p_group"] <= 0.05).tolist())
    for m in metrics:
        assert len(hits[m]) == 90 and np.mean(hits[m]) <= 0.12, (m, np.mean(hits[m]))


def test_paired_subject_means_use_the_same_sentences_and_a_minimum() -> None:
    """diff uses only sentences with a value and a null; fewer than min_sentences → NaN (never 0)."""
    rows = []
    for s in ("01", "02"):
        for sid in range(1, 6):
            rows.append(dict(model="m", layer="l", metric="dcor", lag_ms=0.0, subject=s, sentence_id=sid,
                             value=0.5 + sid * 0.01, null_mean=np.nan if sid == 5 else 0.4))
    table = pd.DataFrame(rows)
    out = paired_subject_means(table, keys=["model", "layer", "metric", "lag_ms"], min_sentences=3)
    assert (out["n_sentences"] == 4).all()
    assert out["diff"].to_numpy() == pytest.approx([0.525 - 0.4] * 2)
    out = paired_subject_means(table, keys=["model", "layer", "metric", "lag_ms"], min_sentences=5)
    assert out["diff"].isna().all() and out["value"].isna().all()


def test_min_frames_is_k_plus_one() -> None:
    assert min_frames(20) == 21
