"""The only Kubernetes access: the API client (with timeouts), kubeconfig reading and writing, the
context guard and readiness helpers."""
