"""The one kubeconfig reader and writer: kubectl's merge rules, clear errors for every odd file,
and writes that lose nothing (lock), break nothing (atomic, backup) and keep symlinks."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kubelab.kube import kubeconfig as kc
from kubelab.kube.context import current_context, pinned_kubeconfig


def _config(context: str | None, *names: str, server: str = "https://127.0.0.1:6443") -> dict:
    cfg: dict = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": server}} for n in names],
        "users": [{"name": n, "user": {"token": f"token-{n}"}} for n in names],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in names],
    }
    if context is not None:
        cfg["current-context"] = context
    return cfg


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _entry(name: str) -> tuple[dict, dict, dict]:
    return (
        {"name": name, "cluster": {"server": "https://127.0.0.1:1"}},
        {"name": name, "user": {"token": "t"}},
        {"name": name, "context": {"cluster": name, "user": name}},
    )


# --- reading ------------------------------------------------------------------------------------


def test_files_merge_as_kubectl_merges_them(tmp_path, monkeypatch):
    first = _write(tmp_path / "a", _config(None, "shared", "only-a", server="https://a:1"))
    second = _write(tmp_path / "b", _config("shared", "shared", "only-b", server="https://b:1"))
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{tmp_path / 'missing'}:{second}")
    merged = kc.load_merged()
    assert merged.files == [first, second]  # a missing file is skipped, as kubectl does
    assert kc.current_context(merged.config) == "shared"  # the first file that sets one
    assert kc.context_entry(merged.config, "shared")["server"] == "https://a:1"  # first wins
    assert {c["name"] for c in merged.config["contexts"]} == {"shared", "only-a", "only-b"}
    assert merged.origin[("clusters", "only-b")] == second
    ctx = current_context()
    assert (ctx.name, ctx.server, ctx.user) == ("shared", "https://a:1", "shared")


def test_relative_file_references_are_relative_to_the_file_that_names_them(tmp_path):
    folder = tmp_path / "kube"
    folder.mkdir()
    cfg = _config("c", "c")
    cfg["clusters"][0]["cluster"]["certificate-authority"] = "pki/ca.crt"
    cfg["users"][0]["user"] = {"client-certificate": "/abs/cert", "client-key": "key.pem"}
    merged = kc.load_merged([_write(folder / "config", cfg)])
    cluster = merged.entry("clusters", "c")["cluster"]
    user = merged.entry("users", "c")["user"]
    assert cluster["certificate-authority"] == str(folder / "pki" / "ca.crt")
    assert user["client-certificate"] == "/abs/cert"
    assert user["client-key"] == str(folder / "key.pem")


BAD_FILES = {
    "corrupt YAML": (b"clusters: [\n  - name: x\n  oops: {\n", "not valid YAML"),
    "a list": (b"- name: a\n- name: b\n", "is a list, not a mapping"),
    "a scalar": (b"just some words\n", "is a single str value"),
    "a number": (b"42\n", "is a single int value"),
    "NUL bytes": (b"apiVersion: v1\nkind: Config\x00\x00\x01\n", "line 2: contains NUL"),
    "not UTF-8": (b"apiVersion: v1\ncurrent-context: caf\xe9\n", "line 2: is not UTF-8"),
    "clusters not a list": (b"clusters: {a: 1}\n", "clusters: must be a list"),
    "entry not a mapping": (b"contexts: [oops]\n", "contexts[0]: must be a mapping"),
    "entry without name": (b"users: [{user: {token: t}}]\n", "users[0]: needs a name"),
    "body not a mapping": (b"clusters: [{name: a, cluster: [1]}]\n", "cluster: must be a mapping"),
    "server not a string": (
        b"clusters: [{name: a, cluster: {server: [1, 2]}}]\n",
        "cluster.server: must be a string",
    ),
    "exec not a mapping": (b"users: [{name: a, user: {exec: run-me}}]\n", "user.exec: must be"),
    "current-context a list": (b"current-context: [a]\n", "current-context must be"),
    "unknown tag": (b"current-context: !vault abc\n", "not valid YAML"),
    "python tag": (b"x: !!python/name:os.system\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_every_odd_kubeconfig_is_a_clear_error(tmp_path, monkeypatch, case):
    content, expected = BAD_FILES[case]
    path = tmp_path / "config"
    path.write_bytes(content)
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(kc.KubeconfigError) as info:
        current_context()
    message = str(info.value)
    assert str(path) in message
    assert expected in message
    assert "→" in message  # and what to do


def test_a_folder_a_fifo_and_an_unreadable_path_are_clear_errors(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would block for ever
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    for path, expected in (
        (tmp_path, "is a folder"),
        (fifo, "not a regular file"),
        (not_a_folder / "config", "cannot read it"),
    ):
        with pytest.raises(kc.KubeconfigError, match=expected):
            kc.load_merged([path])


def test_a_huge_file_is_refused_without_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(kc, "MAX_BYTES", 1024)
    path = tmp_path / "config"
    path.write_text("clusters: []\n" + "#" * 2048)
    with pytest.raises(kc.KubeconfigError, match="larger than"):
        kc.load(path)


def test_no_kubeconfig_at_all_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    with pytest.raises(Exception, match="no kubeconfig found") as info:
        current_context()
    assert "kubelab cluster up" in str(info.value)


# --- writing ------------------------------------------------------------------------------------


def test_upsert_creates_a_private_file_and_remove_restores_the_previous_context(tmp_path):
    path = tmp_path / "new" / "config"
    kc.upsert(*_entry("first"), path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kc.upsert(*_entry("second"), path=path)
    assert kc.current_context(kc.load(path)) == "second"
    backup = path.with_name("config" + kc.BACKUP_SUFFIX)
    assert kc.current_context(kc.load(backup)) == "first"  # the file as it was before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    kc.remove("second", path=path)
    cfg = kc.load(path)
    assert kc.current_context(cfg) == "first"
    assert [c["name"] for c in cfg["contexts"]] == ["first"]


def test_remove_of_an_unknown_context_leaves_the_file_untouched(tmp_path):
    path = tmp_path / "config"
    path.write_text("# mine\ncurrent-context: a\ncontexts: [{name: a, context: {}}]\n")
    before = path.read_bytes()
    kc.remove("nope", path=path)
    assert path.read_bytes() == before
    assert not path.with_name("config" + kc.BACKUP_SUFFIX).exists()


_WRITER = """
import sys
from pathlib import Path
from kubelab.kube import kubeconfig as kc
path, who = Path(sys.argv[1]), sys.argv[2]
for i in range(40):
    name = f"{who}-{i}"
    kc.upsert({"name": name, "cluster": {"server": "https://127.0.0.1:1"}},
              {"name": name, "user": {"token": "t"}},
              {"name": name, "context": {"cluster": name, "user": name}},
              make_current=False, path=path)
