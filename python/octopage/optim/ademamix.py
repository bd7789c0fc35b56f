"""AdEMAMix with bitsandbytes' class names, signatures and defaults (RULES.md 2.3).

AdEMAMix (Pagliardini et al. 2024) mixes a fast EMA m1 (beta1, bias-corrected) and a
slow one m2 (beta3, not corrected) over Adam's denominator:
p <- p*(1 - lr*wd) - lr*(m1/c1 + alpha*m2)/(sqrt(nu/c2^2) + eps), with bitsandbytes'
warm-ups of alpha (t_alpha steps) and beta3 (t_beta3 steps; None: off). States m1, m2
(bitsandbytes stacks them as ``state1`` of shape (2, *p.shape), with ``absmax1`` of shape
(2, blocks), and so does octopage's state_dict) and nu (``state2``). Weight decay comes
before the step, as bitsandbytes' CPU kernels and the paper have it (its CUDA kernels
decay after). octopage's own keywords: placement ('device', 'paged', 'offload'),
offload_dir, keep_files, ring_bytes, chunk_bytes, direct_io, io_backend, max_unorm.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class, state_phrase, where_phrase

__all__ = ["AdEMAMix", "AdEMAMix8bit", "AdEMAMix32bit", "PagedAdEMAMix", "PagedAdEMAMix8bit", "PagedAdEMAMix32bit"]


def _variant(name, bits, paged):
    """A class of Optimizer with bitsandbytes' constructor for its name."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha=None, t_beta3=None,
                 eps=1e-8, weight_decay=1e-2, optim_bits=32, min_8bit_size=4096, is_paged=False, args=None,
                 percentile_clipping=100, block_wise=True, **octopage_options):
        hyperparameters = dict(lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
                               weight_decay=weight_decay)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, is_paged, **octopage_options)

    doc = f"AdEMAMix with {state_phrase(bits, 'its three moments')}, {where_phrase(paged)}."
    return optimizer_class(name, "ademamix", __init__, doc, bits, paged, __name__)


AdEMAMix = _variant("AdEMAMix", None, False)
AdEMAMix8bit = _variant("AdEMAMix8bit", 8, False)
AdEMAMix32bit = _variant("AdEMAMix32bit", 32, False)
PagedAdEMAMix = _variant("PagedAdEMAMix", None, True)
PagedAdEMAMix8bit = _variant("PagedAdEMAMix8bit", 8, True)
PagedAdEMAMix32bit = _variant("PagedAdEMAMix32bit", 32, True)
