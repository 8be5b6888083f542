"""A full disk made real: a child process on a small tmpfs in a private mount namespace.

The child runs under ``unshare -rm`` (a user and mount namespace of its
own, so no privilege is needed and the mount vanishes with the child). Its
code starts with :data:`PRELUDE`, which mounts an 8 MB tmpfs on ``MNT`` and
defines ``fill(chunk)``: another program taking every byte left, through the
file ``FILLER``. The child copies what it wants kept out of the tmpfs before
it exits, and prints one JSON line last.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PRELUDE = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path
    MNT = Path(sys.argv[1])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(MNT)], check=True)
    FILLER = MNT / "filler"

    def fill(chunk=64 << 10):  # another program takes every byte left
        with open(FILLER, "ab", buffering=0) as fh:  # unbuffered: nothing left for close
            while chunk:
                try:
                    fh.write(bytes(chunk))
                except OSError:
                    chunk //= 2
    """
)


def run_child(code: str, mnt: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run :data:`PRELUDE` + *code* on a tmpfs at *mnt*; its last JSON line, and its log."""
    assert shutil.which("unshare"), "util-linux unshare is needed for the full-disk tests"
    mnt.mkdir()
    proc = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", PRELUDE + textwrap.dedent(code), str(mnt), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def events(rows: pa.Table, kind: str | None = None) -> list[dict[str, Any]]:
    """The stored event rows of *rows*, decoded, optionally only those of *kind*."""
    payloads = rows.filter(pc.equal(rows["source"], "event"))["payload"].to_pylist()
    return [e for e in map(json.loads, payloads) if kind is None or e["event"] == kind]
