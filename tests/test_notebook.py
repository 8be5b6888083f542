"""The walkthrough notebook: committed without outputs, and it runs top to bottom in a minute.

The kernel is this interpreter: a kernelspec pointing at ``sys.executable``
is written to a temporary Jupyter path for the test, so a fresh virtual
environment needs no kernel installed beforehand.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "replay_walkthrough.ipynb"
KERNEL = "tickrec-test-python"


def _text(cell: Any) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], cell.source[:60]
        assert cell.execution_count is None, cell.source[:60]
    assert "widgets" not in nb.metadata


def test_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jupyter = tmp_path / "jupyter"
    write_kernel_spec(path=jupyter / "kernels" / KERNEL)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.delenv("TICKREC_SAVE_README_IMAGE", raising=False)
    monkeypatch.delenv("TICKREC_WALKTHROUGH_SECONDS", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    started = time.monotonic()
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the notebook took {elapsed:.0f} s"

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    errors = [o for c in code for o in c.outputs if o["output_type"] == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 7, "mid/spread, heatmap, trades, depth, gaps, latency, overview"
    (backtest,) = [c for c in code if "TouchQuoter(" in c.source and "day.replay" in c.source]
    printed = _text(backtest)
    assert "fills: " in printed
    fills = int(printed.split("fills: ", 1)[1].split()[0])
    assert fills > 0
