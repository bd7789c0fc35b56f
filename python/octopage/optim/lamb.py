"""LAMB with bitsandbytes' class names, signatures and defaults (RULES.md 2.2).

bitsandbytes' LAMB is its Adam kernel with decoupled weight decay and a per-tensor cap
on the step: the bias-corrected Adam direction u (without weight decay) is scaled by
max_unorm*||p||/||u|| where it is longer than that (max_unorm default 1.0); the decay
p *= 1 - lr*wd comes first (its CPU order, torch's AdamW's). It is not the LAMB paper's
trust ratio, which also scales steps up. octopage's LAMB8bit caps 8-bit steps too
(bitsandbytes' runs plain 8-bit Adam); like bitsandbytes' LAMB8bit it takes only
max_unorm=1.0 (LAMB with optim_bits=8 takes any). bitsandbytes accepts bias_correction,
adam_w_mode and amsgrad and ignores them; octopage accepts their defaults only and
refuses the others. octopage's own keywords: placement ('device', 'paged', 'offload'),
offload_dir, keep_files, ring_bytes, chunk_bytes, direct_io, io_backend.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class, state_phrase

__all__ = ["LAMB", "LAMB8bit", "LAMB32bit"]


def _variant(name, bits):
    """A class of Optimizer with bitsandbytes' constructor for its name."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, adam_w_mode=True, optim_bits=32, args=None, min_8bit_size=4096, max_unorm=1.0,
                 percentile_clipping=100, block_wise=True, **octopage_options):
        if bits == 8 and max_unorm != 1.0:
            raise ValueError(f"LAMB8bit only supports max_unorm=1.0 (bitsandbytes' default value), got "
                             f"{max_unorm!r}: for another cap use LAMB(optim_bits=8, max_unorm=...)")
        for keyword, value, default in (("bias_correction", bias_correction, True), ("amsgrad", amsgrad, False),
                                        ("adam_w_mode", adam_w_mode, True)):
            if value != default:
                raise ValueError(f"{name} supports only {keyword}={default} (bitsandbytes' LAMB ignores "
                                 f"{keyword}; octopage does not pretend), got {value!r}")
        hyperparameters = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, max_unorm=max_unorm, **octopage_options)

    doc = f"bitsandbytes' LAMB (AdamW under an update-norm cap) with {state_phrase(bits, 'its moments')}."
    return optimizer_class(name, "lamb", __init__, doc, bits, False, __name__)


LAMB = _variant("LAMB", None)
LAMB8bit = _variant("LAMB8bit", 8)
LAMB32bit = _variant("LAMB32bit", 32)
