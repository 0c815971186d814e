"""Provisional affect label per sentence (METHODS §8.2; B26).

The paper's code has arousal/valence "scores" (means of z-scored eGeMAPS functionals, heuristic and
unvalidated) and no labelling rule at all. This module computes the same scores — z-scored within the table
given, i.e. within one dataset, as the paper did within its folder — and applies one of these rules:

``valence_below_zero`` (default, METHODS §8.2)
    negative iff ``valence_score < threshold`` (threshold default 0).
``sentiment_below_zero``
    negative iff ``sentiment_score = (arousal_score + valence_score) / 2 < threshold``.
``bottom_tercile``
    negative iff the sentence is among the ⌈n/3⌉ lowest of ``tercile_score`` (ties by table order).
``low_arousal_composite``
    negative iff ``composite_score < threshold``, where ``composite_score`` is the mean of
    z(pitch level) + z(speaking rate) + z(intensity) + z(pitch range) — the "lower, slower, softer, narrower pitch
    range" pattern the bundled demo plants. The mean has the sign of the sum, so threshold 0 means the same for
    both; the mean keeps the threshold on the scale of one z-score.

z-scoring follows the paper: sample SD (ddof 1); a missing value becomes 0 (the dataset mean); a column with
SD < 1e-12 contributes 0. A column name in ``score_columns`` prefixed with ``-`` enters with its sign flipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

RULES: tuple[str, ...] = ("valence_below_zero", "sentiment_below_zero", "bottom_tercile", "low_arousal_composite")

#: The paper's proxies (``add_sentiment_scores``) plus the composite built from :mod:`hearlike.prosody` columns.
PAPER_SCORE_COLUMNS: dict[str, tuple[str, ...]] = {
    "arousal": (
        "F0semitoneFrom27.5Hz_sma3nz_amean",
        "loudness_sma3_amean",
        "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
    ),
    "valence": (
        "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
        "spectralFlux_sma3_amean",
        "mfcc1_sma3_amean",
    ),
    "composite": ("pitch_level_st", "speaking_rate", "intensity_mean_db", "pitch_range_st"),
}

#: Stand-ins from :func:`hearlike.prosody.sentence_prosody` when openSMILE is unavailable: mean F0 (semitones),
#: intensity for loudness, F0 coefficient of variation for stddevNorm, spectral flux, and the negated spectral
#: slope for mfcc1 (both measure spectral tilt; c1 grows as the spectrum falls more steeply).
FALLBACK_SCORE_COLUMNS: dict[str, tuple[str, ...]] = {
    "arousal": ("f0_mean_st", "intensity_mean_db", "f0_cv_st"),
    "valence": ("f0_cv_st", "spectral_flux", "-spectral_slope_db_per_khz"),
    "composite": PAPER_SCORE_COLUMNS["composite"],
}

_NEEDS: dict[str, tuple[str, ...]] = {
    "valence_below_zero": ("valence",),
    "sentiment_below_zero": ("arousal", "valence"),
    "low_arousal_composite": ("composite",),
}


def zscore_paper(values: pd.Series) -> pd.Series:
    """The paper's z-score: ddof 1, NaN → 0, SD < 1e-12 → 0."""
    x = pd.to_numeric(values, errors="coerce").astype(np.float64)
    sd = x.std(ddof=1)
    if not np.isfinite(sd) or sd < 1e-12:
        return pd.Series(0.0, index=x.index)
    return ((x - x.mean()) / sd).fillna(0.0)


def _score(features: pd.DataFrame, columns: Sequence[str], *, name: str, rule: str, required: bool) -> pd.Series:
    """Mean of the (signed) z-scored columns; NaN if a column is absent and the rule does not need it."""
    parts = []
    for spec in columns:
        sign, col = (-1.0, spec[1:]) if spec.startswith("-") else (1.0, spec)
        if col not in features.columns:
            if required:
                raise KeyError(
                    f"rule {rule!r} needs column {col!r} for the {name} score, which the feature table lacks"
                    " (without openSMILE pass score_columns=hearlike.affect.FALLBACK_SCORE_COLUMNS)"
                )
            return pd.Series(np.nan, index=features.index)
        parts.append(sign * zscore_paper(features[col]))
    if not parts:
        raise ValueError(f"no columns given for the {name} score")
    return sum(parts) / len(parts)


def provisional_labels(
    *,
    features: pd.DataFrame,
    rule: str = "valence_below_zero",
    score_columns: Mapping[str, Sequence[str]] | None = None,
    threshold: float = 0.0,
    tercile_score: str = "valence",
) -> pd.DataFrame:
    """Scores and the provisional label of each sentence (rows in the order of ``features``).

    Returns ``sentence_id arousal_score valence_score sentiment_score composite_score provisional_label`` with
    labels ``"negative"``/``"other"``. ``score_columns`` overrides :data:`PAPER_SCORE_COLUMNS` per score
    (``arousal``, ``valence``, ``composite``); ``tercile_score`` names the score ``bottom_tercile`` ranks
    (``arousal``, ``valence``, ``sentiment`` or ``composite``). A column the rule needs but the table lacks
    raises ``KeyError`` naming both.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    if "sentence_id" not in features.columns:
        raise KeyError(f"rule {rule!r} needs column 'sentence_id', which the feature table lacks")
    columns = {**PAPER_SCORE_COLUMNS, **(dict(score_columns) if score_columns else {})}
    needs = _NEEDS.get(rule, ())
    if rule == "bottom_tercile":
        if tercile_score not in ("arousal", "valence", "sentiment", "composite"):
            raise ValueError(f"tercile_score must be arousal, valence, sentiment or composite, not {tercile_score!r}")
        needs = ("arousal", "valence") if tercile_score == "sentiment" else (tercile_score,)
    feats = features.reset_index(drop=True)
    scores = {
        name: _score(feats, columns[name], name=name, rule=rule, required=name in needs)
        for name in ("arousal", "valence", "composite")
    }
    out = pd.DataFrame(
        {
            "sentence_id": feats["sentence_id"].astype(int),
            "arousal_score": scores["arousal"],
            "valence_score": scores["valence"],
            "sentiment_score": (scores["arousal"] + scores["valence"]) / 2.0,
            "composite_score": scores["composite"],
        }
    )
    if rule == "bottom_tercile":
        score = out[f"{tercile_score}_score"].to_numpy()
        order = np.argsort(score, kind="stable")  # equal scores: earlier rows first
        negative = np.zeros(score.size, dtype=bool)
        negative[order[: int(np.ceil(score.size / 3))]] = True
    else:
        key = {"valence_below_zero": "valence", "sentiment_below_zero": "sentiment",
               "low_arousal_composite": "composite"}[rule]
        negative = (out[f"{key}_score"] < threshold).to_numpy()
    out["provisional_label"] = np.where(negative, "negative", "other")
    return out
