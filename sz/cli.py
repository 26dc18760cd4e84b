"""The ``sz`` command line."""

from __future__ import annotations


def main() -> None:
    """Run the ``sz`` command line."""
