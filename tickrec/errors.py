"""The exception tree of tickrec.

Every error tickrec raises on purpose derives from :class:`TickrecError`, so a
caller (and the CLI) can catch them all in one place::

    TickrecError
     ├── UsageError          a bad argument, option or name (CLI exit code 2)
     ├── DatasetError        something wrong with stored data
     │    ├── CorruptFileError   a file that is not a readable Parquet part
     │    └── NotFoundError      no data for the requested partition
     ├── JournalError        a recorder journal cannot be written or read
     └── ProtocolError       a venue message or reply that cannot be understood,
                             or a venue refusing a request (a subscription)
"""

import os
from pathlib import Path
from typing import Any

__all__ = [
    "CorruptFileError",
    "DatasetError",
    "JournalError",
    "NotFoundError",
    "ProtocolError",
    "TickrecError",
    "UsageError",
]


class TickrecError(Exception):
    """Root of every error tickrec raises on purpose."""


class UsageError(TickrecError, ValueError):
    """A bad argument, option or name given by the caller."""


class DatasetError(TickrecError):
    """Stored data is missing, inconsistent or unreadable."""


class CorruptFileError(DatasetError):
    """A file in the dataset is not a readable tickrec Parquet part.

    *path*, when given, is the file; *reason* what is wrong with it. The
    message is ``"{path}: {reason}"``.
    """

    def __init__(self, message: str, path: object = None) -> None:
        super().__init__(message)
        # A local path, or an object-store path (tickrec.store.StorePath) kept as it is.
        self.path: Any = Path(path) if isinstance(path, str | os.PathLike) else path
        prefix = f"{self.path}: "
        self.reason = message.removeprefix(prefix) if self.path is not None else message


class NotFoundError(DatasetError):
    """The requested venue, date or symbol has no data."""


class JournalError(TickrecError):
    """A recorder journal cannot be written or read."""


class ProtocolError(TickrecError):
    """A venue message or reply that cannot be understood, or a refused request."""
