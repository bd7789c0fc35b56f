"""RMSprop with bitsandbytes' class names and signatures and torch.optim.RMSprop's
semantics (RULES.md 2.7).

torch.optim.RMSprop's update (foreach=False): L2 weight decay (g += wd*p),
v = alpha*v + (1 - alpha)*g^2, with centered=True the average a of g and v - a^2 under
the root, the denominator sqrt(.) + eps, and with momentum a buffer b = momentum*b + g/d
that steps p (p -= lr*b), else p -= lr*g/d. Where bitsandbytes differs: it ignores
momentum and refuses centered=True; its 8-bit state stores v with its signed code and
its CUDA kernel leaves weight decay out of the step's numerator. octopage's 8-bit v
takes the unsigned code (twice as fine; bitsandbytes checkpoints load by decoding),
momentum is 8-bit too, and centered RMSprop keeps 32-bit state. octopage's own
keywords: placement ('device', 'paged', 'offload'), offload_dir, keep_files, ring_bytes,
chunk_bytes, direct_io, io_backend, max_unorm.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class, state_phrase

__all__ = ["RMSprop", "RMSprop8bit", "RMSprop32bit"]


def _variant(name, bits):
    """A class of Optimizer with bitsandbytes' constructor for its name."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 optim_bits=32, args=None, min_8bit_size=4096, percentile_clipping=100, block_wise=True,
                 **octopage_options):
        hyperparameters = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                               centered=centered)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, **octopage_options)

    doc = f"torch.optim.RMSprop with {state_phrase(bits, 'its averages')}."
    return optimizer_class(name, "rmsprop", __init__, doc, bits, False, __name__, bnb_betas=("alpha", "momentum"))


RMSprop = _variant("RMSprop", None)
RMSprop8bit = _variant("RMSprop8bit", 8)
RMSprop32bit = _variant("RMSprop32bit", 32)
