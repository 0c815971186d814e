"""Build a tiny stand-in of an ``ICTNLP/Llama-3.1-8B-Omni`` model directory for hearlike's offline tests.

Layout (as ``hearlike.models.download`` is expected to lay out the real model):

* ``config.json`` (``omni_speech2s_llama``; ``speech_encoder`` relative to the model directory),
  ``model.safetensors``, the tokenizer files (byte-level BPE with Llama-3 special tokens; it prepends
  ``<|begin_of_text|>`` like the Llama-3.1 tokenizer's post-processor);
* ``models/speech_encoder/large-v3.pt``: an openai-whisper-format checkpoint (``dims`` + ``model_state_dict``)
  of a tiny encoder with the real 30 s geometry (128 mels, 1500 positions);
* ``hearlike_code/``: the stand-in ``omni_speech`` package (``code/`` next to this file);
* ``hearlike_model.json`` written last, recording the code repo/commit.

``site/`` holds the ``whisper`` test double; it must be on ``sys.path`` while building and loading.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CODE = HERE / "code"
SITE = HERE / "site"
REPO = "https://github.com/ictnlp/LLaMA-Omni"
COMMIT = "c63fd7221d1e6c2d22c85e781bc61e842835ed53"
ENCODER_REL = "models/speech_encoder/large-v3.pt"
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>"]
MODULE_PREFIXES = ("omni_speech", "whisper")


def standin_modules() -> list[str]:
    """Names in ``sys.modules`` that belong to the stand-in packages (to drop after a test)."""
    return [m for m in sys.modules if m.split(".")[0] in MODULE_PREFIXES]


def _tokenizer() -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")


def build(out_dir: Path, *, d_model: int = 64, llm_hidden: int = 64, encoder_layers: int = 2, llm_layers: int = 2,
          n_mels: int = 128, seed: int = 0, max_length: int = 2048) -> Path:
    """Write the stand-in model directory to ``out_dir`` (replaced if present); returns ``out_dir``."""
    import torch

    from hearlike.models.loaders import CODE_DIR
    from hearlike.models.tiny import write_model_marker

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / ENCODER_REL).parent.mkdir(parents=True)
    added = [p for p in (str(SITE), str(CODE)) if p not in sys.path]
    sys.path[:0] = added
    try:
        whisper = importlib.import_module("whisper")
        torch.manual_seed(seed)
        dims = whisper.ModelDimensions(n_mels=n_mels, n_audio_ctx=1500, n_audio_state=d_model, n_audio_head=4,
                                       n_audio_layer=encoder_layers, n_vocab=64, n_text_ctx=8, n_text_state=d_model,
                                       n_text_head=4, n_text_layer=1)
        enc = whisper.Whisper(dims)
        with torch.no_grad():  # larger-than-default weights so that layers differ visibly
            for name, p in enc.named_parameters():
                if p.ndim > 1:
                    p.normal_(0.0, 0.2)
                elif name.endswith("ln.weight") or name.endswith("ln_post.weight"):
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)
        torch.save({"dims": dims.__dict__, "model_state_dict": enc.state_dict()}, out_dir / ENCODER_REL)

        from omni_speech.model import OmniSpeech2SLlamaForCausalLM
        from omni_speech.model.language_model.omni_speech2s_llama import OmniSpeech2SConfig

        tok = _tokenizer()
        cfg = OmniSpeech2SConfig(
            vocab_size=len(tok), hidden_size=llm_hidden, intermediate_size=2 * llm_hidden,
            num_hidden_layers=llm_layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
            initializer_range=0.02, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.convert_tokens_to_ids("<|eot_id|>"),
            speech_encoder=str(out_dir / ENCODER_REL), speech_encoder_type="whisper", speech_projector_type="linear",
            speech_encoder_ds_rate=5, speech_encoder_hidden_size=d_model, speech_normalize=False,
            speech_generator_type="ctc", ctc_decoder_config=f"(1,{llm_hidden},4,{2 * llm_hidden})",
            ctc_upsample_factor=25, ctc_loss_weight=1.0, unit_vocab_size=16,
            tokenizer_model_max_length=max_length, tokenizer_padding_side="right")
        torch.manual_seed(seed + 1)
        model = OmniSpeech2SLlamaForCausalLM(cfg).eval()
        with torch.no_grad():  # projected speech features on the scale of token embeddings, not ~0
            for p in model.get_model().speech_projector.parameters():
                p.normal_(0.0, 0.05) if p.ndim > 1 else p.zero_()
        model.save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    finally:
        for p in added:
            sys.path.remove(p)
    # The real config names the checkpoint by a path relative to where the code runs; keep it relative.
    cfg_path = out_dir / "config.json"
    data = json.loads(cfg_path.read_text())
    data["speech_encoder"] = ENCODER_REL
    cfg_path.write_text(json.dumps(data, indent=2) + "\n")
    shutil.copytree(CODE, out_dir / CODE_DIR, ignore=shutil.ignore_patterns("__pycache__"))
    write_model_marker(out_dir, hub_id="ICTNLP/Llama-3.1-8B-Omni", created_by="tests/standins/llama_omni/build.py",
                       extra={"code": {"repo": REPO, "commit": COMMIT}})
    return out_dir
