"""probe-test-app: a web app whose Kubernetes liveness and readiness probes can be switched."""

__all__ = ["__version__"]
__version__ = "1.0.0"
