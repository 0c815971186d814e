"""Tri-modal Neighbourhood Consistency (TNC) and the paper's partial-correlation score (METHODS §8.3, §8.4; B25).

The abstract says negative-prosody sentences are *identified* with TNC; the released code's ``compute_tnc`` is a
partial-correlation ratio that identifies nothing (B25). This module implements the reconstruction of §8.4:

* sentences are described in three spaces — acoustic (A), EEG (E), model (M) — and compared with the correlation
  distance (1 − cosine of the row-centred descriptors);
* ``N_k^m(s)`` are the k nearest other sentences in space m. Distances equal to 12 decimals count as ties and
  are broken by the lower index, so neighbour sets never depend on sort internals;
* label consistency ``c_m(s)`` = share of ``N_k^m(s)`` with the label of s; ``TNC_label(s) = min_m c_m(s)``;
* a sentence is negative-prosody iff provisionally negative and ``TNC_label ≥ τ``; the control group is the
  provisionally non-negative sentences with ``TNC_label ≥ τ``; the rest are excluded;
* label-free agreement ``TNC_overlap(s)`` = mean over the pairs AE, AM, EM of ``|N^m ∩ N^m'| / k`` (chance
  k/(n−1)) and the triple ``|N^A ∩ N^E ∩ N^M| / k`` (chance (k/(n−1))²), tested against a permutation of the
  sentence rows of one space; the same overlap within a sentence, on frames, from three T×T RDMs with temporal
  neighbours ``|i−j| ≤ w`` excluded.

The paper's own score stays available as :func:`paper_tnc_partial_correlation`, with NaN where it divides by ~0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from hearlike.seeding import rng

SPACES: tuple[str, ...] = ("acoustic", "eeg", "model")
_PAIRS: tuple[tuple[str, str], ...] = (("acoustic", "eeg"), ("acoustic", "model"), ("eeg", "model"))
_SHORT = {"acoustic": "A", "eeg": "E", "model": "M"}
TIE_DECIMALS = 12

#: Columns written by ``hearlike.prosody.sentence_prosody`` besides the eGeMAPS functionals.
PROSODY_DESCRIPTOR_COLUMNS: tuple[str, ...] = (
    "pitch_level_st", "f0_mean_st", "f0_sd_st", "f0_cv_st", "pitch_range_st", "voiced_fraction",
    "intensity_mean_db", "intensity_sd_db", "speaking_rate",
    "spectral_centroid_hz", "spectral_flux", "spectral_slope_db_per_khz",
)
_EGEMAPS_EXTRA = (
    "loudnessPeaksPerSec", "VoicedSegmentsPerSec", "MeanVoicedSegmentLengthSec", "StddevVoicedSegmentLengthSec",
    "MeanUnvoicedSegmentLength", "StddevUnvoicedSegmentLength", "equivalentSoundLevel_dBp",
)


# --------------------------------------------------------------------------------------------- neighbourhoods


def correlation_distance(X: np.ndarray) -> np.ndarray:
    """``n × n`` correlation distance between rows (1 − cosine after centring each row).

    A constant row has no direction: its distances are NaN (it then sorts last as a neighbour).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"descriptors must be (n, d), got shape {X.shape}")
    Xc = X - X.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(Xc, axis=1)
    ok = norm > 1e-12 * max(1.0, float(np.abs(X).max(initial=0.0)))
    U = np.where(ok[:, None], Xc / np.where(ok, norm, 1.0)[:, None], np.nan)
    D = 1.0 - U @ U.T
    np.fill_diagonal(D, 0.0)
    return D


def auto_k(n: int) -> int:
    """``round(sqrt(n) / 2)`` (half-up), at least 1 — METHODS §8.4 for datasets other than Alice."""
    return max(1, int(np.floor(np.sqrt(n) / 2.0 + 0.5)))


