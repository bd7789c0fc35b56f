"""The torch.optim.Optimizer that every octopage optimizer is: param groups, schedulers,
closures and zero_grad from torch, the step from octopage's compiled core. It knows no
rule: the rule's hyperparameters and states come from the core's registry (_rules.py).

Parameters and gradients go to the core through DLPack without a copy; the core
updates them in place. The core keeps its own copy of each group's parameter list:
groups are added through add_param_group (as torch's constructor does), and their
hyperparameters (lr, betas, ...) are read again at every step, so schedulers and manual
edits of ``param_groups`` work.
"""
import numbers
import os
import types
from collections.abc import Mapping

import torch

from octopage import _core, _threads
from octopage.optim import _dtensor, _rules, _state
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


# The dtypes the core updates, by the codes its step() takes (octopage._core.DTYPE_CODES).
_DTYPE_CODES = {getattr(torch, name): code for name, code in _core.DTYPE_CODES.items()}


def _core_tensor(t):
    """t as the core's step() takes it: (address, numel, dtype code, is_cuda) for a dense,
    contiguous CPU or CUDA tensor of a dtype the core updates, which spares it a DLPack
    round trip per tensor per step; anything else goes through DLPack, where the binding
    checks it and says what is wrong (a strided view, an int64 tensor, ...)."""
    code = _DTYPE_CODES.get(t.dtype)
    if code is not None and t.layout is torch.strided and t.is_contiguous() and (t.is_cpu or (_core.CUDA_BUILT and t.is_cuda)):
        return (t.data_ptr(), t.numel(), code, t.is_cuda)
    return t.detach()


def _torch_device_allocator():
    """PyTorch's caching allocator as the core's allocator of CUDA state, so that
    torch.cuda.memory_allocated() counts octopage's state; (None, None) where there is no
    CUDA (the core then has no CUDA state to allocate)."""
    if not (_core.CUDA_BUILT and torch.cuda.is_available()):
        return None, None

    def alloc(nbytes):
        return torch.cuda.caching_allocator_alloc(nbytes, torch.cuda.current_device(), torch.cuda.current_stream())

    return alloc, torch.cuda.caching_allocator_delete


def _core_value(hyperparameter, value):
    """One hyperparameter's value as the core takes it: a flag a bool, a one-value
    hyperparameter a float, a longer one (betas) a tuple of floats. Only types are
    checked here; the core checks the values."""
    name, arity = hyperparameter["name"], len(hyperparameter["defaults"])
    if value is None and hyperparameter["kind"] == "real" and hyperparameter["defaults"] == [0.0]:
        return 0.0  # None: off, as bitsandbytes' t_alpha=None (the registry's 0)
    if hyperparameter["kind"] == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"expected {name} to be True or False, got {value!r}")
        return value
    if arity == 1:
        return _number(name, value)
    if not isinstance(value, (tuple, list)) or len(value) != arity:
        what = "a pair of numbers" if arity == 2 else f"a sequence of {arity} numbers"
        raise ValueError(f"expected {name} to be {what}, got {value!r}")
    return tuple(_number(f"{name}[{k}]", v) for k, v in enumerate(value))


def _core_options(group, rule):
    """The group's options as the core takes them: the rule's hyperparameters that the
    group has, by name, and the state options. Only types are checked here; the core
    checks the values (ranges, combinations) and raises ValueError with its message."""
    options = {h["name"]: _core_value(h, group[h["name"]]) for h in rule.hyperparameters if h["name"] in group}
    placement = group["placement"]
    if not isinstance(placement, str):
        raise ValueError(f"expected placement to be a string, got {placement!r}")
    options["optim_bits"] = _integer("optim_bits", group["optim_bits"])
    options["min_8bit_size"] = _integer("min_8bit_size", group["min_8bit_size"])
    options["percentile_clipping"] = _integer("percentile_clipping", group.get("percentile_clipping", 100))
    options["max_unorm"] = _number("max_unorm", group.get("max_unorm", 0.0))
    options["placement"] = placement
    return options


def _check_compat(block_wise, args):
    """bitsandbytes' older keywords: accepted at their defaults, refused otherwise."""
    if block_wise is not True:
        raise ValueError(f"block_wise={block_wise!r} is not supported: octopage's 8-bit state is always block-wise")
    if args is not None:
        raise ValueError("args is not supported: pass the options as keywords")


