"""Drop-in optimizers with bitsandbytes' names and torch.optim's semantics."""
from octopage.optim.adam import (Adam, Adam8bit, Adam32bit, AdamW, AdamW8bit, AdamW32bit, PagedAdam,
                                 PagedAdam8bit, PagedAdam32bit, PagedAdamW, PagedAdamW8bit, PagedAdamW32bit)
from octopage.optim.manager import GlobalOptimManager
from octopage.optim.optimizer import Optimizer

__all__ = ["Adam", "Adam8bit", "Adam32bit", "AdamW", "AdamW8bit", "AdamW32bit", "PagedAdam", "PagedAdam8bit",
           "PagedAdam32bit", "PagedAdamW", "PagedAdamW8bit", "PagedAdamW32bit", "GlobalOptimManager", "Optimizer"]
