"""Container images for the real node, made offline: no registry, no Docker engine.

An image is a tar file in the OCI layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``)
that also carries a docker-archive ``manifest.json``, so ``ctr -n k8s.io images import`` takes it.
Layers are written reproducibly (sorted entries, mtime 0, owner 0:0) by :func:`write_image`.

What is made here, cached under ``<kubelab cache>/images/``:

- pause: Kubernetes' own ``build/pause/linux/pause.c`` (from the Go module cache of
  k8s.io/kubernetes) compiled with ``gcc -Os -static``; containerd's sandbox image.
- busybox: Debian's ``busybox-static`` with a link per applet; a **stand-in** for
  ``docker.io/library/busybox:<tag>`` that exists only inside the CI node.
- rabbitmq: Debian 13 "trixie"'s ``rabbitmq-server`` package (RabbitMQ 4.0.5 on Erlang 27) on a
  ``debootstrap --variant=minbase`` of trixie, laid out like the official image where the labs
  depend on it (uid/gid 999 ``rabbitmq``, data and HOME in /var/lib/rabbitmq, configuration in
  /etc/rabbitmq, logs to stdout, ``RABBITMQ_DEFAULT_USER``/``_PASS`` honoured by the server,
  ports 5672 and 15672); a **stand-in** for ``docker.io/library/rabbitmq:<tag>-management``
  that exists only inside the CI node.
- the Python base: ``debootstrap --variant=minbase`` of Debian bookworm with python3 (the same
  Python minor as the apps' pinned ``python:3.11-slim-bookworm`` base), cached as a tarball.
- the course's apps: ``buildah bud`` of each ``apps/<app>/Dockerfile`` with
  ``--build-arg PYTHON_IMAGE=<the local base>``, the tags and build args from the app's
  ``[tool.kubelab.image]``; buildah's storage lives in the cache, its runtime is our runc.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kubelab.embedded import build
from kubelab.errors import KubelabError

Progress = Callable[[str], object]

PAUSE_TAG = "3.10.2"  # build/pause/Makefile of Kubernetes 1.36
PAUSE_IMAGE = f"localhost/kubelab/pause:{PAUSE_TAG}"
BUSYBOX_TAG = "1.37.0"  # the tag the labs name; the content is Debian's busybox-static
BUSYBOX_IMAGE = f"docker.io/library/busybox:{BUSYBOX_TAG}"
# the tag the labs name (the current official 4.x image); the content is Debian's package below
RABBITMQ_TAG = "4.3.2-management"
RABBITMQ_IMAGE = f"docker.io/library/rabbitmq:{RABBITMQ_TAG}"
RABBITMQ_SUITE = "trixie"
RABBITMQ_DEB_VERSION = "4.0.5-6+deb13u2"  # Debian 13's rabbitmq-server, checked after install
RABBITMQ_UID = 999  # as in the official image
BASE_SUITE = "bookworm"
BASE_IMAGE = "localhost/kubelab/python-base:3.11-bookworm"
# the Dockerfiles call `python` (python-is-python3), `python -m venv` (python3-venv),
# groupadd/useradd (passwd)
BASE_PACKAGES = (
    "python3",
    "python3-pip",
    "python3-venv",
    "python-is-python3",
    "passwd",
    "ca-certificates",
)
# cached builds are redone when this changes
RECIPE_VERSION = "1"


class ImageError(KubelabError):
    """An image for the real node cannot be made."""


def images_dir() -> Path:
    return build.cache_root() / "images"


# ---------------------------------------------------------------- the OCI writer


@dataclass
class Entry:
    """One file, folder or symlink of a layer."""

    path: str  # inside the image, without a leading slash
    data: bytes | None = None  # file content (None for folders and links)
    mode: int = 0o644
    link: str | None = None  # symlink target


DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ImageConfig:
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    user: str = ""
    workdir: str = ""


def _layer_from_entries(entries: Iterable[Entry]) -> bytes:
    """A reproducible uncompressed tar of the entries (parents first, sorted)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen: set[str] = set()
        for entry in sorted(entries, key=lambda e: e.path):
            parts = entry.path.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in seen:
                    seen.add(parent)
                    info = tarfile.TarInfo(parent)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            if entry.path in seen:
                continue
            seen.add(entry.path)
            info = tarfile.TarInfo(entry.path)
            info.mode = entry.mode
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_image(dest: Path, ref: str, layers: list[bytes], config: ImageConfig) -> Path:
    """Write an image archive (OCI layout + docker-archive manifest) with these layer tars."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    layer_descs = []
    for layer in layers:
        gz = _gzip(layer)
        layer_descs.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{blob(gz)}",
                "size": len(gz),
            }
        )
    cfg: dict[str, object] = {"Env": config.env}
    if config.entrypoint:
        cfg["Entrypoint"] = config.entrypoint
    if config.cmd:
        cfg["Cmd"] = config.cmd
    if config.user:
        cfg["User"] = config.user
    if config.workdir:
        cfg["WorkingDir"] = config.workdir
    config_doc = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kubelab"}],
    }
    config_bytes = json.dumps(config_doc, sort_keys=True).encode()
    config_digest = blob(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{config_digest}",
            "size": len(config_bytes),
        },
        "layers": layer_descs,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = blob(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{manifest_digest}",
                "size": len(manifest_bytes),
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    docker_manifest = [
        {
            "Config": f"blobs/sha256/{config_digest}",
            "RepoTags": [ref],
            "Layers": [d["digest"].replace("sha256:", "blobs/sha256/") for d in layer_descs],
        }
    ]
    files: list[tuple[str, bytes]] = [
        ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
        ("index.json", json.dumps(index, sort_keys=True).encode()),
        ("manifest.json", json.dumps(docker_manifest).encode()),
        *((f"blobs/sha256/{d}", data) for d, data in sorted(blobs.items())),
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, dest)
    return dest


# ---------------------------------------------------------------- the images


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    archive: Path
    stand_in: bool = False  # built here in place of a third-party image (CI node only)


def _run(cmd: list[str], what: str, timeout: float = 900, **kwargs: object) -> str:
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kwargs,  # type: ignore[arg-type]
        )
    except FileNotFoundError:
        raise ImageError(
            f"{what}: `{cmd[0]}` is not installed", "run `make test-deps` (Debian packages)"
        ) from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what}: `{cmd[0]}` did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = "\n  ".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise ImageError(f"{what} failed (exit {proc.returncode}):\n  {tail}")
    return proc.stdout


def _fresh(archive: Path, key: str) -> bool:
    stamp = archive.with_suffix(".stamp")
    return archive.exists() and stamp.exists() and stamp.read_text() == key


def _stamp(archive: Path, key: str) -> None:
    archive.with_suffix(".stamp").write_text(key)


def _key(*parts: object) -> str:
    h = hashlib.sha256(RECIPE_VERSION.encode())
    for part in parts:
        if isinstance(part, Path):
            h.update(part.read_bytes() if part.is_file() else str(part).encode())
        else:
            h.update(str(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def pause_source() -> Path:
    version = build.k8s_version()
    gomodcache = _run(["go", "env", "GOMODCACHE"], "go env").strip()
    src = Path(gomodcache) / f"k8s.io/kubernetes@{version}/build/pause/linux/pause.c"
    if not src.exists():
        _run(
            ["go", "mod", "download", f"k8s.io/kubernetes@{version}"],
            "download k8s.io/kubernetes (for pause.c)",
            cwd=build.tools_dir() / "kube",
        )
    if not src.exists():
        raise ImageError(f"pause.c not found at {src}", build.HINT)
    return src


def pause_image() -> BuiltImage:
    archive = images_dir() / "pause.tar"
    src = pause_source()
    key = _key(src, PAUSE_TAG)
    if not _fresh(archive, key):
        with tempfile.TemporaryDirectory(prefix="kubelab-pause-") as tmp:
            out = Path(tmp) / "pause"
            _run(
                ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_TAG}-kubelab",
                 "-o", str(out), str(src)],
                "compile pause.c",
            )  # fmt: skip
            _run(["strip", str(out)], "strip pause")
            layer = _layer_from_entries([Entry("pause", out.read_bytes(), 0o755)])
        write_image(archive, PAUSE_IMAGE, [layer], ImageConfig(entrypoint=["/pause"], user="65535"))
        _stamp(archive, key)
    return BuiltImage(PAUSE_IMAGE, archive)


def busybox_image() -> BuiltImage:
    archive = images_dir() / "busybox.tar"
    binary = Path("/bin/busybox")
    if not binary.exists():
        raise ImageError(
            "Debian's busybox-static is not installed", "run `make test-deps` (needs root)"
        )
    key = _key(binary, BUSYBOX_IMAGE)
    if not _fresh(archive, key):
        applets = _run([str(binary), "--list-full"], "busybox --list-full").split()
        entries = [Entry("bin/busybox", binary.read_bytes(), 0o755)]
        for applet in applets:
            if applet != "bin/busybox":
                entries.append(Entry(applet, link="/bin/busybox"))
        entries += [
            Entry("etc/passwd", b"root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
            Entry("etc/group", b"root:x:0:\nnobody:x:65534:\n"),
            Entry("tmp", None, 0o1777),
            Entry("root", None, 0o700),
        ]
        write_image(archive, BUSYBOX_IMAGE, [_layer_from_entries(entries)], ImageConfig(cmd=["sh"]))
        _stamp(archive, key)
    return BuiltImage(BUSYBOX_IMAGE, archive, stand_in=True)


# ---------------------------------------------------------------- the RabbitMQ stand-in

# What the official image puts in /etc/rabbitmq/conf.d/10-defaults.conf (a lab that mounts its own
# /etc/rabbitmq replaces it, as it does on the official image).
RABBITMQ_DEFAULTS_CONF = """## kubelab stand-in for the official image's defaults
loopback_users.guest = false
log.console = true
"""
RABBITMQ_ENV = [
    "PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "RABBITMQ_DATA_DIR=/var/lib/rabbitmq",
    "HOME=/var/lib/rabbitmq",
    "LANG=C.UTF-8",
    "LANGUAGE=C.UTF-8",
    "LC_ALL=C.UTF-8",
    # as in the official image: no pid file or systemd notification expected
    "RUNNING_UNDER_SYSTEMD=true",
]


def rabbitmq_rootfs(progress: Progress = print) -> Path:
    """debootstrap of Debian trixie with rabbitmq-server, as a tarball (made once)."""
    tarball = images_dir() / f"rabbitmq-{RABBITMQ_SUITE}.tar"
    key = _key(RABBITMQ_SUITE, RABBITMQ_DEB_VERSION, RABBITMQ_UID, RABBITMQ_DEFAULTS_CONF)
    if _fresh(tarball, key):
        return tarball
    images_dir().mkdir(parents=True, exist_ok=True)
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed", "run `make test-deps` (needs root)")
    start = time.monotonic()
    progress(f"building the RabbitMQ stand-in from Debian {RABBITMQ_SUITE} (once, ~2 min) ...")
    with tempfile.TemporaryDirectory(prefix="kubelab-rabbitmq-", dir=images_dir()) as tmp:
        root = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", "--include=rabbitmq-server,ca-certificates",
             RABBITMQ_SUITE, str(root), "http://deb.debian.org/debian"],
            "debootstrap the RabbitMQ stand-in",
            timeout=1200,
        )  # fmt: skip
        installed = _run(
            ["chroot", str(root), "dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
            "read the installed rabbitmq-server version",
        ).strip()
        if installed != RABBITMQ_DEB_VERSION:
            raise ImageError(
                f"Debian {RABBITMQ_SUITE} now ships rabbitmq-server {installed}, the recipe pins "
                f"{RABBITMQ_DEB_VERSION}",
                "update RABBITMQ_DEB_VERSION in src/kubelab/embedded/images.py (and the lessons "
                "that name it) after checking the new version",
            )
        # the official image's user: uid/gid 999, HOME = the data folder
        uid = str(RABBITMQ_UID)
        _run(["chroot", str(root), "groupmod", "--gid", uid, "rabbitmq"], "groupmod rabbitmq")
        _run(
            ["chroot", str(root), "usermod", "--uid", uid, "--gid", uid,
             "--home", "/var/lib/rabbitmq", "rabbitmq"],
            "usermod rabbitmq",
        )  # fmt: skip
        for folder in ("var/lib/rabbitmq", "var/log/rabbitmq", "etc/rabbitmq",
                       "etc/rabbitmq/conf.d"):  # fmt: skip
            path = root / folder
            path.mkdir(parents=True, exist_ok=True)
            for sub in [path, *path.rglob("*")]:
                os.lchown(sub, RABBITMQ_UID, RABBITMQ_UID)
            os.chmod(path, 0o1777)  # as the official image: any uid may run it
        for stale in (root / "var/lib/rabbitmq").iterdir():  # a cookie made by postinst
            if stale.is_file():
                stale.unlink()
        conf = root / "etc/rabbitmq/conf.d/10-defaults.conf"
        conf.write_text(RABBITMQ_DEFAULTS_CONF)
        os.chown(conf, RABBITMQ_UID, RABBITMQ_UID)
        _pack_rootfs(root, tarball, "the RabbitMQ stand-in", extra_junk=("var/log/apt",))
    _stamp(tarball, key)
    progress(f"built the RabbitMQ stand-in rootfs in {time.monotonic() - start:.0f}s")
    return tarball


def _pack_rootfs(root: Path, tarball: Path, what: str, extra_junk: tuple[str, ...] = ()) -> None:
    """Drop what a container never reads (docs, apt's lists and caches), then tar the rootfs
    reproducibly (numeric owners, sorted, mtime 0) and put it in place atomically."""
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists",
                 "var/cache/apt", "usr/share/locale", *extra_junk):  # fmt: skip
        shutil.rmtree(root / junk, ignore_errors=True)
    (root / "var/lib/apt/lists").mkdir(parents=True, exist_ok=True)
    tmp_tar = tarball.with_name(f".{tarball.name}.tmp")
    _run(
        ["tar", "--numeric-owner", "--sort=name", "--mtime=@0", "-C", str(root), "-cf",
         str(tmp_tar), "."],
        f"pack {what}",
    )  # fmt: skip
    os.replace(tmp_tar, tarball)


def rabbitmq_image(progress: Progress = print) -> BuiltImage:
    """The RabbitMQ stand-in as an image archive (one layer), under the official image's name."""
    tarball = rabbitmq_rootfs(progress)
    archive = images_dir() / "rabbitmq.tar"
    config = ImageConfig(cmd=["rabbitmq-server"], env=RABBITMQ_ENV, user=str(RABBITMQ_UID))
    key = _key(tarball.with_suffix(".stamp"), RABBITMQ_IMAGE, config)
    if not _fresh(archive, key):
        write_image(archive, RABBITMQ_IMAGE, [tarball.read_bytes()], config)
        _stamp(archive, key)
    return BuiltImage(RABBITMQ_IMAGE, archive, stand_in=True)


# ---------------------------------------------------------------- the Python base and the apps


def base_rootfs() -> Path:
    """debootstrap of Debian bookworm with python3, as a tarball (made once, ~80 s)."""
    tarball = images_dir() / f"python-base-{BASE_SUITE}.tar"
    key = _key(BASE_SUITE, *BASE_PACKAGES)
    if _fresh(tarball, key):
        return tarball
    images_dir().mkdir(parents=True, exist_ok=True)
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed", "run `make test-deps` (needs root)")
    with tempfile.TemporaryDirectory(prefix="kubelab-base-", dir=images_dir()) as tmp:
        root = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
             BASE_SUITE, str(root)],
            "debootstrap the Python base",
            timeout=1200,
        )  # fmt: skip
        for cache in root.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        _pack_rootfs(root, tarball, "the Python base")
    _stamp(tarball, key)
    return tarball


