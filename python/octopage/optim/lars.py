"""LARS with bitsandbytes' class names, signatures and defaults (RULES.md 2.6).

bitsandbytes' LARS is SGD with momentum (L2 weight decay; the buffer b = g at the first
step, then momentum*b + g) under a per-tensor cap on the step: b' (the momentum step
without weight decay) is scaled by max_unorm*||p||/||b'|| where it is longer than that
(max_unorm default 0.02). It is not the LARS paper's trust ratio, which also scales steps
up. A momentum > 0 is required, as in bitsandbytes. octopage honours dampening and
nesterov as torch.optim.SGD does (bitsandbytes ignores them) and caps 8-bit steps too
(bitsandbytes' LARS8bit runs plain 8-bit momentum). ``PytorchLARS`` is bitsandbytes'
pure-torch reference class: here the same update in 32 bits, its state under torch's
name ``momentum_buffer`` as bitsandbytes' keeps it (its norm includes the weight-decay
term; octopage's, as bitsandbytes' kernels', does not). octopage's own
keywords: placement ('device', 'paged', 'offload'), offload_dir, keep_files, ring_bytes,
chunk_bytes, direct_io, io_backend.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class, state_phrase

__all__ = ["LARS", "LARS8bit", "LARS32bit", "PytorchLARS"]


_BNB_BETAS = ("momentum", "dampening")  # bitsandbytes' group: betas = (momentum, dampening), eps = 0


def _variant(name, bits):
    """A class of Optimizer with bitsandbytes' constructor for its name (lr has no default)."""

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, optim_bits=32,
                 args=None, min_8bit_size=4096, max_unorm=0.02, percentile_clipping=100, block_wise=True,
                 **octopage_options):
        hyperparameters = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                               nesterov=nesterov)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, max_unorm=max_unorm, **octopage_options)

    doc = f"bitsandbytes' LARS (SGD with momentum under an update-norm cap) with {state_phrase(bits, 'its buffer')}."
    return optimizer_class(name, "lars", __init__, doc, bits, False, __name__, bnb_betas=_BNB_BETAS, bnb_eps=0.0)


LARS = _variant("LARS", None)
LARS8bit = _variant("LARS8bit", 8)
LARS32bit = _variant("LARS32bit", 32)


def _pytorch_lars_init(self, params, lr=0.01, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                       max_unorm=0.02, **octopage_options):
    hyperparameters = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                           nesterov=nesterov)
    Optimizer.__init__(self, params, hyperparameters, max_unorm=max_unorm, **octopage_options)


PytorchLARS = optimizer_class("PytorchLARS", "lars", _pytorch_lars_init,
                              "bitsandbytes' PytorchLARS signature over octopage's LARS with fp32 state.", 32,
                              False, __name__, bnb_betas=_BNB_BETAS, bnb_eps=0.0, torch_state_names=True)
