"""Provisional affect labels: each documented rule on constructed tables, and the error contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hearlike import affect

AROUSAL = affect.PAPER_SCORE_COLUMNS["arousal"]
VALENCE = affect.PAPER_SCORE_COLUMNS["valence"]
COMPOSITE = affect.PAPER_SCORE_COLUMNS["composite"]


def z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std(ddof=1)


def egemaps_table(seed: int = 0, n: int = 12) -> pd.DataFrame:
    gen = np.random.default_rng(seed)
    cols = dict.fromkeys((*AROUSAL, *VALENCE, *COMPOSITE))
    data = {c: gen.normal(loc=10, scale=3, size=n) for c in cols}
    return pd.DataFrame({"sentence_id": np.arange(101, 101 + n), **data})


def test_scores_are_the_papers_means_of_z_scores() -> None:
    t = egemaps_table()
    out = affect.provisional_labels(features=t)
    arousal = np.mean([z(t[c].to_numpy()) for c in AROUSAL], axis=0)
    valence = np.mean([z(t[c].to_numpy()) for c in VALENCE], axis=0)
    composite = np.mean([z(t[c].to_numpy()) for c in COMPOSITE], axis=0)
    np.testing.assert_allclose(out.arousal_score, arousal)
    np.testing.assert_allclose(out.valence_score, valence)
    np.testing.assert_allclose(out.sentiment_score, (arousal + valence) / 2)
    np.testing.assert_allclose(out.composite_score, composite)
    assert list(out.sentence_id) == list(t.sentence_id)
    assert list(out.columns) == ["sentence_id", "arousal_score", "valence_score", "sentiment_score",
                                 "composite_score", "provisional_label"]


def test_valence_below_zero_on_a_hand_built_table() -> None:
    t = pd.DataFrame({
        "sentence_id": [1, 2, 3, 4],
        VALENCE[0]: [1.0, 2.0, 3.0, 4.0],
        VALENCE[1]: [1.0, 2.0, 3.0, 4.0],
        VALENCE[2]: [4.0, 3.0, 2.0, 1.0],  # z = −z of the others → valence = z/3
    })
    out = affect.provisional_labels(features=t, rule="valence_below_zero")
    np.testing.assert_allclose(out.valence_score, z(np.arange(1.0, 5.0)) / 3)
    assert list(out.provisional_label) == ["negative", "negative", "other", "other"]
    assert out.arousal_score.isna().all()  # arousal columns absent, not needed by this rule


def test_sentiment_rule_and_threshold() -> None:
    t = egemaps_table(seed=1)
    out = affect.provisional_labels(features=t, rule="sentiment_below_zero")
    assert ((out.sentiment_score < 0) == (out.provisional_label == "negative")).all()
    shifted = affect.provisional_labels(features=t, rule="sentiment_below_zero", threshold=-10.0)
    assert (shifted.provisional_label == "other").all()


@pytest.mark.parametrize(("n", "n_negative"), [(9, 3), (10, 4), (84, 28)])
def test_bottom_tercile_takes_the_ceil_third_lowest(n: int, n_negative: int) -> None:
    t = egemaps_table(seed=n, n=n)
    out = affect.provisional_labels(features=t, rule="bottom_tercile", tercile_score="arousal")
    neg = out.provisional_label == "negative"
    assert neg.sum() == n_negative
    assert out.arousal_score[neg].max() < out.arousal_score[~neg].min()


def test_bottom_tercile_breaks_ties_by_table_order() -> None:
    t = pd.DataFrame({"sentence_id": range(1, 7), **{c: [1.0, 1.0, 1.0, 1.0, 2.0, 3.0] for c in COMPOSITE}})
    out = affect.provisional_labels(features=t, rule="bottom_tercile", tercile_score="composite")
    assert list(out.provisional_label) == ["negative", "negative", "other", "other", "other", "other"]


def test_low_arousal_composite_flags_lower_slower_softer_narrower() -> None:
    # four ordinary sentences and two that are lower, slower, softer and narrower in pitch range
    t = pd.DataFrame({
        "sentence_id": [1, 2, 3, 4, 5, 6],
        "pitch_level_st": [40.0, 41.0, 39.5, 40.5, 33.0, 34.0],
        "speaking_rate": [3.0, 3.2, 2.9, 3.1, 2.0, 2.2],
        "intensity_mean_db": [70.0, 71.0, 69.0, 70.5, 60.0, 61.0],
        "pitch_range_st": [8.0, 9.0, 7.5, 8.5, 3.0, 3.5],
    })
    out = affect.provisional_labels(features=t, rule="low_arousal_composite")
    assert list(out.provisional_label) == ["other"] * 4 + ["negative"] * 2
    expected = np.mean([z(t[c].to_numpy()) for c in COMPOSITE], axis=0)
    np.testing.assert_allclose(out.composite_score, expected)
    # sign of the mean is the sign of the sum of the four z-scores
    assert ((expected < 0) == (np.sum([z(t[c].to_numpy()) for c in COMPOSITE], axis=0) < 0)).all()


def test_missing_required_column_names_column_and_rule() -> None:
    t = egemaps_table().drop(columns=["mfcc1_sma3_amean"])
    with pytest.raises(KeyError, match=r"valence_below_zero.*mfcc1_sma3_amean"):
        affect.provisional_labels(features=t, rule="valence_below_zero")
    # the composite rule does not need it; the valence score is then NaN
    out = affect.provisional_labels(features=t, rule="low_arousal_composite")
    assert out.valence_score.isna().all() and out.composite_score.notna().all()
    with pytest.raises(KeyError, match=r"low_arousal_composite.*speaking_rate"):
        affect.provisional_labels(features=t.drop(columns=["speaking_rate"]), rule="low_arousal_composite")


def test_unknown_rule_and_bad_tercile_score() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        affect.provisional_labels(features=egemaps_table(), rule="median_split")
    with pytest.raises(ValueError, match="tercile_score"):
        affect.provisional_labels(features=egemaps_table(), rule="bottom_tercile", tercile_score="loudness")


def test_sign_prefix_constant_and_missing_values() -> None:
    t = pd.DataFrame({"sentence_id": [1, 2, 3, 4], "a": [1.0, 2.0, 3.0, 4.0], "b": [5.0] * 4,
                      "c": [1.0, np.nan, 3.0, 5.0]})
    out = affect.provisional_labels(features=t, rule="valence_below_zero",
                                    score_columns={"valence": ["-a", "b"]})
    # b is constant: contributes 0; -a flips the order
    np.testing.assert_allclose(out.valence_score, -z(t.a.to_numpy()) / 2)
    assert list(out.provisional_label) == ["other", "other", "negative", "negative"]
    out = affect.provisional_labels(features=t, rule="valence_below_zero", score_columns={"valence": ["c"]})
    c = np.array([1.0, 3.0, 5.0])
    np.testing.assert_allclose(out.valence_score, [(1 - 3) / 2, 0.0, 0.0, (5 - 3) / 2])  # NaN → dataset mean
    assert c.std(ddof=1) == 2.0


def test_fallback_columns_work_on_the_prosody_table() -> None:
    from hearlike import prosody

    sr = 16_000
    t = np.arange(2 * sr) / sr
    audio = {}
    for sid, (f0, amp, rate) in enumerate([(200, 0.3, 5), (210, 0.3, 5), (190, 0.25, 5), (110, 0.07, 3)], 1):
        f = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.8 * t) * (amp > 0.1))
        phase = 2 * np.pi * np.cumsum(f) / sr
        audio[sid] = amp * 0.5 * (1 - np.cos(2 * np.pi * rate * t)) * sum(np.sin(h * phase) / h for h in range(1, 6))
    table = prosody.sentence_prosody(audio=audio, sr=sr, egemaps=False)
    out = affect.provisional_labels(features=table, rule="low_arousal_composite")
    assert list(out.provisional_label) == ["other", "other", "other", "negative"]
    fb = affect.provisional_labels(features=table, rule="valence_below_zero",
                                   score_columns=affect.FALLBACK_SCORE_COLUMNS)
    assert fb.valence_score.notna().all() and fb.arousal_score.notna().all()
    assert fb.arousal_score.iloc[3] == fb.arousal_score.min()  # the low, soft sentence has the lowest arousal
