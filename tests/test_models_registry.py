"""Model registry schema/consistency and the download entry point (no network: snapshot_download is faked)."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearlike.models.registry import (
    RegistryError,
    default_registry_path,
    layer_names,
    layer_table,
    load_registry,
)

PAPER_HUB_IDS = {
    "Qwen/Qwen2-Audio-7B", "Qwen/Qwen2-Audio-7B-Instruct", "fixie-ai/ultravox-v0_5-llama-3_1-8b",
    "fixie-ai/ultravox-v0_5-llama-3_2-1b", "ibm-granite/granite-speech-3.3-8b", "nvidia/audio-flamingo-3-hf",
    "openbmb/MiniCPM-o-2_6", "THUDM/glm-4-voice-9b", "baichuan-inc/Baichuan-Audio-Base",
    "baichuan-inc/Baichuan-Audio-Instruct", "ICTNLP/Llama-3.1-8B-Omni", "fnlp/SpeechGPT-2.0-preview-7B",
}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_registry_path().read_text())


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    p = tmp_path / "models.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_registry_contents() -> None:
    reg = load_registry(default_registry_path())
    paper = {e.hub_id for e in reg.values() if e.role == "paper"}
    assert paper == PAPER_HUB_IDS
    assert {e.hub_id for e in reg.values() if e.role == "baseline"} == {
        "openai/whisper-large-v3", "microsoft/wavlm-large", "facebook/hubert-large-ll60k",
        "facebook/wav2vec2-large-lv60"}
    assert {k for k, e in reg.items() if e.role == "demo"} == {"demo-whisper", "demo-wavlm", "demo-qwen2-audio"}
    for e in reg.values():
        # Unpinned (null) or a real 40-hex commit; never a made-up placeholder like "main".
        assert e.revision is None or re.fullmatch(r"[0-9a-f]{40}", e.revision)
        if e.kind == "audio_llm":
            assert "llm" in e.targets and e.prompt.count("{audio}") == 1
        assert e.env == "main" or (default_registry_path().parents[1] / "envs" / f"{e.env}.yaml").exists()
    assert reg["demo-qwen2-audio"].targets["llm"].rate_hz == 25
    assert reg["granite-speech-3.3-8b"].targets["llm"].rate_hz == 10
    assert reg["wavlm-large"].targets["encoder"].frame_length == 0.025
    assert reg["demo-whisper"].targets["encoder"].frame_length == pytest.approx(0.02)


def test_layer_names_and_table() -> None:
    reg = load_registry(default_registry_path())
    names = layer_names(reg["demo-qwen2-audio"])
    assert names == [f"encoder.{i:02d}" for i in range(4)] + [f"llm.{i:02d}" for i in range(4)]
    table = layer_table(reg["demo-qwen2-audio"])
    assert [r["layer_index"] for r in table] == list(range(8))
    assert table[0]["relative_depth"] == 0.0 and table[-1]["relative_depth"] == 1.0
    assert len(layer_names(reg["qwen2-audio-7b"])) == 64
    assert layer_names(reg["speechgpt-2.0-preview-7b"])[0] == "llm.00"


@pytest.mark.parametrize(("path", "value", "match"), [
    (("demo-whisper", "dtpye"), "float32", "dtpye"),                          # typo'd key
    (("qwen2-audio-7b", "revision"), "main", "revision"),                      # not a commit
    (("qwen2-audio-7b", "revision"), "a" * 39, "revision"),
    (("qwen2-audio-7b", "targets", "llm", "rate_hz"), 0, "rate_hz"),
    (("qwen2-audio-7b", "targets", "encoder", "modules"), "model..x", "modules"),
    (("qwen2-audio-7b", "prompt"), "no placeholder", "prompt"),
    (("demo-wavlm", "builder", "encoder_layers"), 3, "builder"),                # builder vs targets
    (("wavlm-large", "loader"), "pip", "loader"),
])
def test_invalid_registry_fails(raw: dict[str, Any], tmp_path: Path, path: tuple, value: Any, match: str) -> None:
    data = copy.deepcopy(raw)
    node = data["models"]
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(RegistryError, match=match):
        load_registry(_write(tmp_path, data))


def test_demo_needs_builder_and_real_needs_hub_id(raw: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(raw)
    del data["models"]["demo-whisper"]["builder"]
    with pytest.raises(RegistryError, match="builder"):
        load_registry(_write(tmp_path, data))
    data = copy.deepcopy(raw)
    data["models"]["wavlm-large"]["hub_id"] = None
    with pytest.raises(RegistryError, match="hub_id"):
        load_registry(_write(tmp_path, data))


def test_unknown_model_message() -> None:
    from hearlike.models.registry import get_entry

    with pytest.raises(RegistryError, match="not in the registry"):
        get_entry(default_registry_path(), "qwen3-audio")


# ---------------------------------------------------------------------------------------- download
def test_download_refuses_unpinned_and_demo(tmp_path: Path) -> None:
    from hearlike.models.download import UnpinnedRevisionError, download_model

    with pytest.raises(UnpinnedRevisionError, match=r"huggingface\.co/fnlp/SpeechGPT-2\.0-preview-7B/commits/main"):
        download_model(key="speechgpt-2.0-preview-7b", registry=default_registry_path(), dest=tmp_path / "m")
    with pytest.raises(ValueError, match="build_demo_model"):
        download_model(key="demo-wavlm", registry=default_registry_path(), dest=tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_download_pinned_writes_marker(raw: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    from hearlike.models import download
    from hearlike.models.tiny import read_model_marker

    rev = "0123456789abcdef0123456789abcdef01234567"
    data = copy.deepcopy(raw)
    e = data["models"]["ultravox-v0_5-llama-3_2-1b"]
    e["revision"] = rev
    for c in e["companions"]:
        c["revision"] = rev
    reg = _write(tmp_path, data)
    calls: list[tuple[str, str]] = []

    def fake_snapshot(repo_id: str, revision: str, local_dir: str) -> str:
        calls.append((repo_id, revision))
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "config.json").write_text("{}")
        (Path(local_dir) / "ultravox_model.py").write_text("# code\n")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    dest = tmp_path / "uv"
    assert download.main(["ultravox-v0_5-llama-3_2-1b", "--dest", str(dest), "--registry", str(reg)]) == 0
    assert calls[0] == ("fixie-ai/ultravox-v0_5-llama-3_2-1b", rev) and len(calls) == 3
    marker = read_model_marker(dest)
    assert marker["revision"] == rev and marker["hub_id"] == "fixie-ai/ultravox-v0_5-llama-3_2-1b"
    assert "ultravox_model.py" in marker["files"]
    assert (dest / "companions" / "openai__whisper-large-v3-turbo" / "config.json").exists()


# ------------------------------------------------------------------------------ package code (loader: package)
def _git(*args: str, cwd: Path) -> str:
    import subprocess

    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_package_code_checkout_and_refusals(raw: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`loader: package` code is cloned at the pinned commit (a local git repo here) and checked before import."""
    import sys

    import huggingface_hub

    from hearlike.models import download
    from hearlike.models.loaders import RemoteCodeRefusedError, check_package_code
    from hearlike.models.registry import get_entry
    from hearlike.models.tiny import read_model_marker

    src = tmp_path / "src"
    (src / "hl_pkg_probe").mkdir(parents=True)
    (src / "hl_pkg_probe" / "__init__.py").write_text("VALUE = 1\n")
    _git("init", "-q", cwd=src)
    _git("add", ".", cwd=src)
    _git("commit", "-q", "-m", "one", cwd=src)
    first = _git("rev-parse", "HEAD", cwd=src)
    (src / "hl_pkg_probe" / "__init__.py").write_text("VALUE = 2\n")
    _git("commit", "-q", "-am", "two", cwd=src)

    data = copy.deepcopy(raw)
    e = data["models"]["llama-3.1-8b-omni"]
    e["revision"] = "1" * 40
    e["companions"] = []
    e["code"] = {"repo": f"file://{src}", "commit": first, "python_path": ["."]}
    weights = tmp_path / "large-v3.pt"
    weights.write_bytes(b"encoder weights")
    e["files"] = [{"url": weights.as_uri(), "sha256": hashlib.sha256(b"encoder weights").hexdigest(),
                   "path": "models/speech_encoder/large-v3.pt", "purpose": "test"}]
    reg = _write(tmp_path, data)

    def fake_snapshot(repo_id: str, revision: str, local_dir: str) -> str:
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "config.json").write_text("{}")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(sys, "path", list(sys.path))
    dest = tmp_path / "omni"
    download.main(["llama-3.1-8b-omni", "--dest", str(dest), "--registry", str(reg)])
    code = dest / "hearlike_code"
    # The pinned commit, not the branch head, and no .git directory (the marker records every file instead).
    assert (code / "hl_pkg_probe" / "__init__.py").read_text() == "VALUE = 1\n" and not (code / ".git").exists()
    marker = read_model_marker(dest)
    assert marker["code"] == {"repo": f"file://{src}", "commit": first}
    assert "hearlike_code/hl_pkg_probe/__init__.py" in marker["files"]

    # The single file is fetched, checked and recorded like every other model file.
    assert (dest / "models/speech_encoder/large-v3.pt").read_bytes() == b"encoder weights"
    assert marker["files"]["models/speech_encoder/large-v3.pt"] == e["files"][0]["sha256"]

    entry = get_entry(reg, "llama-3.1-8b-omni")
    assert check_package_code(entry, dest) == code and str(code.resolve()) in sys.path
    e["revision"] = "2" * 40
    with pytest.raises(RemoteCodeRefusedError, match=r"registry pins ICTNLP/Llama-3\.1-8B-Omni@2222"):
        check_package_code(get_entry(_write(tmp_path, data), "llama-3.1-8b-omni"), dest)
    e["revision"] = "1" * 40

    e["code"]["commit"] = "f" * 40
    with pytest.raises(RemoteCodeRefusedError, match="registry pins"):
        check_package_code(get_entry(_write(tmp_path, data), "llama-3.1-8b-omni"), dest)
    (code / "hl_pkg_probe" / "__init__.py").write_text("VALUE = 3\n")
    with pytest.raises(RemoteCodeRefusedError, match="modified after download"):
        check_package_code(entry, dest)
    (code / "hl_pkg_probe" / "extra.py").write_text("x = 1\n")
    (code / "hl_pkg_probe" / "__init__.py").write_text("VALUE = 1\n")
    with pytest.raises(RemoteCodeRefusedError, match="not part of the pinned"):
        check_package_code(entry, dest)
    import shutil

    shutil.rmtree(code)
    with pytest.raises(RemoteCodeRefusedError, match=r"own code is missing.*hearlike\.models\.download"):
        check_package_code(entry, dest)
    with pytest.raises(RuntimeError, match="checkout"):
        download.checkout_code(repo=f"file://{src}", commit="e" * 40, dest=tmp_path / "bad")
    with pytest.raises(ValueError, match="differs from the registry"):
        download.fetch_file(url=weights.as_uri(), sha256="0" * 64, dest=tmp_path / "w" / "large-v3.pt")
    assert not (tmp_path / "w" / "large-v3.pt").exists() and not list((tmp_path / "w").iterdir())


def test_package_entries_name_their_code(raw: dict[str, Any], tmp_path: Path) -> None:
    """Every `loader: package` entry pins its code; the schema refuses one without `code:` and code elsewhere."""
    reg = load_registry()
    pkg = [e for e in reg.values() if e.loader == "package"]
    assert pkg and all(re.fullmatch(r"[0-9a-f]{40}", e.code["commit"]) for e in pkg)
    data = copy.deepcopy(raw)
    del data["models"]["llama-3.1-8b-omni"]["code"]
    with pytest.raises(RegistryError, match="'code' is a required property"):
        load_registry(_write(tmp_path, data))
    data = copy.deepcopy(raw)
    data["models"]["wavlm-large"]["code"] = dict(raw["models"]["llama-3.1-8b-omni"]["code"])
    with pytest.raises(RegistryError, match="wavlm-large"):
        load_registry(_write(tmp_path, data))
