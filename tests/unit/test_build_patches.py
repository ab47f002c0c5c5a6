"""Binary.patches: a binary built from a patched copy of a module's source, the module cache
left as it is; a patch that no longer applies is a clear error, not a silent unpatched build."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kubelab.embedded import build


def _fake_go(tmp_path: Path, module_dir: Path) -> str:
    """A `go` that answers `mod download -json` with module_dir and records `mod edit`."""
    go = tmp_path / "go"
    answer = json.dumps({"Dir": str(module_dir)})
    go.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "mod download" ]; then echo \'{answer}\'; exit 0; fi\n'
        'if [ "$1 $2" = "mod edit" ]; then echo "$3" >> edits.txt; exit 0; fi\n'
        "exit 3\n"
    )
    go.chmod(0o755)
    return str(go)


def _module(tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "cache" / "example.com" / "thing@v1.0.0"
    (cache / "server").mkdir(parents=True)
    (cache / "server" / "listen.go").write_text('package server\n\nconst addr = "0.0.0.0:%d"\n')
    (cache / "docs").mkdir()
    (cache / "docs" / "big.md").write_text("not needed to build\n")
    for path in [cache / "server" / "listen.go", cache / "server", cache]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    pin = tmp_path / "pin"
    pin.mkdir()
    (pin / "go.mod").write_text("module pin\n")
    (pin / "go.sum").write_text("")
    return cache, pin


def _binary(old: str) -> build.Binary:
    patch = ("example.com/thing", "server/listen.go", old, 'const addr = "127.0.0.1:%d"')
    return build.Binary("thing", "pin", "example.com/thing/cmd", patches=(patch,))


def test_patched_copy_replaces_the_module_and_leaves_the_cache(tmp_path: Path) -> None:
    cache, pin = _module(tmp_path)
    into = tmp_path / "work"
    into.mkdir()
    go = _fake_go(tmp_path, cache)
    work = build._patched_build_dir(_binary('const addr = "0.0.0.0:%d"'), go, pin, into)
    copy = into / "src0"
    assert (copy / "server" / "listen.go").read_text().endswith('"127.0.0.1:%d"\n')
    assert not (copy / "docs").exists()
    assert (cache / "server" / "listen.go").read_text().endswith('"0.0.0.0:%d"\n')  # untouched
    assert (work / "go.mod").read_text() == "module pin\n"
    assert (work / "edits.txt").read_text().split() == [f"-replace=example.com/thing={copy}"]


def test_a_patch_that_no_longer_applies_is_an_error(tmp_path: Path) -> None:
    cache, pin = _module(tmp_path)
    into = tmp_path / "work"
    into.mkdir()
    with pytest.raises(build.BuildError, match="no longer applies"):
        build._patched_build_dir(
            _binary("const addr = ':%d'"), _fake_go(tmp_path, cache), pin, into
        )


def test_patches_are_part_of_the_fingerprint() -> None:
    plain = build.Binary("thing", "kube", "example.com/thing/cmd")
    patched = _binary('const addr = "0.0.0.0:%d"')
    patched = build.Binary("thing", "kube", "example.com/thing/cmd", patches=patched.patches)
    assert build._fingerprint(plain, "go1.26") != build._fingerprint(patched, "go1.26")


def test_the_rollouts_controller_is_patched_to_loopback() -> None:
    controller = next(b for b in build.binaries() if b.name == "rollouts-controller")
    [(module, rel, old, new)] = controller.patches
    assert (module, rel) == ("github.com/argoproj/argo-rollouts", "controller/controller.go")
    assert "0.0.0.0:%d" in old and "127.0.0.1:%d" in new
