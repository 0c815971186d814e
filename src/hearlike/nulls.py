"""Null distributions for one model–EEG similarity score that respect temporal autocorrelation.

Both signals of a sentence are smooth in time, so two *independent* sentences already give positive
RSA/CKA (near-diagonal RDM entries are small on both sides). A valid null must keep that structure:

* **circular shift** – the model features are rotated in time by at least ``min_shift_s`` (default 1 s),
  which keeps each signal's autocorrelation and breaks only their alignment (one sentence suffices);
* **sentence mismatch** – the EEG of sentence s is scored against the model features of other
  sentences. Lengths differ, so sentences are *cropped* to a common length from their onset (never
  stretched: stretching changes each sentence's time scale by its own factor and made the null
  anti-conservative in simulation, see tests/test_nulls.py). Per sentence, partners are the sentences
  at least as long, cut to its length (:func:`sentence_mismatch_scores`); for the mean over sentences,
  all sentences are cut to the shortest one and model labels are permuted (:func:`mismatch_score_matrix`,
  :func:`sentence_mismatch_null`). Linear interpolation to a common length stays available as
  ``length_mode="interpolate"`` for comparison;
* **frame permutation** (the paper's code, METHODS §6.1, bug B19) – shuffling frames destroys the
  temporal structure of one side only and is badly anti-conservative; kept only as a column labelled
  ``codefaithful``.

Every function takes the score as a callable ``score(X (T,p), Y (T,q)) -> float`` so the nulls do not
depend on :mod:`hearlike.metrics`. Optional batched callables make the nulls fast; their shapes follow
``hearlike.metrics.compute_battery`` (EEG batch × model batch), e.g.
``batch_score=lambda X, Ys: compute_battery(X[None], Ys, metrics=[m])[m][0]`` and
``score_matrix=lambda Xs, Ys: compute_battery(Xs, Ys, metrics=[m])[m]``.
Re-indexing nulls (circular shift, frame permutation) also take an ``indexed_score(X, Y, idx)`` that scores
X against every re-indexing ``Y[idx[b]]`` without materialising them, e.g.
``lambda X, Y, idx: compute_battery_reindexed(X, Y[None], idx, metrics=[m])[m][0]``, and
:func:`layer_sentence_null_tables` gives the tables of all layers of one timebase from one such call per
sentence.
For RSA-Spearman, :func:`rdm_spearman_permutation_null` works on precomputed RDM vectors (all
electrodes at once) and ranks each RDM only once.

All p-values are one-sided (larger score = more alignment): p = (#{null ≥ observed} + 1) / (B + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from hearlike.seeding import derive_seed
from hearlike.stats import fisher_z as to_z
from hearlike.stats import standardized_ranks

Score = Callable[[np.ndarray, np.ndarray], float]
#: batch_score(X (T,p), Ys (B,T,q)) -> (B,)
BatchScore = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: score_matrix(Xs (S,T,p), Ys (S,T,q)) -> (S,S), entry [s, s'] = score(Xs[s], Ys[s'])
ScoreMatrix = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: indexed_score(X (T,p), Y (T,q), idx (B,T)) -> (B,), entry b = score(X, Y[idx[b]])
IndexedScore = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
#: layer_indexed_score(X (T,p), Ys (L,T,q), idx (L,B,T)) -> (L,B), entry [l, b] = score(X, Ys[l][idx[l, b]])
LayerIndexedScore = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
LengthMode = Literal["crop", "interpolate"]


@dataclass(frozen=True)
class NullResult:
    """Observed score, the null's mean/SD over its finite draws, and the one-sided p-value."""

    observed: float
    null_mean: float
    null_sd: float
    p_value: float
    n_null: int
    null: np.ndarray = field(repr=False, compare=False)

    def as_row(self, prefix: str) -> dict[str, float]:
        """``{prefix}_null_mean``, ``{prefix}_null_sd``, ``p_{prefix}`` for a tidy table row."""
        return {
            f"{prefix}_null_mean": self.null_mean,
            f"{prefix}_null_sd": self.null_sd,
            f"p_{prefix}": self.p_value,
        }


def p_value_greater(observed: float, null: np.ndarray) -> float:
    """One-sided Monte Carlo p-value (count(null ≥ observed) + 1) / (B + 1) over the finite null draws."""
    null = np.asarray(null, dtype=float).ravel()
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return np.nan
    # rounding tolerance: a null draw that equals the observed score counts as "as extreme"
    tol = 1e-12 * max(1.0, abs(float(observed)))
    return float((np.sum(null >= observed - tol) + 1) / (null.size + 1))


