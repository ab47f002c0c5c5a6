"""A broken or hostile lab.yaml is one clear LabFileError naming file:line and what to do:
checked before parsing (size, encoding, NUL, symlinks) or while composing (tags, keys, depth,
aliases), never a traceback, a hang or gigabytes of memory."""

from __future__ import annotations

import math
import re
import tracemalloc
from pathlib import Path

import pytest

from kubelab.errors import LabFileError
from kubelab.lab import loader
from kubelab.lab.fields import parse_duration
from kubelab.lab.loader import load_lab

REPO = Path(__file__).resolve().parents[2]
# A real lab as the base, so the cases stay valid whatever the format's version is.
BASE = (REPO / "labs" / "probe-test-app" / "lab.yaml").read_text()
HEAD = "apiVersion: kubelab.dev/v1alpha1\nkind: Lab\n"  # enough for errors found before validation


def write(root: Path, content: str | bytes, name: str = "probe-test-app") -> Path:
    folder = root / "labs" / name
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (folder / "lab.yaml").write_bytes(data)
    return folder


def error_of(folder: Path) -> str:
    with pytest.raises(LabFileError) as info:
        load_lab(folder)
    return str(info.value)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return HEAD + "\n".join(lines) + "\n"


CASES: dict[str, tuple[str | bytes, int, str]] = {
    # name: (content, line the error names, words it must say)
    "NUL byte": (HEAD.encode() + b"metadata:\n  name: a\x00b\n", 4, "contains a NUL byte"),
    "not UTF-8": (HEAD.encode() + b"metadata:\n  title: caf\xe9\n", 4, "is not UTF-8"),
    "UTF-16": ("apiVersion: x\n".encode("utf-16"), 1, "is UTF-16 text"),
    "control character": (HEAD + "metadata: {title: \x01}\n", 3, "control character"),
    "!vault tag": (HEAD + "metadata:\n  name: !vault |\n    $ANSIBLE\n", 4, "tag !vault"),
    "python name tag": (HEAD + "x: !!python/name:os.system\n", 3, "!!python/name:os.system"),
    "python apply tag": (
        HEAD + 'x: !!python/object/apply:os.system ["id"]\n',
        3,
        "!!python/object/apply:os.system",
    ),
    "binary tag": (HEAD + "x: !!binary aGk=\n", 3, "tag !!binary"),
    "complex key": (HEAD + "? [a, b]\n: c\n", 3, "a key must be a plain word, not a list"),
    "flow map key": (HEAD + "x: {{a: 1}: b}\n", 3, "not a map"),
    "deep nesting": (HEAD + "x: " + "[" * 100 + "]" * 100 + "\n", 3, "nested more than 64"),
    "very deep nesting": (HEAD + "x: " + "[" * 50000 + "\n", 3, "nested more than 64"),
    "alias loop": (HEAD + "x: &loop [a, *loop]\n", 3, "(a loop)"),
    # refused at the first level that passes the limit: 9**6 values on the 6th anchor's line
    "billion laughs": (billion_laughs(), 8, "expands to more than"),
    "too many aliases": (
        HEAD + "a: &a x\nb: [" + ", ".join(["*a"] * 1001) + "]\n",
        4,
        "more than 1000 aliases",
    ),
    "merge key": (HEAD + "base: &b {x: 1}\nother:\n  <<: *b\n", 5, "merge keys (<<)"),
    "bad explicit int": (HEAD + "x: !!int abc\n", 3, "cannot read the value 'abc'"),
    "empty": ("# nothing here\n", 1, "the file is empty"),
    "too large": (HEAD + ("# padding\n" * 110_000), 1, "at most 1024 KiB"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_lab_file_is_a_clear_error_naming_the_line(tmp_path, case):
    content, line, words = CASES[case]
    folder = write(tmp_path, content)
    message = error_of(folder)
    assert f"{folder / 'lab.yaml'}:{line}:" in message
    assert words in message
    assert "→" in message  # what to do


def test_an_alias_bomb_is_refused_without_growing_memory(tmp_path):
    folder = write(tmp_path, billion_laughs(9))
    tracemalloc.start()
    try:
        error_of(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024  # expanded, it would be 10**9 strings


def test_a_huge_file_is_not_read_whole(tmp_path, monkeypatch):
    folder = write(tmp_path, HEAD)
    with (folder / "lab.yaml").open("ab") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MiB of NULs
    read: list[int] = []
    real_open = Path.open

    def counting_open(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        read.append(1)
        return fh

    monkeypatch.setattr(Path, "open", counting_open)
    assert "at most 1024 KiB" in error_of(folder)
    assert read == []  # refused from its size alone


def test_anchors_within_limits_still_work(tmp_path):
    text = BASE.replace("spec:\n", "x-defaults: &ns default\nspec:\n", 1)
    text = re.sub(r"(\n  namespace: )default", r"\1*ns", text, count=1)
    assert "*ns" in text
    with pytest.raises(LabFileError, match="x-defaults"):  # parsed fine; the schema objects
        load_lab(write(tmp_path, text))


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, ".inf", "1e400", 10**400])
def test_non_finite_or_absurd_durations_are_rejected(value):
    with pytest.raises(ValueError, match=r"not a duration|at most 24h"):
        parse_duration(value)


@pytest.mark.parametrize("value", [86401, "25h", "1441m", "999999999999h", 1e300])
def test_durations_longer_than_a_day_are_rejected(value):
    with pytest.raises(ValueError, match="at most 24h"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "seconds"), [(30, 30.0), ("90s", 90.0), ("1m30s", 90.0), ("24h", 86400.0)]
)
def test_ordinary_durations_still_parse(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf", "1e400", "100000000000000000000"])
def test_a_lab_with_an_infinite_timeout_is_a_clear_error(tmp_path, value):
    text, count = re.subn(r"(?m)^(  timeout: ).*$", rf"\g<1>{value}", BASE, count=1)
    if not count:
        pytest.skip("the base lab has no spec.timeout")
    folder = write(tmp_path, text)
    message = error_of(folder)
    line = text[: text.index(f"timeout: {value}")].count("\n") + 1
    assert f"{folder / 'lab.yaml'}:{line}:" in message
    assert "timeout" in message


# --- symlinks -----------------------------------------------------------------------------------


def test_a_lab_file_linked_outside_the_labs_folder_is_not_followed(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("password: SECRET-LINE\n  bad: [indent\n")
    folder = tmp_path / "labs" / "probe-test-app"
    folder.mkdir(parents=True)
    (folder / "lab.yaml").symlink_to(secret)
    message = error_of(folder)
    assert "outside the labs folder" in message
    assert "SECRET" not in message


def test_a_lab_folder_linked_outside_the_labs_folder_is_not_followed(tmp_path):
    outside = write(tmp_path / "other", BASE)
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "probe-test-app").symlink_to(outside, target_is_directory=True)
    assert "outside the labs folder" in error_of(tmp_path / "labs" / "probe-test-app")


def test_a_link_inside_the_labs_folder_is_fine(tmp_path):
    shared = tmp_path / "labs" / "_shared.yaml"
    write(tmp_path, "")
    shared.write_text(BASE)
    lab_file = tmp_path / "labs" / "probe-test-app" / "lab.yaml"
    lab_file.unlink()
    lab_file.symlink_to(shared)
    assert load_lab(lab_file.parent).lab.metadata.name == "probe-test-app"


# --- through the CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["NUL byte", "python apply tag", "billion laughs", "deep nesting"])
def test_cli_reports_a_hostile_lab_file_without_traceback(tmp_path, kubelab_cli, case):
    content, line, _ = CASES[case]
    folder = write(tmp_path, content)
    for command in ("show", "run", "check"):
        proc = kubelab_cli(command, "probe-test-app", env={"KUBELAB_LABS": str(folder.parent)})
        assert proc.returncode == 2, proc.stderr
        assert f"lab.yaml:{line}:" in proc.stderr.replace("\n", "")
        assert "Traceback" not in proc.stdout + proc.stderr


def test_limits_are_what_the_docs_say():
    assert loader.MAX_BYTES == 1024 * 1024
    assert loader.MAX_DEPTH == 64
