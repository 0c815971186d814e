"""Provenance record written beside the results: what code, config, data, models and packages made them."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from hearlike import __version__

PACKAGES = ("numpy", "scipy", "pandas", "torch", "transformers", "safetensors", "mne", "mne-bids", "snakemake",
            "scikit-learn", "praat-parselmouth", "opensmile", "matplotlib")


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the config as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def code_commit(repo: Path) -> dict[str, Any]:
    """The git commit of the code and whether the work tree had uncommitted changes."""
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def write_provenance(*, config: Mapping[str, Any], dataset: str, activations: Sequence[Path], out: Path) -> dict:
    """Step function: write ``provenance.json`` (deterministic apart from the commit it records)."""
    from hearlike.models.cache import load_manifest

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    record = {
        "hearlike_version": __version__,
        "code": code_commit(Path(__file__).resolve().parents[2]),
        "config_sha256": config_hash(config),
        "seed": config["seed"],
        "dataset": {"name": dataset, **dict(config["datasets"][dataset])},
        "models": {p.name: load_manifest(p).get("key", {}) for p in activations},
        "python": platform.python_version(),
        "packages": versions,
    }
    out.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return record
