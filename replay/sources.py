"""The project's own source files that some modules depend on, and a hash of them.

Derived data must change when the code that derives it does: the normalized
cache (:mod:`replay.cache`) is keyed to the sources of decoding, and the
compiled kernels (:mod:`replay.kernels`) are cached per hash of the sources
they are compiled from. Both ask for the same thing: the files of a set of
entry modules and of every project module they import, transitively.

The imports are read from the source with :mod:`ast`, without importing
anything (the kernels' cache must be chosen before numba sees a kernel).
Every ``import`` statement counts, also those inside functions and under
``TYPE_CHECKING``: a file too many in a key only costs a rebuild, a file
too few makes it stale. ``import a.b`` counts ``a.b``; ``from a.b import
c`` counts ``a.b.c`` when that is a module, else ``a.b``; only modules of
the project's packages (:data:`PACKAGES`) are followed. So a package's
``__init__`` counts when a module imports a name it defines (``from
tickrec.venues import WIRES``), not when Python merely runs it on the way
to a submodule: this project's ``__init__`` files only gather names for
users, and following them would tie, say, the decoder's key to the plotting
code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["PACKAGES", "ROOT", "closure", "digest", "module_file"]

#: The project's top-level packages.
PACKAGES = ("tickrec", "recorder", "replay")
#: The directory that holds them (a checkout's root, or site-packages).
ROOT = Path(__file__).resolve().parent.parent


def module_file(name: str) -> Path | None:
    """The source file of project module *name* (a package's ``__init__.py``), else None."""
    parts = name.split(".")
    if parts[0] not in PACKAGES or not all(p.isidentifier() for p in parts):
        return None
    base = ROOT.joinpath(*parts)
    for path in (base / "__init__.py", base.with_name(base.name + ".py")):
        if path.is_file():
            return path
    return None


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of *body*, nested ones too (imports are statements: no expression
    needs a look, which makes this several times faster than :func:`ast.walk`)."""
    for stmt in body:
        yield stmt
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _statements(inner)
        for block in (*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())):
            yield from _statements(block.body)


def _imports(name: str, path: Path) -> set[str]:
    """Project modules that the source of module *name* (at *path*) imports."""
    tree = ast.parse(path.read_bytes(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if module_file(sub) is not None else module)
    return {m for m in found if module_file(m) is not None}


@functools.cache
def closure(entries: tuple[str, ...]) -> tuple[str, ...]:
    """The project modules *entries* import, transitively, with *entries* themselves; sorted."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name)
        if path is None:
            raise ValueError(f"{name!r} is not a module of {', '.join(PACKAGES)}")
        seen.add(name)
        todo.extend(_imports(name, path) - seen)
    return tuple(sorted(seen))


def digest(modules: Iterable[str]) -> str:
    """A hash of the names and contents of the source files of *modules*."""
    h = hashlib.sha256()
    for name in sorted(modules):
        path = module_file(name)
        if path is None:
            raise ValueError(f"{name!r} is not a module of {', '.join(PACKAGES)}")
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
