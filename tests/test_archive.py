"""Archival reproduction: the provenance record, a workflow archive without data, and a byte-identical rerun.

Runtime (2 shared cores): the provenance tests take < 1 s once the session's ``study`` fixture exists
(one demo run, 12–14 min measured, shared with the other slow tests); ``test_archive_reruns_byte_identical``
adds a second complete demo run from the unpacked archive (14 min measured, under load) — it is also the determinism test: two
independent runs on CPU in different directories, the second from the archived sources, must give
byte-identical tables.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
from importlib import metadata
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, planned_jobs

pytestmark = pytest.mark.slow

HEX40 = re.compile(r"^[0-9a-f]{40}$")
#: EEG signal files of any common format: none may be archived (the recordings' licences and size)
SIGNAL_SUFFIXES = {".eeg", ".edf", ".bdf", ".set", ".fdt", ".fif", ".cnt", ".mff", ".npz", ".safetensors"}
#: licences under which tests/data's metadata excerpts may be redistributed (tests/data/MANIFEST.tsv)
REDISTRIBUTABLE = {"CC0", "CC-BY-4.0", "MIT"}


# --------------------------------------------------------------------------------------------- provenance


def test_dataset_version_from_bids_description():
    """The dataset version comes from the description's Version, else from an OpenNeuro DOI."""
    from hearlike.provenance import dataset_version

    manifest = pd.read_csv(ROOT / "tests/data/MANIFEST.tsv", sep="\t", dtype=str)
    for folder, version in (("ds004408", "1.0.8"), ("nm000180", "1.1.3")):
        record = dataset_version(ROOT / "tests/data" / folder)
        assert record["version"] == version
        listed = manifest[(manifest["dataset"] == folder) & (manifest["relpath"] == "dataset_description.json")]
        assert record["description_sha256"] == listed["sha256"].item()
        assert manifest.loc[listed.index, "dataset_version"].item() == version
    assert dataset_version(ROOT / "no-such-dataset")["version"] is None


def test_provenance_records_code_config_data_models_packages_seeds(study):
    from hearlike.provenance import WORKFLOW_FILES, config_hash, tree_sha256

    record = json.loads((study / "results/demo/provenance.json").read_text())
    config = yaml.safe_load((study / "config.yaml").read_text())

    # code: the commit of the package's checkout (the editable install lives in ROOT)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert record["code"]["commit"] == head and isinstance(record["code"]["dirty"], bool)
    assert re.fullmatch(r"[0-9a-f]{64}", record["code"]["source_sha256"])  # pins a dirty tree's code too
    assert record["workflow"]["path"] == str(study)
    assert record["workflow"]["source_sha256"] == tree_sha256(study, WORKFLOW_FILES)

    # config: the hash of exactly the configuration that ran
    assert record["config_sha256"] == config_hash(config)

    # dataset: the BIDS description the EEG was read from, pinned by its hash
    description = study / "results/demo/bids/dataset_description.json"
    ds = record["dataset"]["description"]
    assert ds["description_sha256"] == hashlib.sha256(description.read_bytes()).hexdigest()
    assert ds["bids_version"] == json.loads(description.read_text())["BIDSVersion"]
    assert ds["generated_by"][0]["Name"] == "hearlike"  # the demo has no version: what generated it instead

    # models: every analysed model with its revision, agreeing with the snapshot it was loaded from
    assert set(record["models"]) == set(config["models"]) == set(record["model_snapshots"])
    for model, key in record["models"].items():
        snapshot = json.loads((study / config["model_dir"] / model / "hearlike_model.json").read_text())
        assert HEX40.match(key["revision"]), (model, key)
        assert key["revision"] == snapshot["revision"] == record["model_snapshots"][model]["revision"]
        assert key["model"] == model

    # packages: the versions that actually ran
    for name in ("numpy", "scipy", "torch", "transformers", "mne", "snakemake"):
        assert record["packages"][name] == metadata.version(name)

    # seeds: the base seed every unit's seed derives from, and the demo models' build seeds
    assert record["seed"] == record["seeds"]["base"] == config["seed"]
    for model in config["models"]:
        snapshot = json.loads((study / config["model_dir"] / model / "hearlike_model.json").read_text())
        assert record["seeds"]["model_build"][model] == snapshot["seed"]


# ------------------------------------------------------------------------------------ archive and rerun


