"""Stand-in of the part of ``omni_speech/utils.py`` the model code imports."""

import torch


def lengths_to_padding_mask(lens: torch.Tensor) -> torch.Tensor:
    """``[batch, max_len]`` True where a position is padding."""
    return torch.arange(int(lens.max()), device=lens.device)[None, :] >= lens[:, None]
