"""Provenance record written beside the results: what code, config, data, models and packages made them."""

from __future__ import annotations

import hashlib
import json
import platform
import re
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


def tree_sha256(root: Path, patterns: Sequence[str] = ("**/*",)) -> str | None:
    """SHA-256 over the files under ``root`` matching ``patterns`` (relative path and bytes; caches skipped).

    Pins the code that ran even when the checkout is dirty or not a git repository (an unpacked archive),
    where the commit alone does not. None when nothing matches.
    """
    root = Path(root)
    files = sorted({p for pattern in patterns for p in root.glob(pattern)
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"})
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


#: the workflow's own files (relative to its working directory) whose hash provenance records
WORKFLOW_FILES = ("Snakefile", "workflow/**/*")


#: OpenNeuro puts the dataset version only in the DOI (``doi:10.18112/openneuro.ds004408.v1.0.8``)
_DOI_VERSION = re.compile(r"\.v(\d+(?:\.\d+)*)$")


def dataset_version(bids_root: Path) -> dict[str, Any]:
    """Identity of a BIDS dataset from its ``dataset_description.json``: name, version, DOI, file hash.

    ``version`` is the description's ``Version``/``DatasetVersion`` (NEMAR), else the version in an
    OpenNeuro DOI, else None (a generated dataset such as the demo: ``generated_by`` says what made it).
    The SHA-256 of the description file pins the exact metadata even where no version is given.
    """
    path = Path(bids_root) / "dataset_description.json"
    if not path.exists():
        return {"bids_root": str(bids_root), "description_sha256": None, "version": None}
    desc = json.loads(path.read_text(encoding="utf-8-sig"))
    doi = desc.get("DatasetDOI")
    version = desc.get("Version") or desc.get("DatasetVersion")
    if version is None and doi and (m := _DOI_VERSION.search(str(doi))):
        version = m.group(1)
    return {
        "bids_root": str(bids_root),
        "description_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "name": str(desc.get("Name", "")).strip() or None,
        "bids_version": desc.get("BIDSVersion"),
        "doi": doi,
        "version": version,
        "generated_by": desc.get("GeneratedBy"),
    }


def model_snapshot(model_dir: Path) -> dict[str, Any]:
    """The snapshot record ``hearlike_model.json`` of a model directory (revision, hub id, build seed), or {}."""
    path = Path(model_dir) / "hearlike_model.json"
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    return {k: record[k] for k in ("hub_id", "revision", "seed", "created_by") if k in record}


def write_provenance(*, config: Mapping[str, Any], dataset: str, activations: Sequence[Path], out: Path) -> dict:
    """Step function: write ``provenance.json`` (deterministic apart from the commit it records).

    Records the code commit and source hash (package and workflow directory), the config hash, the dataset's identity
    (``dataset_version``), every model's cache key (hub id, revision, settings) and snapshot record, the
    package versions and the seeds (the base seed from which every unit's seed is derived, and the build
    seeds of generated demo models).
    """
    from hearlike.models.cache import load_manifest

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    settings = config["datasets"][dataset]
    snapshots = {p.name: model_snapshot(Path(config["model_dir"]) / p.name) for p in activations}
    record = {
        "hearlike_version": __version__,
        "code": {**code_commit(Path(__file__).resolve().parents[2]),
                 "source_sha256": tree_sha256(Path(__file__).resolve().parent)},
        # the workflow may run from another directory (an unpacked `snakemake --archive`) than the package
        "workflow": {"path": str(Path.cwd()), **code_commit(Path.cwd()),
                     "source_sha256": tree_sha256(Path.cwd(), WORKFLOW_FILES)},
        "config_sha256": config_hash(config),
        "seed": config["seed"],
        "seeds": {
            "base": config["seed"],
            "derivation": "hearlike.seeding.derive_seed(base, *unit ids)",
            "model_build": {m: s["seed"] for m, s in snapshots.items() if "seed" in s},
        },
        "dataset": {"name": dataset, **dict(settings), "description": dataset_version(Path(settings["bids_root"]))},
        "models": {p.name: load_manifest(p).get("key", {}) for p in activations},
        "model_snapshots": snapshots,
        "python": platform.python_version(),
        "packages": versions,
    }
    out.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return record
