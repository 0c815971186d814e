"""Offline model loading for registry entries (no network; remote code only for pinned revisions).

Every ``from_pretrained`` call gets ``local_files_only=True``. ``trust_remote_code`` is passed only for
``loader: remote_code`` entries whose registry ``revision`` is a pinned 40-hex commit that equals the
revision recorded in the model directory's ``hearlike_model.json`` (written by
:func:`hearlike.models.download.download_model` or the tiny builders), and only when every ``.py`` file
in the directory has the sha256 recorded there. Dynamic modules go to ``$HEARLIKE_HF_CACHE/modules``
(default ``.hf_cache/modules`` in the working directory), never to ``~/.cache``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hearlike.models.registry import ModelEntry
from hearlike.models.tiny import MARKER, read_model_marker

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class ModelNotAvailableError(FileNotFoundError):
    """The model directory is missing; the message says how to get it."""


class RemoteCodeRefusedError(PermissionError):
    """trust_remote_code was refused for this entry/directory."""


def hf_cache_dir() -> Path:
    """Project-local Hugging Face cache root (``$HEARLIKE_HF_CACHE`` or ``./.hf_cache``)."""
    return Path(os.environ.get("HEARLIKE_HF_CACHE", ".hf_cache")).resolve()


_MODULES_DIR: str | None = None  # the dynamic-module root this process imports remote code from


def _set_modules_cache() -> None:
    """Point transformers' dynamic-module cache at the project cache (even if transformers is imported)."""
    global _MODULES_DIR
    mod_dir = hf_cache_dir() / "modules"
    mod_dir.mkdir(parents=True, exist_ok=True)
    os.environ["HF_MODULES_CACHE"] = str(mod_dir)
    import transformers.dynamic_module_utils as dmu
    import transformers.utils.hub as hub

    # The constant is read once at import time; set it on the modules that use it.
    dmu.HF_MODULES_CACHE = str(mod_dir)
    hub.HF_MODULES_CACHE = str(mod_dir)
    if _MODULES_DIR is not None and _MODULES_DIR != str(mod_dir):
        # Another cache root earlier in this process (tests do this): the imported `transformers_modules`
        # package still points at the old root, so forget it and let the next import resolve the new one.
        if _MODULES_DIR in sys.path:
            sys.path.remove(_MODULES_DIR)
        for name in [m for m in sys.modules if m == "transformers_modules" or m.startswith("transformers_modules.")]:
            del sys.modules[name]
    if str(mod_dir) not in sys.path:
        sys.path.insert(0, str(mod_dir))
    _MODULES_DIR = str(mod_dir)


def missing_model_message(entry: ModelEntry, model_dir: Path) -> str:
    """How to obtain a model that is not present locally."""
    if entry.builder is not None:
        return (f"model {entry.key!r} not found at {model_dir}: it is a demo model; build it with "
                f"hearlike.models.tiny.build_demo_model(key={entry.key!r}, registry=..., out_dir={str(model_dir)!r})")
    pin = "" if entry.pinned else (f" (first pin `revision` of {entry.key} in resources/models.yaml to a commit of "
                                   f"https://huggingface.co/{entry.hub_id}/commits/main)")
    return (f"model {entry.key!r} ({entry.hub_id}) not found at {model_dir}; download it with:\n"
            f"    python -m hearlike.models.download {entry.key} --dest {model_dir}{pin}")


