"""Human-readable numbers: counts with decimal prefixes (parameters, MACs, FLOPs), sizes in binary units, shapes
and token grids (``8×14×14``), and the name of a class without a label."""

from __future__ import annotations

import math
from collections.abc import Sequence

_DECIMAL = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def human(n: float | None, unit: str = "", digits: int = 1) -> str:
    """``121566352`` → ``"121.6 M"`` (``digits`` after the point, ``unit`` after the prefix); ``None`` or NaN →
    ``"–"``."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "–"
    for factor, prefix in _DECIMAL:
        if abs(n) >= factor:
            return f"{n / factor:.{digits}f} {prefix}{unit}"
    return f"{n:g} {unit}".strip()


def human_bytes(n: float | None, digits: int = 2) -> str:
    """``1536`` → ``"1.50 KiB"``, ``512`` → ``"512 bytes"``; ``None`` → ``"–"``."""
    if n is None:
        return "–"
    for factor, unit in _BINARY:
        if n >= factor:
            return f"{n / factor:.{digits}f} {unit}"
    return f"{int(n)} bytes"


def shape_text(shape: Sequence[int] | None) -> str:
    """``(1, 3, 8, 224, 224)`` → ``"1×3×8×224×224"``; ``None`` or empty → ``""``."""
    return "×".join(str(int(s)) for s in shape) if shape else ""


def class_name(labels: Sequence[str], index: int) -> str:
    """The label of class ``index``, or ``"class <index>"`` where the model has more classes than labels."""
    return labels[index] if 0 <= index < len(labels) else f"class {index}"
