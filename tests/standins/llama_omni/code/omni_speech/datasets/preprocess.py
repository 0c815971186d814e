"""Stand-in of ``tokenizer_speech_token`` from ``omni_speech/datasets/preprocess.py``.

The prompt is split at every ``<speech>``; each piece is tokenized on its own (so each gets the tokenizer's
BOS if it adds one); the first piece keeps its BOS, later pieces lose their first token when the first
piece started with BOS; one ``SPEECH_TOKEN_INDEX`` (-200) sits between consecutive pieces.
"""

from __future__ import annotations

import torch
from omni_speech.constants import SPEECH_TOKEN_INDEX


def tokenizer_speech_token(prompt, tokenizer, speech_token_index=SPEECH_TOKEN_INDEX, return_tensors=None):
    pieces = [tokenizer(p).input_ids for p in prompt.split("<speech>")]
    skip = 1 if pieces and pieces[0] and pieces[0][0] == tokenizer.bos_token_id else 0
    ids: list[int] = pieces[0][:1] if skip else []
    for i, piece in enumerate(pieces):
        if i > 0:
            ids.append(speech_token_index)
        ids.extend(piece[skip:])
    if return_tensors is None:
        return ids
    if return_tensors == "pt":
        return torch.tensor(ids, dtype=torch.long)
    raise ValueError(f"Unsupported tensor type: {return_tensors}")
