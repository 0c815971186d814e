"""Stand-in of ``omni_speech_llama.py``: Llama LM whose ``model`` also holds ``speech_encoder``/``speech_projector``."""

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, LlamaModel

from ..omni_speech_arch import OmniSpeechMetaForCausalLM, OmniSpeechMetaModel


class OmniSpeechConfig(LlamaConfig):
    model_type = "omni_speech_llama"


class OmniSpeechLlamaModel(OmniSpeechMetaModel, LlamaModel):
    config_class = OmniSpeechConfig

    def __init__(self, config):
        super().__init__(config)


class OmniSpeechLlamaForCausalLM(LlamaForCausalLM, OmniSpeechMetaForCausalLM):
    config_class = OmniSpeechConfig

    def __init__(self, config):
        super(LlamaForCausalLM, self).__init__(config)
        self.model = OmniSpeechLlamaModel(config)
        self.pretraining_tp = getattr(config, "pretraining_tp", 1)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_model(self):
        return self.model

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                speech=None, speech_lengths=None, return_dict=None, cache_position=None):
        if inputs_embeds is None:
            input_ids, position_ids, attention_mask, past_key_values, inputs_embeds, labels = \
                self.prepare_inputs_labels_for_speech_and_text(input_ids, position_ids, attention_mask,
                                                               past_key_values, labels, speech, speech_lengths)
        cache = {} if past_key_values is None else {"past_key_values": past_key_values}
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=return_dict, **cache)

    @torch.no_grad()
    def generate(self, inputs=None, speech=None, speech_lengths=None, **kwargs):
        raise NotImplementedError("stand-in: generation is not part of the extraction interface")


AutoConfig.register("omni_speech_llama", OmniSpeechConfig, exist_ok=True)
AutoModelForCausalLM.register(OmniSpeechConfig, OmniSpeechLlamaForCausalLM, exist_ok=True)
