"""Demo models: deterministic builds and adjacent layers that are clearly distinguishable."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hearlike.models.cache import read_layer  # noqa: E402
from hearlike.models.extract import extract_activations  # noqa: E402
from hearlike.models.registry import default_registry_path  # noqa: E402
from hearlike.models.tiny import build_demo_model, read_model_marker, speechlike_audio  # noqa: E402

DEMOS = ["demo-whisper", "demo-wavlm", "demo-qwen2-audio"]


def pca_z(x: np.ndarray, k: int = 20) -> np.ndarray:
    """PCA-k per sentence, each component z-scored (the study's model-feature recipe)."""
    x = x.astype(np.float64) - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    z = x @ vt[:min(k, *x.shape)].T
    return (z - z.mean(0)) / z.std(0, ddof=1)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("demo")
    audio = root / "audio.npz"
    np.savez(audio, **{f"s{i:04d}": speechlike_audio(3.0, seed=100 + i) for i in (1, 2, 3)})
    out = {}
    for key in DEMOS:
        build_demo_model(key=key, registry=default_registry_path(), out_dir=root / key)
        man = extract_activations(key=key, registry=default_registry_path(), model_dir=root / key,
                                  audio_npz=audio, out_dir=root / f"act-{key}", device="cpu")
        out[key] = {lay["name"]: read_layer(root / f"act-{key}" / lay["file"]) for lay in man["layers"]}
    return {"root": root, "layers": out}


@pytest.mark.parametrize("key", DEMOS)
def test_demo_build_is_byte_identical(built: dict[str, Any], key: str, tmp_path: Path) -> None:
    again = tmp_path / key
    build_demo_model(key=key, registry=default_registry_path(), out_dir=again)
    first = built["root"] / key
    assert (again / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()
    assert read_model_marker(again)["revision"] == read_model_marker(first)["revision"]


@pytest.mark.parametrize("key", DEMOS)
def test_adjacent_layers_distinguishable(built: dict[str, Any], key: str) -> None:
    layers = built["layers"][key]
    names = sorted(layers)
    pairs = [(a, b) for a, b in itertools.pairwise(names) if a.split(".")[0] == b.split(".")[0]]
    assert pairs
    for a, b in pairs:
        vals = [linear_cka(pca_z(layers[a][s][0]), pca_z(layers[b][s][0])) for s in layers[a]]
        assert max(vals) < 0.9, (key, a, b, vals)
        # ... but not unrelated: consecutive layers still share structure.
        assert min(vals) > 0.3, (key, a, b, vals)