def check_model_dir(entry: ModelEntry, model_dir: str | Path) -> Path:
    """Raise :class:`ModelNotAvailableError` unless ``model_dir`` holds a model (``config.json``)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise ModelNotAvailableError(missing_model_message(entry, model_dir))
    return model_dir


def check_remote_code_allowed(entry: ModelEntry, model_dir: Path) -> dict[str, Any]:
    """Refuse ``trust_remote_code`` unless the entry is pinned and the directory matches it (see module doc)."""
    if not entry.pinned:
        raise RemoteCodeRefusedError(
            f"{entry.key}: trust_remote_code refused: registry revision is {entry.revision!r}, not a pinned 40-hex "
            "commit. Pin the revision you have reviewed in resources/models.yaml.")
    marker = read_model_marker(model_dir)
    if marker is None:
        raise RemoteCodeRefusedError(
            f"{entry.key}: trust_remote_code refused: {model_dir / MARKER} is missing, so the directory cannot be "
            f"tied to the pinned revision; download it with python -m hearlike.models.download {entry.key} "
            f"--dest {model_dir}")
    _check_marker_pins(entry, model_dir, marker, "trust_remote_code refused: ")
    _check_py_files(entry, model_dir, marker)
    return marker


def _check_marker_pins(entry: ModelEntry, model_dir: Path, marker: dict[str, Any], prefix: str = "",
                       fix: str = "") -> None:
    """The directory's marker must record the registry's hub id and revision."""
    if marker.get("revision") != entry.revision or marker.get("hub_id") != entry.hub_id:
        raise RemoteCodeRefusedError(
            f"{entry.key}: {prefix}{model_dir} holds {marker.get('hub_id')}@{marker.get('revision')}, the registry "
            f"pins {entry.hub_id}@{entry.revision}{fix}")


CODE_DIR = "hearlike_code"


def check_package_code(entry: ModelEntry, model_dir: Path) -> Path:
    """For ``loader: package``: put the model's own code (checked out at the pinned commit) on ``sys.path``.

    The checkout lives in ``<model_dir>/hearlike_code``; the marker must record the registry's repo and
    commit, and every ``.py`` file must still have the sha256 recorded at download (same rule as remote code).
    """
    if not entry.code:
        raise ValueError(f"{entry.key}: loader package needs a `code:` block (repo, commit) in the registry")
    marker = read_model_marker(model_dir)
    code_dir = model_dir / CODE_DIR
    fix = f"download it with python -m hearlike.models.download {entry.key} --dest {model_dir}"
    if marker is None or not code_dir.is_dir():
        raise RemoteCodeRefusedError(f"{entry.key}: the model's own code is missing ({code_dir} or "
                                     f"{model_dir / MARKER}); {fix}")
    if entry.pinned:
        _check_marker_pins(entry, model_dir, marker, fix=f"; {fix}")
    rec = marker.get("code") or {}
    if rec.get("commit") != entry.code["commit"] or rec.get("repo") != entry.code["repo"]:
        raise RemoteCodeRefusedError(
            f"{entry.key}: {code_dir} holds {rec.get('repo')}@{rec.get('commit')}, the registry pins "
            f"{entry.code['repo']}@{entry.code['commit']}; {fix}")
    _check_py_files(entry, model_dir, marker)
    for rel in reversed(entry.code.get("python_path") or ["."]):
        # The pinned checkout must win over any same-named package found earlier on sys.path.
        path = str((code_dir / rel).resolve())
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    return code_dir


def import_from_checkout(code_dir: Path, name: str) -> Any:
    """Import ``name`` from the pinned checkout ``code_dir`` (put on ``sys.path`` by :func:`check_package_code`).

    Model repos use generic package names (``models``, ``utils``, ``speech_tokenizer``): a same-named package
    imported earlier from elsewhere is dropped first, and the result must come from ``code_dir``.
    """
    import importlib
    import logging

    root = name.split(".")[0]
    code_dir = Path(code_dir).resolve()
    cached = sys.modules.get(root)
    if cached is not None and code_dir not in Path(getattr(cached, "__file__", "/") or "/").resolve().parents:
        logging.getLogger(__name__).warning("dropping cached module %s (%s): not from %s", root,
                                            getattr(cached, "__file__", None), code_dir)
        for key in [k for k in sys.modules if k == root or k.startswith(root + ".")]:
            del sys.modules[key]
    mod = importlib.import_module(name)
    where = Path(getattr(mod, "__file__", "") or "").resolve()
    if code_dir not in where.parents:
        raise ImportError(f"{name} was imported from {where}, not from the pinned checkout {code_dir}; another "
                          "package on sys.path shadows it")
    return mod


def companion_dir(model_dir: Path, hub_id: str) -> Path:
    """Where :func:`hearlike.models.download.download_model` puts a companion repo of ``model_dir``."""
    return Path(model_dir) / "companions" / hub_id.replace("/", "__")


def _check_py_files(entry: ModelEntry, model_dir: Path, marker: dict[str, Any]) -> None:
    """Every ``.py`` file under ``model_dir`` must be listed in the marker with its recorded sha256."""
    from hearlike.io import sha256_file

    recorded = marker.get("files", {})
    for py in sorted(model_dir.rglob("*.py")):
        if "__pycache__" in py.parts:
            continue
        rel = py.relative_to(model_dir).as_posix()
        if rel not in recorded:
            raise RemoteCodeRefusedError(f"{entry.key}: code refused: {py} is not part of the pinned "
                                         f"revision (not listed in {MARKER})")
        if sha256_file(py) != recorded[rel]:
            raise RemoteCodeRefusedError(f"{entry.key}: code refused: {py} was modified after download "
                                         "(sha256 differs from the pinned revision's)")


def dtype_kwarg() -> str:
    """Name of ``from_pretrained``'s dtype argument: ``dtype`` in transformers 5, ``torch_dtype`` in the 4.x side envs."""
    import transformers as tf

    return "dtype" if int(tf.__version__.split(".")[0]) >= 5 else "torch_dtype"


