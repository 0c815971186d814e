"""Stand-in of ``GenerationWithCTC`` (generation is not used by extraction)."""

from transformers.generation.utils import GenerationMixin


class GenerationWithCTC(GenerationMixin):
    pass
