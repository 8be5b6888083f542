"""Closed parts sent from the local staging directory to an object store.

When ``--data`` is an object store (docs/architecture.md section 2.7), the
recorder works in a local directory (``--journal DIR``): the journal and
the Parquet parts converted from it live there, under the same layout as a
dataset. An :class:`Uploader` sends each closed part to the store as one
complete object under the same relative name, confirms it (the object's
size is the file's), and only then deletes the local file.

- While the store cannot be reached, recording goes on locally. The failure
  is logged once, and uploads are retried with a doubling delay, up to
  :data:`MAX_DELAY` seconds; recovery is logged too.
- A crash at any step loses nothing and duplicates nothing: a part is
  deleted locally only once the store holds it, and sending it again puts
  the same bytes under the same name. The next run with the same
  ``--journal`` sends whatever is left.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tickrec.contract import dataset_root, parse_part_name
from tickrec.errors import UsageError
from tickrec.store import StorePath

__all__ = ["MAX_DELAY", "Uploader", "local_roots", "staged_parts"]

log = logging.getLogger(__name__)

#: The longest wait between two tries while the store cannot be reached (seconds).
MAX_DELAY = 60.0


def local_roots(data: str | None, journal: str | None) -> tuple[Path, StorePath | None]:
    """The local directory a recorder (or recovery) writes in, and the object store it
    uploads to: *data* itself and None for a local dataset, else *journal* and *data*."""
    root = dataset_root(data)
    if isinstance(root, StorePath):
        if not journal:
            raise UsageError(
                f"{root} is an object store: give --journal DIR, the local directory for "
                "the recorder's journal and the parts not yet uploaded"
            )
        return Path(journal), root
    if journal:
        raise UsageError("--journal is for a dataset on an object store (--data s3://...)")
    return root, None


def staged_parts(staging: Path) -> list[Path]:
    """The complete parts under ``staging/raw`` (temporary files left out), sorted."""
    raw = staging / "raw"
    if not raw.is_dir():
        return []
    found = raw.glob("venue=*/date=*/symbol=*/part-*.parquet")
    return sorted(p for p in found if p.is_file() and parse_part_name(p.name) is not None)


class Uploader:
    """Sends the parts staged under *staging* to *store*, every *every* seconds while
    running (:meth:`start`), and once more at :meth:`close`."""

    def __init__(self, staging: Path, store: StorePath, every: float = 1.0) -> None:
        self.staging = staging
        self.store = store
        self.every = every
        self.uploaded = 0
        self.failing: str | None = None  # why the last try failed, while it does
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tickrec-upload", daemon=True)

    def target(self, path: Path) -> StorePath:
        """Where the staged *path* goes in the store."""
        return self.store / "/".join(path.relative_to(self.staging).parts)

    def send(self, path: Path) -> bool:
        """Upload one part, confirm it, then delete it locally; False if it was gone
        already (another run on the same ``--journal`` sent it). Raises :class:`OSError`."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        target = self.target(path)
        if not (target.exists() and target.stat().st_size == len(data)):
            target.put(lambda fh: fh.write(data))
            held = target.stat().st_size
            if held != len(data):
                raise OSError(f"{target}: the store holds {held} bytes of {len(data)}")
        path.unlink(missing_ok=True)
        self.uploaded += 1
        return True

    def send_all(self) -> int:
        """Send every staged part; the number sent. Raises :class:`OSError` at the first
        that fails (the others wait for the next try)."""
        return sum(self.send(path) for path in staged_parts(self.staging))

    def _try(self) -> bool:
        try:
            sent = self.send_all()
        except OSError as exc:
            if self.failing is None and not self._stop.is_set():
                log.warning(
                    "cannot upload to %s (%s); recording goes on locally under %s, retrying",
                    self.store,
                    exc,
                    self.staging,
                )
            elif self.failing is None:  # the last try, at the end of the run
                log.warning("cannot upload to %s (%s)", self.store, exc)
            self.failing = str(exc)
            return False
        if self.failing is not None:
            log.info("uploads to %s work again; %d parts sent", self.store, sent)
            self.failing = None
        return True

    def _run(self) -> None:
        delay = self.every
        while not self._stop.wait(delay):
            delay = self.every if self._try() else min(max(delay, 1.0) * 2, MAX_DELAY)

    def start(self) -> Uploader:
        self._thread.start()
        return self

    def close(self) -> list[Path]:
        """Stop, try once more, and return the parts still waiting locally."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._try()
        return staged_parts(self.staging)
