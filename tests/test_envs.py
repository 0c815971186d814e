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


# Extraction in a side environment imports hearlike from the checkout (workflow/scripts/extract_activations.py),
# so these are all the third-party packages it may need besides the model's own stack.
EXTRACTION_CORE = {"numpy", "pandas", "pyyaml", "jsonschema", "safetensors", "tqdm", "torch", "transformers"}


def _side_envs() -> list[Path]:
    import hearlike.models.registry as reg

    names = {e.env for e in reg.load_registry().values()} - {"main"}
    return [ROOT / "envs" / f"{n}.yaml" for n in sorted(names)]


def test_side_envs_pin_the_extraction_core():
    envs = _side_envs()
    assert {p.stem for p in envs} >= {"transformers4", "glm4_voice", "llama_omni", "speechgpt2"}
    for path in envs:
        env = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        names = {re.split(r"[=<>!~\[ @]", s, maxsplit=1)[0].lower().replace("_", "-") for s in pip}
        assert EXTRACTION_CORE <= names, (path.name, EXTRACTION_CORE - names)
        assert all(re.search(r"==|@", s) for s in pip if s.split("=")[0].split(">")[0] in ("torch", "transformers")), \
            (path.name, "torch and transformers must be pinned")


def test_extraction_modules_import_without_the_study_stack():
    """hearlike's extraction path imports with only EXTRACTION_CORE (no mne, scipy, sklearn, matplotlib ...)."""
    import subprocess
    import sys

    code = f"""
import sys, importlib.abc
BLOCKED = {{"mne", "mne_bids", "scipy", "sklearn", "matplotlib", "parselmouth", "opensmile", "snakemake", "librosa"}}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(ROOT / "src")!r})
import hearlike.logutil, hearlike.models.extract, hearlike.models.loaders, hearlike.models.download
from hearlike.models.families import FAMILY_MODULES, family_module
for family in FAMILY_MODULES:
    family_module(family)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
