"""RV coefficients (Escoufier 1973; Smilde et al. 2009; METHODS §5.7).

* ``rv``: ``tr(X_cᵀ Y_c Y_cᵀ X_c) / sqrt(tr((X_cᵀ X_c)²) tr((Y_cᵀ Y_c)²))`` with column-centred data, range
  [0, 1]. It is *exactly* linear CKA (``cka_linear``): both are the cosine between ``X_c X_cᵀ`` and
  ``Y_c Y_cᵀ``; computed here in the T × T Gram form, which stays cheap for wide inputs.
* ``rv2``: modified RV (Smilde et al. 2009, Bioinformatics 25:401): the same cosine after setting the
  diagonals of both Gram matrices to zero, which removes RV's upward bias when features outnumber
  frames; range [−1, 1].
"""

from __future__ import annotations

import torch

from hearlike.metrics import gram


def _zero_diagonal(k: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(k.shape[1], dtype=torch.bool, device=k.device)
    return k.masked_fill(eye, 0.0)


def rv() -> gram.GramMetric:
    """RV coefficient (= linear CKA)."""
    return gram.GramMetric(
        side=lambda x: gram.double_centred(gram.linear_gram(x)),
        side_key=("linear", "centred"),
        finish=gram.cosine,
    )


def rv2() -> gram.GramMetric:
    """Modified RV coefficient (zero-diagonal Gram matrices of column-centred data)."""
    return gram.GramMetric(
        side=lambda x: _zero_diagonal(gram.linear_gram(x)),
        side_key=("linear", "zero-diagonal"),
        finish=gram.cosine,
    )
