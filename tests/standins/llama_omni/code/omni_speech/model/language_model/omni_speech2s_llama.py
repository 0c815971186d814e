"""Stand-in of ``omni_speech2s_llama.py``: eval forward = Llama forward with ``output_hidden_states=True`` forced."""

from omni_speech.model.language_model.omni_speech_llama import OmniSpeechLlamaForCausalLM
from omni_speech.model.speech_generator.builder import build_speech_generator
from omni_speech.model.speech_generator.generation import GenerationWithCTC
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig
from transformers.modeling_outputs import CausalLMOutputWithPast


class OmniSpeech2SConfig(LlamaConfig):
    model_type = "omni_speech2s_llama"


class OmniSpeech2SLlamaForCausalLM(OmniSpeechLlamaForCausalLM, GenerationWithCTC):
    config_class = OmniSpeech2SConfig

    def __init__(self, config):
        super().__init__(config)
        self.post_init()
        if hasattr(config, "speech_generator_type"):
            self.speech_generator = build_speech_generator(config)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                speech=None, speech_lengths=None, tgt_units=None, return_dict=None, cache_position=None):
        if inputs_embeds is None:
            input_ids, position_ids, attention_mask, past_key_values, inputs_embeds, labels = \
                self.prepare_inputs_labels_for_speech_and_text(input_ids, position_ids, attention_mask,
                                                               past_key_values, labels, speech, speech_lengths)
        if self.training:
            raise NotImplementedError("stand-in: training is not part of the extraction interface")
        # past_key_values only when given (transformers 5 warns on the keyword; 4.43 takes it either way)
        cache = {} if past_key_values is None else {"past_key_values": past_key_values}
        out = super(OmniSpeechLlamaForCausalLM, self).forward(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            labels=labels, use_cache=use_cache, output_attentions=output_attentions, output_hidden_states=True,
            return_dict=return_dict, **cache)
        return CausalLMOutputWithPast(loss=out.loss, logits=out.logits, past_key_values=out.past_key_values,
                                      hidden_states=out.hidden_states, attentions=out.attentions)


AutoConfig.register("omni_speech2s_llama", OmniSpeech2SConfig, exist_ok=True)
AutoModelForCausalLM.register(OmniSpeech2SConfig, OmniSpeech2SLlamaForCausalLM, exist_ok=True)
