"""Build a tiny Baichuan-Audio stand-in model directory (remote code + weights + tokenizer + marker).

The directory looks like a downloaded ``baichuan-inc/Baichuan-Audio-*`` snapshot: ``config.json`` with
``model_type: omni`` and an ``auto_map`` to ``modeling_omni.OmniForCausalLM``, the remote-code ``.py``
files, a tokenizer that knows the Baichuan special tokens, and hearlike's ``hearlike_model.json`` marker.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACKAGE = "baichuan_omni_standin"
# Spellings as in the Baichuan-Audio web demo / tokenizer (audio tags from config ids; role tags of the
# Instruct model from web_demo/constants.py).
SPECIALS = ["<|endoftext|>", "<audio_start_baichuan>", "<audio_end_baichuan>", "<audio_pad_baichuan>",
            "<audio_delim_baichuan>", "<audiogen_start_baichuan>", "<audiogen_end_baichuan>",
            "<audiotext_start_baichuan>", "<B_SYS>", "<C_Q>", "<C_A>"]


def _import_package() -> tuple[Any, Any]:
    """Import the stand-in package from this folder, leaving sys.path as it was."""
    added = str(HERE) not in sys.path
    if added:
        sys.path.insert(0, str(HERE))
    try:
        cfg = importlib.import_module(f"{PACKAGE}.configuration_omni")
        mdl = importlib.import_module(f"{PACKAGE}.modeling_omni")
    finally:
        if added:
            sys.path.remove(str(HERE))
    return cfg.OmniConfig, mdl.OmniForCausalLM


def unload_package() -> None:
    """Drop the stand-in package from ``sys.modules`` (other families may use the same module names)."""
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def build_standin(out_dir: Path, *, hub_id: str, d_enc: int = 32, enc_layers: int = 2, hidden: int = 64,
                  llm_layers: int = 2, max_audio_seconds: int = 2, split_overlap: float = 0.0,
                  codebook_sizes: tuple[int, ...] = (16, 16, 16), seed: int = 0) -> Path:
    """Write the stand-in into ``out_dir`` and return it."""
    import torch

    from hearlike.models.tiny import _byte_tokenizer, write_model_marker

    tok = _byte_tokenizer(SPECIALS, pad="<|endoftext|>")
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    config_cls, model_cls = _import_package()
    try:
        audio = dict(
            d_model=d_enc, encoder_layers=enc_layers, encoder_attention_heads=4, encoder_ffn_dim=2 * d_enc,
            num_mel_bins=128, max_audio_seconds=max_audio_seconds, split_overlap=split_overlap, sampling_rate=16000,
            hop_length=160, n_fft=400, kernel_size=3, stride_size=2, avg_pooler=4,
            audio_start_token_id=ids["<audio_start_baichuan>"], audio_end_token_id=ids["<audio_end_baichuan>"],
            audio_pad_token_id=ids["<audio_pad_baichuan>"], audio_delim_token_id=ids["<audio_delim_baichuan>"],
            audiogen_start_token_id=ids["<audiogen_start_baichuan>"],
            audiogen_end_token_id=ids["<audiogen_end_baichuan>"], vq_config={"codebook_sizes": list(codebook_sizes)})
        cfg = config_cls(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=llm_layers, num_attention_heads=4, audio_config=audio,
                         pad_token_id=ids["<|endoftext|>"])
        torch.manual_seed(int(seed))
        model = model_cls(cfg).eval()
        config_cls.register_for_auto_class()
        model_cls.register_for_auto_class("AutoModelForCausalLM")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    finally:
        unload_package()
    missing = {"configuration_omni.py", "modeling_omni.py", "audio_modeling_omni.py", "processor_omni.py"} - {
        p.name for p in out_dir.glob("*.py")}
    if missing:
        raise RuntimeError(f"save_pretrained did not copy the remote code files {sorted(missing)}")
    write_model_marker(out_dir, hub_id=hub_id, created_by="tests/standins/baichuan_audio",
                       extra={"standin": "baichuan_audio", "seed": int(seed)})
    return out_dir
