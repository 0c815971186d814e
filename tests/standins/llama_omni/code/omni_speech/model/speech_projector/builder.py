from .speech_projector import EncoderProjectorConcat


def build_speech_projector(config):
    kind = getattr(config, "speech_projector_type", "linear")
    if kind == "linear":
        return EncoderProjectorConcat(config)
    raise ValueError(f"Unknown projector type: {kind}")
