"""Optimizer state as torch tensors, in bitsandbytes' layout, and back to the core.

A parameter's state is ``{"step": int, "state1": ..., "state2": ...}`` with, for 8-bit
state, uint8 code tensors ``state1``/``state2`` shaped like the parameter, fp32
``absmax1``/``absmax2`` (one per block of 256 values) and the codes ``qmap1``/``qmap2``;
for 32-bit state fp32 ``state1``/``state2`` (torch's exp_avg and exp_avg_sq) and, with
amsgrad, ``max_exp_avg_sq``. ``state_dict()`` wraps the quantization tensors under
``__bnb_optimizer_quant_state__`` as bitsandbytes does (so FSDP does not try to gather
them). Loading also takes torch.optim's names (exp_avg, exp_avg_sq) and tensor steps.
"""
import numbers
from collections.abc import Mapping, MutableMapping

import torch

from octopage import _core
from octopage.optim import _dtensor

QUANT_KEY = "__bnb_optimizer_quant_state__"
# The keys bitsandbytes wraps under QUANT_KEY (the ones octopage writes are a subset).
WRAPPED_KEYS = frozenset({"state1", "state2", "absmax1", "absmax2", "qmap1", "qmap2", "max1", "max2",
                          "new_max1", "new_max2", "gnorm_vec", "unorm_vec"})

_codes = {}


def q8_code(signed):
    """The code of 8-bit state as a tensor (qmap1: signed, qmap2: unsigned), built once."""
    if signed not in _codes:
        _codes[signed] = torch.from_numpy(_core.q8_code(signed))
    return _codes[signed]


