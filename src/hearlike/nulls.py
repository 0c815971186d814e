"""Null distributions for one model–EEG similarity score that respect temporal autocorrelation.

Both signals of a sentence are smooth in time, so two *independent* sentences already give positive
RSA/CKA (near-diagonal RDM entries are small on both sides). A valid null must keep that structure:

* **circular shift** – the model features are rotated in time by at least ``min_shift_s`` (default 1 s),
  which keeps each signal's autocorrelation and breaks only their alignment (one sentence suffices);
* **sentence mismatch** – the EEG of sentence s is scored against the model features of other
  sentences; all sentences are first resampled to one common number of frames by linear interpolation
  along time (observed and null scores alike), so the test needs several sentences;
* **frame permutation** (the paper's code, METHODS §6.1, bug B19) – shuffling frames destroys the
  temporal structure of one side only and is badly anti-conservative; kept only as a column labelled
  ``codefaithful``.

Every function takes the score as a callable ``score(X (T,p), Y (T,q)) -> float`` so the nulls do not
depend on :mod:`hearlike.metrics`. Optional batched callables make the nulls fast; their shapes follow
``hearlike.metrics.compute_battery`` (EEG batch × model batch), e.g.
``batch_score=lambda X, Ys: compute_battery(X[None], Ys, metrics=[m])[m][0]`` and
``score_matrix=lambda Xs, Ys: compute_battery(Xs, Ys, metrics=[m])[m]``.
For RSA-Spearman, :func:`rdm_spearman_permutation_null` and :func:`rdm_spearman_score_matrix` work on
precomputed RDM vectors (all electrodes at once) and rank each RDM only once.

All p-values are one-sided (larger score = more alignment): p = (#{null ≥ observed} + 1) / (B + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hearlike.stats import standardized_ranks

Score = Callable[[np.ndarray, np.ndarray], float]
#: batch_score(X (T,p), Ys (B,T,q)) -> (B,)
BatchScore = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: score_matrix(Xs (S,T,p), Ys (S,T,q)) -> (S,S), entry [s, s'] = score(Xs[s], Ys[s'])
ScoreMatrix = Callable[[np.ndarray, np.ndarray], np.ndarray]


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
        return {f"{prefix}_null_mean": self.null_mean, f"{prefix}_null_sd": self.null_sd, f"p_{prefix}": self.p_value}


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


# --------------------------------------------------------------------------------------------------
# frame index sets: circular shifts and (code-faithful) random permutations


def min_shift_frames(*, min_shift_s: float, frame_rate_hz: float) -> int:
    """The minimum circular shift in frames: ceil(min_shift_s · frame_rate_hz), at least 1."""
    if not (frame_rate_hz > 0 and min_shift_s >= 0):
        raise ValueError(f"need frame_rate_hz > 0 and min_shift_s ≥ 0, got {frame_rate_hz}, {min_shift_s}")
    # a tiny epsilon so 1.0 s × 50 Hz is 50 frames, not 51 from float noise
    return max(1, int(np.ceil(min_shift_s * frame_rate_hz - 1e-9)))


def draw_circular_shifts(
    *, n_frames: int, frame_rate_hz: float, min_shift_s: float = 1.0, n_shifts: int = 200, rng: np.random.Generator
) -> np.ndarray:
    """Shifts drawn uniformly (with replacement) from [m, T − m], m = :func:`min_shift_frames`.

    Both directions are covered because a shift of k forward is T − k backward. Returns an empty array
    when the sentence is shorter than 2m frames (no admissible shift; the null is then NaN).
    """
    m = min_shift_frames(min_shift_s=min_shift_s, frame_rate_hz=frame_rate_hz)
    if n_frames - m < m:
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
    chunk: int = 64,
) -> np.ndarray:
    """Scores of the EEG against the model features re-indexed in time, one per row of ``indices``."""
    eeg = np.asarray(eeg)
    model = np.asarray(model)
    if eeg.shape[0] != model.shape[0]:
        raise ValueError(f"EEG and model must have the same number of frames: {eeg.shape[0]} vs {model.shape[0]}")
    indices = np.asarray(indices, dtype=np.int64)
    if indices.shape[0] == 0:
        return np.empty(0)
    if batch_score is not None:
        parts = [np.asarray(batch_score(eeg, model[indices[i : i + chunk]]), dtype=float).ravel()
                 for i in range(0, indices.shape[0], chunk)]
        return np.concatenate(parts)
    if score is None:
        raise ValueError("pass score or batch_score")
    return np.array([score(eeg, model[idx]) for idx in indices], dtype=float)


def _observed(eeg: np.ndarray, model: np.ndarray, score: Score | None, batch_score: BatchScore | None) -> float:
    if score is not None:
        return float(score(eeg, model))
    if batch_score is None:
        raise ValueError("pass score or batch_score")
    return float(np.asarray(batch_score(eeg, np.asarray(model)[None]), dtype=float).ravel()[0])


def circular_shift_null(
    *,
    eeg: np.ndarray,
    model: np.ndarray,
    frame_rate_hz: float,
    rng: np.random.Generator,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    observed: float | None = None,
    min_shift_s: float = 1.0,
    n_shifts: int = 200,
) -> NullResult:
    """Circular time-shift null for one sentence: score(EEG, roll(model, k)) for random k ≥ min shift.

    ``eeg`` (T, p) and ``model`` (T, q) share the frame axis. ``observed`` defaults to score(eeg, model).
    A sentence shorter than 2 · min shift gives NaN null statistics and p-value.
    """
    n_frames = np.asarray(model).shape[0]
    obs = _observed(eeg, model, score, batch_score) if observed is None else float(observed)
    shifts = draw_circular_shifts(
        n_frames=n_frames, frame_rate_hz=frame_rate_hz, min_shift_s=min_shift_s, n_shifts=n_shifts, rng=rng
    )
    idx = circular_shift_indices(shifts, n_frames)
    return summarize_null(obs, null_scores(eeg=eeg, model=model, indices=idx, score=score, batch_score=batch_score))


def frame_permutation_null_codefaithful(
    *,
    eeg: np.ndarray,
    model: np.ndarray,
    rng: np.random.Generator,
    score: Score | None = None,
    batch_score: BatchScore | None = None,
    observed: float | None = None,
    n_perm: int = 500,
) -> NullResult:
    """The paper's frame-permutation null (code-faithful column only; anti-conservative, bug B19).

    Permuting the model's frames permutes the rows and columns of its RDM jointly, as the code does.
    """
    n_frames = np.asarray(model).shape[0]
    obs = _observed(eeg, model, score, batch_score) if observed is None else float(observed)
    idx = draw_frame_permutations(n_frames=n_frames, n_perm=n_perm, rng=rng)
    return summarize_null(obs, null_scores(eeg=eeg, model=model, indices=idx, score=score, batch_score=batch_score))


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
    sq = _square_from_condensed(m, n_frames)
    iu, ju = np.triu_indices(n_frames, k=1)
    indices = np.asarray(indices, dtype=np.int64)
    null = np.empty((e.shape[0], indices.shape[0]))
    for start in range(0, indices.shape[0], chunk):
        idx = indices[start : start + chunk]
        permuted = sq[idx[:, iu], idx[:, ju]]  # (b, N): RDM of model[idx] in condensed order
        null[:, start : start + chunk] = e @ permuted.T
    if single:
        return observed[0], null[0]
    return observed, null


def rdm_spearman_score_matrix(*, eeg_rdms: np.ndarray, model_rdms: np.ndarray) -> np.ndarray:
    """(S, S) Spearman RSA of every EEG RDM (rows) against every model RDM (columns), one matrix product."""
    return standardized_ranks(np.asarray(eeg_rdms, dtype=float)) @ standardized_ranks(
        np.asarray(model_rdms, dtype=float)
    ).T


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


def common_length(lengths: Sequence[int]) -> int:
    """Default common number of frames for the mismatch null: the median sentence length."""
    return int(np.round(np.median(np.asarray(lengths, dtype=float))))


def mismatch_score_matrix(
    *,
    eeg: Sequence[np.ndarray],
    model: Sequence[np.ndarray],
    n_common: int | None = None,
    score: Score | None = None,
    score_matrix: ScoreMatrix | None = None,
) -> np.ndarray:
    """(S, S) scores of EEG of sentence s (rows) against model features of sentence s' (columns).

    Sentences differ in length, so every EEG and model matrix is first resampled to ``n_common`` frames
    (default: median length) by :func:`resample_time`; the diagonal is then the observed score *at the
    common resolution*, directly comparable with the off-diagonal (mismatched) scores.
    """
    if len(eeg) != len(model):
        raise ValueError(f"{len(eeg)} EEG sentences but {len(model)} model sentences")
    for s, (x, y) in enumerate(zip(eeg, model, strict=True)):
        if np.asarray(x).shape[0] != np.asarray(y).shape[0]:
            raise ValueError(f"sentence {s}: EEG has {np.asarray(x).shape[0]} frames, model {np.asarray(y).shape[0]}")
    t = common_length([np.asarray(x).shape[0] for x in eeg]) if n_common is None else int(n_common)
    xs = np.stack([resample_time(x, t) for x in eeg])
    ys = np.stack([resample_time(y, t) for y in model])
    if score_matrix is not None:
        return np.asarray(score_matrix(xs, ys), dtype=float)
    if score is None:
        raise ValueError("pass score or score_matrix")
    return np.array([[score(x, y) for y in ys] for x in xs], dtype=float)


def sentence_mismatch_null_per_sentence(
    scores: np.ndarray, *, n_mismatch: int | None = None, rng: np.random.Generator | None = None
) -> list[NullResult]:
    """Per sentence s: observed scores[s, s] against the null scores[s, s'] for s' ≠ s.

    The smallest attainable p-value is 1/S, so per-sentence p-values are only informative with many
    sentences. ``n_mismatch`` caps the number of other sentences (drawn with ``rng``).
    """
    scores = np.asarray(scores, dtype=float)
    n = scores.shape[0]
    out = []
    for s in range(n):
        others = np.delete(np.arange(n), s)
        if n_mismatch is not None and n_mismatch < others.size:
            if rng is None:
                raise ValueError("n_mismatch subsampling needs an rng")
            others = rng.choice(others, size=n_mismatch, replace=False)
        out.append(summarize_null(scores[s, s], scores[s, others]))
    return out


def draw_derangements(*, n_items: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """(B, S) random permutations without fixed points (every EEG sentence gets another sentence's model)."""
    if n_items < 2:
        return np.empty((0, n_items), dtype=np.int64)
    out: list[np.ndarray] = []
    have = 0
    while have < n_perm:
        # about 1/e of uniform permutations are derangements: oversample, keep those, repeat if short
        cand = np.argsort(rng.random((max(8, 3 * (n_perm - have)), n_items)), axis=1)
        keep = cand[np.all(cand != np.arange(n_items), axis=1)]
        out.append(keep)
        have += keep.shape[0]
    return np.concatenate(out)[:n_perm]


def sentence_mismatch_null(
    scores: np.ndarray, *, rng: np.random.Generator, n_perm: int = 1000
) -> NullResult:
    """Mismatch null of the mean over sentences: observed mean_s scores[s, s] vs mean_s scores[s, π(s)].

    π are random derangements; NaN sentences (degenerate scores) are skipped in every mean.
    """
    scores = np.asarray(scores, dtype=float)
    n = scores.shape[0]
    observed = float(np.nanmean(np.diag(scores))) if np.any(np.isfinite(np.diag(scores))) else np.nan
    perms = draw_derangements(n_items=n, n_perm=n_perm, rng=rng)
    if perms.shape[0] == 0:
        return summarize_null(observed, np.empty(0))
    vals = scores[np.arange(n)[None, :], perms]
    finite = np.isfinite(vals)
    # a draw whose sentences are all NaN is NaN and is dropped by summarize_null
    with np.errstate(invalid="ignore", divide="ignore"):
        null = np.where(finite, vals, 0.0).sum(axis=1) / finite.sum(axis=1)
    return summarize_null(observed, null)
