"""Batched evaluation of many metrics for one sentence: B X items (electrodes, windows, subjects) against
L Y items (layers), sharing everything that can be shared.

* RSA: each side's RDMs are built and ranked once for all requested RSA methods, then all pairs come
  from one matrix product (Spearman, Pearson) or the O(n log n) τ-b kernel.
* Kernel metrics: each side's T × T matrices are built once per side transform (e.g. ``cka_rbf``,
  ``hsic_rbf`` and ``hsic_rbf_norm`` share the centred RBF kernels) and all inner products are one
  matrix product; X is processed in chunks that bound memory.
* Items with non-finite values or without any variation over frames, and sentences with T < 3, give NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hearlike.metrics import _backend, cka, dcor, gram, hsic, rv
from hearlike.metrics.gcmi import gcmi
from hearlike.metrics.rdm import prepare_rdm_side
from hearlike.metrics.registry import resolve_settings
from hearlike.metrics.rsa import rsa_from_prepared

_RSA = {"rsa_spearman": "spearman", "rsa_pearson": "pearson", "rsa_kendall": "kendall"}
_GRAM: dict[str, Callable[..., gram.GramMetric]] = {
    "cka_linear": cka.cka_linear,
    "cka_rbf": cka.cka_rbf,
    "cka_debiased": cka.cka_debiased,
    "dcor": dcor.dcor,
    "dcor2": dcor.dcor2,
    "hsic_rbf": hsic.hsic_rbf,
    "hsic_rbf_norm": hsic.hsic_rbf_norm,
    "rv": rv.rv,
    "rv2": rv.rv2,
}
# float64 entries of one (X chunk × Y items) joint-covariance block in gcmi
_GCMI_BLOCK_ENTRIES = 1 << 24


def _informative(x: torch.Tensor) -> torch.Tensor:
    """(B,) items with finite values that vary over frames in at least one feature."""
    finite = _backend.finite_rows(x)
    varies = (x.amax(dim=1) > x.amin(dim=1)).any(dim=1)
    return finite & varies


def resolve_battery(
    metrics: Sequence[str], settings: Mapping[str, Mapping[str, Any]] | None
) -> tuple[dict[str, dict[str, Any]], dict[str, gram.GramMetric]]:
    """Each metric's full settings (defaults filled, checked) and the Gram-based metrics built from them."""
    settings = settings or {}
    extra = set(settings) - set(metrics)
    if extra:
        raise ValueError(f"settings given for metrics not requested: {sorted(extra)}")
    resolved = {m: resolve_settings(m, settings.get(m)) for m in metrics}
    gram_metrics = {m: _GRAM[m](**resolved[m]) for m in metrics if m in _GRAM}
    if "gcmi" in metrics and not isinstance(resolved["gcmi"]["bias_correct"], bool | np.bool_):
        raise ValueError(f"gcmi bias_correct must be a bool; got {resolved['gcmi']['bias_correct']!r}")
    return resolved, gram_metrics


def compute_battery(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    metrics: Sequence[str],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Metrics between every X item (B, T, p) and every Y item (L, T, q) of one sentence → {name: (B, L)}.

    ``settings`` maps a metric name to its settings (see ``METRICS[name].defaults``), e.g.
    ``{"cka_rbf": {"bandwidth": 2.0}, "gcmi": {"bias_correct": False}}``. Sentences with T < 3 and items
    that are non-finite or constant over frames give NaN. ``device``: "cpu", "cuda" or "auto"; results are
    float64 numpy arrays either way.
    """
    resolved, gram_metrics = resolve_battery(metrics, settings)
    dev = _backend.resolve_device(device)
    out: dict[str, np.ndarray] = {}
    with _backend.exact_numerics(dev):
        x = _backend.as_batch(X, dev, "X")
        y = _backend.as_batch(Y, dev, "Y")
        if x.shape[1] != y.shape[1]:
            raise ValueError(
                f"X and Y must have the same number of frames; got {x.shape[1]} and {y.shape[1]}"
            )
        b, n_frames, n_y = x.shape[0], x.shape[1], y.shape[0]
        if n_frames < 3:
            # no metric is defined on fewer than 3 frames (an RDM with < 3 entries; a rank-1 centred Gram)
            return {m: np.full((b, n_y), np.nan) for m in metrics}

        rsa_methods = [_RSA[m] for m in metrics if m in _RSA]
        if rsa_methods:
            a_side = prepare_rdm_side(x, methods=rsa_methods, device=dev)
            b_side = prepare_rdm_side(y, methods=rsa_methods, device=dev)
            for m in metrics:
                if m in _RSA:
                    out[m] = rsa_from_prepared(a_side, b_side, _RSA[m])

        need_mask = bool(gram_metrics) or "gcmi" in metrics
        if need_mask:
            ok = _informative(x)[:, None] & _informative(y)[None, :]
        if gram_metrics:
            out.update(_gram_battery(x, y, gram_metrics, ok))
        if "gcmi" in metrics:
            out["gcmi"] = _gcmi_battery(x, y, ok, bool(resolved["gcmi"]["bias_correct"]))
    return {m: out[m] for m in metrics}


def _gram_battery(
    x: torch.Tensor, y: torch.Tensor, specs: Mapping[str, gram.GramMetric], ok: torch.Tensor
) -> dict[str, np.ndarray]:
    n_frames = x.shape[1]
    results = {
        m: torch.full((x.shape[0], y.shape[0]), torch.nan, dtype=_backend.DTYPE, device=x.device)
        for m in specs
    }
    runnable = {m: s for m, s in specs.items() if n_frames >= s.min_frames}
    by_key: dict[Any, list[str]] = {}
    for m, s in runnable.items():
        by_key.setdefault(s.side_key, []).append(m)
    # clean inputs for the side transforms; invalid items are masked out of the results anyway
    x0 = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    y0 = torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    for key, names in by_key.items():
        side = runnable[names[0]].side
        my = side(y0)
        sy = gram.self_inner(my)
        for sl in _backend.chunks(x.shape[0], n_frames * n_frames):
            mx = side(x0[sl])
            cross = gram.inner_products(mx, my)
            sx = gram.self_inner(mx)
            for m in names:
                results[m][sl] = runnable[m].finish(cross, sx, sy, n_frames)
            del mx, cross
        del my, key
    return {m: _backend.to_numpy(torch.where(ok, r, torch.nan)) for m, r in results.items()}


def _gcmi_battery(x: torch.Tensor, y: torch.Tensor, ok: torch.Tensor, bias_correct: bool) -> np.ndarray:
    x0 = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    y0 = torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    width = x.shape[2] + y.shape[2]
    parts = [
        gcmi(x0[sl], y0, bias_correct=bias_correct)
        for sl in _backend.chunks(x.shape[0], y.shape[0] * width * width, _GCMI_BLOCK_ENTRIES)
    ]
    return _backend.to_numpy(torch.where(ok, torch.cat(parts), torch.nan))


def compute(
    name: str,
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    **settings: Any,
) -> float:
    """Metric ``name`` between one sentence's X (T, p) and Y (T, q); 1-D input is one feature."""
    x = _backend.as_single(X, "X")
    y = _backend.as_single(Y, "Y")
    res = compute_battery(
        x, y, metrics=[name], settings={name: settings} if settings else None, device=device
    )
    return float(res[name][0, 0])