def resolve_k(k: int | Literal["auto"], n: int) -> int:
    """k as an int: ``"auto"`` → :func:`auto_k`; checks 1 ≤ k ≤ n − 1."""
    kk = auto_k(n) if k == "auto" else int(k)
    if not 1 <= kk <= n - 1:
        raise ValueError(f"k = {kk} needs 1 ≤ k ≤ n − 1 with n = {n} items")
    return kk


def too_few_items(k: int | Literal["auto"], n: int) -> str | None:
    """Why ``n`` items cannot have ``k`` nearest neighbours each (None when they can)."""
    kk = auto_k(n) if k == "auto" else int(k)
    if 1 <= kk <= n - 1:
        return None
    return f"{n} sentence(s): k = {kk} nearest neighbours need at least {kk + 1}"


def candidate_mask(n: int, exclude_within: int = 0) -> np.ndarray:
    """Boolean ``n × n``: may j be a neighbour of i (j ≠ i and ``|i − j| > exclude_within``)."""
    idx = np.arange(n)
    return np.abs(idx[:, None] - idx[None, :]) > max(int(exclude_within), 0)


def neighbour_sets(distances: np.ndarray, *, k: int, exclude_within: int = 0) -> np.ndarray:
    """``n × k`` indices of each item's k nearest candidates, nearest first.

    Candidates are the items with ``|i − j| > exclude_within`` (0: all others). Ties (equal to
    :data:`TIE_DECIMALS` decimals) go to the lower index; NaN distances rank after every finite one.
    """
    D = np.asarray(distances, dtype=np.float64)
    n = D.shape[0]
    if D.shape != (n, n):
        raise ValueError(f"distance matrix must be square, got {D.shape}")
    allowed = candidate_mask(n, exclude_within)
    n_candidates = allowed.sum(axis=1)
    if n_candidates.min(initial=n) < k:
        raise ValueError(f"an item has only {n_candidates.min()} candidate neighbours, fewer than k = {k}")
    key = np.round(D, TIE_DECIMALS)
    key = np.where(np.isnan(key), np.finfo(np.float64).max, key)
    key = np.where(allowed, key, np.inf)
    return np.argsort(key, axis=1, kind="stable")[:, :k]


def label_consistency(neighbours: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``c(s)``: share of s's neighbours carrying s's label."""
    labels = np.asarray(labels)
    return (labels[neighbours] == labels[:, None]).mean(axis=1)


def neighbourhood_overlap(*neighbour_sets_: np.ndarray) -> np.ndarray:
    """Per item ``|N_1(s) ∩ N_2(s) ∩ …| / k`` for two or more neighbour-set arrays of equal shape."""
    first, *rest = neighbour_sets_
    if not rest:
        raise ValueError("need at least two neighbour-set arrays")
    shared = np.ones(first.shape, dtype=bool)
    for other in rest:
        if other.shape != first.shape:
            raise ValueError(f"neighbour sets differ in shape: {first.shape} vs {other.shape}")
        shared &= (first[:, :, None] == other[:, None, :]).any(axis=2)
    return shared.sum(axis=1) / first.shape[1]


def overlap_chance(n: int, k: int, exclude_within: int = 0) -> tuple[float, float]:
    """Expected pairwise and triple overlap of independent random k-sets drawn from each item's candidates.

    Per item the pairwise chance is k/m (m = its number of candidates: n − 1 between sentences, T − 1 − 2w for
    interior frames) and the triple chance (k/m)²; both are averaged over items.
    """
    m = candidate_mask(n, exclude_within).sum(axis=1).astype(np.float64)
    return float(np.mean(k / m)), float(np.mean((k / m) ** 2))


def _pairwise_overlaps(sets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {f"overlap_{_SHORT.get(a, a)}{_SHORT.get(b, b)}": neighbourhood_overlap(sets[a], sets[b])
           for a, b in combinations(list(sets), 2)}
    out["overlap_mean"] = np.mean(list(out.values()), axis=0)
    out["overlap_triple"] = neighbourhood_overlap(*sets.values())
    return out


def _permuted_sets(neighbours: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Neighbour sets after the rows of a space are permuted (row s gets the descriptor of perm[s])."""
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size)
    return inverse[neighbours[perm]]


