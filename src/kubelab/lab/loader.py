"""Find labs and load lab.yaml files into models, with errors that name file, line and field."""

from __future__ import annotations

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
        return paths.labs_root()
    except paths.NoCheckoutError:
        raise UnknownLabError(
            "cannot find the course's labs/ folder",
            "run kubelab from the kubelab checkout, or set KUBELAB_LABS to its labs/ folder",
        ) from None


def lab_names(root: Path | None = None) -> list[str]:
    root = root or labs_root()
    return sorted(p.parent.name for p in root.glob(f"*/{LAB_FILE}"))


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


# --- YAML with line numbers ---------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _read_yaml_with_lines(path: Path) -> tuple[Any, dict[Path_, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise LabFileError(
            f"{path}:{line}: not valid YAML: {exc.problem or exc.context}",
            "fix the YAML syntax at that line (indentation, a missing ':' or quote)",
        ) from None
    if node is None:
        raise LabFileError(f"{path}:1: the file is empty", "start from another lab's lab.yaml")
    lines: dict[Path_, int] = {}
    data = _to_python(node, (), lines, path)
    return data, lines


def _to_python(node: yaml.Node, at: Path_, lines: dict[Path_, int], path: Path) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # scalars only
            if key in result:
                raise LabFileError(
                    f"{path}:{key_node.start_mark.line + 1}: {_dotted((*at, key))}: "
                    "the key appears twice in the same map; keep one"
                )
            result[key] = _to_python(value_node, (*at, key), lines, path)
            lines[(*at, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*at, i), lines, path) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


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
