"""Stand-in of LLaMA-Omni's ``omni_speech/constants.py`` (same values)."""

IGNORE_INDEX = -100
SPEECH_TOKEN_INDEX = -200
DEFAULT_SPEECH_TOKEN = "<speech>"
