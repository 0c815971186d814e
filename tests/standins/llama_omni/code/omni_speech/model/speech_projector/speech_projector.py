"""Stand-in of ``EncoderProjectorConcat``: drop the last ``T % k`` frames, stack k frames, Linear-ReLU-Linear."""

from torch import nn


class EncoderProjectorConcat(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.k = config.speech_encoder_ds_rate
        self.encoder_dim = config.speech_encoder_hidden_size
        self.llm_dim = config.hidden_size
        self.linear1 = nn.Linear(self.encoder_dim * self.k, 2048)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(2048, config.hidden_size)

    def forward(self, x):
        b, t, d = x.shape
        t -= t % self.k
        x = x[:, :t].contiguous().view(b, t // self.k, d * self.k)
        return self.linear2(self.relu(self.linear1(x)))
