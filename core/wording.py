"""Small pieces of the words jobs show: counts with the right noun form."""
from __future__ import annotations


def count(n: int | float, singular: str, plural: str | None = None) -> str:
    """'1 epoch', '2 epochs', '0 images'."""
    return f"{n:g} {singular if n == 1 else plural or singular + 's'}"
