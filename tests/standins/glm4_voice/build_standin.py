"""Build the offline GLM-4-Voice stand-in model directory (project-written test double).

Layout written into ``out_dir`` (the same places ``hearlike.models.download`` puts the real files):

* ``config.json``, ``configuration_chatglm.py``, ``modeling_chatglm.py``, ``model.safetensors``, tokenizer
  files — the tiny ChatGLM-like remote-code LM (``auto_map`` → ``modeling_chatglm.ChatGLMForConditionalGeneration``)
  with a byte-level tokenizer that knows the GLM special tokens, ``<|begin_of_audio|>``/``<|end_of_audio|>``
  and ``<|audio_0|> … <|audio_{V-1}|>`` (consecutive ids) and prepends ``[gMASK]<sop>`` like the GLM-4 tokenizer;
* ``companions/THUDM__glm-4-voice-tokenizer/`` — ``WhisperVQEncoder`` weights + config
  (``quantize_encoder_only``, pooling ×4 and VQ after the last kept block) and a 128-bin
  ``WhisperFeatureExtractor``;
* ``hearlike_code/speech_tokenizer/`` — the stand-in package mimicking the GitHub module paths;
* ``hearlike_model.json`` — marker with the content revision and ``code: {repo, commit}``.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CODE_SRC = HERE / "code"
LM_SRC = HERE / "hub"
TOKENIZER_COMPANION = "THUDM/glm-4-voice-tokenizer"
GLM_SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
                "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
                "<|end_of_video|>", "<|begin_of_audio|>", "<|end_of_audio|>"]


@contextmanager
def importable(path: Path, *prefixes: str) -> Iterator[None]:
    """Put ``path`` first on sys.path; afterwards remove it and every module under ``prefixes`` imported meanwhile."""
    before = set(sys.modules)
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        sys.path.remove(str(path))
        for name in set(sys.modules) - before:
            if name.split(".")[0] in prefixes:
                del sys.modules[name]


def _tokenizer(n_audio: int) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = GLM_SPECIALS + [f"<|audio_{k}|>" for k in range(n_audio)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    # GLM-4's tokenizer prepends its prefix tokens [gMASK]<sop> to every encoded text.
    tok.post_processor = processors.TemplateProcessing(
        single="[gMASK] <sop> $A", pair="[gMASK] <sop> $A $B",
        special_tokens=[("[gMASK]", tok.token_to_id("[gMASK]")), ("<sop>", tok.token_to_id("<sop>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|endoftext|>")
    fast.padding_side = "left"  # the GLM-4 tokenizer pads on the left
    return fast


def build_glm4_voice_standin(out_dir: str | Path, *, hub_id: str, code_repo: str, code_commit: str, seed: int = 0,
                             d_model: int = 32, full_encoder_layers: int = 4, kept_layers: int = 2,
                             llm_layers: int = 2, llm_hidden: int = 32, vq_vocab: int = 64,
                             block_size: int = 200) -> Path:
    """Build the stand-in into ``out_dir`` (replaced); returns ``out_dir``.

    ``kept_layers`` is the tokenizer's ``quantize_position`` = ``pooling_position`` (16 of 32 in the real
    model), so the encoder's ``layers`` hold ``kept_layers`` blocks of a ``full_encoder_layers`` Whisper.
    """
    import torch
    from transformers import WhisperFeatureExtractor

    from hearlike.models.tiny import write_model_marker

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tok = _tokenizer(vq_vocab)
    with importable(LM_SRC, "glm4voice_lm_standin"):
        cfg_mod = importlib.import_module("glm4voice_lm_standin.configuration_chatglm")
        lm_mod = importlib.import_module("glm4voice_lm_standin.modeling_chatglm")
        cfg = cfg_mod.ChatGLMConfig(num_layers=llm_layers, padded_vocab_size=len(tok), hidden_size=llm_hidden,
                                    ffn_hidden_size=2 * llm_hidden, kv_channels=8, num_attention_heads=4,
                                    multi_query_attention=True, multi_query_group_num=2, seq_length=2048,
                                    eos_token_id=tok.convert_tokens_to_ids("<|user|>"),
                                    pad_token_id=tok.pad_token_id)
        torch.manual_seed(seed)
        lm = lm_mod.ChatGLMForConditionalGeneration(cfg).eval()
        cfg_mod.ChatGLMConfig.register_for_auto_class()
        lm_mod.ChatGLMForConditionalGeneration.register_for_auto_class("AutoModel")
        lm.save_pretrained(out)
    tok.save_pretrained(out)

    tok_dir = out / "companions" / TOKENIZER_COMPANION.replace("/", "__")
    with importable(CODE_SRC, "speech_tokenizer"):
        vq_cfg_mod = importlib.import_module("speech_tokenizer.configuration_whisper")
        vq_mod = importlib.import_module("speech_tokenizer.modeling_whisper")
        vq_cfg = vq_cfg_mod.WhisperVQConfig(
            d_model=d_model, encoder_layers=full_encoder_layers, encoder_attention_heads=2,
            encoder_ffn_dim=2 * d_model, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=2 * d_model,
            num_mel_bins=128, max_source_positions=1500, vocab_size=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, decoder_start_token_id=1, begin_suppress_tokens=None, suppress_tokens=None,
            pooling_kernel_size=4, pooling_type="avg", pooling_position=kept_layers, quantize_position=kept_layers,
            quantize_vocab_size=vq_vocab, quantize_encoder_only=True, quantize_causal_block_size=block_size,
            encoder_causal_convolution=True, encoder_causal_attention=False, architectures=["WhisperVQEncoder"])
        torch.manual_seed(seed + 1)
        vq = vq_mod.WhisperVQEncoder(vq_cfg).eval()
        vq.save_pretrained(tok_dir)
    WhisperFeatureExtractor(feature_size=128).save_pretrained(tok_dir)

    shutil.copytree(CODE_SRC, out / "hearlike_code", ignore=shutil.ignore_patterns("__pycache__"))
    write_model_marker(out, hub_id=hub_id, created_by="tests/standins/glm4_voice/build_standin.py",
                       extra={"code": {"repo": code_repo, "commit": code_commit},
                              "companions": [{"hub_id": TOKENIZER_COMPANION, "revision": None,
                                              "dir": tok_dir.relative_to(out).as_posix()}]})
    return out
