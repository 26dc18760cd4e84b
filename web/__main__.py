"""``python -m web``: the ``sz`` command, gateway included."""

from __future__ import annotations

from .cli import main

main()
