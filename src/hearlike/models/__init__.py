"""hearlike.models."""
