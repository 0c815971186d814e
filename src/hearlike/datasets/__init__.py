"""Dataset adapters: one class per dataset layout, all fulfilling :class:`hearlike.datasets.base.DatasetAdapter`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hearlike.datasets.base import DatasetAdapter, DatasetError, Recording

__all__ = ["DatasetAdapter", "DatasetError", "Recording", "make_adapter"]


def make_adapter(settings: Mapping[str, Any]) -> DatasetAdapter:
    """Build the adapter named by ``settings['adapter']`` from one ``datasets.<name>`` config block."""
    kind = settings["adapter"]
    common = dict(bids_root=Path(settings["bids_root"]), stimuli_dir=Path(settings["stimuli_dir"]),
                  task=settings["task"], montage=settings["montage"], line_freq=float(settings["line_freq"]))
    subjects = settings["subjects"]
    options = dict(settings.get("options") or {})
    if kind == "demo":
        from hearlike.datasets.demo import DemoDataset

        if subjects == "all":
            raise DatasetError("config.yaml: the demo dataset needs an explicit subject list (datasets.demo.subjects)")
        return DemoDataset(subject_labels=list(subjects), **common)
    if kind == "ds004408":
        from hearlike.datasets.ds004408 import DS004408

        return DS004408(subjects=subjects, **common, **options)
    if kind == "alice":
        from hearlike.datasets.alice import AliceDataset

        return AliceDataset(subjects=subjects, **common, **options)
    raise DatasetError(f"config.yaml: unknown dataset adapter {kind!r}; use demo, ds004408 or alice")
