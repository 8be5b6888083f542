"""Where a dataset lives (docs/architecture.md section 2.7).

A root is a local directory or an object-store URI: ``s3://bucket/prefix``,
or any filesystem pyarrow opens from a URI (``gs://``, ``hdfs://``, and,
when fsspec is installed, its filesystems too). A local root stays a
:class:`pathlib.Path`. An object-store root is a :class:`StorePath`: the
few path operations the dataset code uses (join, list, stat, read, write
whole, delete), on a :class:`pyarrow.fs.FileSystem`.

For S3 the credentials come from the standard AWS chain (environment,
``~/.aws``, instance roles), as pyarrow's S3 client finds them. The
endpoint of an S3-compatible store comes from ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` (the standard variables, which pyarrow itself ignores),
or from :func:`open_root`'s *endpoint*.

An object is written whole (:meth:`StorePath.put`): the file is built in
memory and sent in one upload, which the store shows only once it is
complete. A reader never sees part of an object.

A listed object up to :data:`WHOLE_MAX` bytes is read whole in one request
and kept in memory (up to :data:`KEEP_MAX` bytes in all, the least recently
used dropped first): a replay opens a part several times (its footer, a
screen of its pages, the decode), and a store charges by request and
answers each with a delay. A part is never rewritten, and the object is
known by its listed size and modification time.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Generic, NamedTuple, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from tickrec.errors import UsageError

__all__ = [
    "Kept",
    "Root",
    "RootLike",
    "StorePath",
    "Version",
    "as_root",
    "cache_home",
    "is_uri",
    "listing",
    "open_root",
    "source",
]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


#: Listed objects up to this size are read whole, in one request, and kept.
WHOLE_MAX = 64 << 20
#: The most bytes of whole objects kept in memory at once.
KEEP_MAX = 512 << 20

V = TypeVar("V")
#: A file as it is now: its path, size and modification time (ns).
Version = tuple[str, int, int]


class Kept(Generic[V]):
    """What was read of files, by :data:`Version`, the least recently used dropped
    first once the weights (by *weight*, one each by default) pass *limit*.
    Thread-safe; a file that changes has a new version, so nothing kept goes stale."""

    def __init__(self, limit: int, weight: Callable[[V], int] = lambda _: 1) -> None:
        self.limit, self.weight = limit, weight
        self._items: OrderedDict[Version, V] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: Version, read: Callable[[], V]) -> V:
        """The value kept for *key*, else ``read()``, kept (outside the lock)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = read()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._total += self.weight(value)
                while self._total > self.limit and len(self._items) > 1:
                    self._total -= self.weight(self._items.popitem(last=False)[1])
        return value


_WHOLE: Kept[bytes] = Kept(KEEP_MAX, len)


def _read_whole(path: StorePath) -> bytes:
    with path.fs.open_input_stream(path.path) as fh:
        return bytes(fh.read())


def is_uri(text: str | os.PathLike[str]) -> bool:
    """Whether *text* names an object-store root (a URI other than ``file://``)."""
    return isinstance(text, str) and bool(_URI.match(text)) and not text.startswith("file://")


