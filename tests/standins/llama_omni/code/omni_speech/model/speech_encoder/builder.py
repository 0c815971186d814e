from .speech_encoder import WhisperWrappedEncoder


def build_speech_encoder(config):
    kind = getattr(config, "speech_encoder_type", None)
    if kind is not None and "whisper" in kind.lower():
        return WhisperWrappedEncoder.load(config)
    raise ValueError(f"Unknown speech encoder: {kind}")
