"""The metric registry: stable names, families, ranges, settings and the module implementing each metric.

The workflow makes :func:`module_path` of a metric an input of that metric's jobs, so editing one
family's module reruns only that family; :func:`module_paths` adds the shared modules it imports.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

GEOMETRIC = "geometric"
DEPENDENCE = "dependence"
FAMILIES = (GEOMETRIC, DEPENDENCE)

_PKG = "hearlike.metrics"
_SHARED = (f"{_PKG}._backend", f"{_PKG}.battery", f"{_PKG}.registry")
_SHARED_RSA = (f"{_PKG}.rdm", *_SHARED)  # rsa and gcmi rank with rdm.rank_rows
_SHARED_GRAM = (f"{_PKG}.gram", *_SHARED)
_BANDWIDTH = MappingProxyType({"bandwidth": "median"})


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: name, family, range of values, implementing module and default settings."""

    name: str
    family: str
    value_range: tuple[float, float]
    description: str
    module: str
    fisher_z: bool = False
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    depends_on: tuple[str, ...] = ()

    @property
    def source_path(self) -> Path:
        """Source file of :attr:`module`."""
        return _module_file(self.module)


def _spec(
    name: str, family: str, lo: float, hi: float, module: str, description: str, **kw: Any
) -> MetricSpec:
    shared = _SHARED_RSA if module in ("rsa", "gcmi") else _SHARED_GRAM
    return MetricSpec(name, family, (lo, hi), description, f"{_PKG}.{module}", depends_on=shared, **kw)


_SPECS = (
    _spec("rsa_spearman", GEOMETRIC, -1.0, 1.0, "rsa",
          "Spearman correlation (average ranks for ties) of the upper-triangle RDM vectors; "
          "RDM = correlation distance between frame patterns, |x_i − x_j| for one feature.", fisher_z=True),
    _spec("rsa_pearson", GEOMETRIC, -1.0, 1.0, "rsa",
          "Pearson correlation of the upper-triangle RDM vectors.", fisher_z=True),
    _spec("rsa_kendall", GEOMETRIC, -1.0, 1.0, "rsa",
          "Kendall tau-b of the upper-triangle RDM vectors (O(n log n)).", fisher_z=True),
    _spec("cka_linear", GEOMETRIC, 0.0, 1.0, "cka",
          "Linear centred kernel alignment; identical to the RV coefficient."),
    _spec("cka_rbf", GEOMETRIC, 0.0, 1.0, "cka",
          "RBF-kernel CKA; sigma^2 = median of positive squared frame distances (times bandwidth^2).",
          defaults=_BANDWIDTH),
    _spec("cka_debiased", GEOMETRIC, -1.0, 1.0, "cka",
          "Debiased CKA from Song et al.'s unbiased HSIC (U-centred kernels); can be negative; T >= 4.",
          defaults=MappingProxyType({"kernel": "linear", "bandwidth": "median"})),
    _spec("dcor", DEPENDENCE, 0.0, 1.0, "dcor",
          "Distance correlation dCor (V-statistic), = dcor.distance_correlation.",
          defaults=MappingProxyType({"exponent": 1.0})),
    _spec("dcor2", DEPENDENCE, 0.0, 1.0, "dcor",
          "Squared distance correlation dCor^2 (what the paper code returns).",
          defaults=MappingProxyType({"exponent": 1.0})),
    _spec("hsic_rbf", DEPENDENCE, 0.0, math.inf, "hsic",
          "Biased RBF HSIC <HKH, HLH>/(T-1)^2 (paper form); scale depends on T and on the feature sets.",
          defaults=_BANDWIDTH),
    _spec("hsic_rbf_norm", DEPENDENCE, 0.0, 1.0, "hsic",
          "Normalised RBF HSIC HSIC(K,L)/sqrt(HSIC(K,K) HSIC(L,L)); equals cka_rbf.", defaults=_BANDWIDTH),
    _spec("rv", DEPENDENCE, 0.0, 1.0, "rv",
          "RV coefficient of column-centred data; identical to cka_linear."),
    _spec("rv2", DEPENDENCE, -1.0, 1.0, "rv",
          "Modified RV (Smilde et al. 2009): zero-diagonal Gram matrices; can be negative."),
    _spec("gcmi", DEPENDENCE, 0.0, math.inf, "gcmi",
          "Gaussian-copula mutual information (bits) between multivariate X and Y (Ince et al. 2017); "
          "the bias-corrected estimate can dip below 0.",
          defaults=MappingProxyType({"bias_correct": True})),
)  # fmt: skip

METRICS: Mapping[str, MetricSpec] = MappingProxyType({s.name: s for s in _SPECS})
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def _module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    return Path(spec.origin)


def get_spec(name: str) -> MetricSpec:
    """The spec of ``name`` (ValueError listing the known names otherwise)."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}") from None


def module_path(name: str) -> Path:
    """Source file of the module implementing metric ``name``."""
    return get_spec(name).source_path


def module_paths(name: str) -> list[Path]:
    """Source files a metric's value depends on: its module first, then the shared modules it uses."""
    spec = get_spec(name)
    return [spec.source_path, *(_module_file(m) for m in spec.depends_on)]


def resolve_settings(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults of ``name`` updated with ``settings``; unknown keys are an error (typos must not pass)."""
    spec = get_spec(name)
    given = dict(settings or {})
    unknown = set(given) - set(spec.defaults)
    if unknown:
        allowed = ", ".join(spec.defaults) or "none"
        raise ValueError(f"metric {name!r} has no setting(s) {sorted(unknown)} (allowed: {allowed})")
    return {**spec.defaults, **given}
