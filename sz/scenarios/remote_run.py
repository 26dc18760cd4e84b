"""``sz scenario run --url``: a run inside a running server, followed from here.

The scenario file is loaded through the server's gateway (``POST
/api/tests/load``; a name that is no file is taken for an id of the server's
library), the run started (``POST /api/tests/run``) and followed on its
stream of events (``/api/tests/metrics/{run_id}``) with the same progress
line as a local run; the final table, the exit codes and ``--export`` are a
local run's too. Interrupted (Ctrl-C), it aborts the run on the server.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..client import GatewayClient, GatewayError
from ..errors import ScenarioError
from .context import Progress
from .report import ProgressLine, format_result
from .result import ScenarioResult
from .source import read_text

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["run_on_server"]

_COMMAND = "sz scenario run"


def _progress(data: Mapping[str, Any], step_started: bool) -> Progress:
    metrics = data.get("metrics") or {}
    return Progress(
        scenario=str(data.get("scenario", "")),
        run_id=str(data.get("run_id", "")),
        # The stream coalesces: a step's start may reach us as a later sample.
        why="step" if step_started else str(data.get("why", "sample")),
        step=str(data.get("step", "")),
        index=int(data.get("index", 0)),
        total=int(data.get("total", 0)),
        elapsed=float(data.get("elapsed", 0.0)),
        metrics={
            name: float(value)
            for name, value in metrics.items()
            if isinstance(value, int | float) and math.isfinite(value)
        },
    )


def _start(
    client: GatewayClient,
    file: str,
    params: Mapping[str, str],
    seed: int | None,
) -> str:
    """Load ``file`` (or name a library id) and start the run; its id.

    Raises:
        ScenarioError: The file cannot be read.
        GatewayError: The server is not there, or refused.
    """
    path = Path(file)
    if path.is_file():
        entry = client.post(
            "tests/load", {"yaml": read_text(path), "source": path.name}
        )
        scenario_id = entry["id"]
    else:
        scenario_id = file.removesuffix(".yaml")
    body: dict[str, Any] = {"id": scenario_id, "params": dict(params)}
    if seed is not None:
        body["seed"] = seed
    run = client.post("tests/run", body)
    return str(run["run_id"])


def _follow(client: GatewayClient, run_id: str, err: TextIO) -> dict[str, Any] | None:
    """Show the run's progress until it ends; its result (None if unseen)."""
    line = ProgressLine(err)
    index = -1
    try:
        for kind, data in client.events(f"tests/metrics/{run_id}"):
            if kind == "progress":
                # Before the first step (index 0) there is nothing to show.
                started = data.get("index", 0) not in (index, 0)
                index = data.get("index", 0)
                line(_progress(data, started))
            elif kind == "result":
                return dict(data)
    except GatewayError:
        pass  # the stream broke: the result is asked for below
    except KeyboardInterrupt:
        line.close()
        print(f"{_COMMAND}: interrupted: aborting run {run_id}", file=err)
        try:
            return dict(client.post(f"tests/runs/{run_id}/abort"))
        except GatewayError as error:
            print(f"{_COMMAND}: {error}", file=err)
            raise
    finally:
        line.close()
    return None


def run_on_server(
    file: str,
    *,
    url: str,
    token: str | None,
    params: Mapping[str, str],
    seed: int | None,
    export: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run ``file`` inside the server at ``url``; the exit code.

    0 when the run passed; 1 when it failed or was aborted, or the server went
    away during it; 2 when it could not start: the file does not load, the
    server is not there or refused (mutations off, too many runs).
    """
    try:
        client = GatewayClient(url, token)
        run_id = _start(client, file, params, seed)
    except ScenarioError as error:
        print(error, file=err)
        return 2
    except GatewayError as error:
        # A scenario the loader refused: its file:line: message, alone.
        said = error.detail if error.status == 422 and error.detail else error
        print(f"{_COMMAND}: {said}", file=err)
        return 2
    answer = _follow(client, run_id, err)
    if answer is None or answer.get("state") == "running":
        try:
            answer = client.get(f"tests/results/{run_id}")
        except GatewayError as error:
            print(f"{_COMMAND}: run {run_id}: {error}", file=err)
            return 1
        if answer is None or answer.get("state") == "running":
            print(f"{_COMMAND}: run {run_id}: its stream ended before it", file=err)
            return 1
    result = ScenarioResult.from_json(answer)
    print(format_result(result, answer.get("units") or {}), end="", file=out)
    if export is not None:
        try:
            text = (
                result.dumps()
                if export.endswith(".json")
                else client.text(f"tests/results/{run_id}/csv")
            )
        except GatewayError as error:
            print(f"{_COMMAND}: --export: {error}", file=err)
            return 1
        with open(export, "w", encoding="utf-8") as written:
            written.write(text)
    return 0 if result.passed else 1
