"""Adagrad with bitsandbytes' class names and signatures and torch.optim.Adagrad's
semantics (RULES.md 2.8).

torch.optim.Adagrad's update (foreach=False): L2 weight decay (g += wd*p), the sum of
squares s += g^2 (starting at initial_accumulator_value), p -= clr*g/(sqrt(s) + eps)
with clr = lr/(1 + (t - 1)*lr_decay). Where bitsandbytes differs: it refuses lr_decay
and initial_accumulator_value other than 0 (octopage takes them, as torch), stores the
8-bit sum with its signed code (octopage's takes the unsigned one, twice as fine;
bitsandbytes checkpoints load by decoding) and its CUDA kernel leaves weight decay out of
the step's numerator. octopage's own keywords: placement ('device', 'paged',
'offload'), offload_dir, keep_files, ring_bytes, chunk_bytes, direct_io, io_backend,
max_unorm.
"""
from octopage.optim.optimizer import Optimizer, optimizer_class, state_phrase

__all__ = ["Adagrad", "Adagrad8bit", "Adagrad32bit"]


def _variant(name, bits):
    """A class of Optimizer with bitsandbytes' constructor for its name (Adagrad8bit's
    optim_bits defaults to 8, as bitsandbytes')."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 optim_bits=8 if bits == 8 else 32, args=None, min_8bit_size=4096, percentile_clipping=100,
                 block_wise=True, **octopage_options):
        hyperparameters = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                               initial_accumulator_value=initial_accumulator_value, eps=eps)
        Optimizer.__init__(self, params, hyperparameters, optim_bits, args, min_8bit_size, percentile_clipping,
                           block_wise, **octopage_options)

    doc = f"torch.optim.Adagrad with {state_phrase(bits, 'its sum of squares')}."
    return optimizer_class(name, "adagrad", __init__, doc, bits, False, __name__, bits_keyword=8 if bits == 8 else 32,
                           bnb_betas=(0.0, 0.0))


Adagrad = _variant("Adagrad", None)
Adagrad8bit = _variant("Adagrad8bit", 8)
Adagrad32bit = _variant("Adagrad32bit", 32)
