"""Old module paths that moved in the 0.2 restructuring, kept importable with a warning.

``import edgerules.engine`` (and the other documented paths below) still works: a meta
path finder hands out the module at its new place and emits a ``DeprecationWarning``
naming it. The alias *is* the new module (``edgerules.engine is edgerules.lang.engine``),
so there is one copy of every class and isinstance checks keep working. Only paths that
the documentation showed to users are listed; internal modules moved without an alias.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

# old path -> new path
MOVED = {
    "edgerules.engine": "edgerules.lang.engine",
    "edgerules.scheme": "edgerules.lang.scheme",
    "edgerules.context": "edgerules.lang.context",
    "edgerules.types": "edgerules.lang.types",
    "edgerules.ruleset": "edgerules.rulesets",
    "edgerules.lists": "edgerules.rulesets.lists",
    "edgerules.actions": "edgerules.rulesets.actions",
    "edgerules.policytest": "edgerules.rulesets.policytest",
    "edgerules.proxy.decision": "edgerules.enforcement.decision",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; import it from there (or use the names "
            "exported by edgerules)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The module is the already-executed new one; nothing to run."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Add the finder once (``edgerules/__init__`` calls this)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
