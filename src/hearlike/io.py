"""Small, strict readers and writers for the study's tidy tables and array bundles."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NA = "n/a"


def write_tsv(df: pd.DataFrame, path: str | Path, *, float_format: str = "%.10g") -> None:
    """Write a tidy table atomically (temp file + rename), so a killed job leaves no partial table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.to_csv(tmp, sep="\t", index=False, na_rep=NA, float_format=float_format, lineterminator="\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_tsv(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """Read a tidy table written by :func:`write_tsv` (``n/a`` → NaN, BOM tolerated)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: table not found; run the rule that writes it first")
    return pd.read_csv(path, sep="\t", na_values=[NA], keep_default_na=False, encoding="utf-8-sig", **kwargs)


def save_npz_dict(path: str | Path, arrays: Mapping[str, np.ndarray], *, meta: Mapping[str, Any] | None = None) -> None:
    """Save named arrays (+ JSON metadata under ``__meta__``) atomically as an uncompressed ``.npz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    if meta is not None:
        payload["__meta__"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_npz_dict(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Inverse of :func:`save_npz_dict`: ``(arrays, meta)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: array bundle not found; run the rule that writes it first")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(z["__meta__"].tobytes().decode()) if "__meta__" in z.files else {}
    return arrays, meta


def sentence_key(sentence_id: int) -> str:
    """The array key of one sentence (``s0007``)."""
    return f"s{int(sentence_id):04d}"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
