"""Stand-in of ``SpeechGeneratorCTC`` (module layout only: extraction never runs the unit generator)."""

import copy

from torch import nn
from transformers.models.llama.modeling_llama import LlamaDecoderLayer


class SpeechGeneratorCTC(nn.Module):
    def __init__(self, config):
        super().__init__()
        n_layers, n_dims, n_heads, n_inter = (int(v) for v in config.ctc_decoder_config[1:-1].split(","))
        cfg = copy.deepcopy(config)
        cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size = n_dims, n_layers, n_inter
        cfg.num_attention_heads = cfg.num_key_value_heads = n_heads
        cfg.head_dim = n_dims // n_heads
        self.upsample_factor = config.ctc_upsample_factor
        self.input_proj = nn.Linear(config.hidden_size, n_dims)
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg, i) for i in range(n_layers)])
        self.unit_vocab_size = config.unit_vocab_size
        self.output_proj = nn.Linear(n_dims, config.unit_vocab_size + 1)