def _tracked_copy(dest: Path) -> list[str]:
    """Copy the working-tree version of every file git would track (tracked + untracked-not-ignored)."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    copied = []
    for name in names:
        src = ROOT / name
        if src.is_file():  # a tracked file another helper deleted in the work tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
            copied.append(name)
    return copied


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=hearlike-test", "-c", "user.email=test@invalid",
                    *args], check=True, capture_output=True)


def _make_archive(repo: Path, archive: Path) -> str:
    """``snakemake --archive`` (needs conda); without conda the same git-tracked sources via ``git archive``."""
    if shutil.which("conda"):
        proc = subprocess.run([*SNAKEMAKE, "--cores", "2", "--archive", str(archive)], cwd=repo,
                              capture_output=True, text=True, timeout=3600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return "snakemake --archive"
    # Snakemake builds and packs every conda environment of the DAG and refuses to archive without conda
    # ("Error running conda info"); its source part is git's tracked files, which git archive packs alike.
    warnings.warn("conda is not installed: `snakemake --archive` cannot run here; testing the archive of the "
                  "git-tracked sources (git archive) instead", stacklevel=2)
    _git(repo, "archive", "--format=tar.gz", "-o", str(archive), "HEAD")
    return "git archive"


def _check_members(names: list[str]) -> None:
    """No results, no EEG signal files, and no BIDS file but the licence-checked excerpts in tests/data."""
    manifest = pd.read_csv(ROOT / "tests/data/MANIFEST.tsv", sep="\t", dtype=str)
    listed = {f"tests/data/{d}/{r}": lic for d, r, lic in zip(manifest["dataset"], manifest["relpath"],
                                                                manifest["license"], strict=True)}
    paths = [PurePosixPath(n.removeprefix("./")) for n in names]
    assert not [p for p in paths if p.parts and p.parts[0] == "results"], "results/ must stay out of the archive"
    signal = [str(p) for p in paths if p.suffix.lower() in SIGNAL_SUFFIXES]
    assert not signal, f"EEG/array data in the archive: {signal[:5]}"
    # a BIDS tree is a folder with a dataset_description.json; sub-* folders are BIDS subject data
    roots = {p.parent for p in paths if p.name == "dataset_description.json"}
    bids = [p for p in paths if any(r in p.parents for r in roots) or any(s.startswith("sub-") for s in p.parts)]
    outside = [str(p) for p in bids if str(p) not in listed]
    assert not outside, f"BIDS files in the archive that are not licence-checked test excerpts: {outside[:5]}"
    assert {listed[str(p)] for p in bids} <= REDISTRIBUTABLE


def test_archive_reruns_byte_identical(study, tmp_path_factory):
    """Archive the workflow, unpack it in a fresh directory, rerun the demo there: identical tables."""
    repo = tmp_path_factory.mktemp("archive_repo")
    copied = _tracked_copy(repo)
    assert "Snakefile" in copied and any(n.startswith("src/hearlike/") for n in copied)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "archive test")
    archive = tmp_path_factory.mktemp("archive") / "hearlike.tar.gz"
    how = _make_archive(repo, archive)

    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        _check_members(names)
        assert {"Snakefile", "config.yaml", "workflow/rules/common.smk", "envs/requirements.lock.txt",
                "resources/models.yaml"} <= {n.removeprefix("./") for n in names}, how
        fresh = tmp_path_factory.mktemp("unpacked")
        tar.extractall(fresh, filter="data")

    # the archived package, not the developer's editable install, runs the rerun
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(fresh / "src"), os.environ.get("PYTHONPATH"))
                                                       if p)}
    probe = subprocess.run([sys.executable, "-c", "import hearlike; print(hearlike.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(probe).is_relative_to(fresh)

    config = yaml.safe_load((fresh / "config.yaml").read_text())
    jobs = planned_jobs(fresh)  # dry run in the fresh directory: the whole study is to be made
    assert jobs["all"] == 1 and jobs["extract_activations"] == len(config["models"])
    assert jobs["metric"] == len(config["models"]) * len(config["metrics"]["set"])

    proc = subprocess.run([*SNAKEMAKE, "--cores", "2"], cwd=fresh, env=env, capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stderr[-6000:]

    # both runs must have run the same code for the comparison to mean anything (in a shared checkout
    # someone may edit the package while the session runs; a quiet checkout never skips here)
    before = json.loads((study / "results/demo/provenance.json").read_text())
    after = json.loads((fresh / "results/demo/provenance.json").read_text())
    changed = [part for part in ("code", "workflow")
               if before[part]["source_sha256"] != after[part]["source_sha256"]]
    if changed:
        pytest.skip(f"the {' and '.join(changed)} source changed between the study fixture's run and the "
                    "archive (edited during the session): byte-identity is not comparable")

    first = study / "results/demo/tables"
    second = fresh / "results/demo/tables"
    names_first = sorted(p.name for p in first.glob("*.tsv"))
    assert names_first and names_first == sorted(p.name for p in second.glob("*.tsv"))
    differ = [n for n in names_first if (first / n).read_bytes() != (second / n).read_bytes()]
    assert not differ, f"tables differ between two runs on CPU: {differ}"
    # the per-sentence metric tables behind them too (nulls included: every random draw is seeded per unit)
    metric_tables = sorted(p.relative_to(study) for p in (study / "results/demo/metrics").rglob("*.tsv"))
    assert metric_tables
    differ = [str(p) for p in metric_tables if (study / p).read_bytes() != (fresh / p).read_bytes()]
    assert not differ, f"metric tables differ between two runs on CPU: {differ[:5]}"
