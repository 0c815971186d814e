"""Activation cache: one safetensors file per layer plus ``manifest.json``.

Layout of ``out_dir`` (one model × dataset):

* ``{layer}.safetensors`` — ``s{sid:04d}`` → (T × D) float16 states; ``s{sid:04d}.times`` → (T × 2) float64
  frame ``[start, end)`` in seconds from the clip (sentence) onset.
* ``manifest.json`` — ``key`` (hub id, revision, dtype, extraction settings, package versions, audio hash),
  ``key_sha256``, and per layer: name, group, index, layer_index, rate_hz, frame_length_s, dim, file, sha256.

A manifest whose key differs from the requested one means "recompute"; a layer file whose sha256 differs
from the manifest is corrupted and :func:`read_layer` / :func:`verify_cache` raise
:class:`CacheCorruptedError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hearlike.io import sha256_file

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
FP16_MAX = float(np.finfo(np.float16).max)


class CacheCorruptedError(RuntimeError):
    """A cached layer file does not match the checksum recorded in its manifest (or cannot be parsed)."""


def key_sha256(key: Mapping[str, Any]) -> str:
    """Stable hash of a cache key (canonical JSON)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def sentence_tensor_names(sentence_id: int) -> tuple[str, str]:
    """The two tensor names of one sentence in a layer file."""
    base = f"s{int(sentence_id):04d}"
    return base, f"{base}.times"


def _atomic_path(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return tmp


def write_layer(path: str | Path, items: Mapping[int, tuple[np.ndarray, np.ndarray]], *,
                store_dtype: str = "float16", metadata: Mapping[str, str] | None = None) -> str:
    """Write one layer file atomically; returns its sha256.

    Raises ValueError when a value does not fit float16 (instead of silently storing ±inf).
    """
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dt = np.dtype(store_dtype)
    tensors: dict[str, np.ndarray] = {}
    for sid in sorted(items):
        states, times = items[sid]
        states = np.asarray(states)
        times = np.asarray(times, dtype=np.float64)
        if states.ndim != 2 or times.shape != (states.shape[0], 2):
            raise ValueError(f"{path.name}: sentence {sid}: states {states.shape} / times {times.shape} mismatch")
        if dt == np.float16:
            finite = states[np.isfinite(states)]
            if finite.size and np.abs(finite).max() > FP16_MAX:
                raise ValueError(f"{path.name}: sentence {sid}: |value| up to {np.abs(finite).max():.3g} does not fit "
                                 "float16; rerun with settings store_dtype: float32")
        name, tname = sentence_tensor_names(sid)
        tensors[name] = np.ascontiguousarray(states.astype(dt))
        tensors[tname] = np.ascontiguousarray(times)
    # One metadata entry holding sorted JSON: safetensors writes a multi-key map in hash order, which
    # would make otherwise identical files differ byte-wise.
    meta = {"hearlike": json.dumps(dict(metadata or {}), sort_keys=True)}
    tmp = _atomic_path(path)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sha256_file(path)


def write_manifest(out_dir: str | Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically (written last, so its presence means the cache is complete)."""
    path = Path(out_dir) / MANIFEST
    tmp = _atomic_path(path)
    try:
        Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest of an activation directory."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no activation manifest; run extract_activations for this model first")
    return json.loads(path.read_text())


def _manifest_entry_for(path: Path) -> dict[str, Any] | None:
    mpath = path.parent / MANIFEST
    if not mpath.exists():
        return None
    man = json.loads(mpath.read_text())
    for layer in man.get("layers", []) + man.get("extra_layers", []):
        if layer.get("file") == path.name:
            return layer
    return None


def verify_file(path: str | Path, expected_sha256: str) -> None:
    """Raise :class:`CacheCorruptedError` naming ``path`` when it is missing or its sha256 differs."""
    path = Path(path)
    if not path.exists():
        raise CacheCorruptedError(f"{path}: layer file listed in {MANIFEST} is missing; rerun extraction")
    found = sha256_file(path)
    if found != expected_sha256:
        raise CacheCorruptedError(f"{path}: checksum mismatch (manifest sha256 {expected_sha256[:12]}…, file "
                                  f"{found[:12]}…): the file is corrupted or was modified; delete it and rerun "
                                  "extraction")


def verify_cache(out_dir: str | Path, layers: Iterable[str] | None = None) -> None:
    """Check every (or the named) layer file of ``out_dir`` against the manifest checksums."""
    man = load_manifest(out_dir)
    wanted = set(layers) if layers is not None else None
    for layer in man["layers"] + man.get("extra_layers", []):
        if wanted is None or layer["name"] in wanted:
            verify_file(Path(out_dir) / layer["file"], layer["sha256"])


def read_layer(path: str | Path, *, verify: bool = True) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{sentence_id: (states float32 (T × D), times float64 (T × 2))}`` of one layer file.

    With ``verify`` (default) the file's sha256 is checked against the sibling ``manifest.json``.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: layer file not found; run extract_activations first")
    if verify:
        entry = _manifest_entry_for(path)
        if entry is not None:
            verify_file(path, entry["sha256"])
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CacheCorruptedError(f"{path}: cannot be read as safetensors ({err}); delete it and rerun extraction") \
            from err
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for name, arr in tensors.items():
        if name.endswith(".times"):
            continue
        sid = int(name[1:])
        times = tensors.get(f"{name}.times")
        if times is None:
            raise CacheCorruptedError(f"{path}: tensor {name} has no {name}.times")
        out[sid] = (arr.astype(np.float32), times.astype(np.float64))
    return dict(sorted(out.items()))