def torch_dtype(name: str) -> Any:
    """``"bfloat16"`` → ``torch.bfloat16``."""
    import torch

    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}")
    return getattr(torch, _DTYPES[name])


def _granite_processor(model_dir: Path) -> Any:
    """GraniteSpeechProcessor with the torch-only feature extractor (stock one needs torchaudio)."""
    import inspect

    from transformers import AutoTokenizer, GraniteSpeechProcessor

    from hearlike.models.granite_fe import TorchGraniteSpeechFeatureExtractor

    fe_cfg: dict[str, Any] = {}
    proc_cfg: dict[str, Any] = {}
    if (model_dir / "processor_config.json").exists():
        proc_cfg = json.loads((model_dir / "processor_config.json").read_text())
        fe_cfg = dict(proc_cfg.get("audio_processor", {}))
    if not fe_cfg and (model_dir / "preprocessor_config.json").exists():
        fe_cfg = json.loads((model_dir / "preprocessor_config.json").read_text())
    fe_cfg.update(fe_cfg.pop("melspec_kwargs", {}))
    if "sample_rate" in fe_cfg:
        fe_cfg["sampling_rate"] = fe_cfg.pop("sample_rate")
    allowed = set(inspect.signature(TorchGraniteSpeechFeatureExtractor.__init__).parameters) - {"self", "kwargs"}
    fe = TorchGraniteSpeechFeatureExtractor(**{k: v for k, v in fe_cfg.items() if k in allowed})
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return GraniteSpeechProcessor(audio_processor=fe, tokenizer=tok,
                                  audio_token=proc_cfg.get("audio_token", "<|audio|>"))


def load_model(entry: ModelEntry, model_dir: str | Path, *, device: str, dtype: str | None = None
               ) -> tuple[Any, Any]:
    """Load ``(model, processor)`` of ``entry`` from ``model_dir`` offline, in eval mode on ``device``."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()  # per-tensor loading bars would flood the rule log
    model_dir = check_model_dir(entry, model_dir)
    if entry.adapter != "implemented":
        raise NotImplementedError(
            f"{entry.key}: no extraction adapter for family {entry.family!r} (loader {entry.loader}, env {entry.env});"
            f" see the entry's notes in resources/models.yaml")
    dt = torch_dtype(dtype or entry.dtype)
    from hearlike.models.families import family_module

    own = family_module(entry.family)
    if own is not None:
        # Families with their own loading code (remote code outside AutoModel's reach, or a GitHub package).
        if entry.loader == "remote_code":
            check_remote_code_allowed(entry, model_dir)
            _set_modules_cache()
        elif entry.loader == "package":
            check_package_code(entry, model_dir)
        model, processor = own.load(entry, model_dir, device=device, dtype=dt)
        return model, processor
    common = {"local_files_only": True, dtype_kwarg(): dt}
    if entry.loader == "remote_code":
        check_remote_code_allowed(entry, model_dir)
        _set_modules_cache()
        model = tf.AutoModel.from_pretrained(model_dir, trust_remote_code=True, **common)
        processor = tf.AutoProcessor.from_pretrained(model_dir, trust_remote_code=True, local_files_only=True)
    elif entry.loader == "native":
        cls = getattr(tf, entry.model_class)
        model = cls.from_pretrained(model_dir, **common)
        if entry.family == "granite_speech":
            processor = _granite_processor(model_dir)
            if getattr(model.config, "has_lora_adapter", False):
                # The audio LoRA is meant to be active whenever audio is in the input (as in generate()).
                if getattr(model, "_hf_peft_config_loaded", False):
                    model.enable_adapters()
                else:
                    raise RuntimeError(f"{entry.key}: config has_lora_adapter=True but no adapter was loaded from "
                                       f"{model_dir}; install peft and check adapter_config.json")
        elif entry.family in ("whisper_encoder", "wav2vec2_like"):
            processor = tf.AutoFeatureExtractor.from_pretrained(model_dir, local_files_only=True)
        else:
            processor = tf.AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    else:
        raise NotImplementedError(f"{entry.key}: loader {entry.loader!r} needs the model's own package; "
                                  "no adapter in this environment")
    if entry.family == "whisper_encoder" and hasattr(model, "decoder"):
        model.decoder = None  # only the encoder is read; frees the decoder's memory
    model.to(device).eval()
    return model, processor
