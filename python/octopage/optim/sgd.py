"""SGD with bitsandbytes' class names and signatures and torch.optim.SGD's semantics.

torch.optim.SGD's update (foreach=False): weight decay as L2 (g += wd*p), the momentum
buffer cloned from the first gradient, then b = momentum*b + (1 - dampening)*g, and
nesterov's g + momentum*b. bitsandbytes refuses SGD without momentum; octopage runs it
with 32-bit state (there is no state: the update is p -= lr*g), and refuses it only
with 8-bit state, as bitsandbytes has no 8-bit SGD without momentum either. lr defaults
to torch's 1e-3 (bitsandbytes has no default). octopage's own keywords: placement
('device', 'paged', 'offload'), offload_dir, keep_files, ring_bytes, chunk_bytes,
direct_io, io_backend.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class

__all__ = ["SGD", "SGD8bit", "SGD32bit"]


def _variant(name, bits):
    """A class of Optimizer with bitsandbytes' constructor for its name."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, optim_bits=32,
                 args=None, min_8bit_size=4096, percentile_clipping=100, block_wise=True, **octopage_options):
        hyperparameters = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                               nesterov=nesterov)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, **octopage_options)

    state = {None: "no state or a fp32 momentum buffer (8-bit with optim_bits=8)",
             8: "an 8-bit block-wise momentum buffer", 32: "a fp32 momentum buffer"}[bits]
    return optimizer_class(name, "sgd", __init__, f"torch.optim.SGD with {state}.", bits, False, __name__,
                           bnb_betas=("momentum", "dampening"), bnb_eps=0.0)


SGD = _variant("SGD", None)
SGD8bit = _variant("SGD8bit", 8)
SGD32bit = _variant("SGD32bit", 32)
