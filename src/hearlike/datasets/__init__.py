"""hearlike.datasets."""
