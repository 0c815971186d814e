"""Prosody features: pitch tracking on synthetic tones, direction of each feature, frame grid and resampling."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hearlike import prosody, prosody_step
from hearlike.io import read_tsv, write_tsv

SR = 16_000


def harmonic(f0: np.ndarray | float, duration: float, *, amp: float = 0.2, n_harmonics: int = 6) -> np.ndarray:
    """A harmonic complex with instantaneous fundamental ``f0`` (scalar or per-sample array)."""
    n = int(duration * SR)
    f0 = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return amp * sum(np.sin(h * phase) / h for h in range(1, n_harmonics + 1))


def speechlike(*, f0_low: float, f0_high: float, syllable_rate: float, amp: float, duration: float = 3.0):
    """Harmonic tone whose F0 swings between two values and whose envelope has ``syllable_rate`` bursts/s."""
    t = np.arange(int(duration * SR)) / SR
    f0 = f0_low + (f0_high - f0_low) * 0.5 * (1 + np.sin(2 * np.pi * 0.7 * t))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * syllable_rate * t))
    return envelope * harmonic(f0, duration, amp=amp)


@pytest.mark.parametrize("f0", [120.0, 200.0])
def test_f0_of_a_harmonic_tone_is_recovered_within_two_percent(f0: float) -> None:
    table = prosody.sentence_prosody(audio={3: harmonic(f0, 1.0)}, sr=SR, egemaps=False)
    assert table.loc[0, "sentence_id"] == 3
    assert abs(table.loc[0, "pitch_level_hz"] - f0) / f0 < 0.02
    assert table.loc[0, "pitch_range_st"] < 0.2  # a steady tone has no range
    assert table.loc[0, "voiced_fraction"] > 0.8


def test_frame_f0_follows_a_glide_at_the_frame_times() -> None:
    duration = 2.0
    t = np.arange(int(duration * SR)) / SR
    f0 = 100.0 + 50.0 * t  # 100 → 200 Hz
    raw = prosody._raw_frames(harmonic(f0, duration), SR, 60.0, 400.0)
    centres = raw["times"].mean(axis=1)
    voiced = np.isfinite(raw["f0_hz"])
    assert voiced.mean() > 0.8
    rel_err = np.abs(raw["f0_hz"][voiced] - (100.0 + 50.0 * centres[voiced])) / (100.0 + 50.0 * centres[voiced])
    assert np.median(rel_err) < 0.01 and rel_err.max() < 0.03


def test_f0_ceiling_is_respected() -> None:
    table = prosody.sentence_prosody(audio={1: harmonic(300.0, 1.0)}, sr=SR, f0_floor=60, f0_ceiling=250,
                                     egemaps=False)
    level = table.loc[0, "pitch_level_hz"]
    assert not (abs(level - 300.0) / 300.0 < 0.05)
    assert np.isnan(level) or level <= 250.0


def test_lower_slower_softer_narrower_variant_moves_every_feature_down() -> None:
    neutral = speechlike(f0_low=170, f0_high=280, syllable_rate=5, amp=0.3)
    negative = speechlike(f0_low=110, f0_high=140, syllable_rate=3, amp=0.08)
    n = neutral.size / SR
    words = pd.DataFrame({  # 12 words over the clip vs 7 words over the clip
        "sentence_id": [1] * 12 + [2] * 7,
        "onset_s": np.r_[np.linspace(0, n - 0.25, 12), np.linspace(0, n - 0.4, 7)],
        "offset_s": np.r_[np.linspace(0.25, n, 12), np.linspace(0.4, n, 7)],
    })
    table = prosody.sentence_prosody(audio={1: neutral, 2: negative}, sr=SR, words=words, egemaps=False)
    a, b = table.iloc[0], table.iloc[1]
    assert b.pitch_level_hz < a.pitch_level_hz
    assert b.pitch_range_st < a.pitch_range_st
    assert b.intensity_mean_db < a.intensity_mean_db - 6  # amplitude ratio 0.27 is ≈ 11 dB
    assert b.syllables_per_s < a.syllables_per_s
    assert b.speaking_rate < a.speaking_rate
    assert a.words_per_s == pytest.approx(12 / n) and b.words_per_s == pytest.approx(7 / n)
    assert set(table.speaking_rate_unit) == {"words_per_s"}


@pytest.mark.parametrize("rate", [3.0, 5.0])
def test_syllable_nuclei_count_matches_envelope_bursts(rate: float) -> None:
    table = prosody.sentence_prosody(
        audio={1: speechlike(f0_low=150, f0_high=200, syllable_rate=rate, amp=0.2, duration=4.0)},
        sr=SR, egemaps=False,
    )
    assert table.loc[0, "syllables_per_s"] == pytest.approx(rate, abs=0.5)
    assert table.loc[0, "speaking_rate_unit"] == "syllables_per_s"
    assert np.isnan(table.loc[0, "words_per_s"])


def test_frame_grid_tiles_the_clip_and_features_are_zscored() -> None:
    x = speechlike(f0_low=120, f0_high=220, syllable_rate=4, amp=0.2, duration=1.234)
    feats, times = prosody.frame_prosody(signal=x, sr=SR)
    assert feats.shape == (124, len(prosody.FRAME_FEATURES)) and times.shape == (124, 2)
    assert times[0, 0] == 0.0 and times[-1, 1] == pytest.approx(1.234)
    np.testing.assert_allclose(times[1:, 0], times[:-1, 1])
    np.testing.assert_allclose(np.diff(times[:-1], axis=1), 0.01)
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(feats.std(axis=0), 1.0, atol=1e-9)


def test_zscore_leaves_constant_columns_at_zero_not_nan() -> None:
    x = np.column_stack([np.arange(5.0), np.full(5, 3.0), np.full(5, np.nan)])
    z = prosody._zscore_columns(x)
    np.testing.assert_allclose(z[:, 0], (x[:, 0] - 2) / np.sqrt(2))
    assert (z[:, 1:] == 0).all()


def test_unvoiced_noise_has_nan_pitch_statistics() -> None:
    noise = np.random.default_rng(0).normal(scale=0.05, size=SR)
    table = prosody.sentence_prosody(audio={1: noise}, sr=SR, egemaps=False)
    assert table.loc[0, "voiced_fraction"] * 100 < prosody.MIN_VOICED_FRAMES  # 1 s = 100 frames
    for col in ("pitch_level_hz", "pitch_range_st", "f0_sd_st", "f0_cv_st"):
        assert np.isnan(table.loc[0, col]), col  # degenerate: NaN, never 0
    assert np.isfinite(table.loc[0, "spectral_centroid_hz"])
    # white noise is spectrally flat: centroid near a quarter of the sampling rate, slope near zero
    assert table.loc[0, "spectral_centroid_hz"] == pytest.approx(SR / 4, rel=0.1)
    assert abs(table.loc[0, "spectral_slope_db_per_khz"]) < 0.5


def _overlap_mean(values: np.ndarray, times: np.ndarray, start: float, end: float) -> float:
    num = den = 0.0
    for v, (s, e) in zip(values, times, strict=True):
        w = max(0.0, min(e, end) - max(s, start))
        if np.isfinite(v):
            num += w * v
            den += w
    return num / den if den > 0 else np.nan


def test_resampling_preserves_a_constant_and_averages_like_brute_force() -> None:
    gen = np.random.default_rng(4)
    times = prosody.frame_times(int(1.5 * SR), SR)
    values = gen.normal(size=(times.shape[0], 3))
    values[10:14, 1] = np.nan
    starts = np.sort(gen.uniform(-0.05, 1.55, size=40))
    target = np.column_stack([starts, starts + gen.uniform(0.003, 0.08, size=40)])
    out = prosody.resample_to_frames(values=values, times=times, target_times=target)
    for i, (s, e) in enumerate(target):
        for j in range(3):
            expected = _overlap_mean(values[:, j], times, s, e)
            if np.isnan(expected):
                assert np.isnan(out[i, j])
            else:
                assert out[i, j] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    const = prosody.resample_to_frames(values=np.full(times.shape[0], 2.5), times=times, target_times=target)
    inside = (target[:, 1] > 0) & (target[:, 0] < 1.5)
    np.testing.assert_allclose(const[inside], 2.5)
    assert np.isnan(const[~inside]).all()


def test_resampling_to_50hz_frames_is_the_pairwise_mean() -> None:
    times = prosody.frame_times(SR, SR)
    values = np.arange(100.0)
    target = np.column_stack([np.arange(50) * 0.02, np.arange(1, 51) * 0.02])
    out = prosody.resample_to_frames(values=values, times=times, target_times=target)
    np.testing.assert_allclose(out, values.reshape(50, 2).mean(axis=1))


def test_egemaps_functionals_when_opensmile_is_available() -> None:
    pytest.importorskip("opensmile")
    table = prosody.sentence_prosody(audio={1: harmonic(150.0, 1.0), 2: harmonic(220.0, 1.0)}, sr=SR)
    egemaps = [c for c in table.columns if "_sma3" in c or c in ("equivalentSoundLevel_dBp", "loudnessPeaksPerSec")]
    assert len([c for c in table.columns if c not in _own_columns()]) == 88
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in egemaps
    # eGeMAPS' mean F0 in semitones agrees with Praat's for a steady tone
    for _, row in table.iterrows():
        assert row["F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(row["f0_mean_st"], abs=0.5)


def _own_columns() -> set[str]:
    return set(prosody.sentence_prosody(audio={1: harmonic(150.0, 0.5)}, sr=SR, egemaps=False).columns)


def test_without_opensmile_the_table_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opensmile", None)  # makes `import opensmile` raise ImportError
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = prosody.sentence_prosody(audio={1: harmonic(150.0, 0.5)}, sr=SR, egemaps=True)
    assert any("FALLBACK_SCORE_COLUMNS" in str(w.message) for w in caught)
    assert not any("_sma3" in c for c in table.columns)
    assert np.isfinite(table.loc[0, "pitch_level_hz"])


def test_bad_pitch_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="f0_floor"):
        prosody.sentence_prosody(audio={1: harmonic(150.0, 0.5)}, sr=SR, f0_floor=300, f0_ceiling=200,
                                 egemaps=False)


# ------------------------------------------------------------------- negative vs other: the workflow step


def _group_inputs(tmp_path: Path, groups: list[str], n_subjects: int) -> dict[str, Any]:
    """Metric values of 2 metrics for the labelled sentences; negative sentences score 0.1 lower."""
    gen = np.random.default_rng(5)
    rows = [
        {"subject": f"{s:02d}", "sentence_id": sid, "model": "m", "layer": "llm.00", "metric": metric,
         "value": 0.3 - 0.1 * (group == "negative") + 0.05 * gen.standard_normal(), "lag_ms": 0.0}
        for s in range(n_subjects) for sid, group in enumerate(groups, start=1)
        for metric in ("rsa_spearman", "cka_linear")
    ]  # fmt: skip
    write_tsv(pd.DataFrame(rows), tmp_path / "values.tsv")
    write_tsv(pd.DataFrame({"sentence_id": range(1, len(groups) + 1), "group": groups}), tmp_path / "tnc.tsv")
    write_tsv(pd.DataFrame({"sentence_id": range(1, len(groups) + 1),
                            "duration_s": gen.uniform(1.5, 3.0, len(groups))}), tmp_path / "sentences.tsv")
    return dict(values=[tmp_path / "values.tsv"], labels=tmp_path / "tnc.tsv", sentences=tmp_path / "sentences.tsv",
                families={"rsa_spearman": "geometric", "cka_linear": "geometric"},
                statistics={"n_signflip": 1000}, seed=0, out_groups=tmp_path / "prosody_groups.tsv",
                out_dissociation=tmp_path / "affective_dissociation.tsv",
                out_subjects=tmp_path / "prosody_subject_values.tsv")


def _header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split("\t")


def test_prosody_groups_with_one_negative_sentence_writes_reason_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The realistic failure: TNC called 1 sentence negative. Full headers, NaN numbers, a reason, a WARNING."""
    args = _group_inputs(tmp_path, ["negative", "control", "control", "control", "excluded"], n_subjects=4)
    with caplog.at_level(logging.WARNING, logger="hearlike.prosody_step"):
        diss = prosody_step.prosody_groups(**args)
    assert _header(args["out_dissociation"]) == prosody_step.DISSOCIATION_COLUMNS
    written = read_tsv(args["out_dissociation"])
    assert len(written) == 2 and set(written["metric"]) == {"rsa_spearman", "cka_linear"}
    for col in ("diff", "effect_size", "p_signflip", "q_fdr"):
        assert written[col].isna().all(), col
    assert (written["n_negative"] == 1).all() and (written["n_other"] == 3).all()
    assert written["reason"].str.startswith("1 negative and 3 other sentence(s)").all()
    pd.testing.assert_series_equal(diss["reason"], written["reason"])
    assert _header(args["out_groups"]) == prosody_step.GROUP_COLUMNS
    groups = read_tsv(args["out_groups"]).set_index(["metric", "group"])
    assert np.isnan(groups.loc[("rsa_spearman", "negative"), "mean"])
    assert groups.loc[("rsa_spearman", "negative"), "n"] == 1
    assert "fewer than 2" in groups.loc[("rsa_spearman", "negative"), "reason"]
    assert np.isfinite(groups.loc[("rsa_spearman", "other"), "mean"])
    assert pd.isna(groups.loc[("rsa_spearman", "other"), "reason"])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("affective dissociation: 2 of 2 rows undefined") for m in messages)
    assert any(m.startswith("prosody groups: 2 of 4 rows undefined") for m in messages)


