"""hearlike.metrics."""
