"""The conda environment file pins exactly what the pip lock (installed by `make`) pins."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "envs/requirements.lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_conda_env_matches_pip_lock():
    env = yaml.safe_load((ROOT / "envs/hearlike.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = {}
    for spec in pip:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", spec)
        if m:
            conda_pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    assert conda_pins == _lock()


def test_lock_pins_cpu_torch_and_constraints_agree():
    lock = _lock()
    constraint = (ROOT / "envs/constraints.txt").read_text()
    assert f"torch=={lock['torch']}" in constraint
    for key in ("transformers", "snakemake", "mne", "mne-bids", "numpy", "scipy"):
        assert key in lock
