"""Activation cache: round trip, key invalidation, checksum corruption, fp16 range, OOM batch halving."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hearlike.io import sha256_file  # noqa: E402
from hearlike.models.cache import (  # noqa: E402
    CacheCorruptedError,
    load_manifest,
    read_layer,
    verify_cache,
    write_layer,
)
from hearlike.models.extract import extract_activations, run_batches  # noqa: E402
from hearlike.models.registry import default_registry_path, layer_names, load_registry  # noqa: E402
from hearlike.models.tiny import build_demo_model, speechlike_audio  # noqa: E402

KEY = "demo-whisper"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cache")
    reg = default_registry_path()
    build_demo_model(key=KEY, registry=reg, out_dir=root / "model")
    audio = root / "audio.npz"
    np.savez(audio, s0003=speechlike_audio(1.5, seed=3), s0010=speechlike_audio(2.2, seed=10))
    return {"root": root, "registry": reg, "model": root / "model", "audio": audio}


def _extract(demo: dict[str, Any], out: Path, **kw: Any) -> dict[str, Any]:
    kw.setdefault("audio_npz", demo["audio"])
    return extract_activations(key=KEY, registry=demo["registry"], model_dir=demo["model"], out_dir=out,
                               device="cpu", **kw)


def _mtimes(d: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(d.glob("*.safetensors"))}


def test_round_trip_and_manifest(demo: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "act"
    man = _extract(demo, out)
    entry = load_registry(demo["registry"])[KEY]
    assert [lay["name"] for lay in man["layers"]] == layer_names(entry)
    key = man["key"]
    for field in ("hub_id", "revision", "dtype", "settings", "hearlike_version", "audio_sha256"):
        assert field in key
    assert key["dtype"] == "float32" and key["revision"] == key["model_files_revision"]
    assert load_manifest(out) == man
    for lay in man["layers"]:
        path = out / lay["file"]
        assert lay["sha256"] == sha256_file(path)
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            assert sorted(f.keys()) == ["s0003", "s0003.times", "s0010", "s0010.times"]
            raw = f.get_tensor("s0010")
            assert raw.dtype == np.float16
        data = read_layer(path)
        states, times = data[10]
        assert states.dtype == np.float32 and times.dtype == np.float64
        np.testing.assert_array_equal(states, raw.astype(np.float32))
        assert states.shape == (110, 64) and data[3][0].shape == (75, 64)
    assert not (out / ".partial").exists()


def test_same_key_is_a_cache_hit(demo: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "act"
    first = _extract(demo, out)
    before = _mtimes(out)
    with caplog.at_level(logging.INFO, logger="hearlike.models.extract"):
        again = _extract(demo, out)
    assert again["key_sha256"] == first["key_sha256"] and _mtimes(out) == before
    assert "cache hit" in caplog.text


def test_changed_key_recomputes(demo: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "act"
    first = _extract(demo, out)
    second = _extract(demo, out, settings={"store_dtype": "float32"})
    assert second["key_sha256"] != first["key_sha256"]
    assert second["key"]["settings"]["store_dtype"] == "float32"
    from safetensors import safe_open

    with safe_open(str(out / "encoder.00.safetensors"), framework="np") as f:
        assert f.get_tensor("s0003").dtype == np.float32
    # New audio is a new key too.
    audio2 = tmp_path / "audio2.npz"
    np.savez(audio2, s0003=speechlike_audio(1.0, seed=4))
    third = _extract(demo, out, audio_npz=audio2)
    assert third["sentence_ids"] == [3] and third["key"]["audio_sha256"] != first["key"]["audio_sha256"]
    assert sorted(read_layer(out / "encoder.00.safetensors")) == [3]


def test_corrupted_file_detected_and_recomputed(demo: dict[str, Any], tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "act"
    man = _extract(demo, out)
    victim = out / "encoder.02.safetensors"
    blob = bytearray(victim.read_bytes())
    blob[-7] ^= 0xFF  # flip bits inside tensor data: still parses, checksum must catch it
    victim.write_bytes(bytes(blob))
    with pytest.raises(CacheCorruptedError, match=r"encoder\.02\.safetensors.*checksum mismatch"):
        read_layer(victim)
    with pytest.raises(CacheCorruptedError, match=r"encoder\.02\.safetensors"):
        verify_cache(out)
    read_layer(out / "encoder.01.safetensors")  # untouched layers still read
    with caplog.at_level(logging.WARNING, logger="hearlike.models.extract"):
        again = _extract(demo, out)
    assert "encoder.02.safetensors" in caplog.text and "recomputing" in caplog.text
    assert again["key_sha256"] == man["key_sha256"]
    verify_cache(out)
    assert sha256_file(victim) == next(lay["sha256"] for lay in man["layers"] if lay["name"] == "encoder.02")


def test_truncated_file_reported(tmp_path: Path) -> None:
    path = tmp_path / "encoder.00.safetensors"
    write_layer(path, {1: (np.ones((3, 4), np.float32), np.zeros((3, 2)))})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CacheCorruptedError, match=r"encoder\.00\.safetensors"):
        read_layer(path, verify=False)


def test_float16_overflow_refused(tmp_path: Path) -> None:
    big = np.full((2, 3), 1e5, np.float32)
    with pytest.raises(ValueError, match="float16"):
        write_layer(tmp_path / "x.safetensors", {1: (big, np.zeros((2, 2)))})
    write_layer(tmp_path / "x.safetensors", {1: (big, np.zeros((2, 2)))}, store_dtype="float32")
    np.testing.assert_array_equal(read_layer(tmp_path / "x.safetensors")[1][0], big)


def test_oom_halves_batch_size() -> None:
    calls: list[int] = []
    done: list[int] = []

    def run(batch: list[int]) -> list[int]:
        calls.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("fake CUDA OOM")
        return [x * 10 for x in batch]

    final = run_batches(run, list(range(7)), batch_size=8,
                        sink=lambda i, batch, out: done.extend(out))
    assert final == 2 and done == [x * 10 for x in range(7)]
    assert calls[:3] == [7, 4, 2]

    def always(batch: list[int]) -> list[int]:
        raise torch.OutOfMemoryError("fake")

    with pytest.raises(torch.OutOfMemoryError):
        run_batches(always, [1, 2], batch_size=2, sink=lambda *a: None)


def test_unknown_setting_rejected(demo: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown extraction setting"):
        _extract(demo, tmp_path / "a", settings={"llm_last_layers": "raw"})


def test_progress_and_peak_memory_logged(demo: dict[str, Any], tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hearlike.models.extract"):
        man = _extract(demo, tmp_path / "act")
    assert "2/2" in caplog.text and "peak memory" in caplog.text
    assert man["run"]["peak_mem_kind"] == "ru_maxrss" and man["run"]["peak_mem_mb"] > 0
    assert os.path.getsize(tmp_path / "act" / "manifest.json") > 0
