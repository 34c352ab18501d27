"""Model families, one per module. Importing this package imports each module, which registers its family.

The attention families come first, in the order the explorer lists them; a module added later is imported
after them without being named here."""

import importlib
import pkgutil

_SHARED = {"layers", "windows"}  # building blocks, not families
_ORDER = ["timesformer", "mvit", "swin3d", "swin_divided", "fiery"]

_names = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in _SHARED and not m.name.startswith("_")]
for _name in sorted(_names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)):
    importlib.import_module(f"{__name__}.{_name}")
