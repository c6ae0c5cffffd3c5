"""Typed bindings generated from WIT by ``python -m wrpc.bindgen``."""