def summarize_null(observed: float, null: np.ndarray) -> NullResult:
    """Wrap an observed score and its null draws (NaN draws, e.g. degenerate shifts, are ignored)."""
    null = np.asarray(null, dtype=float).ravel()
    fin = null[np.isfinite(null)]
    mean = float(fin.mean()) if fin.size else np.nan
    sd = float(fin.std(ddof=1)) if fin.size > 1 else np.nan
    return NullResult(float(observed), mean, sd, p_value_greater(observed, fin), int(fin.size), null)


def null_mean(draws: np.ndarray, *, fisher_z: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis of the finite null draws (in Fisher z and back for correlations) and their
    count; NaN where no draw is finite. One definition for the metric tables and the window tables."""
    finite = np.isfinite(draws)
    n = finite.sum(axis=0)
    v = np.where(finite, to_z(np.where(finite, draws, 0.0)) if fisher_z else draws, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, v.sum(axis=0) / n, np.nan)
    return (np.tanh(mean) if fisher_z else mean), n


# --------------------------------------------------------------------------------------------------
# frame index sets: circular shifts and (code-faithful) random permutations


def min_shift_frames(*, min_shift_s: float, frame_rate_hz: float) -> int:
    """The minimum circular shift in frames: ceil(min_shift_s · frame_rate_hz), at least 1."""
    if not (frame_rate_hz > 0 and min_shift_s >= 0):
        raise ValueError(f"need frame_rate_hz > 0 and min_shift_s ≥ 0, got {frame_rate_hz}, {min_shift_s}")
    # a tiny epsilon so 1.0 s × 50 Hz is 50 frames, not 51 from float noise
    return max(1, int(np.ceil(min_shift_s * frame_rate_hz - 1e-9)))


def draw_circular_shifts(
    *,
    n_frames: int,
    frame_rate_hz: float,
    min_shift_s: float = 1.0,
    n_shifts: int = 200,
    min_distinct_shifts: int = 10,
    rng: np.random.Generator,
) -> np.ndarray:
    """Shifts drawn uniformly (with replacement) from [m, T − m], m = :func:`min_shift_frames`.

    Both directions are covered because a shift of k forward is T − k backward. When fewer than
    ``min_distinct_shifts`` shifts are admissible (sentence shorter than about 2m frames) an empty array
    is returned and the null is NaN: a handful of neighbouring shifts gives nearly identical scores,
    and a p-value from them is meaningless (e.g. one admissible shift → p is 1/(B+1) or 1).
    """
    m = min_shift_frames(min_shift_s=min_shift_s, frame_rate_hz=frame_rate_hz)
    if n_frames - 2 * m + 1 < max(1, min_distinct_shifts):
        return np.empty(0, dtype=np.int64)
    return rng.integers(m, n_frames - m + 1, size=n_shifts, dtype=np.int64)


def circular_shift_indices(shifts: np.ndarray, n_frames: int) -> np.ndarray:
    """(B, T) frame indices; ``Y[idx[b]]`` equals ``np.roll(Y, shifts[b], axis=0)``."""
    shifts = np.asarray(shifts, dtype=np.int64).reshape(-1, 1)
    return (np.arange(n_frames, dtype=np.int64)[None, :] - shifts) % n_frames


def draw_frame_permutations(*, n_frames: int, n_perm: int = 500, rng: np.random.Generator) -> np.ndarray:
    """(B, T) independent random permutations of the frames (the paper's code, unseeded there)."""
    return np.argsort(rng.random((n_perm, n_frames)), axis=1)


def null_scores(
    *,
    eeg: np.ndarray,
    model: np.ndarray,
    indices: np.ndarray,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    indexed_score: IndexedScore | None = None,
    chunk: int = 64,
) -> np.ndarray:
    """Scores of the EEG against the model features re-indexed in time, one per row of ``indices``.

    ``indexed_score``, when given, gets all of ``indices`` at once and is used instead of ``model[idx]``.
    """
    eeg = np.asarray(eeg)
    model = np.asarray(model)
    if eeg.shape[0] != model.shape[0]:
        raise ValueError(
            f"EEG and model must have the same number of frames: {eeg.shape[0]} vs {model.shape[0]}"
        )
    indices = np.asarray(indices, dtype=np.int64)
    if indices.shape[0] == 0:
        return np.empty(0)
    if indexed_score is not None:
        vals = np.asarray(indexed_score(eeg, model, indices), dtype=float).ravel()
        if vals.shape[0] != indices.shape[0]:
            raise ValueError(
                f"indexed_score returned {vals.shape[0]} scores for {indices.shape[0]} re-indexings"
            )
        return vals
    if batch_score is not None:
        parts = [
            np.asarray(batch_score(eeg, model[indices[i : i + chunk]]), dtype=float).ravel()
            for i in range(0, indices.shape[0], chunk)
        ]
        return np.concatenate(parts)
    if score is None:
        raise ValueError("pass score or batch_score")
    return np.array([score(eeg, model[idx]) for idx in indices], dtype=float)


def _observed(
    eeg: np.ndarray,
    model: np.ndarray,
    score: Score | None,
    batch_score: BatchScore | None,
    indexed_score: IndexedScore | None = None,
) -> float:
    if score is not None:
        return float(score(eeg, model))
    if batch_score is not None:
        return float(np.asarray(batch_score(eeg, np.asarray(model)[None]), dtype=float).ravel()[0])
    if indexed_score is not None:
        identity = np.arange(np.asarray(model).shape[0], dtype=np.int64)[None]
        return float(np.asarray(indexed_score(eeg, model, identity), dtype=float).ravel()[0])
    raise ValueError("pass score, batch_score or indexed_score")


def _null_at_indices(
    *,
    eeg: np.ndarray,
    model: np.ndarray,
    indices: np.ndarray,
    observed: float | None,
    score: Score | None,
    batch_score: BatchScore | None,
    indexed_score: IndexedScore | None,
) -> NullResult:
    """Observed score (computed unless given) against the scores of the model re-indexed by ``indices``."""
    obs = _observed(eeg, model, score, batch_score, indexed_score) if observed is None else float(observed)
    return summarize_null(
        obs,
        null_scores(eeg=eeg, model=model, indices=indices, score=score, batch_score=batch_score,
                    indexed_score=indexed_score),
    )


def circular_shift_null(
    *,
    eeg: np.ndarray,
    model: np.ndarray,
    frame_rate_hz: float,
    rng: np.random.Generator,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    indexed_score: IndexedScore | None = None,
    observed: float | None = None,
    min_shift_s: float = 1.0,
    n_shifts: int = 200,
    min_distinct_shifts: int = 10,
) -> NullResult:
    """Circular time-shift null for one sentence: score(EEG, roll(model, k)) for random k ≥ min shift.

    ``eeg`` (T, p) and ``model`` (T, q) share the frame axis. ``observed`` defaults to score(eeg, model).
    Too short a sentence (see :func:`draw_circular_shifts`) gives NaN null statistics and p-value.
    ``indexed_score`` (optional) scores all shifts from the unshifted model features at once.
    The rotation joins the model's last frame to its first; for very smooth signals this seam lowers
    the null slightly (measured in tests/test_nulls.py), so prefer long sentences and rates where the
    signals' correlation time is short relative to T.
    """
    n_frames = np.asarray(model).shape[0]
    shifts = draw_circular_shifts(
        n_frames=n_frames,
        frame_rate_hz=frame_rate_hz,
        min_shift_s=min_shift_s,
        n_shifts=n_shifts,
        min_distinct_shifts=min_distinct_shifts,
        rng=rng,
    )
    idx = circular_shift_indices(shifts, n_frames)
    return _null_at_indices(eeg=eeg, model=model, indices=idx, observed=observed, score=score,
                            batch_score=batch_score, indexed_score=indexed_score)


def frame_permutation_null_codefaithful(
    *,
    eeg: np.ndarray,
    model: np.ndarray,
    rng: np.random.Generator,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    indexed_score: IndexedScore | None = None,
    observed: float | None = None,
    n_perm: int = 500,
) -> NullResult:
    """The paper's frame-permutation null (code-faithful column only; anti-conservative, bug B19).

    Permuting the model's frames permutes the rows and columns of its RDM jointly, as the code does.
    ``indexed_score`` (optional) scores all permutations from the unpermuted model features at once.
    """
    n_frames = np.asarray(model).shape[0]
    idx = draw_frame_permutations(n_frames=n_frames, n_perm=n_perm, rng=rng)
    return _null_at_indices(eeg=eeg, model=model, indices=idx, observed=observed, score=score,
                            batch_score=batch_score, indexed_score=indexed_score)


def draw_mirror_shifts(*, n_frames: int, frame_rate_hz: float, min_shift_s: float = 1.0, n_shifts: int = 200,
                       min_distinct_shifts: int = 10, rng: np.random.Generator) -> np.ndarray:
    """(B, T) seam-free shift indices: windows of T frames from the mirrored series [Y, Y reversed].

    The mirrored series is 2T frames long and circularly continuous (its end joins its start at the same
    frame), so every window of it is a continuous stretch of Y, read forwards or backwards around one
    turning point: unlike a plain circular shift there is no jump where the last frame meets the first,
    which made every shifted copy less similar to a smooth partner (anti-conservative). Offsets are
    drawn from [m, 2T − m], m = :func:`min_shift_frames`; the identity is offset 0 and offset T is the
    time reversal. Too short a sentence (fewer than ``min_distinct_shifts`` offsets) gives (0, T).
    Indices repeat frames, so these draws are scored on materialised copies, not by re-indexing.
    """
    m = min_shift_frames(min_shift_s=min_shift_s, frame_rate_hz=frame_rate_hz)
    if 2 * n_frames - 2 * m + 1 < max(1, min_distinct_shifts) or n_frames < 2:
        return np.empty((0, n_frames), dtype=np.int64)
    offsets = rng.integers(m, 2 * n_frames - m + 1, size=n_shifts, dtype=np.int64)
    mirrored = np.concatenate([np.arange(n_frames), np.arange(n_frames)[::-1]])
    return mirrored[(offsets[:, None] + np.arange(n_frames)[None, :]) % (2 * n_frames)]


def draw_mismatch_partners(*, n_frames: Mapping[int, int], sentence_id: int, n_partners: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Partner sentences for one sentence's mismatch null: others with at least as many frames.

    ``n_frames`` maps every candidate sentence to its number of usable frames. At most ``n_partners``
    are drawn without replacement (all of them when fewer qualify), sorted; the longest sentence has none.
    """
    own = n_frames[sentence_id]
    pool = np.array(sorted(s for s, t in n_frames.items() if s != sentence_id and t >= own), dtype=np.int64)
    if pool.size > n_partners:
        pool = np.sort(rng.choice(pool, size=n_partners, replace=False))
    return pool


# --------------------------------------------------------------------------------------------------
# fast path for RSA-Spearman on precomputed RDMs (many electrodes, many permutations)


def _square_from_condensed(vec: np.ndarray, n_frames: int) -> np.ndarray:
    iu, ju = np.triu_indices(n_frames, k=1)
    sq = np.zeros((n_frames, n_frames))
    sq[iu, ju] = vec
    sq[ju, iu] = vec
    return sq


def n_frames_from_condensed(n_pairs: int) -> int:
    """T such that T(T − 1)/2 = n_pairs (condensed RDM length, scipy ``squareform`` order)."""
    t = int(np.rint((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if t * (t - 1) // 2 != n_pairs:
        raise ValueError(f"{n_pairs} is not the length of a condensed RDM")
    return t


def rdm_spearman_permutation_null(
    *, eeg_rdm: np.ndarray, model_rdm: np.ndarray, indices: np.ndarray, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman RSA of each EEG RDM against the model RDM under frame re-indexings.

    ``eeg_rdm`` is (N,) or (C, N) condensed (row-major upper triangle, as ``scipy.spatial.distance.pdist``);
    ``model_rdm`` is (N,); ``indices`` (B, T) from :func:`circular_shift_indices` or
    :func:`draw_frame_permutations`. Re-indexing the model frames permutes its RDM's rows and columns
    jointly, which leaves the multiset of values (and so the ranks) unchanged: both sides are ranked
    once and each null score is a dot product. Returns ``(observed (C,), null (C, B))`` (squeezed to
    ``()``/``(B,)`` for a single EEG RDM); constant RDMs give NaN.
    """
    eeg_rdm = np.asarray(eeg_rdm, dtype=float)
    single = eeg_rdm.ndim == 1
    e = standardized_ranks(np.atleast_2d(eeg_rdm))
    m = standardized_ranks(np.asarray(model_rdm, dtype=float))
    n_frames = n_frames_from_condensed(m.size)
    if e.shape[1] != m.size:
        raise ValueError(f"EEG RDMs have {e.shape[1]} pairs, the model RDM {m.size}")
    observed = e @ m
    flat_sq = _square_from_condensed(m, n_frames).ravel()
    # int32 flat indices into the square RDM: the gathers dominate the cost, and this halves their traffic
    iu, ju = (a.astype(np.int32) for a in np.triu_indices(n_frames, k=1))
    indices = np.asarray(indices).astype(np.int32)
    null = np.empty((e.shape[0], indices.shape[0]))
    for start in range(0, indices.shape[0], chunk):
        idx = indices[start : start + chunk]
        permuted = flat_sq.take(idx[:, iu] * np.int32(n_frames) + idx[:, ju])  # (b, N): RDM of model[idx]
        null[:, start : start + chunk] = e @ permuted.T
    if single:
        return observed[0], null[0]
    return observed, null


# --------------------------------------------------------------------------------------------------
# sentence mismatch


def resample_time(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Linear interpolation of (T, f) onto ``n_frames`` frames spanning the same interval.

    Frame centres are placed at (t + ½)/T of the sentence (``align_corners=False`` convention) and the
    ends are held constant, so resampling to the same T is the identity.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    t_old = (np.arange(x.shape[0]) + 0.5) / x.shape[0]
    t_new = (np.arange(n_frames) + 0.5) / n_frames
    pos = np.interp(t_new, t_old, np.arange(x.shape[0], dtype=float))
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[0] - 1)
    w = (pos - lo)[:, None]
    return (1.0 - w) * x[lo] + w * x[hi]


def common_length(lengths: Sequence[int] | np.ndarray) -> int:
    """Default common number of frames for ``length_mode="interpolate"``: the median sentence length."""
    return int(np.round(np.median(np.asarray(lengths, dtype=float))))


def _check_sentences(
    eeg: Sequence[np.ndarray], model: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(eeg) != len(model):
        raise ValueError(f"{len(eeg)} EEG sentences but {len(model)} model sentences")
    xs = [np.asarray(x, dtype=float) for x in eeg]
    ys = [np.asarray(y, dtype=float) for y in model]
    for s, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"sentence {s}: EEG has {x.shape[0]} frames, model {y.shape[0]}")
    return xs, ys


@dataclass(frozen=True)
class MismatchScores:
    """Per sentence: its own score and its scores against other sentences' model features."""

    observed: np.ndarray
    null: list[np.ndarray]
    partners: list[np.ndarray]
    n_frames: np.ndarray
    length_mode: str


def _pool(n: int, s: int, lengths: np.ndarray, mode: LengthMode) -> np.ndarray:
    others = np.delete(np.arange(n), s)
    if mode == "crop":
        # only sentences at least as long can lend an equal-length stretch from their onset
        return others[lengths[others] >= lengths[s]]
    return others


def sentence_mismatch_scores(
    *,
    eeg: Sequence[np.ndarray],
    model: Sequence[np.ndarray],
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    length_mode: LengthMode = "crop",
    n_common: int | None = None,
    n_mismatch: int | None = None,
    rng: np.random.Generator | None = None,
) -> MismatchScores:
    """Score the EEG of every sentence s against the model features of other sentences s'.

    Sentences differ in length T, handled by ``length_mode``:

    * ``"crop"`` (default): s is paired only with sentences s' with T_s' ≥ T_s, whose model features are
      cut to their first T_s frames (sentence-onset-locked, like s itself). Frame rate, smoothness and
      T are exactly those of the observed score, which stays the plain score(EEG_s, model_s). The
      longest sentence has no partner (NaN null).
    * ``"interpolate"``: every EEG and model matrix is resampled to ``n_common`` frames (default: the
      median length) by :func:`resample_time` and the observed score is recomputed at that resolution.
      Resampling stretches each sentence by its own factor; own-sentence pairs share the factor and
      mismatched pairs do not, which makes the null too low for smooth signals when lengths vary
      (anti-conservative; see tests/test_nulls.py). Kept for comparison only.

    ``n_mismatch`` caps the partners per sentence (drawn with ``rng`` without replacement).
    """
    if length_mode not in ("crop", "interpolate"):
        raise ValueError(f"length_mode must be 'crop' or 'interpolate', not {length_mode!r}")
    if score is None and batch_score is None:
        raise ValueError("pass score or batch_score")
    xs, ys = _check_sentences(eeg, model)
    lengths = np.array([x.shape[0] for x in xs], dtype=np.int64)
    n = len(xs)
    if length_mode == "interpolate":
        t = common_length(lengths) if n_common is None else int(n_common)
        xs = [resample_time(x, t) for x in xs]
        ys = [resample_time(y, t) for y in ys]
        n_frames = np.full(n, t, dtype=np.int64)
    else:
        n_frames = lengths
    observed = np.full(n, np.nan)
    null: list[np.ndarray] = []
    partners: list[np.ndarray] = []
    for s in range(n):
        pool = _pool(n, s, n_frames, length_mode)
        if n_mismatch is not None and pool.size > n_mismatch:
            if rng is None:
                raise ValueError("n_mismatch subsampling needs an rng")
            pool = np.sort(rng.choice(pool, size=n_mismatch, replace=False))
        t_s = n_frames[s]
        # own model features first, so one batched call gives the observed and the null scores
        stack = [ys[s], *(ys[o][:t_s] for o in pool)]
        if batch_score is not None:
            vals = np.asarray(batch_score(xs[s], np.stack(stack)), dtype=float).ravel()
        else:
            vals = np.array([score(xs[s], y) for y in stack], dtype=float)  # type: ignore[misc]
        observed[s] = vals[0]
        null.append(vals[1:])
        partners.append(pool)
    return MismatchScores(observed, null, partners, n_frames, length_mode)


def sentence_mismatch_null_per_sentence(scores: MismatchScores) -> list[NullResult]:
    """Per sentence: observed score against its mismatch scores (p ≥ 1/(number of partners + 1))."""
    return [summarize_null(o, nl) for o, nl in zip(scores.observed, scores.null, strict=True)]


def _crop_or_resample(x: np.ndarray, n_frames: int, length_mode: LengthMode) -> np.ndarray | None:
    if length_mode == "interpolate":
        return resample_time(x, n_frames)
    return x[:n_frames] if x.shape[0] >= n_frames else None


def mismatch_score_matrix(
    *,
    eeg: Sequence[np.ndarray],
    model: Sequence[np.ndarray],
    score: Score | None = None,
    score_matrix: ScoreMatrix | None = None,
    length_mode: LengthMode = "crop",
    n_common: int | None = None,
) -> np.ndarray:
    """(S, S) scores at one common length: entry [s, s'] = score(EEG_s, model_s'), diagonal = own sentence.

    ``"crop"`` (default): every sentence is cut to its first ``n_common`` frames (default: the shortest
    sentence); sentences shorter than ``n_common`` get NaN rows and columns. No stretching, so own and
    mismatched pairs have identical frame rate and smoothness, and any permutation of the model
    sentences gives a statistic with the same null distribution. ``"interpolate"`` resamples to
    ``n_common`` (default: median length) instead — biased for smooth signals when lengths vary,
    see :func:`sentence_mismatch_scores`.
    """
    xs, ys = _check_sentences(eeg, model)
    lengths = np.array([x.shape[0] for x in xs])
    if n_common is None:
        n_common = int(lengths.min()) if length_mode == "crop" else common_length(lengths)
    cx = [_crop_or_resample(x, n_common, length_mode) for x in xs]
    cy = [_crop_or_resample(y, n_common, length_mode) for y in ys]
    used = np.array([c is not None for c in cx])
    out = np.full((len(xs), len(xs)), np.nan)
    if used.sum() == 0:
        return out
    xu = np.stack([c for c in cx if c is not None])
    yu = np.stack([c for c in cy if c is not None])
    if score_matrix is not None:
        block = np.asarray(score_matrix(xu, yu), dtype=float)
    elif score is not None:
        block = np.array([[score(x, y) for y in yu] for x in xu], dtype=float)
    else:
        raise ValueError("pass score or score_matrix")
    out[np.ix_(used, used)] = block
    return out


def draw_derangements(*, n_items: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """(B, S) random permutations without fixed points: every EEG sentence gets another sentence's model."""
    if n_items < 2:
        return np.empty((0, n_items), dtype=np.int64)
    out: list[np.ndarray] = []
    have = 0
    while have < n_perm:
        # about 1/e of uniform permutations are derangements: oversample, keep those, repeat if short
        cand = np.argsort(rng.random((max(16, 3 * (n_perm - have)), n_items)), axis=1)
        keep = cand[np.all(cand != np.arange(n_items), axis=1)]
        out.append(keep)
        have += keep.shape[0]
    return np.concatenate(out)[:n_perm]


def sentence_mismatch_null(
    scores: np.ndarray, *, rng: np.random.Generator, n_perm: int = 1000, derangements: bool = False
) -> NullResult:
    """Mismatch null of the mean over sentences from a :func:`mismatch_score_matrix`.

    Observed: mean_s scores[s, s]; null draw: mean_s scores[s, π(s)] for a random permutation π of the
    sentences with a finite diagonal (NaN rows/columns, e.g. too-short sentences, are left out).
    Uniform permutations (default) form a group that contains the identity, which makes the test exact;
    ``derangements=True`` pairs every EEG sentence with another sentence's model only, which drops the
    ~1/S own pairs from the null but was anti-conservative with 10 sentences (7 % at α = 0.05).
    """
    scores = np.asarray(scores, dtype=float)
    diag = np.diag(scores)
    use = np.flatnonzero(np.isfinite(diag))
    if use.size < 2:
        return summarize_null(float(diag[use].mean()) if use.size else np.nan, np.empty(0))
    sub = scores[np.ix_(use, use)]
    if derangements:
        perms = draw_derangements(n_items=use.size, n_perm=n_perm, rng=rng)
    else:
        perms = np.argsort(rng.random((n_perm, use.size)), axis=1)
    vals = sub[np.arange(use.size)[None, :], perms]
    finite = np.isfinite(vals)
    # a degenerate (NaN) mismatched pair is skipped in that draw's mean
    with np.errstate(invalid="ignore", divide="ignore"):
        null = np.where(finite, vals, 0.0).sum(axis=1) / finite.sum(axis=1)
    return summarize_null(float(np.mean(sub.diagonal())), null)


# --------------------------------------------------------------------------------------------------
# all nulls of one (subject, model, layer, metric) unit, one row per sentence


def sentence_null_indices(
    *,
    n_frames: int,
    frame_rate_hz: float,
    seed: int,
    sentence_id: int,
    min_shift_s: float = 1.0,
    n_shifts: int = 200,
    n_perm_codefaithful: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """The (B_shift, T) circular-shift and (B_perm, T) frame-permutation indices of one sentence.

    These are the draws of :func:`sentence_null_table` (and :func:`circular_shift_null` /
    :func:`frame_permutation_null_codefaithful` with its per-sentence generators): seeded with
    ``derive_seed(seed, "shift", sentence_id)`` and ``derive_seed(seed, "frameperm", sentence_id)``, so
    they depend only on the unit seed, the sentence and its length. Too short a sentence gives no shifts
    (a (0, T) array); ``n_perm_codefaithful = 0`` gives no permutations.
    """
    shifts = draw_circular_shifts(
        n_frames=n_frames, frame_rate_hz=frame_rate_hz, min_shift_s=min_shift_s, n_shifts=n_shifts,
        rng=np.random.default_rng(derive_seed(seed, "shift", sentence_id)),
    )  # fmt: skip
    if n_perm_codefaithful > 0:
        perms = draw_frame_permutations(
            n_frames=n_frames, n_perm=n_perm_codefaithful,
            rng=np.random.default_rng(derive_seed(seed, "frameperm", sentence_id)),
        )  # fmt: skip
    else:
        perms = np.empty((0, n_frames), dtype=np.int64)
    return circular_shift_indices(shifts, n_frames), perms


def _unit_mismatch(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    *,
    seed: int,
    score: Score | None,
    batch_score: BatchScore | None,
    n_mismatch: int | None,
) -> tuple[np.ndarray, list[NullResult]]:
    """Observed scores and per-sentence mismatch nulls of one unit (one rng stream for the subsampling)."""
    mism = sentence_mismatch_scores(
        eeg=xs,
        model=ys,
        score=score,
        batch_score=batch_score,
        n_mismatch=n_mismatch,
        rng=np.random.default_rng(derive_seed(seed, "mismatch")),
    )
    return mism.observed, sentence_mismatch_null_per_sentence(mism)


def _null_row(
    sid: int,
    observed: float,
    shift_null: np.ndarray,
    perm_null: np.ndarray | None,
    mismatch: NullResult,
    baseline: str,
) -> dict[str, float]:
    shift = summarize_null(observed, shift_null)
    p_perm = summarize_null(observed, perm_null).p_value if perm_null is not None else np.nan
    base = mismatch if baseline == "mismatch" else shift
    return {
        "sentence_id": sid,
        "value": observed,
        "null_mean": base.null_mean,
        "null_sd": base.null_sd,
        "p_shift": shift.p_value,
        "p_mismatch": mismatch.p_value,
        "p_frameperm_codefaithful": p_perm,
        "shift_null_mean": shift.null_mean,
        "shift_null_sd": shift.null_sd,
        "mismatch_null_mean": mismatch.null_mean,
        "mismatch_null_sd": mismatch.null_sd,
        "n_mismatch": mismatch.n_null,
    }


def sentence_null_table(
    *,
    eeg: Mapping[int, np.ndarray],
    model: Mapping[int, np.ndarray],
    frame_rate_hz: float,
    seed: int,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    indexed_score: IndexedScore | None = None,
    min_shift_s: float = 1.0,
    n_shifts: int = 200,
    n_mismatch: int | None = None,
    n_perm_codefaithful: int = 500,
    baseline: Literal["mismatch", "shift"] = "mismatch",
) -> pd.DataFrame:
    """Per sentence: the score and its circular-shift, mismatch and code-faithful frame-permutation nulls.

    ``eeg[sid]`` (T, p) and ``model[sid]`` (T, q) are frame-aligned features of one subject and one
    layer. Columns: sentence_id, value, null_mean, null_sd (of the ``baseline`` null), p_shift,
    p_mismatch, p_frameperm_codefaithful, shift_null_mean, shift_null_sd, mismatch_null_mean,
    mismatch_null_sd, n_mismatch. Mismatch uses ``length_mode="crop"`` (partners at least as long,
    cut to the sentence's length), so its null mean is an unbiased H0 baseline at the sentence's own T;
    the default baseline is therefore the mismatch null. Shift and frame-permutation draws are seeded
    per sentence from ``seed`` (:func:`sentence_null_indices`), so they do not depend on the other
    sentences; the ``n_mismatch`` subsampling of partners uses one stream for the whole unit.
    Observed and mismatch scores use ``score``/``batch_score``; the shift and frame-permutation draws use
    ``indexed_score`` when given (no re-indexed copies of the model features), else those.
    """
    sids = sorted(int(s) for s in eeg if s in model)
    xs = [np.asarray(eeg[s], dtype=float) for s in sids]
    ys = [np.asarray(model[s], dtype=float) for s in sids]
    observed, per_mismatch = _unit_mismatch(
        xs, ys, seed=seed, score=score, batch_score=batch_score, n_mismatch=n_mismatch
    )
    rows = []
    for i, sid in enumerate(sids):
        shift_idx, perm_idx = sentence_null_indices(
            n_frames=xs[i].shape[0], frame_rate_hz=frame_rate_hz, seed=seed, sentence_id=sid,
            min_shift_s=min_shift_s, n_shifts=n_shifts, n_perm_codefaithful=n_perm_codefaithful,
        )  # fmt: skip
        draws = {"score": score, "batch_score": batch_score, "indexed_score": indexed_score}
        shift_null = null_scores(eeg=xs[i], model=ys[i], indices=shift_idx, **draws)
        perm_null = (
            null_scores(eeg=xs[i], model=ys[i], indices=perm_idx, **draws)
            if n_perm_codefaithful > 0
            else None
        )
        rows.append(_null_row(sid, float(observed[i]), shift_null, perm_null, per_mismatch[i], baseline))
    return pd.DataFrame(rows)


def layer_sentence_null_tables(
    *,
    eeg: Mapping[int, np.ndarray],
    model: Mapping[int, np.ndarray],
    seeds: Sequence[int],
    frame_rate_hz: float,
    layer_indexed_score: LayerIndexedScore,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    min_shift_s: float = 1.0,
    n_shifts: int = 200,
    n_mismatch: int | None = None,
    n_perm_codefaithful: int = 500,
    baseline: Literal["mismatch", "shift"] = "mismatch",
) -> list[pd.DataFrame]:
    """:func:`sentence_null_table` for every layer of one timebase, re-indexing nulls batched over layers.

    ``model[sid]`` is (L, T, q): the L layers of sentence ``sid``; layer l uses the unit seed
    ``seeds[l]``. Returns L tables equal to ``sentence_null_table(eeg=eeg, model={s: model[s][l]},
    seed=seeds[l], ...)``: the same per-layer, per-sentence shifts and permutations, but all of a
    sentence's draws (every layer, shifts and permutations together) come from one
    ``layer_indexed_score(X, Ys (L,T,q), idx (L,B,T)) -> (L,B)`` call. Observed and mismatch scores use
    ``score``/``batch_score`` per layer, as in :func:`sentence_null_table`.
    """
    sids = sorted(int(s) for s in eeg if s in model)
    xs = [np.asarray(eeg[s], dtype=float) for s in sids]
    ys = [np.asarray(model[s], dtype=float) for s in sids]
    n_layers = len(seeds)
    for sid, y in zip(sids, ys, strict=True):
        if y.ndim != 3 or y.shape[0] != n_layers:
            raise ValueError(
                f"sentence {sid}: model must be ({n_layers}, T, q) for {n_layers} seeds; got {y.shape}"
            )
    units = [
        _unit_mismatch(xs, [y[li] for y in ys], seed=seeds[li], score=score, batch_score=batch_score,
                       n_mismatch=n_mismatch)
        for li in range(n_layers)
    ]  # fmt: skip
    rows: list[list[dict[str, float]]] = [[] for _ in range(n_layers)]
    for i, sid in enumerate(sids):
        n_frames = xs[i].shape[0]
        drawn = [
            sentence_null_indices(
                n_frames=n_frames, frame_rate_hz=frame_rate_hz, seed=seeds[li], sentence_id=sid,
                min_shift_s=min_shift_s, n_shifts=n_shifts, n_perm_codefaithful=n_perm_codefaithful,
            )
            for li in range(n_layers)
        ]  # fmt: skip
        # every layer gets the same number of shifts: it depends only on T and the settings
        n_shift = drawn[0][0].shape[0]
        idx = np.stack([np.concatenate([s, p]) for s, p in drawn]) if drawn else np.empty((0, 0, n_frames))
        if idx.shape[1]:
            vals = np.asarray(layer_indexed_score(xs[i], ys[i], idx), dtype=float)
            if vals.shape != idx.shape[:2]:
                raise ValueError(f"layer_indexed_score returned shape {vals.shape}, expected {idx.shape[:2]}")
        else:
            vals = np.empty((n_layers, 0))
        for li in range(n_layers):
            observed, per_mismatch = units[li]
            perm_null = vals[li, n_shift:] if n_perm_codefaithful > 0 else None
            rows[li].append(
                _null_row(sid, float(observed[i]), vals[li, :n_shift], perm_null, per_mismatch[i], baseline)
            )
    return [pd.DataFrame(r) for r in rows]
