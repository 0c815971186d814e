"""Hilbert–Schmidt independence criterion with Gaussian kernels (Gretton et al. 2005; METHODS §5.6).

* ``hsic_rbf``: biased estimator ``⟨H K H, H L H⟩_F / (T − 1)²`` as in the paper code, median-heuristic
  bandwidth per side; range [0, ∞) (≤ T²/(T−1)² since RBF kernels lie in [0, 1]). Not comparable across
  feature sets or sentence lengths (METHODS B15).
* ``hsic_rbf_norm``: normalised HSIC ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``, range [0, 1], comparable
  across feature sets. With the same kernels this *is* ``cka_rbf`` (the same number, like RV and linear
  CKA); it is kept under its own name so that the HSIC family has a scale-free member.
"""

from __future__ import annotations

import torch

from hearlike.metrics import gram


def _rbf_side(bandwidth: float | str) -> tuple:
    return (lambda x: gram.double_centred(gram.rbf_kernel(x, bandwidth))), ("rbf", "centred", bandwidth)


def _biased_hsic(cross: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor, n_frames: int) -> torch.Tensor:
    del sa, sb
    return cross / float((n_frames - 1) ** 2)


def hsic_rbf(bandwidth: float | str = "median") -> gram.GramMetric:
    """Biased RBF HSIC, ``/(T−1)²``."""
    side, key = _rbf_side(bandwidth)
    return gram.GramMetric(side=side, side_key=key, finish=_biased_hsic)


def hsic_rbf_norm(bandwidth: float | str = "median") -> gram.GramMetric:
    """Normalised RBF HSIC (= ``cka_rbf``)."""
    side, key = _rbf_side(bandwidth)
    return gram.GramMetric(side=side, side_key=key, finish=gram.cosine)
