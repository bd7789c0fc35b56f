"""Drop-in optimizers with bitsandbytes' names and torch.optim's semantics.

Each public module of this package (adam.py, sgd.py, ...) holds one rule family's
classes and lists them in its ``__all__``; they are all exported from here, so a new
rule's module needs no line in this file.
"""
import importlib
import pkgutil

from octopage.optim.manager import GlobalOptimManager
from octopage.optim.optimizer import Optimizer

__all__ = ["GlobalOptimManager", "Optimizer"]
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module.startswith("_") or _module in ("manager", "optimizer"):
        continue
    _rule_module = importlib.import_module(f"{__name__}.{_module}")
    for _name in _rule_module.__all__:
        globals()[_name] = getattr(_rule_module, _name)
        __all__.append(_name)
del _module, _rule_module, _name
