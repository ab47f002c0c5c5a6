"""Find labs and load lab.yaml files into models, with errors that name file, line and field."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubelab import paths
from kubelab.errors import LabFileError, UnknownLabError
from kubelab.lab.model import API_VERSION, OLD_API_VERSIONS, Lab

LAB_FILE = paths.LAB_FILE


@dataclass(frozen=True)
class LoadedLab:
    lab: Lab
    folder: Path
    # the line of every key and item of lab.yaml, by path: ("spec", "steps", 0, "run")
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, compare=False)

    @property
    def file(self) -> Path:
        return self.folder / LAB_FILE


def labs_root() -> Path:
    """$KUBELAB_LABS, else the `labs/` folder of this checkout."""
    try:
        root = paths.labs_root()
    except paths.NoCheckoutError:
        raise UnknownLabError(
            "cannot find the course's labs/ folder",
            "run kubelab from the kubelab checkout, or set KUBELAB_LABS to its labs/ folder",
        ) from None
    if not root.is_dir():
        raise UnknownLabError(
            f"the labs folder {root} does not exist",
            "set KUBELAB_LABS to the course's labs/ folder, or unset it",
        )
    return root


# A row of the course index: the table of labs in the README beside the labs folder.
_INDEX_ROW = re.compile(r"^\|.*\]\(labs/([^/)\s]+)/README\.md\)")


def course_index(root: Path | None = None) -> list[str]:
    """The labs in course order: the rows of the lab table in the README.md next to the labs
    folder (each row links labs/NAME/README.md). Empty when there is no such README."""
    readme = (root or labs_root()).parent / "README.md"
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [m.group(1) for line in text.splitlines() if (m := _INDEX_ROW.match(line))]


def lab_names(root: Path | None = None) -> list[str]:
    """Every lab, in course order (see course_index); labs not in the index follow by name."""
    root = root or labs_root()
    found = sorted(p.parent.name for p in root.glob(f"*/{LAB_FILE}"))
    ordered = [name for name in dict.fromkeys(course_index(root)) if name in found]
    return ordered + [name for name in found if name not in ordered]


def find_lab(name: str, root: Path | None = None) -> Path:
    root = root or labs_root()
    folder = root / name
    if not (folder / LAB_FILE).is_file():
        known = ", ".join(lab_names(root)) or "(none)"
        raise UnknownLabError(f"there is no lab {name!r}", f"the labs are: {known}")
    return folder


def load_lab(name_or_folder: str | Path, root: Path | None = None) -> LoadedLab:
    folder = Path(name_or_folder)
    if not (folder / LAB_FILE).is_file():
        folder = find_lab(str(name_or_folder), root)
    path = folder / LAB_FILE
    data, lines = _read_yaml_with_lines(path)
    _known_api_version(data, path, lines)
    try:
        lab = Lab.model_validate(data)
    except ValidationError as exc:
        raise LabFileError(_describe(exc, path, data, lines)) from None
    if lab.metadata.name != folder.name:
        line = lines.get(("metadata", "name"), 1)
        raise LabFileError(
            f"{path}:{line}: metadata.name: is {lab.metadata.name!r} but the folder is "
            f"{folder.name!r}; they must be the same"
        )
    return LoadedLab(lab=lab, folder=folder.resolve(), lines=lines)


def _known_api_version(data: Any, path: Path, lines: dict[Path_, int]) -> None:
    version = data.get("apiVersion") if isinstance(data, dict) else None
    if version in OLD_API_VERSIONS:
        line = lines.get(("apiVersion",), 1)
        raise LabFileError(
            f"{path}:{line}: apiVersion: {version} is an older lab format; this kubelab reads "
            f"{API_VERSION}",
            f"set apiVersion: {API_VERSION}; what changed: {OLD_API_VERSIONS[version]}",
        )


def load_all(root: Path | None = None) -> list[LoadedLab]:
    root = root or labs_root()
    return [load_lab(root / name) for name in lab_names(root)]


# --- YAML with line numbers, read within limits ---------------------------------------------------

Path_ = tuple[str | int, ...]

# A real lab.yaml is a few KiB; these stop hostile or broken files before they cost anything.
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_NODES = 200_000  # after expanding aliases: a "billion laughs" file is refused here
_STANDARD_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("null", "bool", "int", "float", "str", "seq", "map", "timestamp")
}


def _line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing a lab.yaml that leads outside the labs folder (a symlink to
    another file must never have that file's lines printed) or is too large to be a lab."""
    labs = path.absolute().parent.parent  # labs/<lab>/lab.yaml
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(labs)):
        raise LabFileError(
            f"{path}: is a symlink to {real}, outside the labs folder {labs}; kubelab does not "
            "follow it",
            "keep a lab's files inside its folder (copy the file instead of linking it)",
        )
    try:
        size = real.stat().st_size
        if size > MAX_BYTES:
            raise LabFileError(
                f"{path}:1: the file is {size / 1024 / 1024:.1f} MiB; a lab.yaml may be at most "
                f"{MAX_BYTES // 1024} KiB",
                "split the lab into several labs, or move long scripts into files the lab runs",
            )
        with real.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # the file may grow while we read it
    except OSError as exc:
        raise LabFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise LabFileError(f"{path}:1: the file is larger than {MAX_BYTES // 1024} KiB")
    return data


