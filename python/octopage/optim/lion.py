"""Lion with bitsandbytes' class names, signatures and defaults (RULES.md 2.4).

Lion (Chen et al. 2023) steps by the sign of an interpolation of its momentum and the
gradient: p <- p*(1 - lr*wd) - lr*sign(beta1*m + (1 - beta1)*g), then
m <- beta2*m + (1 - beta2)*g; one state, ``exp_avg`` (bitsandbytes' ``state1``), signed
when 8-bit. torch.optim has no Lion; octopage's is bitsandbytes' and lion-pytorch's
math. ``Paged`` classes place state in a file-backed mapping (on the CPU). octopage's
own keywords: placement ('device', 'paged', 'offload'), offload_dir, keep_files,
ring_bytes, chunk_bytes, direct_io, io_backend, max_unorm.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class, state_phrase, where_phrase

__all__ = ["Lion", "Lion8bit", "Lion32bit", "PagedLion", "PagedLion8bit", "PagedLion32bit"]


def _variant(name, bits, paged):
    """A class of Optimizer with bitsandbytes' constructor for its name."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0, optim_bits=32, args=None,
                 min_8bit_size=4096, percentile_clipping=100, block_wise=True, is_paged=False, **octopage_options):
        hyperparameters = dict(lr=lr, betas=betas, weight_decay=weight_decay)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, is_paged, **octopage_options)

    doc = f"Lion with {state_phrase(bits, 'a momentum')}, {where_phrase(paged)}."
    return optimizer_class(name, "lion", __init__, doc, bits, paged, __name__, bnb_eps=0.0)


Lion = _variant("Lion", None, False)
Lion8bit = _variant("Lion8bit", 8, False)
Lion32bit = _variant("Lion32bit", 32, False)
PagedLion = _variant("PagedLion", None, True)
PagedLion8bit = _variant("PagedLion8bit", 8, True)
PagedLion32bit = _variant("PagedLion32bit", 32, True)
