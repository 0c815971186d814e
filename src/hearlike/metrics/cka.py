"""Centred kernel alignment (Kornblith et al. 2019; METHODS §5.4).

* ``cka_linear``: ``⟨H K H, H L H⟩_F / (‖H K H‖_F ‖H L H‖_F)`` with ``K = X Xᵀ``, ``L = Y Yᵀ``; range [0, 1].
  Identical to the RV coefficient (:mod:`hearlike.metrics.rv`), METHODS B14.
* ``cka_rbf``: the same with Gaussian kernels, median-heuristic bandwidth per side (see
  :func:`hearlike.metrics.gram.rbf_kernel`); range [0, 1].
* ``cka_debiased``: the same ratio of Song et al.'s (2012) unbiased HSIC estimates (U-centred kernels),
  linear kernel by default; range [−1, 1] (the estimate can be negative); needs T ≥ 4. It removes the
  upward bias of CKA for few frames relative to features.
"""

from __future__ import annotations

from hearlike.metrics import gram


def cka_linear() -> gram.GramMetric:
    """Linear CKA."""
    return gram.GramMetric(
        side=lambda x: gram.double_centred(gram.linear_gram(x)),
        side_key=("linear", "centred"),
        finish=gram.cosine,
    )


def cka_rbf(bandwidth: float | str = "median") -> gram.GramMetric:
    """RBF-kernel CKA with the median heuristic (``bandwidth`` a multiplier of the median σ)."""
    return gram.GramMetric(
        side=lambda x: gram.double_centred(gram.rbf_kernel(x, bandwidth)),
        side_key=("rbf", "centred", bandwidth),
        finish=gram.cosine,
    )


def cka_debiased(kernel: str = "linear", bandwidth: float | str = "median") -> gram.GramMetric:
    """Debiased CKA: cosine of U-centred kernels (the T(T−3) normalisation of HSIC_u cancels)."""
    if kernel == "linear":
        side = lambda x: gram.u_centred(gram.linear_gram(x))  # noqa: E731
        key: tuple = ("linear", "u")
    elif kernel == "rbf":
        side = lambda x: gram.u_centred(gram.rbf_kernel(x, bandwidth))  # noqa: E731
        key = ("rbf", "u", bandwidth)
    else:
        raise ValueError(f"cka_debiased kernel must be 'linear' or 'rbf'; got {kernel!r}")
    return gram.GramMetric(side=side, side_key=key, finish=gram.cosine, min_frames=4)
