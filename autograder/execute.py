"""Author step: run a source notebook top to bottom and store its outputs in place."""

import os
from pathlib import Path

from nbclient import NotebookClient

from autograder import notebooks

CELL_TIMEOUT_S = 120


def execute_in_place(path: Path, device: str = "cpu") -> None:
    """Execute ``path`` in a fresh kernel and write it back, normalized.

    Committed outputs come from the CPU so that they are the same on every
    machine; nbval replays them on CUDA too, through the sanitize rules.
    """
    nb = notebooks.read(path)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=dict(os.environ, COURSE_DEVICE=device, PYTHONHASHSEED="0"))
    notebooks.write(notebooks.normalize(nb), path)
