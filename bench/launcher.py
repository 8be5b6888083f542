"""A small launcher that runs one command and reports its true peak memory and CPU time.

Run as ``python -I -S bench/launcher.py TIMEOUT_S COMMAND...``; it prints one
JSON object on stdout: ``returncode``, ``peak_bytes`` (the largest resident
set of any one process of the command's tree, from ``wait4``), ``tree_bytes``
(the largest sum of resident sets over the command's process tree, sampled
every few ms from ``/proc``, so worker processes count together), and
``cpu_seconds`` (user + system of the whole tree) and ``seconds`` (wall
time, to within the sampling interval). The command's stdout is
discarded; its stderr is passed through.

Why a launcher: on Linux a process's ``ru_maxrss`` starts from the
high-water mark of the memory it had before ``execve``, which for a child
forked (or vforked) from the benchmark harness is the harness's own peak,
often gigabytes. This launcher uses only the standard library and imports
no site packages, so the command it starts inherits a few MiB at most.
"""

import json
import os
import sys
import time

_POLL_S = 0.005


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss(p)
        todo += _children(p)
    return total


def main() -> int:
    """Run the command in ``sys.argv[2:]``; print the report; return 0 unless misused."""
    if len(sys.argv) < 3:
        print("usage: launcher.py TIMEOUT_S COMMAND...", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    deadline = t0 + float(sys.argv[1])
    devnull = os.open(os.devnull, os.O_WRONLY)
    pid = os.posix_spawnp(
        sys.argv[2], sys.argv[2:], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)]
    )
    tree = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        tree = max(tree, _tree_rss(pid))
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            done, status, usage = os.wait4(pid, 0)
            break
        time.sleep(_POLL_S)
    seconds = time.monotonic() - t0
    report = {
        "seconds": seconds,
        "returncode": os.waitstatus_to_exitcode(status),
        # wait4 covers the child and every descendant it waited for: the largest one.
        "peak_bytes": usage.ru_maxrss * 1024,
        "tree_bytes": max(tree, usage.ru_maxrss * 1024),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
