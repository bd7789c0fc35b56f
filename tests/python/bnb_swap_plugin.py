"""pytest plugin (`-p bnb_swap_plugin`) for bitsandbytes' own test_optim.py: before the
test module is imported, every optimizer class of `bitsandbytes.optim`, and its
GlobalOptimManager, becomes octopage.optim's class of the same name, so that the module's
tables (`bnb.optim.Adam` read at import, lambdas read at call) build octopage's.
bnb.optim's submodules stay bitsandbytes' (test_optim.py's reference
`bnb.optim.ademamix._ReferenceAdEMAMix` among them). Not a test file: test_bnb_suite.py
passes it to a pytest subprocess.

It records what it did as JSON in $OCTOPAGE_BNB_SWAP_REPORT: the names swapped, the
bitsandbytes classes octopage lacks, and how many steps each optimizer class took (through
torch's global step hook), so the caller can tell that octopage's classes did the work.
"""
import collections
import inspect
import json
import os

import bitsandbytes.optim
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import octopage.optim


def _bnb_class_names():
    """The names under which bitsandbytes.optim exports an optimizer class or its manager."""
    names = []
    for name, value in vars(bitsandbytes.optim).items():
        if not inspect.isclass(value):
            continue
        if issubclass(value, torch.optim.Optimizer) or name == "GlobalOptimManager":
            names.append(name)
    return sorted(names)


def _swap():
    swapped, missing = [], []
    for name in _bnb_class_names():
        ours = getattr(octopage.optim, name, None)
        if ours is None:
            missing.append(name)
            continue
        setattr(bitsandbytes.optim, name, ours)
        swapped.append(name)
    return swapped, missing


SWAPPED, MISSING = _swap()
STEPS = collections.Counter()


def _count_step(optimizer, args, kwargs):
    cls = type(optimizer)
    STEPS[f"{cls.__module__}.{cls.__qualname__}"] += 1


register_optimizer_step_post_hook(_count_step)


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("OCTOPAGE_BNB_SWAP_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({"swapped": SWAPPED, "missing": MISSING, "steps": dict(STEPS)}, f, indent=1)