class Optimizer(torch.optim.Optimizer):
    """One update rule of octopage's core (``_rule``: 'adam', 'adamw', ...) over
    fp32/bf16/fp16 tensors with 32-bit or 8-bit state, placed on the device, paged or
    offloaded. Use the named classes (``AdamW8bit``, ...): each rule's module (adam.py)
    gives them bitsandbytes' signatures and passes the rule's hyperparameters here by
    name; ``_bits`` (8, 32 or None) and ``_paged`` are what a class name fixes."""

    _rule = None
    # How bitsandbytes' 1-state classes name this rule's hyperparameters in a group: its
    # "betas" as a tuple of our keys (or constants), its "eps" a constant (None: ours).
    _bnb_betas = None
    _bnb_eps = None
    _bits = None
    _bits_keyword = 32  # the only optim_bits a class with fixed _bits takes (bitsandbytes' default)
    _paged = False
    # State entries under torch's names (momentum_buffer, ...) rather than bitsandbytes'
    # (state1, ...): bitsandbytes' pure-torch reference classes (PytorchLARS) keep those.
    _torch_state_names = False

    def __init__(self, params, hyperparameters, optim_bits=32, args=None, min_8bit_size=4096,
                 percentile_clipping=100, block_wise=True, is_paged=False, *, max_unorm=0.0, placement=None,
                 offload_dir=None, keep_files=False, ring_bytes=None, chunk_bytes=None, direct_io=True,
                 io_backend="auto", pin_host_memory=True):
        if self._rule is None:
            raise TypeError("octopage.optim.Optimizer is the base of the optimizer classes; use one of them "
                            "(AdamW8bit, ...)")
        if self._bits is not None:
            if optim_bits != self._bits_keyword:  # bitsandbytes accepts the keyword only at its default
                raise ValueError(f"{type(self).__name__} always uses {self._bits}-bit state; optim_bits is "
                                 f"accepted only at its default {self._bits_keyword}, got {optim_bits!r}")
            optim_bits = self._bits
        is_paged = is_paged or self._paged
        _check_compat(block_wise, args)
        if placement is None:
            placement = "paged" if is_paged else "device"
        elif is_paged and placement != "paged":
            raise ValueError(f"is_paged=True asks for placement 'paged', but placement={placement!r} was given")
        if offload_dir is not None:
            offload_dir = os.fspath(offload_dir)
        self._rule_info = _rules.find(self._rule)
        defaults = {name: tuple(value) if isinstance(value, list) else value
                    for name, value in hyperparameters.items()}
        defaults.update(optim_bits=optim_bits, min_8bit_size=min_8bit_size, placement=placement,
                        percentile_clipping=percentile_clipping, max_unorm=max_unorm)
        core_defaults = _core_options(defaults, self._rule_info)
        # A name the rule does not have goes to the core as it is, which refuses it.
        core_defaults.update((k, v) for k, v in defaults.items() if k not in core_defaults)
        self._core = _core.Optimizer(
            self._rule, offload_dir, bool(keep_files),
            _core.DEFAULT_RING_BYTES if ring_bytes is None else int(ring_bytes),
            _core.DEFAULT_CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes),
            bool(direct_io), io_backend, core_defaults, bool(pin_host_memory), *_torch_device_allocator())
        super().__init__(params, defaults)
        self.state = _state.StateView(self)

    @property
    def args(self):
        """bitsandbytes' ``args``: the optimizer's non-group settings as attributes
        (optim_bits, min_8bit_size, max_unorm, percentile_clipping, block_wise, is_paged,
        skip_zeros), read from its defaults. Reading only: set them per group instead."""
        d = self.defaults
        return types.SimpleNamespace(optim_bits=d["optim_bits"], min_8bit_size=d["min_8bit_size"],
                                     max_unorm=d["max_unorm"], percentile_clipping=d["percentile_clipping"],
                                     block_wise=True, is_paged=d["placement"] == "paged", skip_zeros=False)

    def add_param_group(self, param_group):
        """torch's add_param_group, then the group is checked and registered with the core
        (nothing is added when a check fails)."""
        before = len(self.param_groups)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            options = _core_options(group, self._rule_info)
            params = group["params"]
            for p in params:
                if p.is_sparse:
                    raise ValueError("expected dense parameters, got a sparse tensor")
            manager = GlobalOptimManager.get_instance()
            tensors, overrides = [], []
            for p in params:
                local, whole_numel = _dtensor.local_param(p)
                if _dtensor.is_dtensor(p) and (options["percentile_clipping"] != 100 or options["max_unorm"] != 0):
                    raise ValueError("percentile_clipping < 100 and max_unorm > 0 need whole-tensor norms, and a "
                                     "DTensor parameter is sharded: leave them off (100, 0) with FSDP")
                own = self._core_overrides(manager.overrides_for(p))
                if _dtensor.is_dtensor(p) and own.get("max_unorm", 0) != 0:
                    raise ValueError("max_unorm > 0 needs whole-tensor norms, and a DTensor parameter is sharded: "
                                     "do not override it on a parameter sharded by FSDP")
                if whole_numel is not None:
                    own["format_numel"] = whole_numel
                tensors.append(local.detach())
                overrides.append(own)
            self._core.add_group(tensors, overrides, options)
        except Exception:
            del self.param_groups[before:]
            raise

    def _core_overrides(self, overrides):
        """A parameter's overrides for the core: bitsandbytes' betas and eps of a rule it
        names otherwise become the rule's keys (SGD's betas: momentum and dampening), and
        hyperparameters take the core's types."""
        out = dict(overrides)
        if self._bnb_betas is not None and "betas" in out:
            for key, value in zip(self._bnb_betas, out.pop("betas")):
                if isinstance(key, str):
                    out.setdefault(key, value)
        if self._bnb_eps is not None and out.get("eps") == self._bnb_eps:
            del out["eps"]  # the constant bitsandbytes stores for rules without eps
        for h in self._rule_info.hyperparameters:
            if h["name"] in out:
                out[h["name"]] = _core_value(h, out[h["name"]])
        return out

    def _core_groups(self):
        groups = []
        for group in self.param_groups:
            params = group["params"]
            grads = []
            for p in params:
                g = p.grad
                if g is not None and g.is_sparse:
                    raise ValueError("expected dense gradients, got a sparse gradient")
                grads.append(None if g is None else _core_tensor(_dtensor.local_grad(p, g)))
            tensors = [_core_tensor(_dtensor.local_param(p)[0]) for p in params]
            groups.append((_core_options(group, self._rule_info), tensors, grads))
        return groups

    @torch.no_grad()
    def step(self, closure=None):
        """Updates every parameter that has a gradient; returns closure() when given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        _threads.follow(torch.get_num_threads())
        groups = self._core_groups()
        self._follow_cuda_stream()
        self._core.step(groups)
        return loss

    def _follow_cuda_stream(self):
        """CUDA work of the core runs on PyTorch's current stream, as torch.optim's does."""
        if _core.CUDA_BUILT and torch.cuda.is_available() and torch.cuda.is_initialized():
            self._core.set_cuda_stream(torch.cuda.current_stream().cuda_stream)

    def state_dict(self):
        """torch's layout (``state`` by parameter index, ``param_groups``) with each
        parameter's state as bitsandbytes saves it (see octopage/optim/_state.py), so it
        loads into bitsandbytes' optimizers too. Tensors are copies."""
        packed_groups, state, index = [], {}, 0
        steps = self._core.state_steps()
        for g, group in enumerate(self.param_groups):
            packed = {k: v for k, v in group.items() if k != "params"}
            for key, value in self._bnb_group(group).items():
                packed.setdefault(key, value)
            packed["params"] = list(range(index, index + len(group["params"])))
            packed_groups.append(packed)
            for i in range(len(group["params"])):
                if steps[g][i] > 0:
                    state[index + i] = _state.wrap(self.state.entry(g, i))
            index += len(group["params"])
        return {"state": state, "param_groups": packed_groups}

    # Group keys that say how this optimizer keeps state: a loaded state_dict does not
    # change them (Note [Loading state] in src/engine/optimizer.cc).
    _STATE_FORMAT_KEYS = ("params", "optim_bits", "min_8bit_size", "placement")

    def load_state_dict(self, state_dict):
        """Loads a state_dict of this rule's octopage, bitsandbytes or torch.optim optimizer.
        Hyperparameters come from the state_dict; state keeps this optimizer's format
        (converted when the saver's differs) and placement. All or nothing: on an error
        neither param_groups nor any state changed."""
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("expected a state_dict with 'state' and 'param_groups'")
        groups, saved_groups = self.param_groups, state_dict["param_groups"]
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer "
                             f"{len(groups)}")
        where_of = {}
        for g, (group, saved) in enumerate(zip(groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"loaded state dict's param group {g} has {len(saved['params'])} parameters, "
                                 f"this optimizer's {len(group['params'])}")
            for i, key in enumerate(saved["params"]):
                where_of[key] = (g, i)
        new_groups = []
        for group, saved in zip(groups, saved_groups):
            new = dict(group)
            new.update({k: v for k, v in saved.items() if k not in self._STATE_FORMAT_KEYS})
            new.update(self._from_bnb_group(saved))
            new_groups.append(new)
        loads, loaded = [], set()
        for key, entry in state_dict["state"].items():
            if key not in where_of:
                raise ValueError(f"loaded state dict has state for parameter {key!r}, which none of its "
                                 "param groups lists")
            g, i = where_of[key]
            loads.append((g, i, *_state.from_entry(entry, self._rule_info, f"param group {g}, parameter {i}")))
            loaded.add((g, i))
        for g, group in enumerate(groups):  # as in torch: a parameter without saved state has none
            loads.extend((g, i, *_state.NO_STATE) for i in range(len(group["params"])) if (g, i) not in loaded)
        self._load_core_states(new_groups, loads)
        self.param_groups[:] = new_groups

    def _bnb_group(self, group):
        """bitsandbytes' keys for a group whose rule bitsandbytes names otherwise (its
        1-state classes read betas and eps), so that it loads this state_dict."""
        out = {}
        if self._bnb_betas is not None:
            out["betas"] = tuple(group[k] if isinstance(k, str) else k for k in self._bnb_betas)
        if self._bnb_eps is not None:
            out["eps"] = self._bnb_eps
        return out

    def _from_bnb_group(self, saved):
        """Our keys that a group saved by bitsandbytes holds only in its betas."""
        if self._bnb_betas is None or not isinstance(saved.get("betas"), (tuple, list)):
            return {}
        return {k: v for k, v in zip(self._bnb_betas, saved["betas"]) if isinstance(k, str) and k not in saved}

    def _load_core_states(self, groups, loads):
        self._follow_cuda_stream()
        self._core.load_state([_core_options(group, self._rule_info) for group in groups], loads)

    def memory_report(self):
        """State bytes per tier ('host', 'device', 'file'), staging ring bytes, peaks."""
        return self._core.memory_report()

    def page_out(self):
        """Pushes paged state out of the fast tier (to free GPU memory for evaluation, say):
        CUDA managed memory goes to the host, the CPU's mapping back to its file and out of
        RAM. The next step brings it back."""
        self._follow_cuda_stream()
        self._core.page_out()

    def state_files(self):
        """The files that hold paged and offloaded state."""
        return self._core.state_files()

    def core_state(self, group_index, param_index):
        """A copy of one parameter's state as NumPy arrays, flat, by bitsandbytes' names:
        step, format, placement and each state (state1, state2, max_exp_avg_sq, ...: fp32
        values, or uint8 codes with absmax1, absmax2, ... for 8-bit)."""
        return _state.core_arrays(self._core_state(group_index, param_index), self._rule_info)

    def _core_state(self, group_index, param_index):
        """The core's copy of one parameter's state (octopage._core's layout: arrays by
        torch's names under 'states' and, for 8-bit, 'absmax')."""
        self._follow_cuda_stream()
        return self._core.state(group_index, param_index)


def state_phrase(bits, what):
    """How a class keeps its state, for its docstring: ``what`` ('a momentum') in the
    class's bits (8, 32, or None for optim_bits)."""
    return {None: f"{what} in fp32 (8-bit with optim_bits=8)", 8: f"{what} in 8 bits, block-wise",
            32: f"{what} in fp32"}[bits]


def where_phrase(paged):
    """Where a class places its state, for its docstring."""
    return "paged: in a file-backed mapping" if paged else "on the device unless placement says otherwise"


def optimizer_class(name, rule, init, doc, bits=None, paged=False, module=__name__, bits_keyword=32, bnb_betas=None,
                    bnb_eps=None, torch_state_names=False):
    """A class of Optimizer for one name of a rule's module: its constructor `init` (with
    the signature users know, passing the rule's hyperparameters by name to
    Optimizer.__init__), the state format (`bits`: 8, 32, or None for optim_bits) and
    the placement ('paged' when `paged`) that its name fixes; a class with fixed bits takes
    optim_bits only at `bits_keyword`, its signature's default. `bnb_betas` and `bnb_eps`:
    how bitsandbytes' group holds the rule's hyperparameters (Optimizer._bnb_betas);
    `torch_state_names`: Optimizer._torch_state_names."""
    init.__qualname__ = f"{name}.__init__"
    return type(name, (Optimizer,), {"__init__": init, "_rule": rule, "_bits": bits, "_paged": paged,
                                     "_bits_keyword": bits_keyword, "_bnb_betas": bnb_betas, "_bnb_eps": bnb_eps,
                                     "_torch_state_names": torch_state_names,
                                     "__module__": module, "__doc__": doc})
