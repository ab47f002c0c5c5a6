"""Where things are: the checkout (labs, apps), the cache (built binaries) and the state folder
(per-lab work folders). Found one way, here; standard library only.

Overrides: KUBELAB_LABS (the labs folder), KUBELAB_CACHE (else $XDG_CACHE_HOME/kubelab, else
~/.cache/kubelab) and KUBELAB_STATE (else $XDG_STATE_HOME/kubelab, else ~/.local/state/kubelab).
"""

from __future__ import annotations

import os
from pathlib import Path

LAB_FILE = "lab.yaml"


class NoCheckoutError(Exception):
    """Neither KUBELAB_LABS nor a kubelab checkout around the current folder or this file."""


def _is_checkout(folder: Path) -> bool:
    labs = folder / "labs"
    return labs.is_dir() and (folder / "apps").is_dir() and any(labs.glob(f"*/{LAB_FILE}"))


def repo_root() -> Path:
    """The kubelab checkout: found walking up from the current folder, then from this file."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for folder in (start, *start.parents):
            if _is_checkout(folder):
                return folder
    raise NoCheckoutError("cannot find the kubelab checkout (a folder with labs/ and apps/)")


def labs_root() -> Path:
    if env := os.environ.get("KUBELAB_LABS"):
        return Path(env).expanduser().resolve()
    return repo_root() / "labs"


def apps_root() -> Path:
    return repo_root() / "apps"


def _xdg(variable: str, override: str, default: str) -> Path:
    if os.environ.get(override):
        return Path(os.environ[override]).expanduser()
    base = os.environ.get(variable)
    return (Path(base).expanduser() if base else Path.home() / default) / "kubelab"


def cache_root() -> Path:
    """Built binaries and images: safe to delete, rebuilt on demand."""
    return _xdg("XDG_CACHE_HOME", "KUBELAB_CACHE", ".cache")


def state_root() -> Path:
    """What runs leave for the learner: per-lab work folders (keys, kubeconfigs of lab users)."""
    return _xdg("XDG_STATE_HOME", "KUBELAB_STATE", ".local/state")


def work_dir(lab: str) -> Path:
    """The lab's work folder: files a lab generates go here, never into the checkout.
    `kubelab reset LAB` removes it. Lessons name it as $KUBELAB_WORK."""
    return state_root() / "work" / lab
