"""The guide's embedding recipe runs as written, and stops cleanly on a signal."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

if TYPE_CHECKING:
    from anyio.abc import Process

GUIDE = Path(__file__).parents[2] / "docs" / "guide" / "scheduling.md"


@pytest.fixture
def recipe() -> str:
    """The code block after the guide's ``recipe: embedding`` marker."""
    text = GUIDE.read_text()
    found = re.search(r"<!-- recipe: embedding.*?-->\n```python\n(.*?)```", text, re.S)
    assert found is not None, "the recipe's marker or code block is gone"
    return found.group(1)


async def read_line_with(process: Process, needle: str, seen: list[str]) -> None:
    assert process.stdout is not None
    with anyio.fail_after(20):
        while not any(needle in line for line in seen):
            chunk = await process.stdout.receive()
            seen.extend(chunk.decode().splitlines())


async def test_the_embedding_recipe_drains_and_exits_on_sigint(
    tmp_path: Path, anyio_backend_name: str, recipe: str
) -> None:
    app = tmp_path / "app.py"
    await anyio.Path(app).write_text(recipe)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    seen: list[str] = []
    async with await anyio.open_process(
        [sys.executable, str(app), anyio_backend_name],
        cwd=tmp_path,
        stderr=-2,
        env=env,
    ) as process:
        await read_line_with(process, "running; Ctrl-C to stop", seen)
        process.send_signal(signal.SIGINT)
        await read_line_with(process, "SIGINT: draining", seen)
        with anyio.fail_after(20):
            code = await process.wait()
        assert process.stdout is not None
        async for chunk in process.stdout:
            seen.extend(chunk.decode().splitlines())
    assert code == 0, "\n".join(seen)
    assert not any("Traceback" in line for line in seen), "\n".join(seen)
    assert await anyio.Path(tmp_path / "app.db").exists()
