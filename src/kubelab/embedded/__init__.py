"""The embedded cluster: a real Kubernetes control plane with kwok-simulated nodes, run as local
processes (no Docker). `build` makes the binaries; `cluster` starts and stops the cluster."""