def _as_negative(provisional: np.ndarray) -> np.ndarray:
    p = np.asarray(provisional)
    if p.dtype == bool:
        return p
    if p.dtype.kind in "OUS":
        return p.astype(str) == "negative"
    raise TypeError("provisional must be booleans (True = negative) or labels 'negative'/'other'")


def _space_sets(
    acoustic: np.ndarray, eeg: np.ndarray, model: np.ndarray, k: int | Literal["auto"]
) -> tuple[dict[str, np.ndarray], int]:
    spaces = {"acoustic": acoustic, "eeg": eeg, "model": model}
    n = {name: np.asarray(x).shape[0] for name, x in spaces.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"the three spaces must describe the same sentences; row counts {n}")
    kk = resolve_k(k, n["acoustic"])
    return {name: neighbour_sets(correlation_distance(x), k=kk) for name, x in spaces.items()}, kk


def _permute_names(permute: str | Iterable[str]) -> tuple[str, ...]:
    names = (permute,) if isinstance(permute, str) else tuple(permute)
    bad = [p for p in names if p not in SPACES]
    if bad or not names:
        raise ValueError(f"permute must name spaces among {SPACES}, got {permute!r}")
    return names


# ------------------------------------------------------------------------------------------------ sentence TNC

#: Columns of :func:`tnc_labels` and of :func:`neighbourhood_agreement_null`, in order.
LABEL_COLUMNS: tuple[str, ...] = (
    "sentence_id", "provisional_label", "c_acoustic", "c_eeg", "c_model", "tnc_label", "tnc_label_mean",
    "tnc_overlap", "tnc_overlap_triple", "overlap_chance", "p_label", "p_overlap", "group",
)
AGREEMENT_NULL_COLUMNS: tuple[str, ...] = (
    "statistic", "observed", "chance", "null_mean", "null_sd", "p_value", "n_permutations", "permuted",
)
_AGREEMENT_STATISTICS = ("overlap_AE", "overlap_AM", "overlap_EM", "overlap_mean", "overlap_triple")


