"""Burn CPU or memory on purpose so Kubernetes limits become visible."""

__version__ = "1.0.0"
