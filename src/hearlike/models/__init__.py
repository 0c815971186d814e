"""hearlike.models: model registry, offline loaders, hook-based activation extraction, safetensors cache,
tiny demo models.

Entry points the workflow calls (all keyword-only):

* :func:`hearlike.models.registry.load_registry` / :func:`hearlike.models.registry.layer_names`
* :func:`hearlike.models.tiny.build_demo_model`
* :func:`hearlike.models.extract.extract_activations`
* :func:`hearlike.models.cache.read_layer` / :func:`hearlike.models.cache.load_manifest`
* :func:`hearlike.models.download.download_model` (``python -m hearlike.models.download KEY --dest DIR``)

Submodules import torch/transformers lazily where they can, so importing this package is cheap.
"""
