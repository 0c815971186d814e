"""hearlike.demo."""
