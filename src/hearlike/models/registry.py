"""The model registry (``resources/models.yaml``): loading, schema validation, layer names.

Each entry says where a model comes from (hub id + pinned revision), how it is loaded (native
transformers class, ``trust_remote_code`` or the model's own package), which stacks are read
(``encoder``: audio-encoder layers via forward hooks; ``llm``: LM block outputs at the audio-token
positions) and at which true frame rate, the minimal prompt, the environment and the cluster resources.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GROUPS = ("encoder", "llm")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def repo_root() -> Path:
    """The checkout root (``src/hearlike/models/registry.py`` → three levels up)."""
    return Path(__file__).resolve().parents[3]


def default_registry_path() -> Path:
    """``resources/models.yaml`` of this checkout."""
    return repo_root() / "resources" / "models.yaml"


def schema_path() -> Path:
    """``workflow/schemas/models.schema.yaml`` of this checkout."""
    return repo_root() / "workflow" / "schemas" / "models.schema.yaml"


@dataclass(frozen=True)
class Target:
    """One extracted stack (``encoder`` or ``llm``) of a model."""

    group: str
    n_layers: int
    hidden_size: int
    rate_hz: float
    modules: str
    source: str
    frame_length_s: float | None = None
    notes: str = ""

    @property
    def frame_length(self) -> float:
        """Length of one frame's span in seconds (defaults to the hop ``1 / rate_hz``)."""
        return float(self.frame_length_s) if self.frame_length_s else 1.0 / float(self.rate_hz)


@dataclass(frozen=True)
class Resources:
    """Cluster resources of one extraction job (``gpu``/``runtime`` alias the Snakemake resource names)."""

    gpus: int
    mem_mb: int
    runtime_min: int
    batch_size: int
    gpu_mem_gb: float | None = None

    @property
    def gpu(self) -> int:
        """Number of GPUs (Snakemake ``gpu`` resource)."""
        return self.gpus

    @property
    def runtime(self) -> int:
        """Wall time in minutes (Snakemake ``runtime`` resource)."""
        return self.runtime_min

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


@dataclass(frozen=True)
class ModelEntry:
    """A validated registry entry (see ``workflow/schemas/models.schema.yaml`` for field meanings)."""

    key: str
    display_name: str
    role: str
    kind: str
    hub_id: str | None
    revision: str | None
    loader: str
    family: str
    adapter: str
    model_class: str
    processor_class: str | None
    dtype: str
    env: str
    targets: dict[str, Target]
    window_s: float | None
    resources: Resources
    prompt: str | None = None
    audio_placeholder: str | None = None
    requires: tuple[str, ...] = ()
    companions: tuple[dict[str, Any], ...] = ()
    builder: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    files: tuple[dict[str, Any], ...] = ()
    notes: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def pinned(self) -> bool:
        """True when ``revision`` is a 40-hex commit."""
        return self.revision is not None and bool(_HEX40.match(self.revision))

    @property
    def trust_remote_code(self) -> bool:
        """Whether loading runs repository code (only ever for pinned revisions)."""
        return self.loader == "remote_code"

    def entry_sha256(self) -> str:
        """Stable hash of the entry's content (part of the activation cache key)."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode()).hexdigest()


class RegistryError(ValueError):
    """The registry file is invalid or does not contain the requested model."""


def _validate(data: Any, path: Path) -> None:
    import jsonschema

    schema = yaml.safe_load(schema_path().read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise RegistryError(f"{path}: invalid model registry:\n  " + "\n  ".join(lines))


def _check_consistency(key: str, e: ModelEntry, path: Path) -> None:
    """Cross-field rules JSON schema cannot express."""
    b = e.builder
    if b is not None:
        enc = e.targets.get("encoder")
        if enc is None or enc.n_layers != b["encoder_layers"] or enc.hidden_size != b["d_model"]:
            raise RegistryError(f"{path}: {key}: targets.encoder must match builder encoder_layers/d_model")
        llm = e.targets.get("llm")
        if (llm is None) != ("llm_layers" not in b):
            raise RegistryError(f"{path}: {key}: builder.llm_layers must be given exactly when targets.llm is")
        if llm is not None and (llm.n_layers != b["llm_layers"]
                                or llm.hidden_size != b.get("llm_hidden", b["d_model"])):
            raise RegistryError(f"{path}: {key}: targets.llm must match builder llm_layers/llm_hidden")
    if e.prompt is not None and e.prompt.count("{audio}") != 1:
        raise RegistryError(f"{path}: {key}: prompt must contain '{{audio}}' exactly once")


def load_registry(path: str | Path | None = None) -> dict[str, ModelEntry]:
    """Read and validate the registry; returns ``{key: ModelEntry}`` in file order."""
    path = Path(path) if path is not None else default_registry_path()
    if not path.exists():
        raise FileNotFoundError(f"{path}: model registry not found")
    data = yaml.safe_load(path.read_text())
    _validate(data, path)
    out: dict[str, ModelEntry] = {}
    for key, d in data["models"].items():
        targets = {g: Target(group=g, **t) for g, t in d["targets"].items()}
        e = ModelEntry(
            key=key,
            display_name=d["display_name"], role=d["role"], kind=d["kind"],
            hub_id=d["hub_id"], revision=d["revision"], loader=d["loader"], family=d["family"],
            adapter=d["adapter"], model_class=d["model_class"], processor_class=d["processor_class"],
            dtype=d["dtype"], env=d["env"], targets={g: targets[g] for g in GROUPS if g in targets},
            window_s=d["window_s"], resources=Resources(**d["resources"]), prompt=d.get("prompt"),
            audio_placeholder=d.get("audio_placeholder"), requires=tuple(d.get("requires", ())),
            companions=tuple(d.get("companions", ())), builder=d.get("builder"), code=d.get("code"),
            files=tuple(d.get("files", ())),
            notes=d.get("notes", ""),
            raw=d,
        )
        _check_consistency(key, e, path)
        out[key] = e
    return out


def get_entry(registry: str | Path | Mapping[str, ModelEntry] | None, key: str) -> ModelEntry:
    """One entry by key (``registry`` may be a path or an already loaded mapping)."""
    reg = registry if isinstance(registry, Mapping) else load_registry(registry)
    if key not in reg:
        raise RegistryError(f"model {key!r} is not in the registry (known: {', '.join(sorted(reg))})")
    return reg[key]


def layer_names(entry: ModelEntry) -> list[str]:
    """``encoder.00 … encoder.{L-1}`` then ``llm.00 …`` — block outputs, no embedding layer."""
    return [f"{g}.{i:02d}" for g in GROUPS if g in entry.targets for i in range(entry.targets[g].n_layers)]


def layer_table(entry: ModelEntry) -> list[dict[str, Any]]:
    """Per layer: name, group, index within group, layer_index in the full stack, relative depth, rate."""
    names = layer_names(entry)
    n = len(names)
    rows = []
    for layer_index, name in enumerate(names):
        group, idx = name.split(".")
        t = entry.targets[group]
        rows.append({
            "name": name, "group": group, "index": int(idx), "layer_index": layer_index,
            "relative_depth": layer_index / (n - 1) if n > 1 else float("nan"),
            "rate_hz": float(t.rate_hz), "frame_length_s": t.frame_length,
        })
    return rows
