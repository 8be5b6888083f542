"""The compiled kernels' cache: recompiled when any file they are built from changes, a notice
when they compile, and :func:`replay.kernels.warm` compiling what a real replay then uses.

Each case runs in fresh interpreters, as a first run would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SimFactory, record_sim

from replay import kernels, sources
from tickrec.venues import VENUES

NOTICE = "compiling replay kernels (first run only, about"


def run_python(code: str, *args: str, cwd: Path, env: dict[str, str]) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def own_cache_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    return {**env, **extra}


# A REST reply whose prices have more digits than the edited scanner accepts.
_SCAN = r"""
import json, sys
import numpy as np
import replay
from tickrec.venues.gemini.rest_book import _scan_book, scan_book
assert replay.__file__.startswith(sys.argv[1]), replay.__file__
reply = b'{"bids":[{"price":"12345.5","amount":"2"}],"asks":[{"price":"12346","amount":"1"}]}'
got = scan_book(np.frombuffer(reply, np.uint8), 0, len(reply))
print(json.dumps({
    "levels": None if got is None else got.px.tolist(),
    "loaded": sum(_scan_book.stats.cache_hits.values()),
    "compiled": sum(_scan_book.stats.cache_misses.values()),
}))
"""


def test_a_kernel_recompiles_when_a_file_it_calls_changes(tmp_path: Path) -> None:
    """numba alone would load the REST scanner compiled before json_bytes.py was edited."""
    tree = tmp_path / "tree"
    for package in sources.PACKAGES:
        shutil.copytree(
            sources.ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    env = own_cache_env(PYTHONPATH=str(tree), XDG_CACHE_HOME=str(tmp_path / "xdg"))

    def scan() -> dict[str, object]:
        out, _ = run_python(_SCAN, str(tree), cwd=tree, env=env)
        return json.loads(out.splitlines()[-1])

    assert scan() == {"levels": [123455, 12346], "loaded": 0, "compiled": 1}
    assert scan() == {"levels": [123455, 12346], "loaded": 1, "compiled": 0}
    helpers = tree / "tickrec" / "json_bytes.py"
    text = helpers.read_text()
    assert "MAX_DIGITS = 18" in text
    helpers.write_text(text.replace("MAX_DIGITS = 18", "MAX_DIGITS = 4"))
    # rest_book.py, the kernel's own file, is untouched: still a new compile.
    assert scan() == {"levels": None, "loaded": 0, "compiled": 1}
    dirs = sorted(p.name for p in (tree / "replay" / "__pycache__").glob("numba-*"))
    assert len(dirs) == 2


_RESCALE = r"""
import numpy as np
from replay.ticks import rescale
print(rescale(np.array([15, -2]), np.array([1, 0], np.int8), 2).tolist())
"""


def test_a_first_compile_says_so_once(tmp_path: Path) -> None:
    env = own_cache_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    out, err = run_python(_RESCALE, cwd=sources.ROOT, env=env)
    assert out.strip() == "[150, -200]"
    assert err.count(NOTICE) == 1, err
    out, err = run_python(_RESCALE, cwd=sources.ROOT, env=env)
    assert out.strip() == "[150, -200]"
    assert NOTICE not in err


# warm(), then a replay of recorded files as `tickrec replay` does it: prints the kernel
# signatures each added.
_WARM_THEN_REPLAY = r"""
import json, sys
import replay
from replay import kernels, report

def signatures():
    found = {}
    for name in kernels.KERNELS:
        module, _, attr = name.rpartition(".")
        if module in sys.modules:  # another venue's kernels are not even imported
            found[name] = sorted(map(str, getattr(sys.modules[module], attr).signatures))
    return found

kernels.warm(["gemini.v1"])
after_warm = signatures()
job = report.ReplayJob(sys.argv[1], "gemini", sys.argv[2], snapshots=True)
for symbol in report.resolve_symbols(job.root, "gemini", job.date, None):
    job(symbol)
    day = replay.open(job.date, symbol, data=job.root)
    day.book_snapshots(every=0), day.quotes(), day.book_at(day.span[1])
    list(day.events())
print(json.dumps([after_warm, signatures()]))
"""


def test_warm_compiles_every_variant_a_replay_uses(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    result = record_sim(sim_factory(), tmp_path, protocol="v1", snapshot_every=0.3)
    date = result.parts[0].parent.parent.name.removeprefix("date=")
    out, _ = run_python(
        _WARM_THEN_REPLAY, str(tmp_path / "data"), date, cwd=sources.ROOT, env=dict(os.environ)
    )
    after_warm, after_replay = json.loads(out.splitlines()[-1])
    others = {name for v in VENUES.values() if v.name != "gemini" for name in v.kernels}
    assert others and set(after_warm) == set(kernels.KERNELS) - others
    assert all(after_warm.values()), after_warm
    # the replay compiled nothing more (another venue's kernels, if imported, stay empty)
    assert {k: v for k, v in after_replay.items() if v or k in after_warm} == after_warm
