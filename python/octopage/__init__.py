"""octopage: optimizer state that takes less memory, quantized (8-bit) and tiered
(paged or offloaded to a file), without changing what training learns.

``octopage.optim`` has drop-in optimizers with bitsandbytes' names (``AdamW8bit``,
``PagedAdamW8bit``, ...) and torch.optim's semantics.
"""
from octopage import _core
from octopage._threads import num_threads, set_num_threads

__version__ = _core.__version__

__all__ = ["optim", "num_threads", "set_num_threads", "__version__"]


def __getattr__(name):
    # octopage.optim imports torch; load it on first use, so `import octopage` does not.
    if name == "optim":
        import importlib

        return importlib.import_module("octopage.optim")
    raise AttributeError(f"module 'octopage' has no attribute {name!r}")
