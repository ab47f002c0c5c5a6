"""kubelab: a Kubernetes course whose every step is data that this tool runs and verifies."""

__version__ = "0.1.0"
