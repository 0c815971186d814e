"""Tiny Ultravox-like custom-code model (test double for the trust_remote_code path; not a real model)."""
