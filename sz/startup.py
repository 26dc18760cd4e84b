"""Importing the user's handler modules, as ``sz serve`` and ``sz worker`` do.

A module that fails to import is reported on one line naming the file and line
where it failed, not with the import machinery's traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import TYPE_CHECKING

from .errors import SzError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["import_from_working_directory", "import_handler_module"]


def import_from_working_directory() -> None:
    """Let modules of the working directory be imported, as ``python -m`` would.

    An installed ``sz`` script has its own folder first on ``sys.path``, not the
    working directory, where the user's handler modules are.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def import_handler_module(name: str) -> ModuleType:
    """Import the module ``name``; whatever it raises becomes one line.

    Raises:
        SzError: It cannot be found, or raised while importing (a syntax error,
            any exception at its top level): the message names the file and line
            where, when there is one.
    """
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        where = f" ({exc.filename}, line {exc.lineno})" if exc.filename else ""
        raise SzError(f"cannot import {name}: {exc.msg}{where}") from None
    except Exception as exc:  # the user's code at import: anything at all
        where = _where(exc, name)
        raise SzError(f"cannot import {name}: {_said(exc)}{where}") from None


def _said(exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return str(exc)  # "No module named 'x'" names its kind already
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _where(exc: BaseException, name: str) -> str:
    """`` (file, line N)``: the innermost line of ``name`` (or a parent package) run."""
    lines = [
        (frame.f_code.co_filename, line)
        for frame, line in traceback.walk_tb(exc.__traceback__)
        if _within(frame.f_globals.get("__name__"), name)
    ]
    if not lines:
        return ""
    filename, line = lines[-1]
    return f" ({filename}, line {line})"


def _within(module: object, name: str) -> bool:
    return isinstance(module, str) and (module == name or name.startswith(f"{module}."))
