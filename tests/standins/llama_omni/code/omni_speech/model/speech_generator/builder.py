from .speech_generator import SpeechGeneratorCTC


def build_speech_generator(config):
    kind = getattr(config, "speech_generator_type", "ctc")
    if kind == "ctc":
        return SpeechGeneratorCTC(config)
    raise ValueError(f"Unknown generator type: {kind}")
