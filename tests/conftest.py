"""Shared test fixtures: one run of the demo study, made once per test session in a temporary copy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Tests that spawn Snakemake run the installed package; keep BLAS single-threaded so two jobs share 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def copy_workflow(dest: Path) -> Path:
    """A runnable copy of the study (code is imported from the installed package)."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("workflow", "resources", "profiles", "envs"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 2400) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir`` with 2 cores; on failure the error shows its output tail."""
    proc = subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule → job count from a dry run."""
    out = snakemake(workdir, "--dry-run", "--quiet", "rules", *args).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([A-Za-z_]\w*)\s+(\d+)\s*$", line)
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def planned_outputs(workdir: Path, rule: str, *args: str) -> list[str]:
    """The output files of every job of ``rule`` that a dry run plans."""
    proc = snakemake(workdir, "--dry-run", *args)
    out = proc.stdout + proc.stderr
    outputs: list[str] = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", out):
        if re.match(rf"\s*(?:local)?rule {rule}:", block):
            m = re.search(r"^\s+output: (.*)$", block, flags=re.MULTILINE)
            if m:
                outputs += [f.strip() for f in m.group(1).split(",")]
    return outputs


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """The whole demo study, run once (about 5–10 minutes on 2 cores)."""
    work = copy_workflow(tmp_path_factory.mktemp("study"))
    snakemake(work)
    return work


@pytest.fixture(scope="session")
def tables(study) -> dict[str, pd.DataFrame]:
    root = study / "results" / "demo" / "tables"
    return {p.stem: pd.read_csv(p, sep="\t", na_values=["n/a"], keep_default_na=False) for p in root.glob("*.tsv")}


@pytest.fixture(scope="session")
def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())["datasets"]["demo"]["demo"]
