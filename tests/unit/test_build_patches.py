"""Binary.patches: a binary built from a vendored copy of its pin folder with a dependency's file
edited (by exact text, or replaced whole by ours), the pin folder and the module cache left as
they are; a patch that no longer applies is a clear error, never a silent unpatched build."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelab.embedded import build
from kubelab.embedded.build import Patch

LISTEN = 'package server\n\nconst addr = "0.0.0.0:%d"\n'


def _fake_go(tmp_path: Path) -> str:
    """A `go` whose `mod vendor` vendors one file of example.com/thing, as the real one would."""
    go = tmp_path / "go"
    go.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "mod vendor" ]; then\n'
        "  mkdir -p vendor/example.com/thing/server\n"
        f"  printf '%s' '{LISTEN}' > vendor/example.com/thing/server/listen.go\n"
        "  exit 0\n"
        "fi\n"
        "exit 3\n"
    )
    go.chmod(0o755)
    return str(go)


def _pin(tmp_path: Path) -> Path:
    pin = tmp_path / "pin"
    (pin / "patches").mkdir(parents=True)
    (pin / "go.mod").write_text("module pin\n")
    (pin / "go.sum").write_text("")
    (pin / "patches" / "listen.go").write_text('package server\n\nconst addr = "ours"\n')
    return pin


def _binary(patch: Patch) -> build.Binary:
    return build.Binary("thing", "pin", "example.com/thing/cmd", patches=(patch,))


def test_a_text_patch_edits_the_vendored_copy_only(tmp_path: Path) -> None:
    pin = _pin(tmp_path)
    edit = Patch("example.com/thing", "server/listen.go", old='"0.0.0.0:%d"', new='"127.0.0.1:%d"')
    work = build._vendored_copy(_binary(edit), _fake_go(tmp_path), pin, tmp_path)
    vendored = work / "vendor" / "example.com" / "thing" / "server" / "listen.go"
    assert vendored.read_text().endswith('"127.0.0.1:%d"\n')
    assert not (pin / "vendor").exists()  # the pin folder is untouched


def test_a_file_patch_replaces_the_file_whole(tmp_path: Path) -> None:
    pin = _pin(tmp_path)
    edit = Patch("example.com/thing", "server/listen.go", ours="patches/listen.go")
    work = build._vendored_copy(_binary(edit), _fake_go(tmp_path), pin, tmp_path)
    vendored = work / "vendor" / "example.com" / "thing" / "server" / "listen.go"
    assert vendored.read_text() == (pin / "patches" / "listen.go").read_text()


def test_a_patch_that_no_longer_applies_is_an_error(tmp_path: Path) -> None:
    pin = _pin(tmp_path)
    edit = Patch("example.com/thing", "server/listen.go", old="const addr = ':%d'", new="x")
    with pytest.raises(build.BuildError, match="no longer applies"):
        build._vendored_copy(_binary(edit), _fake_go(tmp_path), pin, tmp_path)
    assert list(tmp_path.glob(".thing.*.vendor")) == []  # the copy is removed


def test_patches_are_part_of_the_fingerprint() -> None:
    plain = build.Binary("thing", "kube", "example.com/thing/cmd")
    edit = Patch("example.com/thing", "server/listen.go", old="a", new="b")
    patched = build.Binary("thing", "kube", "example.com/thing/cmd", patches=(edit,))
    assert build._fingerprint(plain, "go1.26") != build._fingerprint(patched, "go1.26")


def test_the_rollouts_controller_is_patched_to_loopback() -> None:
    controller = next(b for b in build.binaries() if b.name == "rollouts-controller")
    [patch] = controller.patches
    assert (patch.module, patch.inside) == (
        "github.com/argoproj/argo-rollouts",
        "controller/controller.go",
    )
    assert "0.0.0.0:%d" in patch.old and "127.0.0.1:%d" in patch.new