def test_prosody_groups_with_one_subject_or_no_labelled_sentence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = _group_inputs(tmp_path, ["negative"] * 3 + ["control"] * 3, n_subjects=1)
    with caplog.at_level(logging.WARNING, logger="hearlike.prosody_step"):
        prosody_step.prosody_groups(**args)
    diss = read_tsv(args["out_dissociation"])
    assert diss["p_signflip"].isna().all() and diss["diff"].isna().all() and (diss["n_subjects"] == 1).all()
    assert diss["reason"].str.contains("1 subject").all() and "affective dissociation" in caplog.text
    caplog.clear()
    args = _group_inputs(tmp_path, ["excluded"] * 4, n_subjects=3)
    with caplog.at_level(logging.WARNING, logger="hearlike.prosody_step"):
        prosody_step.prosody_groups(**args)
    subjects = read_tsv(args["out_subjects"])
    assert list(subjects.columns) == prosody_step.SUBJECT_COLUMNS and len(subjects) == 1
    assert subjects["reason"].notna().all() and subjects["value"].isna().all()
    groups = read_tsv(args["out_groups"])
    assert len(groups) == 4 and (groups["n"] == 0).all() and groups["mean"].isna().all()
    assert read_tsv(args["out_dissociation"])["reason"].str.startswith("0 negative and 0 other").all()
    assert "no subject has a value" in caplog.text


def test_prosody_groups_normal_case_has_no_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    args = _group_inputs(tmp_path, ["negative"] * 3 + ["control"] * 4 + ["excluded"], n_subjects=5)
    with caplog.at_level(logging.WARNING, logger="hearlike.prosody_step"):
        diss = prosody_step.prosody_groups(**args)
    assert diss["reason"].isna().all() and not caplog.records
    assert (diss["diff"] < 0).all() and (diss["n_subjects"] == 5).all()
    assert (diss["n_negative"] == 3).all() and (diss["n_other"] == 4).all()
    assert diss["q_fdr"].notna().all()
    groups = read_tsv(args["out_groups"])
    assert groups["reason"].isna().all() and list(groups.columns) == prosody_step.GROUP_COLUMNS
