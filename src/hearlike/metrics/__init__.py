"""Similarity metrics between one sentence's EEG features X (T × p) and model features Y (T × q).

Registry (``METRICS``, ``MetricSpec``, ``module_path``), single-sentence ``compute`` and the batched
``compute_battery`` (B X items × L Y items), ``compute_battery_reindexed`` (one X against every layer of Y
re-indexed in time: the null draws), plus the prepared-RDM interface that lets RSA reuse one
side's ranks across subjects or models. Conventions: float64 throughout, ``device="cpu"`` or
``"cuda"``, degenerate input → NaN (never 0.0). See ``docs/architecture.md`` and METHODS §5.
"""

from hearlike.metrics.battery import compute, compute_battery
from hearlike.metrics.rdm import PreparedRDMs, prepare_rdm_side, rank_rows, rdm_vector, rdm_vectors
from hearlike.metrics.registry import (
    DEPENDENCE,
    FAMILIES,
    GEOMETRIC,
    METRIC_NAMES,
    METRICS,
    MetricSpec,
    get_spec,
    module_path,
    module_paths,
    resolve_settings,
)
from hearlike.metrics.reindexed import compute_battery_reindexed
from hearlike.metrics.rsa import rsa_from_prepared

__all__ = [
    "DEPENDENCE",
    "FAMILIES",
    "GEOMETRIC",
    "METRICS",
    "METRIC_NAMES",
    "MetricSpec",
    "PreparedRDMs",
    "compute",
    "compute_battery",
    "compute_battery_reindexed",
    "get_spec",
    "module_path",
    "module_paths",
    "prepare_rdm_side",
    "rank_rows",
    "rdm_vector",
    "rdm_vectors",
    "resolve_settings",
    "rsa_from_prepared",
]