def endpoint_url() -> str | None:
    """The S3 endpoint the standard AWS variables name, if any."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@functools.cache
def _s3(endpoint: str | None, region: str) -> pafs.FileSystem:
    options: dict[str, Any] = {"region": region}
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    return pafs.S3FileSystem(**options)


def _filesystem(uri: str, endpoint: str | None) -> tuple[pafs.FileSystem, str]:
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("s3", "s3a"):
        rest = uri.split("://", 1)[1].rstrip("/")
        if not rest or rest.startswith("/"):
            raise UsageError(f"invalid dataset root {uri!r}: expected s3://bucket/prefix")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        return _s3(endpoint or endpoint_url(), region or "us-east-1"), rest
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, ValueError) as arrow_error:
        try:
            import fsspec  # type: ignore[import-untyped]
        except ImportError:
            raise UsageError(f"cannot open dataset root {uri!r}: {arrow_error}") from None
        handler = pafs.FSSpecHandler(fsspec.filesystem(scheme))
        return pafs.PyFileSystem(handler), uri.split("://", 1)[1].rstrip("/")
    return fs, path.rstrip("/")


def open_root(uri: str, endpoint: str | None = None) -> StorePath:
    """The :class:`StorePath` of an object-store URI (see the module docstring)."""
    fs, path = _filesystem(uri, endpoint)
    return StorePath(fs, path, uri.split("://", 1)[0] + "://")


def cache_home(root: StorePath) -> Path:
    """The default local directory of an object-store root's normalized cache:
    ``$XDG_CACHE_HOME/tickrec/<scheme>/<path>`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tickrec" / root.scheme.rstrip(":/") / root.path


class Stat(NamedTuple):
    """What :meth:`StorePath.stat` knows of an object (the fields the code reads)."""

    st_size: int
    st_mtime_ns: int

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


class StorePath:
    """A file or directory in an object store, used where the code uses a local Path."""

    __slots__ = ("_info", "_kind", "fs", "path", "scheme")

    def __init__(
        self, fs: pafs.FileSystem, path: str, scheme: str, info: pafs.FileInfo | None = None
    ) -> None:
        self.fs = fs
        self.path = path.rstrip("/")
        self.scheme = scheme
        # From the listing that found it, so a listed tree costs no HEAD requests.
        self._info = info
        self._kind = None if info is None else info.type

    def __reduce__(self) -> tuple[Any, ...]:
        return (StorePath, (self.fs, self.path, self.scheme))

    def __str__(self) -> str:
        return self.scheme + self.path

    def __repr__(self) -> str:
        return f"StorePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorePath) and (self.scheme, self.path) == (
            other.scheme,
            other.path,
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.path))

    def __lt__(self, other: StorePath) -> bool:
        return self.path < other.path

    def __truediv__(self, name: str) -> StorePath:
        return StorePath(self.fs, f"{self.path}/{name}", self.scheme)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> StorePath:
        return StorePath(self.fs, self.path.rsplit("/", 1)[0], self.scheme)

    def _type(self) -> pafs.FileType:
        if self._kind is None:
            self._kind = self.fs.get_file_info(self.path).type
        return self._kind

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def _listing(self, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        return self.fs.get_file_info(selector)

    def iterdir(self) -> Iterator[StorePath]:
        for info in self._listing(recursive=False):
            yield StorePath(self.fs, info.path, self.scheme, info)

    def glob(self, pattern: str) -> Iterator[StorePath]:
        """The files below whose path relative to this one matches *pattern* (fnmatch)."""
        depth = pattern.count("/")
        for info in self._listing(recursive=True):
            rel = info.path[len(self.path) + 1 :]
            if rel.count("/") == depth and fnmatch.fnmatchcase(rel, pattern):
                yield StorePath(self.fs, info.path, self.scheme, info)

    def version(self) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` as the listing that found this file gave them, if it did."""
        info = self._info
        if info is None or info.type != pafs.FileType.File:
            return None
        return info.size or 0, info.mtime_ns or 0

    def stat(self) -> Stat:
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(self))
        return Stat(info.size or 0, info.mtime_ns or 0)

    def open_input(self) -> pa.NativeFile:
        """The object, open for random-access reads (what pyarrow's readers take)."""
        version = self.version()
        try:
            if version is not None and version[0] <= WHOLE_MAX:
                data = _WHOLE.get((self.path, *version), lambda: _read_whole(self))
                return pa.BufferReader(data)
            return self.fs.open_input_file(self.path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise OSError(f"{self}: {exc}") from exc

    def read_bytes(self) -> bytes:
        with self.open_input() as fh:
            return fh.read()

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def put(self, write: Callable[[BinaryIO], object], replace: bool = True) -> None:
        """Write the object whole through ``write(file)``: built in memory, then sent in
        one upload the store shows only when it is complete. With ``replace=False``
        an existing object raises :class:`FileExistsError`."""
        if not replace and self.exists():
            raise FileExistsError(str(self))
        buffer = io.BytesIO()
        write(buffer)
        data = buffer.getvalue()
        with self.fs.open_output_stream(self.path) as out:
            out.write(data)
        self._kind, self._info = pafs.FileType.File, None


#: A dataset root: a local directory or a place in an object store.
Root = Path | StorePath
#: What names a root: a path, a URI text, or a root already.
RootLike = str | os.PathLike[str] | StorePath


def as_root(root: RootLike) -> Root:
    """*root* as a :class:`Path`, or itself when it is a :class:`StorePath` already;
    a URI text is opened (:func:`open_root`)."""
    if isinstance(root, StorePath):
        return root
    if is_uri(root):
        return open_root(str(root))
    return Path(root)


def listing(directory: Root) -> list[Root]:
    """The entries of *directory*, sorted by name (none if it does not exist)."""
    if not directory.is_dir():
        return []
    found: list[Root] = list(directory.iterdir())
    return sorted(found, key=lambda p: p.name)


def source(path: Path | StorePath | str) -> Any:
    """What pyarrow's Parquet readers take for *path*: the path itself when local, an
    open random-access file when it is in an object store."""
    return path.open_input() if isinstance(path, StorePath) else path
