"""Extraction support for model families that transformers cannot load by itself.

Each module here serves one registry ``family`` whose code lives outside transformers: remote code that
needs more than ``AutoModel`` (MiniCPM-o, Baichuan-Audio) or the model's own GitHub package, checked out at
the registry's pinned ``code.commit`` (GLM-4-Voice, LLaMA-Omni, SpeechGPT-2.0). A family module provides

* ``load(entry, model_dir, *, device, dtype) -> (model, processor)`` — called by
  :func:`hearlike.models.loaders.load_model` *after* the generic checks (model present, remote code pinned
  and unmodified, package code on ``sys.path``); returns the model in eval mode on ``device``;
* ``ADAPTER`` — a :class:`hearlike.models.extract.Adapter` subclass whose ``run(clips)`` returns, per clip,
  ``{layer_name: (states, times)}`` exactly as the built-in adapters do.

Modules are imported only when their family is used, so the main environment never imports code that
needs the side environments (``envs/transformers4.yaml``, ``envs/<family>.yaml``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILY_MODULES: dict[str, str] = {
    "minicpm_o": "hearlike.models.families.minicpm_o",
    "glm4_voice": "hearlike.models.families.glm4_voice",
    "baichuan_audio": "hearlike.models.families.baichuan_audio",
    "llama_omni": "hearlike.models.families.llama_omni",
    "speechgpt2": "hearlike.models.families.speechgpt2",
}


def family_module(family: str) -> ModuleType | None:
    """The module serving ``family``, or None for families handled in :mod:`hearlike.models.extract`."""
    name = FAMILY_MODULES.get(family)
    return importlib.import_module(name) if name is not None else None
