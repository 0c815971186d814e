from .language_model.omni_speech2s_llama import OmniSpeech2SLlamaForCausalLM
from .language_model.omni_speech_llama import OmniSpeechConfig, OmniSpeechLlamaForCausalLM

__all__ = ["OmniSpeech2SLlamaForCausalLM", "OmniSpeechConfig", "OmniSpeechLlamaForCausalLM"]
