"""The torch.optim.Optimizer that every octopage optimizer is: param groups, schedulers,
closures and zero_grad from torch, the step from octopage's compiled core.

Parameters and gradients go to the core through DLPack without a copy; the core
updates them in place. The core keeps its own copy of each group's parameter list:
groups are added through add_param_group (as torch's constructor does), and their
hyperparameters (lr, betas, eps, weight_decay) are read again at every step, so
schedulers and manual edits of ``param_groups`` work.
"""
import numbers
import os

import torch

from octopage import _core, _threads
from octopage.optim.manager import GlobalOptimManager

PLACEMENTS = ("device", "paged", "offload", "cpu_step")


def _check_number(name, value, low, high=None, low_open=False):
    """ValueError unless low <= value (< low when low_open) and value < high."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"expected {name} to be a number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"expected {name} to be a number, got {value!r}")
    value = float(value)
    bad = value != value or (value <= low if low_open else value < low) or (high is not None and value >= high)
    if bad:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"expected {name} {bound}, got {value}")
    return value


def _check_group(group):
    """The group's options as the core takes them, or ValueError."""
    lr = _check_number("lr", group["lr"], 0.0)
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"expected betas to be a pair of numbers, got {betas!r}")
    beta1 = _check_number("betas[0]", betas[0], 0.0, 1.0)
    beta2 = _check_number("betas[1]", betas[1], 0.0, 1.0)
    eps = _check_number("eps", group["eps"], 0.0)
    weight_decay = _check_number("weight_decay", group["weight_decay"], 0.0)
    amsgrad = group["amsgrad"]
    if not isinstance(amsgrad, bool):
        raise ValueError(f"expected amsgrad to be True or False, got {amsgrad!r}")
    optim_bits = group["optim_bits"]
    if optim_bits not in (8, 32) or isinstance(optim_bits, bool):
        raise ValueError(f"expected optim_bits 8 or 32, got {optim_bits!r}")
    if amsgrad and optim_bits == 8:
        raise ValueError("amsgrad=True needs 32-bit state: 8-bit optimizers do not support amsgrad")
    min_8bit_size = group["min_8bit_size"]
    if isinstance(min_8bit_size, bool) or not isinstance(min_8bit_size, int) or min_8bit_size < 0:
        raise ValueError(f"expected min_8bit_size to be an int >= 0, got {min_8bit_size!r}")
    placement = group["placement"]
    if placement not in PLACEMENTS:
        raise ValueError(f"expected placement 'device', 'paged' or 'offload', got {placement!r}")
    return (lr, beta1, beta2, eps, weight_decay, amsgrad, optim_bits, min_8bit_size, placement)


def _check_compat(percentile_clipping, block_wise, args):
    """bitsandbytes' older keywords: accepted at their defaults, refused otherwise."""
    if percentile_clipping != 100:
        raise ValueError(
            f"percentile_clipping={percentile_clipping!r} is not supported yet: octopage does not clip "
            "gradients; use torch.nn.utils.clip_grad_norm_ before step(), or leave it at 100")
    if block_wise is not True:
        raise ValueError(f"block_wise={block_wise!r} is not supported: octopage's 8-bit state is always block-wise")
    if args is not None:
        raise ValueError("args is not supported: pass the options as keywords")


class Optimizer(torch.optim.Optimizer):
    """Adam or AdamW over fp32/bf16/fp16 CPU tensors with 32-bit or 8-bit state, placed
    on the device, paged or offloaded. Use the named classes (``AdamW8bit``, ...)."""

    _rule = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 optim_bits=32, args=None, min_8bit_size=4096, percentile_clipping=100, block_wise=True,
                 is_paged=False, *, placement=None, offload_dir=None, keep_files=False, ring_bytes=None,
                 chunk_bytes=None, direct_io=True, io_backend="auto"):
        _check_compat(percentile_clipping, block_wise, args)
        if placement is None:
            placement = "paged" if is_paged else "device"
        elif is_paged and placement != "paged":
            raise ValueError(f"is_paged=True asks for placement 'paged', but placement={placement!r} was given")
        if offload_dir is not None:
            offload_dir = os.fspath(offload_dir)
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, optim_bits=optim_bits,
                        min_8bit_size=min_8bit_size, placement=placement)
        core_defaults = _check_group(defaults)
        self._core = _core.Optimizer(
            self._rule, offload_dir, bool(keep_files),
            _core.DEFAULT_RING_BYTES if ring_bytes is None else int(ring_bytes),
            _core.DEFAULT_CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes),
            bool(direct_io), io_backend, core_defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        """torch's add_param_group, then the group is checked and registered with the core
        (nothing is added when a check fails)."""
        before = len(self.param_groups)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            options = _check_group(group)
            params = group["params"]
            for p in params:
                if p.is_sparse:
                    raise ValueError("expected dense parameters, got a sparse tensor")
            overrides = [GlobalOptimManager.get_instance().overrides_for(p) for p in params]
            self._core.add_group([p.detach() for p in params], overrides, options)
        except Exception:
            del self.param_groups[before:]
            raise

    def _core_groups(self):
        groups = []
        for group in self.param_groups:
            params = group["params"]
            grads = []
            for p in params:
                g = p.grad
                if g is not None and g.is_sparse:
                    raise ValueError("expected dense gradients, got a sparse gradient")
                grads.append(None if g is None else g.detach())
            groups.append((_check_group(group), [p.detach() for p in params], grads))
        return groups

    @torch.no_grad()
    def step(self, closure=None):
        """Updates every parameter that has a gradient; returns closure() when given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        _threads.follow(torch.get_num_threads())
        self._core.step(self._core_groups())
        return loss

    def state_dict(self):
        raise NotImplementedError(
            "octopage optimizers cannot save their state yet (state_dict is the next piece of work); "
            "refusing rather than returning a state_dict without the optimizer state")

    def load_state_dict(self, state_dict):
        raise NotImplementedError("octopage optimizers cannot load a state_dict yet")

    def memory_report(self):
        """State bytes per tier ('host', 'device', 'file'), staging ring bytes, peaks."""
        return self._core.memory_report()

    def state_files(self):
        """The files that hold paged and offloaded state."""
        return self._core.state_files()

    def core_state(self, group_index, param_index):
        """A copy of one parameter's state as NumPy arrays (step, format, placement,
        state1/state2 [/state2_max] for 32-bit; codes and absmax1/absmax2 for 8-bit)."""
        return self._core.state(group_index, param_index)