def undefined_labels(*, provisional: np.ndarray, sentence_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """:func:`tnc_labels`' table when TNC cannot run (too few sentences): NaN scores, every sentence excluded."""
    negative = _as_negative(provisional)
    ids = np.arange(1, negative.size + 1) if sentence_ids is None else np.asarray(sentence_ids, dtype=int)
    out = pd.DataFrame({c: np.full(negative.size, np.nan) for c in LABEL_COLUMNS})
    out["sentence_id"] = ids
    out["provisional_label"] = np.where(negative, "negative", "other")
    out["group"] = "excluded"
    return out


def undefined_agreement_null(*, n_permutations: int, permute: str | Sequence[str] = "model") -> pd.DataFrame:
    """:func:`neighbourhood_agreement_null`' table when it cannot run: one NaN row per statistic."""
    out = pd.DataFrame({c: np.full(len(_AGREEMENT_STATISTICS), np.nan) for c in AGREEMENT_NULL_COLUMNS})
    out["statistic"] = _AGREEMENT_STATISTICS
    out["n_permutations"] = int(n_permutations)
    out["permuted"] = "+".join(_permute_names(permute))
    return out


def tnc_labels(
    *,
    acoustic: np.ndarray,
    eeg: np.ndarray,
    model: np.ndarray,
    provisional: np.ndarray,
    k: int | Literal["auto"] = 5,
    tau: float = 0.5,
    n_permutations: int = 1000,
    seed: int = 0,
    sentence_ids: Sequence[int] | None = None,
    permute: str = "model",
) -> pd.DataFrame:
    """Per-sentence TNC in input order (METHODS §8.4).

    ``acoustic``/``eeg``/``model`` are ``n × d`` descriptors of the same sentences; ``provisional`` is boolean
    (True = provisionally negative) or ``"negative"``/``"other"`` labels. Columns:
    ``sentence_id provisional_label c_acoustic c_eeg c_model tnc_label tnc_label_mean tnc_overlap
    tnc_overlap_triple overlap_chance p_label p_overlap group``.

    ``p_label``: share of label permutations (own label held, the others' labels shuffled) giving a TNC_label at
    least the observed one, ``(count + 1) / (B + 1)``. ``p_overlap``: same for ``tnc_overlap`` when the sentence
    rows of the ``permute`` space are shuffled. ``group`` is ``negative``/``control``/``excluded``;
    ``attrs`` holds ``k``, ``tau`` and the group counts.
    """
    negative = _as_negative(provisional)
    sets, kk = _space_sets(acoustic, eeg, model, k)
    n = negative.size
    if n != next(iter(sets.values())).shape[0]:
        raise ValueError(f"provisional has {n} labels for {next(iter(sets.values())).shape[0]} sentences")
    ids = np.arange(1, n + 1) if sentence_ids is None else np.asarray(sentence_ids, dtype=int)
    c = {name: label_consistency(s, negative) for name, s in sets.items()}
    tnc = np.min(np.column_stack(list(c.values())), axis=1)
    overlaps = _pairwise_overlaps(sets)
    chance, _ = overlap_chance(n, kk)

    B = int(n_permutations)
    p_label = np.full(n, np.nan)
    p_overlap = np.full(n, np.nan)
    if B > 0:
        gen_label = rng(seed, "tnc", "label_permutation")
        gen_rows = rng(seed, "tnc", "row_permutation", permute)
        names = _permute_names(permute)
        hits_label = np.zeros(n)
        hits_overlap = np.zeros(n)
        for _ in range(B):
            shuffled = negative[gen_label.permutation(n)]
            null_tnc = np.min(
                np.column_stack([(shuffled[s] == negative[:, None]).mean(axis=1) for s in sets.values()]), axis=1
            )
            hits_label += null_tnc >= tnc - 1e-12
            permuted = dict(sets)
            for name in names:
                permuted[name] = _permuted_sets(sets[name], gen_rows.permutation(n))
            hits_overlap += _pairwise_overlaps(permuted)["overlap_mean"] >= overlaps["overlap_mean"] - 1e-12
        p_label = (hits_label + 1) / (B + 1)
        p_overlap = (hits_overlap + 1) / (B + 1)

    passes = tnc >= tau
    group = np.where(passes & negative, "negative", np.where(passes & ~negative, "control", "excluded"))
    out = pd.DataFrame(
        {
            "sentence_id": ids,
            "provisional_label": np.where(negative, "negative", "other"),
            "c_acoustic": c["acoustic"],
            "c_eeg": c["eeg"],
            "c_model": c["model"],
            "tnc_label": tnc,
            "tnc_label_mean": np.mean(np.column_stack(list(c.values())), axis=1),
            "tnc_overlap": overlaps["overlap_mean"],
            "tnc_overlap_triple": overlaps["overlap_triple"],
            "overlap_chance": chance,
            "p_label": p_label,
            "p_overlap": p_overlap,
            "group": group,
        }
    )
    out.attrs = {"k": kk, "tau": float(tau), **{f"n_{g}": int((group == g).sum()) for g in
                                                  ("negative", "control", "excluded")}}
    return out


def neighbourhood_agreement_null(
    *,
    acoustic: np.ndarray,
    eeg: np.ndarray,
    model: np.ndarray,
    k: int | Literal["auto"] = 5,
    n_permutations: int = 1000,
    seed: int = 0,
    permute: str | Sequence[str] = "model",
) -> pd.DataFrame:
    """Permutation test of the label-free agreement between the three sentence spaces.

    Statistics (means over sentences): ``overlap_AE overlap_AM overlap_EM overlap_mean overlap_triple``. The
    null shuffles the sentence rows of the ``permute`` space(s) (each independently). A pair with neither space
    shuffled has no null distribution: its p-value is NaN. Columns: ``statistic observed chance null_mean
    null_sd p_value n_permutations permuted``; p = (count(null ≥ observed) + 1) / (B + 1).
    """
    sets, kk = _space_sets(acoustic, eeg, model, k)
    n = next(iter(sets.values())).shape[0]
    names = _permute_names(permute)
    observed = {key: float(v.mean()) for key, v in _pairwise_overlaps(sets).items()}
    gen = rng(seed, "tnc", "agreement_null", *names)
    B = int(n_permutations)
    null = {key: np.empty(B) for key in observed}
    for b in range(B):
        permuted = dict(sets)
        for name in names:
            permuted[name] = _permuted_sets(sets[name], gen.permutation(n))
        for key, v in _pairwise_overlaps(permuted).items():
            null[key][b] = v.mean()
    chance, chance_triple = overlap_chance(n, kk)
    rows = []
    for key, obs in observed.items():
        letters = key.removeprefix("overlap_")
        involved = letters in ("mean", "triple") or any(_SHORT[name] in letters for name in names)
        p = (np.sum(null[key] >= obs - 1e-12) + 1) / (B + 1) if (involved and B > 0) else np.nan
        rows.append(
            {
                "statistic": key,
                "observed": obs,
                "chance": chance_triple if key == "overlap_triple" else chance,
                "null_mean": float(null[key].mean()) if B > 0 else np.nan,
                "null_sd": float(null[key].std(ddof=1)) if B > 1 else np.nan,
                "p_value": float(p),
                "n_permutations": B,
                "permuted": "+".join(names),
            }
        )
    return pd.DataFrame(rows)


def label_consistency_null(
    *,
    acoustic: np.ndarray,
    eeg: np.ndarray,
    model: np.ndarray,
    provisional: np.ndarray,
    k: int | Literal["auto"] = 5,
    n_permutations: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Label-permutation test of the mean label consistency per space and of the mean TNC_label.

    Columns: ``statistic observed null_mean null_sd p_value n_permutations``.
    """
    negative = _as_negative(provisional)
    sets, _ = _space_sets(acoustic, eeg, model, k)

    def stats(labels: np.ndarray) -> dict[str, float]:
        c = {f"c_{name}": label_consistency(s, labels) for name, s in sets.items()}
        c["tnc_label"] = np.min(np.column_stack(list(c.values())), axis=1)
        return {key: float(v.mean()) for key, v in c.items()}

    observed = stats(negative)
    gen = rng(seed, "tnc", "label_null")
    B = int(n_permutations)
    null = {key: np.empty(B) for key in observed}
    for b in range(B):
        for key, v in stats(negative[gen.permutation(negative.size)]).items():
            null[key][b] = v
    return pd.DataFrame(
        [
            {
                "statistic": key,
                "observed": obs,
                "null_mean": float(null[key].mean()) if B > 0 else np.nan,
                "null_sd": float(null[key].std(ddof=1)) if B > 1 else np.nan,
                "p_value": float((np.sum(null[key] >= obs - 1e-12) + 1) / (B + 1)) if B > 0 else np.nan,
                "n_permutations": B,
            }
            for key, obs in observed.items()
        ]
    )


# -------------------------------------------------------------------------------------------- frame-level TNC


def frame_neighbourhood_overlap(
    *,
    rdm_acoustic: np.ndarray,
    rdm_eeg: np.ndarray,
    rdm_model: np.ndarray,
    k: int = 5,
    exclude_within: int = 0,
) -> dict[str, float]:
    """Within-sentence neighbourhood agreement of three ``T × T`` frame RDMs.

    Neighbours of frame i are its k nearest frames j with ``|i − j| > exclude_within`` (w frames, ≈ 100 ms).
    Returns ``overlap_AE overlap_AM overlap_EM overlap_mean overlap_triple`` (means over frames), their
    ``chance`` and ``chance_triple`` and ``n_frames``; all NaN when a frame has fewer than k candidates.
    """
    rdms = {"acoustic": rdm_acoustic, "eeg": rdm_eeg, "model": rdm_model}
    shapes = {np.asarray(r).shape for r in rdms.values()}
    if len(shapes) != 1:
        raise ValueError(f"the three RDMs must share their shape (same T), got {shapes}")
    T = np.asarray(rdm_acoustic).shape[0]
    keys = ("overlap_AE", "overlap_AM", "overlap_EM", "overlap_mean", "overlap_triple")
    if T < 2 or candidate_mask(T, exclude_within).sum(axis=1).min() < k:
        return {**dict.fromkeys(keys, np.nan), "chance": np.nan, "chance_triple": np.nan, "n_frames": T}
    sets = {name: neighbour_sets(r, k=k, exclude_within=exclude_within) for name, r in rdms.items()}
    chance, chance_triple = overlap_chance(T, k, exclude_within)
    result = {key: float(v.mean()) for key, v in _pairwise_overlaps(sets).items()}
    return {**result, "chance": chance, "chance_triple": chance_triple, "n_frames": T}


# ---------------------------------------------------------------------------------------- paper's compute_tnc


def _upper(rdm: np.ndarray) -> np.ndarray:
    r = np.asarray(rdm, dtype=np.float64)
    return r[np.triu_indices(r.shape[0], k=1)]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    return float(rx @ ry / denom) if denom > 1e-12 else np.nan


def paper_tnc_partial_correlation(
    rdm_prosody: np.ndarray, rdm_eeg: np.ndarray, rdm_model: np.ndarray
) -> tuple[float, float, float, float, float]:
    """The released ``compute_tnc`` ("Triangulated Neuro-Computational", §8.3) with NaN, not 0, when degenerate.

    Spearman ρ of the RDMs' upper triangles → ``(r_pe, r_pm, r_me, r_pe_given_m, tnc)``, where
    ``r_pe_given_m = (r_pe − r_pm·r_me) / sqrt((1 − r_pm²)(1 − r_me²))`` (NaN if that denominator < 1e-10) and
    ``tnc = 1 − r_pe_given_m² / r_pe²`` (NaN if ``|r_pe| ≤ 1e-10``). A mediation-style share, not an identifier.
    """
    shapes = {np.asarray(r).shape for r in (rdm_prosody, rdm_eeg, rdm_model)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"the three RDMs must be square with the same T (B24), got {shapes}")
    p, e, m = _upper(rdm_prosody), _upper(rdm_eeg), _upper(rdm_model)
    if p.size < 3:
        return (np.nan,) * 5
    r_pe, r_pm, r_me = _spearman(p, e), _spearman(p, m), _spearman(m, e)
    denom_sq = (1.0 - r_pm**2) * (1.0 - r_me**2)
    r_pe_given_m = (r_pe - r_pm * r_me) / np.sqrt(denom_sq) if np.sqrt(max(denom_sq, 0.0)) >= 1e-10 else np.nan
    tnc = 1.0 - r_pe_given_m**2 / r_pe**2 if (np.isfinite(r_pe) and abs(r_pe) > 1e-10) else np.nan
    return float(r_pe), float(r_pm), float(r_me), float(r_pe_given_m), float(tnc)


# ---------------------------------------------------------------------------------------------- descriptors


def pca_reduce(X: np.ndarray, *, n_components: int = 20) -> np.ndarray:
    """Principal-component scores of the rows (columns centred), at most ``min(n_components, n − 1, d)``.

    Deterministic (full SVD); each component's sign makes its largest-magnitude loading positive.
    """
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0, keepdims=True)
    q = max(1, min(int(n_components), X.shape[0] - 1, X.shape[1]))
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    signs = np.sign(Vt[np.arange(Vt.shape[0]), np.abs(Vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return (U[:, :q] * S[:q]) * signs[:q]


def acoustic_descriptor(
    *, features: pd.DataFrame, sentence_ids: Sequence[int], columns: Sequence[str] | None = None
) -> np.ndarray:
    """Acoustic space A: z-scored (within the dataset) sentence features, rows in ``sentence_ids`` order.

    Default columns: the eGeMAPSv02 functionals when present, else :data:`PROSODY_DESCRIPTOR_COLUMNS`.
    Missing values become the column mean (z = 0); constant columns are dropped.
    """
    if columns is None:
        egemaps = [c for c in features.columns if "_sma3" in c or c in _EGEMAPS_EXTRA]
        columns = egemaps or [c for c in PROSODY_DESCRIPTOR_COLUMNS if c in features.columns]
    missing = [c for c in columns if c not in features.columns]
    if missing or not columns:
        raise KeyError(f"acoustic descriptor: feature table lacks column(s) {missing or 'any usable'}")
    table = features.set_index("sentence_id").loc[list(sentence_ids), list(columns)]
    X = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    sd = np.nanstd(X, axis=0, ddof=1)
    keep = np.isfinite(sd) & (sd > 1e-12)
    Z = (X[:, keep] - np.nanmean(X[:, keep], axis=0)) / sd[keep]
    return np.nan_to_num(Z, nan=0.0)


def _binning_matrix(T: int, grid: int) -> np.ndarray:
    """``grid × T`` averaging matrix: block means when T ≥ grid, nearest-frame sampling when T < grid."""
    B = np.zeros((grid, T))
    if T >= grid:
        B[np.floor(np.arange(T) * grid / T).astype(int), np.arange(T)] = 1.0
    else:
        B[np.arange(grid), np.floor((np.arange(grid) + 0.5) * T / grid).astype(int)] = 1.0
    return B / B.sum(axis=1, keepdims=True)


def eeg_rdm_vector(frames: np.ndarray, *, grid: int = 32) -> np.ndarray:
    """One sentence's EEG (T × C) → correlation-distance frame RDM block-averaged to ``grid × grid``, upper
    triangle as a vector (length grid·(grid−1)/2)."""
    D = correlation_distance(np.asarray(frames, dtype=np.float64))
    B = _binning_matrix(D.shape[0], grid)
    return _upper(B @ D @ B.T)


def eeg_descriptor(
    *,
    eeg: Mapping[str, Mapping[int, np.ndarray]],
    sentence_ids: Sequence[int],
    method: Literal["rdm32", "mean"] = "rdm32",
    grid: int = 32,
    n_components: int = 20,
) -> np.ndarray:
    """EEG space E: subject-averaged per-sentence descriptor, PCA to ≤ ``n_components``.

    ``eeg[subject][sentence_id]`` is the aligned EEG (T × C). ``rdm32``: the frame RDM resampled to a fixed
    grid (:func:`eeg_rdm_vector`); ``mean``: the channel means over frames. Subjects lacking a sentence are
    skipped for it; a sentence no subject has is an error.
    """
    if method not in ("rdm32", "mean"):
        raise ValueError(f"method must be 'rdm32' or 'mean', not {method!r}")
    rows = []
    for sid in sentence_ids:
        per_subject = []
        for sentences in eeg.values():
            if sid not in sentences:
                continue
            x = np.asarray(sentences[sid], dtype=np.float64)
            per_subject.append(eeg_rdm_vector(x, grid=grid) if method == "rdm32" else x.mean(axis=0))
        if not per_subject:
            raise KeyError(f"EEG descriptor: no subject has sentence {sid}")
        rows.append(np.mean(per_subject, axis=0))
    return pca_reduce(np.vstack(rows), n_components=n_components)


def model_descriptor(
    *, features: Mapping[int, np.ndarray], sentence_ids: Sequence[int], n_components: int = 20
) -> np.ndarray:
    """Model space M for one (model, layer): mean-pooled frame features (T × D) per sentence, PCA ≤ 20."""
    missing = [sid for sid in sentence_ids if sid not in features]
    if missing:
        raise KeyError(f"model descriptor: no features for sentence(s) {missing[:5]}")
    pooled = np.vstack([np.asarray(features[sid], dtype=np.float64).mean(axis=0) for sid in sentence_ids])
    return pca_reduce(pooled, n_components=n_components)
