"""Tiny ChatGLM-like remote-code LM standing in for THUDM/glm-4-voice-9b (project-written test double).

Only ``configuration_chatglm.py`` and ``modeling_chatglm.py`` are saved into the model directory (as in the
hub repo, which has no ``__init__.py``); this file only makes the folder importable for the builder.
"""