_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def _decode(path: Path, data: bytes) -> str:
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise LabFileError(f"{path}:1: is {encoding} text", "save the file as UTF-8")
    if (nul := data.find(b"\x00")) >= 0:
        raise LabFileError(
            f"{path}:{_line_of(data, nul)}: contains a NUL byte: lab.yaml must be text",
            "remove the binary content (was a file pasted or saved with another encoding?)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabFileError(
            f"{path}:{_line_of(data, exc.start)}: is not UTF-8 text (byte {data[exc.start]:#04x})",
            "save the file as UTF-8",
        ) from None


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader's composer with a depth limit, an alias limit and a tag whitelist, each
    checked as the nodes are built (before any expansion or conversion)."""

    def __init__(self, stream: str, path: Path) -> None:
        super().__init__(stream)
        self.file = path
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise LabFileError(
                    f"{self.file}:{line}: more than {MAX_ALIASES} aliases (*name)",
                    "write the values out instead of repeating anchors",
                )
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LabFileError(
                f"{self.file}:{line}: nested more than {MAX_DEPTH} levels deep",
                "a lab.yaml needs a few levels: check the indentation",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if node.tag == "tag:yaml.org,2002:merge":
            raise LabFileError(
                f"{self.file}:{line}: merge keys (<<) are not supported",
                "write the fields out in each map",
            )
        if node.tag not in _STANDARD_TAGS:
            raise LabFileError(
                f"{self.file}:{line}: the tag {_short_tag(node.tag)} is not allowed",
                "use plain YAML values (strings, numbers, lists, maps); quote a value that "
                "starts with ! or &",
            )
        return node


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml") else tag


def _expanded_size(node: yaml.Node, path: Path) -> int:
    """How many nodes the document has once aliases are expanded, without expanding them."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in busy:
            raise LabFileError(
                f"{path}:{n.start_mark.line + 1}: an alias refers to the map or list that "
                "contains it (a loop)",
                "remove the alias",
            )
        busy.add(id(n))
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(item) for item in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        busy.discard(id(n))
        sizes[id(n)] = total
        if total > MAX_NODES:
            raise LabFileError(
                f"{path}:{n.start_mark.line + 1}: expands to more than {MAX_NODES} values "
                "(aliases repeating aliases)",
                "write the values out instead of nesting anchors",
            )
        return total

    return size(node)


def _read_yaml_with_lines(path: Path) -> tuple[Any, dict[Path_, int]]:
    data = _read_bytes(path)
    text = _decode(path, data)
    loader = None
    try:
        loader = _LimitedLoader(text, path)  # its reader rejects control characters at once
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise LabFileError(
            f"{path}:{line}: not valid YAML: {exc.problem or exc.context}",
            "fix the YAML syntax at that line (indentation, a missing ':' or quote)",
        ) from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, a position
        line = text[: exc.position].count("\n") + 1
        raise LabFileError(
            f"{path}:{line}: contains the control character {exc.character!r}",
            "remove it (lab.yaml must be printable text)",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise LabFileError(f"{path}:1: the file is empty", "start from another lab's lab.yaml")
    _expanded_size(node, path)
    lines: dict[Path_, int] = {}
    data_ = _to_python(node, (), lines, path, yaml.SafeLoader(""))
    return data_, lines


def _to_python(
    node: yaml.Node, at: Path_, lines: dict[Path_, int], path: Path, loader: yaml.SafeLoader
) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise LabFileError(
                    f"{path}:{line}: {_dotted(at)}: a key must be a plain word, not a "
                    f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'map'}",
                    "write `name: value` (a '?' or '[...]:' key is not lab.yaml)",
                )
            key = _scalar(key_node, path, loader)
            if key in result:
                raise LabFileError(
                    f"{path}:{line}: {_dotted((*at, key))}: "
                    "the key appears twice in the same map; keep one"
                )
            result[key] = _to_python(value_node, (*at, key), lines, path, loader)
            lines[(*at, key)] = line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*at, i), lines, path, loader) for i, item in enumerate(node.value)
        ]
    return _scalar(node, path, loader)


def _scalar(node: yaml.Node, path: Path, loader: yaml.SafeLoader) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # e.g. !!int abc
        problem = getattr(exc, "problem", None) or str(exc)
        raise LabFileError(
            f"{path}:{node.start_mark.line + 1}: cannot read the value {node.value!r}: {problem}",
            "quote it to make it a string",
        ) from None


def _dotted(at: Path_) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _describe(exc: ValidationError, path: Path, data: Any, lines: dict[Path_, int]) -> str:
    """One line per problem: file:line: field: message."""
    problems = []
    for err in exc.errors():
        at = _data_path(err["loc"], data)
        line = next((lines[at[:i]] for i in range(len(at), -1, -1) if at[:i] in lines), 1)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check its spelling against `kubelab schema`"
        elif err["type"] == "missing":
            msg = "required field is missing"
        msg = msg.removeprefix("Value error, ")
        problems.append(f"{path}:{line}: {_dotted(at)}: {msg}")
    return "\n".join(dict.fromkeys(problems))


def _data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Map a pydantic error location onto the YAML data, dropping pydantic's union tags."""
    at: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if _is_union_tag(loc, i):
            continue
        in_map = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_map or in_list:
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str):
            at.append(part)  # a missing field: name it; there is nothing deeper
            break
        else:
            break
        at.append(part)
    return tuple(at)


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _is_union_tag(loc: tuple[Any, ...], i: int) -> bool:
    part = loc[i]
    if not isinstance(part, str):
        return False
    if i + 1 < len(loc) and loc[i + 1] == part:  # a discriminator tag, then the field itself
        return True
    return "[" in part or part[:1].isupper() or part in _TYPE_TAGS
