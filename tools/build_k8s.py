#!/usr/bin/env python3
"""Build the embedded cluster's binaries (Kubernetes, etcd, kwok, kwokctl, helm) from the Go
module proxy into the kubelab cache. Thin wrapper: the logic lives in
src/kubelab/embedded/build.py, loaded by path so that only the standard library is needed.

Usage: python3 tools/build_k8s.py [--list]      (prints the bin dir at the end)
"""

import importlib.util
import sys
from pathlib import Path

_BUILD = Path(__file__).resolve().parents[1] / "src" / "kubelab" / "embedded" / "build.py"

if __name__ == "__main__":
    spec = importlib.util.spec_from_file_location("kubelab_embedded_build", _BUILD)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    raise SystemExit(module.main(sys.argv[1:]))
