"""Model-side features: PCA per (model, layer, sentence) with z-scored components (METHODS §3.5)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from hearlike.align import group_layers
from hearlike.io import save_npz_dict, sentence_key

log = logging.getLogger(__name__)


def min_frames(n_components: int) -> int:
    """Fewest frames a sentence needs on a timebase: k + 1, so that its PCA has all k components.

    Every sentence of a timebase then has the same feature width k; shorter sentences are excluded from
    that timebase (logged and listed in the bundle's metadata), never given fewer components.
    """
    return n_components + 1


def pca_zscore(states: np.ndarray, n_components: int) -> np.ndarray:
    """(T × k) leading principal-component scores, each z-scored; k = min(n_components, D).

    Needs T ≥ :func:`min_frames` (a ValueError otherwise), so the width never depends on the sentence.
    Unlike the paper code (``std + 1e-9``), a component with zero variance is NaN, not a silent zero.
    """
    x = states.astype(np.float64)
    if x.shape[0] < min_frames(min(n_components, x.shape[1])):
        raise ValueError(f"PCA-{n_components} needs at least {min_frames(n_components)} frames, got {x.shape[0]}")
    x = x - x.mean(axis=0)
    k = min(n_components, x.shape[1])
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    # Sign convention so that results do not depend on the SVD backend: largest |loading| positive.
    scores = u[:, :k] * s[:k]
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    scores *= np.where(signs == 0, 1.0, signs)
    sd = scores.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return scores / np.where(sd > 1e-12 * max(s[0], 1e-300), sd, np.nan)


def pooled_pca(states: dict[int, np.ndarray], n_components: int) -> dict[int, np.ndarray]:
    """PCA fitted on all sentences' frames together, components z-scored over the pool.

    Per-sentence PCA (the paper's) gives every sentence its own basis, which is fine for within-sentence
    metrics but makes feature vectors incomparable across sentences; analyses whose items span
    sentences (word-locked windows, sentence descriptors) need this common basis.
    """
    pooled = np.concatenate([s.astype(np.float64) for s in states.values()])
    mean = pooled.mean(axis=0)
    k = min(n_components, pooled.shape[0] - 1, pooled.shape[1])
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    basis = vt[:k].T
    scores = (pooled - mean) @ basis
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    basis = basis * np.where(signs == 0, 1.0, signs)
    sd = ((pooled - mean) @ basis).std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {sid: ((s.astype(np.float64) - mean) @ basis) / np.where(sd > 0, sd, np.nan) for sid, s in states.items()}


def model_features(*, activations_dir: Path, out: Path, n_components: int) -> None:
    """Step function: PCA-k features of every layer and sentence of one model (one bundle per model).

    ``{layer}/s0001``: per-sentence PCA (METHODS §3.5, for within-sentence metrics), always k wide; a
    sentence with fewer than :func:`min_frames` frames on a timebase has no such entry (excluded there,
    logged, listed under ``excluded`` in the metadata) but keeps its frame times and pooled features;
    ``{layer}/s0001.pooled``: a basis shared by all sentences (for analyses whose items span sentences).
    """
    from hearlike.models.cache import load_manifest, read_layer

    manifest = load_manifest(activations_dir)
    layers = [layer["name"] for layer in manifest["layers"]]
    arrays: dict[str, np.ndarray] = {}
    sentence_ids: list[int] = []
    excluded: dict[str, list[int]] = {}
    for timebase, names in group_layers(layers).items():
        for name in names:
            per_sentence = read_layer(activations_dir / f"{name}.safetensors")
            sentence_ids = sorted(per_sentence)
            pooled = pooled_pca({sid: states for sid, (states, _) in per_sentence.items()}, n_components)
            need = min_frames(n_components)
            short = sorted(sid for sid, (states, _) in per_sentence.items() if states.shape[0] < need)
            excluded[timebase] = short
            for sid, (states, times) in per_sentence.items():
                if sid not in short:
                    arrays[f"{name}/{sentence_key(sid)}"] = pca_zscore(states, n_components).astype(np.float32)
                arrays[f"{name}/{sentence_key(sid)}.pooled"] = pooled[sid].astype(np.float32)
                arrays[f"{timebase}/{sentence_key(sid)}.times"] = times
        if excluded[timebase]:
            log.warning("%s: %d sentence(s) have fewer than %d frames on the %s timebase and are excluded "
                        "there (ids %s)", activations_dir, len(excluded[timebase]), min_frames(n_components),
                        timebase, excluded[timebase])
    save_npz_dict(out, arrays, meta={"layers": layers, "timebases": list(group_layers(layers)),
                                     "n_layers": len(layers), "sentence_ids": sentence_ids,
                                     "n_components": n_components, "min_frames": min_frames(n_components),
                                     "excluded": excluded, "model": json.dumps(manifest.get("key", {}))})
