"""Model families, one per module. Importing this package imports each module, which registers its family."""

import importlib
import pkgutil

_SHARED = {"layers", "windows"}  # building blocks, not families

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _SHARED and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