def base_image() -> BuiltImage:
    """The Python base as an image archive (one layer: the debootstrap rootfs)."""
    tarball = base_rootfs()
    archive = images_dir() / "python-base.tar"
    # the same PATH and LANG as the python:3.11-slim images
    config = ImageConfig(cmd=["python3"], env=[DEFAULT_PATH, "LANG=C.UTF-8"])
    key = _key(tarball.with_suffix(".stamp"), BASE_IMAGE, config)
    if not _fresh(archive, key):
        write_image(archive, BASE_IMAGE, [tarball.read_bytes()], config)
        _stamp(archive, key)
    return BuiltImage(BASE_IMAGE, archive)


@dataclass(frozen=True)
class AppImage:
    app: str
    folder: Path
    ref: str
    build_args: dict[str, str]


def app_images(apps_root: Path) -> list[AppImage]:
    found = []
    for pyproject in sorted(apps_root.glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        spec = data.get("tool", {}).get("kubelab", {}).get("image") or {}
        for tag, args in (spec.get("tags") or {}).items():
            found.append(
                AppImage(
                    pyproject.parent.name,
                    pyproject.parent,
                    f"{spec['name']}:{tag}",
                    {k: str(v) for k, v in (args or {}).items()},
                )
            )
    return found


def _buildah(runc: Path) -> list[str]:
    if shutil.which("buildah") is None:
        raise ImageError("buildah is not installed", "run `make test-deps` (needs root)")
    store = images_dir() / "buildah"
    return [
        "buildah",
        "--root", str(store / "root"),
        "--runroot", str(store / "run"),
        "--storage-driver", "vfs",
    ]  # fmt: skip


def _tree_key(folder: Path) -> list[object]:
    parts: list[object] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            parts += [str(rel), path]
    return parts


PIP_CONF = """[global]
no-index = true
find-links = /kubelab-wheels
"""


def wheelhouse(folder: Path) -> Path:
    """The app's Python dependencies (and its build backend) as wheels, fetched on the host.

    The build runs with no network: its `pip install` reads only these (through a pip.conf
    mounted at /etc/pip.conf). The host's pip reaches PyPI as configured on this machine.
    """
    data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    reqs = [*data.get("build-system", {}).get("requires", []),
            *data.get("project", {}).get("dependencies", [])]  # fmt: skip
    dest = images_dir() / "wheels" / folder.name
    key = _key(*sorted(reqs))
    marker = dest / ".stamp"
    if dest.exists() and marker.exists() and marker.read_text() == key:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
          "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
          "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
          "--platform", "manylinux_2_17_x86_64", "--platform", "any",
          "--dest", str(dest), *reqs],
         f"download the wheels of {folder.name}", timeout=600)  # fmt: skip
    marker.write_text(key)
    return dest


