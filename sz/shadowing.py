"""Say so plainly when a file of the user's hides one of ScheduleZero's packages.

``sz`` stands on three packages with generic names, ``actors``, ``transport`` and
``web``. A module of the same name earlier on ``sys.path`` (an ``actors.py`` in
the directory a program is run from) would be imported in their place, and
``import sz`` would fail with an ``ImportError`` about some missing name, far
from the cause. Checked once, when ``sz`` is first imported: where each package
would come from, against where ``sz`` itself lives.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["PACKAGES", "check_not_shadowed"]

#: The packages installed beside ``sz``.
PACKAGES = ("actors", "transport", "web")


def check_not_shadowed() -> None:
    """Raise if one of ``PACKAGES`` would be imported from elsewhere than ``sz``.

    Raises:
        ImportError: Names the package, the file that shadows it and what to do.
    """
    home = Path(__file__).resolve().parent.parent
    for name in PACKAGES:
        module = sys.modules.get(name)
        if module is not None:
            origin = getattr(module, "__file__", None)
        else:
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
        if origin is None:
            continue  # missing, or a namespace: the import says so itself
        found = Path(origin).resolve()
        if found.parent.parent != home:
            raise ImportError(
                f"ScheduleZero's package {name!r} is shadowed by {found}, which "
                f"comes first on sys.path: rename that file (or run from "
                f"another directory); ScheduleZero's own is in {home / name}",
                name=name,
                path=str(found),
            )


check_not_shadowed()
