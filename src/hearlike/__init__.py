"""hearlike: do Audio LLMs hear like us? Layer-wise model–EEG alignment (arXiv 2601.16540, reimplemented)."""

__version__ = "0.1.0"
