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

def _number(name, value):
    """A Python float of a number or a one-element tensor (schedulers may set tensors)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"expected {name} to be a number, got {value!r}")
    return float(value)


def _integer(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"expected {name} to be an int, got {value!r}")
    return int(value)


def _core_options(group):
    """The group's options as the core takes them. Only types are checked here; the core
    checks the values (ranges, combinations) and raises ValueError with its message."""
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"expected betas to be a pair of numbers, got {betas!r}")
    amsgrad = group["amsgrad"]
    if not isinstance(amsgrad, bool):
        raise ValueError(f"expected amsgrad to be True or False, got {amsgrad!r}")
    placement = group["placement"]
    if not isinstance(placement, str):
        raise ValueError(f"expected placement to be a string, got {placement!r}")
    return (_number("lr", group["lr"]), _number("betas[0]", betas[0]), _number("betas[1]", betas[1]),
            _number("eps", group["eps"]), _number("weight_decay", group["weight_decay"]), amsgrad,
            _integer("optim_bits", group["optim_bits"]), _integer("min_8bit_size", group["min_8bit_size"]),
            placement)


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
        core_defaults = _core_options(defaults)
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
            options = _core_options(group)
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
            groups.append((_core_options(group), [p.detach() for p in params], grads))
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