"""


def test_two_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "config"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), who]) for who in ("a", "b")
    ]
    for proc in writers:
        assert proc.wait(timeout=120) == 0
    cfg = kc.load(path)
    assert len({c["name"] for c in cfg["contexts"]}) == 80
    assert len(cfg["clusters"]) == len(cfg["users"]) == 80
    assert not list(tmp_path.glob(".config.*.tmp"))  # no temp file left behind


def test_a_symlinked_kubeconfig_stays_a_link_and_its_target_is_written(tmp_path):
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    _write(real, _config("mine", "mine"))
    link = tmp_path / "config"
    link.symlink_to(real)
    kc.upsert(*_entry("kwok-x"), path=link)
    assert link.is_symlink() and link.resolve() == real
    assert {c["name"] for c in kc.load(real)["contexts"]} == {"mine", "kwok-x"}
    assert real.with_name("kubeconfig" + kc.BACKUP_SUFFIX).exists()  # backup beside the target


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_kubeconfig_is_refused_and_left_as_it_was(tmp_path, what):
    folder = tmp_path / "kube"
    folder.mkdir()
    path = _write(folder / "config", _config("mine", "mine"))
    before = path.read_bytes()
    target = path if what == "file" else folder
    target.chmod(0o444 if what == "file" else 0o555)
    try:
        with pytest.raises(kc.KubeconfigError, match=f"the {what}.*read-only") as info:
            kc.upsert(*_entry("kwok-x"), path=path)
        assert "changed nothing" in str(info.value)
    finally:
        target.chmod(0o700)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["config"]  # no backup, lock or temp


def test_removing_from_a_read_only_folder_is_refused_up_front_only_when_there_is_work(tmp_path):
    folder = tmp_path / "kube"
    folder.mkdir()
    path = _write(folder / "config", _config("mine", "mine"))
    kc.upsert(*_entry("kwok-x"), path=path)
    folder.chmod(0o555)
    try:
        kc.check_removable("absent", path=path)  # nothing to remove: nothing to refuse
        with pytest.raises(kc.KubeconfigError, match="read-only"):
            kc.check_removable("kwok-x", path=path)
    finally:
        folder.chmod(0o700)
    kc.check_removable("kwok-x", path=path)


def test_a_corrupt_kubeconfig_is_never_overwritten(tmp_path):
    path = tmp_path / "config"
    path.write_bytes(b"- a\n- b\n")
    with pytest.raises(kc.KubeconfigError, match="is a list"):
        kc.upsert(*_entry("kwok-x"), path=path)
    assert path.read_bytes() == b"- a\n- b\n"


# --- the pinned copy a run uses -----------------------------------------------------------------


def test_pinned_kubeconfig_holds_one_context_with_its_files_inlined(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    from kubelab.kube import context

    monkeypatch.setattr(context, "_private", None)  # a fresh private folder, under that TMPDIR
    kube = tmp_path / "kube"
    (kube / "pki").mkdir(parents=True)
    (kube / "pki" / "ca.crt").write_bytes(b"CA")
    (kube / "key.pem").write_bytes(b"KEY")
    cfg = _config("other", "kind-lab", "other", "sso")
    cfg["clusters"][0]["cluster"]["certificate-authority"] = "pki/ca.crt"
    cfg["users"][0]["user"] = {"client-certificate-data": "Q0VSVA==", "client-key": "key.pem"}
    cfg["users"][2]["user"] = {"exec": {"apiVersion": "x", "command": "aws", "args": ["eks"]}}
    cfg["contexts"].append({"name": "uses-sso", "context": {"cluster": "other", "user": "sso"}})
    monkeypatch.setenv("KUBECONFIG", str(_write(kube / "config", cfg)))

    pinned = pinned_kubeconfig("kind-lab")
    try:
        assert stat.S_IMODE(pinned.stat().st_mode) == 0o600
        assert stat.S_IMODE(pinned.parent.stat().st_mode) == 0o700
        assert pinned.parent.parent == tmp_path / "tmp"
        out = yaml.safe_load(pinned.read_text())
        assert out["current-context"] == "kind-lab"
        assert [c["name"] for c in out["contexts"]] == ["kind-lab"]
        assert [c["name"] for c in out["clusters"]] == ["kind-lab"]
        assert [u["name"] for u in out["users"]] == ["kind-lab"]
        cluster, user = out["clusters"][0]["cluster"], out["users"][0]["user"]
        assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
        assert "certificate-authority" not in cluster
        assert base64.b64decode(user["client-key-data"]) == b"KEY"
        assert user["client-certificate-data"] == "Q0VSVA=="
    finally:
        pinned.unlink()
    sso = yaml.safe_load(pinned_kubeconfig("uses-sso").read_text())
    assert sso["users"][0]["user"]["exec"]["command"] == "aws"  # kept as it is


_PIN_AND_EXIT = """
import sys
from kubelab.kube.context import pinned_kubeconfig
print(pinned_kubeconfig("kind-lab"))
"""


def test_a_pinned_kubeconfig_does_not_outlive_the_process(tmp_path):
    (tmp_path / "tmp").mkdir()
    config = _write(tmp_path / "config", _config("kind-lab", "kind-lab"))
    env = {**os.environ, "KUBECONFIG": str(config), "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [sys.executable, "-c", _PIN_AND_EXIT], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).parent.parent == tmp_path / "tmp"  # it was made there
    assert list((tmp_path / "tmp").iterdir()) == []  # and nothing is left, folder included


def test_pinned_kubeconfig_names_a_missing_certificate_file(tmp_path, monkeypatch):
    cfg = _config("kind-lab", "kind-lab")
    cfg["users"][0]["user"] = {"client-certificate": "gone.crt", "client-key": "gone.key"}
    path = _write(tmp_path / "config", cfg)
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(kc.KubeconfigError) as info:
        pinned_kubeconfig("kind-lab")
    assert str(path) in str(info.value)
    assert str(tmp_path / "gone.crt") in str(info.value)


# --- through the CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["a list", "NUL bytes", "not UTF-8", "fifo", "/dev/zero"])
def test_commands_report_an_unusable_kubeconfig_without_traceback_or_hang(
    tmp_path, kubelab_cli, case
):
    path = tmp_path / "config"
    if case == "fifo":
        os.mkfifo(path)  # kubelab must not block reading it, nor let a tool it starts block
    elif case == "/dev/zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(BAD_FILES.get(case, (b"",))[0])
    for command in (["check", "probe-test-app"], ["doctor"], ["reset", "probe-test-app"]):
        start = time.monotonic()
        proc = kubelab_cli(*command, env={"KUBECONFIG": str(path)}, timeout=60)
        assert time.monotonic() - start < 15  # helm, asked its version, read $KUBECONFIG too
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "Traceback" not in out
        assert f"kubeconfig {path}" in out.replace("\n", "")
