"""Every module imports on its own, in a fresh interpreter.

An import cycle only breaks the module that is imported first, so a suite
that happens to import in a kind order never sees it; ``tickrec serve``
imports :mod:`replay.serve` first, for one.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tickrec", "recorder", "replay")


def _modules() -> list[str]:
    names = list(PACKAGES)
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not info.name.endswith(".__main__"):  # runs the CLI
                names.append(info.name)
    return sorted(names)


def test_every_module_imports_first() -> None:
    modules = _modules()
    assert "replay.serve" in modules and "tickrec.venues.binance.sim_spot" in modules
    bad = []
    for name in modules:  # one clean interpreter per module
        run = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT
        )
        if run.returncode:
            bad.append(f"{name}: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    assert bad == []


def test_the_recorder_loads_no_compiled_kernels() -> None:
    """numba and its LLVM (about 100 MB of memory) are the replay's: a recording run of
    any venue never loads them, so it stays small for weeks (README, "Performance")."""
    probe = (
        "import sys, recorder.record, recorder.recovery, tickrec.venues, tickrec.sim; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'llvmlite', 'replay'}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert run.stdout.strip() == "[]"
