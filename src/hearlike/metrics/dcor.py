"""Distance correlation (Székely, Rizzo & Bakirov 2007; METHODS §5.5, B13).

With ``A`` and ``B`` the double-centred matrices of ``‖x_i − x_j‖^e`` and ``‖y_i − y_j‖^e`` (exponent
``e`` in (0, 2), default 1), the V-statistics are ``dCov² = ⟨A, B⟩/T²`` and ``dVar²_x = ⟨A, A⟩/T²``:

* ``dcor2``: squared distance correlation ``dCov² / sqrt(dVar²_x dVar²_y)`` (what the paper code returns
  under the name "distance correlation"); range [0, 1];
* ``dcor``: its square root, ``dcor.distance_correlation`` of the dcor package; range [0, 1].

A side without distance variance (all frames identical) gives NaN (the dcor package returns 0).
"""

from __future__ import annotations

import torch

from hearlike.metrics import gram


def _distance_side(exponent: float) -> tuple:
    e = float(exponent)
    if not 0 < e < 2:
        raise ValueError(f"distance correlation exponent must lie in (0, 2); got {exponent!r}")

    def side(x: torch.Tensor) -> torch.Tensor:
        d = gram.distances(x)
        return gram.double_centred(d if e == 1.0 else d.pow(e))

    return side, ("distance", e)


def _squared(cross: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor, n_frames: int) -> torch.Tensor:
    # the V-statistic dCov² is ≥ 0 in exact arithmetic; clamp rounding residue (keeps NaN)
    return gram.cosine(cross, sa, sb, n_frames).clamp(min=0.0)


def _root(cross: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor, n_frames: int) -> torch.Tensor:
    return _squared(cross, sa, sb, n_frames).sqrt()


def dcor2(exponent: float = 1.0) -> gram.GramMetric:
    """Squared distance correlation (V-statistic)."""
    side, key = _distance_side(exponent)
    return gram.GramMetric(side=side, side_key=key, finish=_squared)


def dcor(exponent: float = 1.0) -> gram.GramMetric:
    """Distance correlation (V-statistic), the square root of :func:`dcor2`."""
    side, key = _distance_side(exponent)
    return gram.GramMetric(side=side, side_key=key, finish=_root)
