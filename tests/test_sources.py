"""Keys on the project's own sources: the normalized cache's decoder key and the kernels' cache.

The imports that :mod:`replay.sources` reads from the source are checked
against the imports Python really runs, recorded in a fresh interpreter
while it decodes and replays a partition from files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from replay import cache, kernels, sources
from replay.streams import decoder_versions

# Records every import statement run (importer -> imported project modules) while a
# partition is decoded from files, then prints the modules reachable from *entries*.
_RECORD = r"""
import builtins, importlib.util, json, sys
entries = json.loads(sys.argv[2])
edges = {}
real = builtins.__import__

def record(name, globals=None, locals=None, fromlist=(), level=0):
    module = real(name, globals, locals, fromlist, level)
    importer = (globals or {}).get("__name__")
    if level:
        name = importlib.util.resolve_name("." * level + name, globals["__package__"])
    found = edges.setdefault(importer, set())
    if not fromlist:
        found.add(name)
    for item in fromlist or ():
        sub = f"{name}.{item}"
        found.add(sub if sub in sys.modules else name)
    return module

builtins.__import__ = record
from replay import cache, kernels
from tickrec import contract

root = sys.argv[1]
contract.write_part(root, "gemini", "BTCUSD", "run", 0, kernels._sample(("gemini.v1",)))
cache.decode_partition(root, "gemini", "2026-01-15", "BTCUSD")
builtins.__import__ = real
project = ("tickrec", "recorder", "replay")
seen, todo = set(), list(entries)
while todo:
    name = todo.pop()
    if name not in seen and name.split(".")[0] in project:
        seen.add(name)
        todo.extend(edges.get(name, ()))
print(json.dumps(sorted(seen)))
"""


def imported_by(entries: tuple[str, ...], tmp_path: Path) -> set[str]:
    """The project modules *entries* import, as recorded while decoding (see ``_RECORD``)."""
    done = subprocess.run(
        [sys.executable, "-c", _RECORD, str(tmp_path), json.dumps(entries)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=sources.ROOT,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_decoder_key_covers_every_project_module_decoding_imports(tmp_path: Path) -> None:
    keyed = set(sources.closure(cache.DECODER_MODULES))
    ran = imported_by(cache.DECODER_MODULES, tmp_path)
    assert ran <= keyed, f"imported by decoding but not in its key: {sorted(ran - keyed)}"
    # The decoder of the current API uses the recorder side's parser of the same frames.
    assert {"tickrec.venues.gemini.ws_book", "tickrec.venues.gemini.ws"} <= ran


def test_kernel_cache_covers_every_project_module_kernels_import(tmp_path: Path) -> None:
    keyed = set(sources.closure(kernels.KERNEL_MODULES))
    ran = imported_by(kernels.KERNEL_MODULES, tmp_path)
    assert ran <= keyed, f"imported by kernels but not in their hash: {sorted(ran - keyed)}"
    assert "tickrec.json_bytes" in ran


def test_every_cached_kernel_is_in_a_kernel_module() -> None:
    """A kernel defined outside :data:`~replay.kernels.KERNEL_MODULES` would escape the hash."""
    import numba
    from numba.core.registry import CPUDispatcher

    import replay  # noqa: F401 (imports every kernel module)

    defined = set()
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("replay", "tickrec", "recorder"):
            continue
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == name:
                defined.add(name)
    assert defined and defined <= set(kernels.KERNEL_MODULES)
    assert {f.rpartition(".")[0] for f in kernels.KERNELS} <= set(kernels.KERNEL_MODULES)
    assert str(kernels.use_cache_dir()) == numba.config.CACHE_DIR


@pytest.fixture
def tree_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's packages that :mod:`replay.sources` reads instead."""
    for package in sources.PACKAGES:
        shutil.copytree(
            sources.ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    monkeypatch.setattr(sources, "ROOT", tmp_path)
    return tmp_path


def test_editing_a_keyed_file_changes_the_decoder_key(
    tree_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cache.decoder_version()
    assert before == cache.decoder_version()
    # Outside replay/: the frame parser the current API's decoder imports.
    path = tree_copy / "tickrec" / "venues" / "gemini" / "ws.py"
    path.write_text(path.read_text() + "\n# edited\n")
    edited = cache.decoder_version()
    assert edited != before
    # A module that decoding does not import changes nothing.
    other = tree_copy / "replay" / "plots.py"
    other.write_text(other.read_text() + "\n# edited\n")
    assert cache.decoder_version() == edited


def test_decoder_version_constants_are_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickrec.venues.gemini import ws_book as gemini_ws

    versions = decoder_versions()
    assert {"gemini.v1", "gemini.v2", "gemini.ws", "gemini.rest"} <= set(versions)
    before = cache.decoder_version()
    monkeypatch.setattr(gemini_ws, "DECODER_VERSION", gemini_ws.DECODER_VERSION + 1)
    assert cache.decoder_version() != before


def test_import_reading_follows_the_rules(tree_copy: Path) -> None:
    pkg = tree_copy / "replay"
    (pkg / "k_a.py").write_text(
        "import replay.k_b\nfrom replay import k_c, sources\nfrom replay.streams import CONFLATED\n"
        "def f():\n    from . import k_d\n    import numpy\n"
    )
    for name in ("k_b", "k_c", "k_d"):
        (pkg / f"{name}.py").write_text("x = 1\n")
    got = sources.closure(("replay.k_a",))
    assert {"replay.k_a", "replay.k_b", "replay.k_c", "replay.k_d", "replay.sources"} <= set(got)
    assert "replay.streams" in got and "tickrec.venues" in got
    # Merely the parent of replay.k_b and replay.k_c: not followed.
    assert "replay" not in got and "replay.api" not in got
    with pytest.raises(ValueError, match="not a module"):
        sources.closure(("replay.nothing_here",))


def test_kernel_cache_dir_is_named_by_the_kernel_sources(
    tree_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tree_copy / "xdg"))
    kernels._sources_hash.cache_clear()
    try:
        before = kernels.cache_dir()
        assert before.name.startswith("numba-")
        path = tree_copy / "tickrec" / "json_bytes.py"  # inlined by the scanners
        path.write_text(path.read_text() + "\n# edited\n")
        kernels._sources_hash.cache_clear()
        assert kernels.cache_dir() != before
        unrelated = tree_copy / "replay" / "gaps.py"
        unrelated.write_text(unrelated.read_text() + "\n# edited\n")
        edited = kernels.cache_dir()
        kernels._sources_hash.cache_clear()
        assert kernels.cache_dir() == edited
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(tree_copy / "mine"))
        assert kernels.cache_dir() == tree_copy / "mine" / edited.name
    finally:
        kernels._sources_hash.cache_clear()


def test_old_kernel_cache_dirs_are_pruned(tmp_path: Path) -> None:
    olds = []
    for k in range(5):
        d = tmp_path / f"numba-old{k}"
        d.mkdir()
        os.utime(d, (1_000_000 + k, 1_000_000 + k))
        olds.append(d)
    (tmp_path / "unrelated").mkdir()
    current = tmp_path / "numba-current"
    current.mkdir()
    kernels._prune(current)
    left = sorted(p.name for p in tmp_path.iterdir())
    # The one in use and the two most recently used others.
    assert left == ["numba-current", "numba-old3", "numba-old4", "unrelated"]
