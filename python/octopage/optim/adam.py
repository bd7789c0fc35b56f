"""Adam and AdamW with bitsandbytes' class names, signatures and defaults.

Adam is torch.optim.Adam (L2 weight decay, default 0); AdamW is torch.optim.AdamW
(decoupled weight decay, default 1e-2). (bitsandbytes' Adam decays decoupled, like
AdamW; octopage's follows torch.) ``8bit`` classes keep 8-bit block-wise state
(bitsandbytes' format) for parameters of at least min_8bit_size elements, ``32bit``
classes fp32 state, the plain names whatever optim_bits says; ``Paged`` classes place
state in a file-backed mapping (on the CPU). octopage's own keywords: placement
('device', 'paged', 'offload'), offload_dir, keep_files, ring_bytes, chunk_bytes,
direct_io, io_backend.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class

__all__ = ["Adam", "Adam8bit", "Adam32bit", "PagedAdam", "PagedAdam8bit", "PagedAdam32bit",
           "AdamW", "AdamW8bit", "AdamW32bit", "PagedAdamW", "PagedAdamW8bit", "PagedAdamW32bit"]


def _variant(name, rule, bits, paged, default_weight_decay):
    """A class of Optimizer with bitsandbytes' constructor for its name."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=default_weight_decay,
                 amsgrad=False, optim_bits=32, args=None, min_8bit_size=4096, percentile_clipping=100,
                 block_wise=True, is_paged=False, **octopage_options):
        if bits == 8 and amsgrad:
            raise ValueError(f"{name} does not support amsgrad=True: 8-bit state keeps no max of v")
        hyperparameters = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, is_paged, **octopage_options)

    torch_name = "torch.optim.Adam (L2 weight decay)" if rule == "adam" else "torch.optim.AdamW (decoupled)"
    state = {None: "fp32 state (8-bit with optim_bits=8)", 8: "8-bit block-wise state", 32: "fp32 state"}[bits]
    where = "paged: in a file-backed mapping" if paged else "on the device unless placement says otherwise"
    return optimizer_class(name, rule, __init__, f"{torch_name} with {state}, {where}.", bits, paged, __name__)


Adam = _variant("Adam", "adam", None, False, 0)
Adam8bit = _variant("Adam8bit", "adam", 8, False, 0)
Adam32bit = _variant("Adam32bit", "adam", 32, False, 0)
PagedAdam = _variant("PagedAdam", "adam", None, True, 0)
PagedAdam8bit = _variant("PagedAdam8bit", "adam", 8, True, 0)
PagedAdam32bit = _variant("PagedAdam32bit", "adam", 32, True, 0)
AdamW = _variant("AdamW", "adamw", None, False, 1e-2)
AdamW8bit = _variant("AdamW8bit", "adamw", 8, False, 1e-2)
AdamW32bit = _variant("AdamW32bit", "adamw", 32, False, 1e-2)
PagedAdamW = _variant("PagedAdamW", "adamw", None, True, 1e-2)
PagedAdamW8bit = _variant("PagedAdamW8bit", "adamw", 8, True, 1e-2)
PagedAdamW32bit = _variant("PagedAdamW32bit", "adamw", 32, True, 1e-2)
