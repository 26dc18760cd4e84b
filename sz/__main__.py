"""``python -m sz``: the ``sz`` command line."""

from __future__ import annotations

from .cli import main

main()