def app_image(image: AppImage, runc: Path, progress: Progress = print) -> BuiltImage:
    """`buildah bud` of the app's own Dockerfile FROM the local Python base, without network."""
    base = base_image()
    safe = image.ref.rsplit("/", 1)[-1].replace(":", "_")
    archive = images_dir() / "apps" / f"{safe}.tar"
    key = _key(base.archive.with_suffix(".stamp"), image.ref, sorted(image.build_args.items()),
               *_tree_key(image.folder))  # fmt: skip
    if _fresh(archive, key):
        return BuiltImage(image.ref, archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    wheels = wheelhouse(image.folder)
    pip_conf = images_dir() / "pip-offline.conf"
    pip_conf.write_text(PIP_CONF)
    bh = _buildah(runc)
    start = time.monotonic()
    progress(f"building {image.ref} from {image.folder.name}/Dockerfile with buildah ...")
    # the base enters buildah's own store under its name; FROM then finds it without a pull
    image_id = _run(
        [*bh, "pull", "--quiet", f"oci-archive:{base.archive}"], "buildah pull the base"
    ).split()[-1]
    _run([*bh, "tag", image_id, BASE_IMAGE], "buildah tag the base")
    cmd = [
        *bh, "bud",
        "--runtime", str(runc),
        "--isolation", "oci",
        "--network", "none",  # RUN pip install reads the wheelhouse only
        "--volume", f"{wheels}:/kubelab-wheels:ro",
        "--volume", f"{pip_conf}:/etc/pip.conf:ro",
        "--pull-never",
        "--layers=false",
        "--format", "oci",
        "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
        *(a for k, v in image.build_args.items() for a in ("--build-arg", f"{k}={v}")),
        "--tag", image.ref,
        "--file", str(image.folder / "Dockerfile"),
        str(image.folder),
    ]  # fmt: skip
    _run(cmd, f"buildah bud {image.ref}", timeout=1200)
    tmp = archive.with_name(f".{archive.name}.tmp")
    tmp.unlink(missing_ok=True)
    _run([*bh, "push", "--quiet", image.ref, f"oci-archive:{tmp}:{image.ref}"], "buildah push")
    os.replace(tmp, archive)
    _stamp(archive, key)
    # the archive is what is kept: drop the image and build containers from buildah's store
    # (vfs keeps a full copy per layer)
    subprocess.run([*bh, "rmi", "--force", image.ref], capture_output=True, check=False)
    subprocess.run([*bh, "rm", "--all"], capture_output=True, check=False)
    subprocess.run([*bh, "rmi", "--prune"], capture_output=True, check=False)
    progress(f"built {image.ref} in {time.monotonic() - start:.0f}s")
    return BuiltImage(image.ref, archive)