def q8_num_blocks(numel):
    return -(-numel // _core.Q8_BLOCK_SIZE)


def to_tensors(core_state, p):
    """The state the core returned (NumPy arrays) for parameter p as bitsandbytes' unwrapped
    entry. For a DTensor p, the state of its local shard as DTensors (Note [Sharded 8-bit
    absmax] in _dtensor.py)."""
    sharded = _dtensor.is_dtensor(p)
    shape = _dtensor.local_shape(p)
    # A CUDA parameter's state comes back on its device, as torch.optim and bitsandbytes keep it.
    device = p.device if not sharded and p.is_cuda else torch.device("cpu")

    def shaped(key):
        local = torch.from_numpy(core_state[key]).view(shape).to(device)
        return _dtensor.like_param(local, p) if sharded else local

    def absmax(key):
        local = torch.from_numpy(core_state[key]).to(device)
        return _dtensor.sharded_absmax(local, p, q8_num_blocks) if sharded else local

    entry = {"step": int(core_state["step"])}
    if core_state["format"] == "8bit":
        entry.update(state1=shaped("state1"), qmap1=q8_code(True).to(device), state2=shaped("state2"),
                     qmap2=q8_code(False).to(device), absmax1=absmax("absmax1"), absmax2=absmax("absmax2"))
    else:
        entry.update(state1=shaped("state1"), state2=shaped("state2"))
        if "state2_max" in core_state:
            entry["max_exp_avg_sq"] = shaped("state2_max")
    return entry


def wrap(entry):
    """bitsandbytes' state_dict form of an entry: quantization tensors under QUANT_KEY."""
    out = {k: v for k, v in entry.items() if k not in WRAPPED_KEYS}
    out[QUANT_KEY] = {k: v for k, v in entry.items() if k in WRAPPED_KEYS}
    return out


def _flat(tensor, dtype, name, where):
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{where}: expected {name} to be a tensor, got {type(tensor).__name__}")
    if _dtensor.is_dtensor(tensor):  # this rank's part
        tensor = tensor.to_local()
    return tensor.detach().to("cpu", dtype).contiguous().view(-1)


def _absmax(e, key, codes, where):
    """absmax of the 8-bit codes; a DTensor's part is padded (Note [Sharded 8-bit absmax])."""
    absmax = _flat(e[key], torch.float32, key, where)
    return absmax[:q8_num_blocks(codes.numel())] if _dtensor.is_dtensor(e[key]) else absmax


def _step(value, where):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{where}: expected an integer step, got {value!r}")


def from_entry(entry, where):
    """(step, format, state1, state2, state2_max, absmax1, absmax2) for the core from a
    saved entry: bitsandbytes' (wrapped or not) or torch.optim's."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected the state to be a dict, got {type(entry).__name__}")
    e = dict(entry)
    quant = e.pop(QUANT_KEY, None)
    if quant is not None:
        e.update(quant)
    if "step" not in e:
        raise ValueError(f"{where}: expected a 'step' in the state, got keys {sorted(e)}")
    step = _step(e["step"], where)
    state1 = e.get("state1", e.get("exp_avg"))
    state2 = e.get("state2", e.get("exp_avg_sq"))
    if state1 is None or state2 is None:
        raise ValueError(f"{where}: expected state1 and state2 (bitsandbytes) or exp_avg and exp_avg_sq "
                         f"(torch.optim) in the state, got keys {sorted(e)}")
    unsupported = sorted(k for k in ("max1", "max2", "new_max1", "new_max2") if e.get(k) is not None)
    if unsupported:
        raise ValueError(f"{where}: the state has {unsupported}: it is bitsandbytes' non-block-wise 8-bit "
                         "state, which octopage cannot load (only block-wise)")
    if isinstance(state1, torch.Tensor) and state1.dtype == torch.uint8:
        for key in ("state2", "absmax1", "absmax2"):
            if not isinstance(e.get(key), torch.Tensor):
                raise ValueError(f"{where}: 8-bit state (uint8 state1) needs {key} as a tensor, got {e.get(key)!r}")
        if e["state2"].dtype != torch.uint8:
            raise ValueError(f"{where}: expected state2 of dtype uint8 with a uint8 state1, got {e['state2'].dtype}")
        for key, signed in (("qmap1", True), ("qmap2", False)):
            qmap = e.get(key)
            if qmap is not None and not torch.equal(_flat(qmap, torch.float32, key, where), q8_code(signed)):
                raise ValueError(f"{where}: the state's {key} is not the {'signed' if signed else 'unsigned'} "
                                 "dynamic code octopage uses, so its 8-bit codes cannot be decoded here")
        codes1, codes2 = _flat(state1, torch.uint8, "state1", where), _flat(e["state2"], torch.uint8, "state2", where)
        return (step, "8bit", codes1, codes2, None, _absmax(e, "absmax1", codes1, where),
                _absmax(e, "absmax2", codes2, where))
    state2_max = e.get("max_exp_avg_sq")
    return (step, "32bit", _flat(state1, torch.float32, "state1", where), _flat(state2, torch.float32, "state2", where),
            None if state2_max is None else _flat(state2_max, torch.float32, "max_exp_avg_sq", where), None, None)


NO_STATE = (0, "32bit", None, None, None, None, None)


class StateView(MutableMapping):
    """``optimizer.state``: the core's state, parameter by parameter, as torch tensors
    (copies). Reading gives bitsandbytes' entry; assigning an entry loads it into the
    core (as ZeroRedundancyOptimizer does); deleting one drops the parameter's state."""

    def __init__(self, optimizer):
        self._optimizer = optimizer

    def _locate(self, p):
        for g, group in enumerate(self._optimizer.param_groups):
            for i, q in enumerate(group["params"]):
                if q is p:
                    return g, i
        return None

    def entry(self, g, i):
        """The state of parameter i of param group g ({} when it has none)."""
        core_state = self._optimizer.core_state(g, i)
        if core_state["step"] == 0:
            return {}
        return to_tensors(core_state, self._optimizer.param_groups[g]["params"][i])

    def __getitem__(self, p):
        where = self._locate(p)
        if where is None:
            raise KeyError(p)
        return self.entry(*where)

    def __setitem__(self, p, entry):
        where = self._locate(p)
        if where is None:
            raise KeyError("expected a parameter of this optimizer")
        g, i = where
        loaded = from_entry(entry, f"param group {g}, parameter {i}") if entry else NO_STATE
        self._optimizer._load_core_states(self._optimizer.param_groups, [(g, i, *loaded)])

    def __delitem__(self, p):
        self[p] = {}

    def __iter__(self):
        steps = self._optimizer._core.state_steps()
        for g, group in enumerate(self._optimizer.param_groups):
            for i, p in enumerate(group["params"]):
                if steps[g][i] > 0:
                    yield p

    def __len__(self):
        return sum(s > 0 for group in self._optimizer._core.state_steps() for s in group)

    def __contains__(self, p):
        where = self._locate(p)
        return where is not None and self._optimizer._core.state_steps()[where[0]][where[1]] > 0

    def __repr__(self):
        return f"<octopage optimizer state of {len(self)} parameters>"
