"""TEST DOUBLE of the ``openai-whisper`` package (not openai-whisper; written for hearlike's tests).

It exposes the small part of openai-whisper's API that LLaMA-Omni's code and the hearlike adapter use, with
the same names, constants and shapes: ``load_model(name, device)`` returning an object with ``.encoder``
(``conv1``/``conv2``/``positional_embedding``/``blocks``/``ln_post``), ``pad_or_trim``,
``log_mel_spectrogram(audio, n_mels)`` and ``whisper.model.LayerNorm``. Only the encoder half exists.
"""

from whisper.audio import (
    CHUNK_LENGTH,
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    log_mel_spectrogram,
    pad_or_trim,
)
from whisper.model import AudioEncoder, ModelDimensions, Whisper

__all__ = ["CHUNK_LENGTH", "HOP_LENGTH", "N_FRAMES", "N_SAMPLES", "SAMPLE_RATE", "AudioEncoder", "ModelDimensions",
           "Whisper", "load_model", "log_mel_spectrogram", "pad_or_trim"]


def load_model(name: str, device: str | None = None, download_root: str | None = None,
               in_memory: bool = False) -> Whisper:
    """Load a checkpoint file ``{"dims": ..., "model_state_dict": ...}`` (no download: a path only)."""
    import os

    import torch

    if not os.path.isfile(name):
        raise RuntimeError(f"Model {name} not found (test double: only checkpoint paths are supported)")
    ckpt = torch.load(name, map_location=device or "cpu", weights_only=True)
    # An explicit device: transformers 5 builds models under a meta-device context (LLaMA-Omni's pinned
    # transformers 4.43.4 with low_cpu_mem_usage=False does not), and this double must run under both.
    with torch.device(device or "cpu"):
        model = Whisper(ModelDimensions(**ckpt["dims"]))
    model.load_state_dict(ckpt["model_state_dict"])
    return model.to(device or "cpu")
