"""Optimizer state as torch tensors, in bitsandbytes' layout, and back to the core.

The core names a rule's states as torch does (exp_avg, ...); each has a bitsandbytes
name too (its StateInfo's bnb_name: state1, ...), which the entries here use. A
parameter's state is ``{"step": int, "state1": ..., "state2": ...}`` with, for 8-bit
state, uint8 code tensors ``stateK`` shaped like the parameter, fp32 ``absmaxK`` (one
per block of 256 values) and the codes ``qmapK``; for 32-bit state fp32 ``stateK``
(Adam's: exp_avg and exp_avg_sq) and states without a bitsandbytes counterpart under
torch's name (Adam's amsgrad: ``max_exp_avg_sq``). States that share a bitsandbytes name
are stacked along a new first dimension, their absmax too (AdEMAMix's m1 and m2:
``state1`` of shape (2, *p.shape), ``absmax1`` of (2, blocks)). With max_unorm, the last
squared update norm is ``unorm_vec`` (1 value), as bitsandbytes keeps it. ``state_dict()`` wraps the
quantization tensors under ``__bnb_optimizer_quant_state__`` as bitsandbytes does (so
FSDP does not try to gather them). Loading also takes torch.optim's names and tensor
steps.
"""
import numbers
from collections.abc import Mapping, MutableMapping

import numpy as np
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


def state_keys(state):
    """bitsandbytes' keys of one state of a rule (a StateInfo of the registry): its
    values' or codes' (bnb_name), and for 8-bit state its absmax's and code's:
    "stateK" -> "absmaxK", "qmapK"."""
    key = state["bnb_name"]
    suffix = key[len("state"):] if key.startswith("state") else ""
    if suffix.isdigit():
        return key, "absmax" + suffix, "qmap" + suffix
    return key, key + "_absmax", key + "_qmap"


def stacked(rule):
    """The rule's states grouped by bitsandbytes' key, in order: {key: [state, ...]}.
    States that share a key (AdEMAMix's m1 and m2, bitsandbytes' state1) are stacked
    along a new first dimension, as bitsandbytes stores them."""
    groups = {}
    for state in rule.states.values():
        groups.setdefault(state_keys(state)[0], []).append(state)
    return groups


def _by_key(core_state, rule):
    """(key, absmax_key, qmap_key, states present) for each bitsandbytes key of the rule
    that the core's state has."""
    for key, states in stacked(rule).items():
        present = [s for s in states if s["name"] in core_state["states"]]
        if present:
            yield (*state_keys(present[0]), present)


def core_arrays(core_state, rule):
    """The state the core returned, flat, by bitsandbytes' keys (NumPy arrays, no qmaps;
    stacked states one after the other)."""
    out = {k: core_state[k] for k in ("step", "format", "placement")}
    for key, absmax_key, _, states in _by_key(core_state, rule):
        out[key] = np.concatenate([core_state["states"][s["name"]] for s in states])
        if core_state["format"] == "8bit":
            out[absmax_key] = np.concatenate([core_state["absmax"][s["name"]] for s in states])
    for key in ("gnorm_vec", "unorm_vec"):
        if key in core_state:
            out[key] = core_state[key]
    return out


def to_tensors(core_state, p, rule, max_unorm=0.0, torch_names=False):
    """The state the core returned (NumPy arrays) for parameter p as bitsandbytes' unwrapped
    entry. For a DTensor p, the state of its local shard as DTensors (Note [Sharded 8-bit
    absmax] in _dtensor.py). Under a max_unorm (the group's, or the rule's default: a
    bitsandbytes LAMB or LARS loading it needs one) the entry has unorm_vec, zero until a
    step has measured it. With `torch_names`, 32-bit states by torch's names
    (momentum_buffer, ...) and nothing else, as torch.optim keeps them."""
    sharded = _dtensor.is_dtensor(p)
    shape = _dtensor.local_shape(p)
    # A CUDA parameter's state comes back on its device, as torch.optim and bitsandbytes keep it.
    device = p.device if not sharded and p.is_cuda else torch.device("cpu")

    def shaped(arrays):
        local = torch.stack([torch.from_numpy(a).view(shape) for a in arrays]) if len(arrays) > 1 else \
            torch.from_numpy(arrays[0]).view(shape)
        return _dtensor.like_param(local.to(device), p) if sharded else local.to(device)

    def absmax(arrays):
        local = torch.stack([torch.from_numpy(a) for a in arrays]) if len(arrays) > 1 else torch.from_numpy(arrays[0])
        return _dtensor.sharded_absmax(local.to(device), p, q8_num_blocks) if sharded else local.to(device)

    entry = {"step": int(core_state["step"])}
    if torch_names and core_state["format"] == "32bit":
        entry.update((name, shaped([values])) for name, values in core_state["states"].items())
        return entry
    for key, absmax_key, qmap_key, states in _by_key(core_state, rule):
        if sharded and len(states) > 1:
            raise ValueError(f"{rule.display_name}'s stacked {key} of a DTensor parameter cannot be saved yet: "
                             "use a parameter that is not sharded")
        entry[key] = shaped([core_state["states"][s["name"]] for s in states])
        if core_state["format"] == "8bit":
            entry[qmap_key] = q8_code(states[0]["is_signed"]).to(device)
            entry[absmax_key] = absmax([core_state["absmax"][s["name"]] for s in states])
    if "gnorm_vec" in core_state:  # percentile_clipping's history, as bitsandbytes <= 0.49 kept it
        entry["gnorm_vec"] = torch.from_numpy(core_state["gnorm_vec"]).to(device)
    if "unorm_vec" in core_state:  # max_unorm's last squared update norm, as bitsandbytes keeps it
        entry["unorm_vec"] = torch.from_numpy(core_state["unorm_vec"]).to(device)
    elif max_unorm > 0 or rule.default_max_unorm > 0:
        entry["unorm_vec"] = torch.zeros(1, device=device)
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


def _absmax(value, saved, codes, key, where):
    """absmax of the 8-bit codes (`value`, a row of the `saved` tensor where states are
    stacked); a DTensor's part is padded (Note [Sharded 8-bit absmax])."""
    absmax = _flat(value, torch.float32, key, where)
    return absmax[:q8_num_blocks(codes.numel())] if _dtensor.is_dtensor(saved) else absmax


def _step(value, where):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{where}: expected an integer step, got {value!r}")


def _listed(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def from_entry(entry, rule, where):
    """(step, format, {state: values or codes}, {state: absmax}, {gnorm_vec, unorm_vec}) for the
    core, states by torch's names, from a saved entry of `rule`: bitsandbytes' (wrapped or
    not) or torch.optim's. States the rule does not keep are ignored."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected the state to be a dict, got {type(entry).__name__}")
    e = dict(entry)
    quant = e.pop(QUANT_KEY, None)
    if quant is not None:
        e.update(quant)
    if "step" not in e:
        raise ValueError(f"{where}: expected a 'step' in the state, got keys {sorted(e)}")
    step = _step(e["step"], where)
    groups = stacked(rule)

    def saved(state):
        """The state's saved tensor: by bitsandbytes' key (its row where states are
        stacked under the key), else by torch's name."""
        key = state_keys(state)[0]
        value = e.get(key)
        if value is None:
            return e.get(state["name"])
        return _row(value, groups[key], state, key, where)

    if any(saved(state) is None for state in rule.required_states):
        bnb_names = _listed(list(dict.fromkeys(state_keys(s)[0] for s in rule.required_states)))
        torch_names = _listed([s["name"] for s in rule.required_states])
        raise ValueError(f"{where}: expected {bnb_names} (bitsandbytes) or {torch_names} (torch.optim) in the "
                         f"state, got keys {sorted(e)}")
    unsupported = sorted(k for k in ("max1", "max2", "new_max1", "new_max2") if e.get(k) is not None)
    if unsupported:
        raise ValueError(f"{where}: the state has {unsupported}: it is bitsandbytes' non-block-wise 8-bit "
                         "state, which octopage cannot load (only block-wise)")
    norms = {k: _flat(e[k], torch.float32, k, where) for k in ("gnorm_vec", "unorm_vec") if e.get(k) is not None}
    present = [state for state in rule.states.values() if saved(state) is not None]
    first = saved(present[0]) if present else None
    if isinstance(first, torch.Tensor) and first.dtype == torch.uint8:
        return (step, *_from_8bit(e, rule, present, saved, groups, where), norms)
    values = {}
    for state in present:
        values[state["name"]] = _flat(saved(state), torch.float32, state_keys(state)[0], where)
    return (step, "32bit", values, {}, norms)


def _row(value, states, state, key, where):
    """Row `state` of a tensor that stacks `states` (AdEMAMix's state1: m1 and m2)."""
    if len(states) == 1 or not isinstance(value, torch.Tensor):
        return value
    if value.dim() == 0 or value.shape[0] != len(states):
        raise ValueError(f"{where}: expected {key} stacking {len(states)} states along its first dimension, got "
                         f"shape {tuple(value.shape)}")
    return value[states.index(state)]


def _from_8bit(e, rule, present, saved, groups, where):
    """(format, codes or values, absmax) of the 8-bit states of an entry whose first
    present state is uint8 codes, checked (the core checks their sizes). Codes saved with
    another code than octopage's (bitsandbytes' signed code for RMSprop's and Adagrad's
    non-negative states) are decoded with the saved qmap, and the whole state loads as
    32-bit values, which the core encodes again."""
    first_key = state_keys(present[0])[0]
    if present[0] not in rule.quantizable_states:
        raise ValueError(f"{where}: expected {first_key} in 32 bits ({rule.display_name} keeps it so), got uint8 "
                         "codes")
    states = [state for state in present if state in rule.quantizable_states]

    def need(key, value):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{where}: 8-bit state (uint8 {first_key}) needs {key} as a tensor, got {value!r}")

    for state in states[1:]:
        need(state_keys(state)[0], saved(state))
    for state in states:
        need(state_keys(state)[1], e.get(state_keys(state)[1]))
    for state in states[1:]:
        if saved(state).dtype != torch.uint8:
            raise ValueError(f"{where}: expected {state_keys(state)[0]} of dtype uint8 with a uint8 {first_key}, "
                             f"got {saved(state).dtype}")
    codes, absmax, tables = {}, {}, {}
    for state in states:
        key, absmax_key, qmap_key = state_keys(state)
        codes[state["name"]] = _flat(saved(state), torch.uint8, key, where)
        saved_absmax = _row(e[absmax_key], groups[key], state, absmax_key, where)
        absmax[state["name"]] = _absmax(saved_absmax, e[absmax_key], codes[state["name"]], absmax_key, where)
        ours = q8_code(state["is_signed"])
        qmap = e.get(qmap_key)
        table = ours if qmap is None else _flat(qmap, torch.float32, qmap_key, where)
        if table.numel() != 256:
            raise ValueError(f"{where}: expected {qmap_key} of 256 code values, got {table.numel()}")
        tables[state["name"]] = table
    if all(torch.equal(tables[s["name"]], q8_code(s["is_signed"])) for s in states):
        return "8bit", codes, absmax
    values = {}
    for state in states:
        name = state["name"]
        blocks = torch.arange(codes[name].numel()) // _core.Q8_BLOCK_SIZE
        if absmax[name].numel() != q8_num_blocks(codes[name].numel()):
            raise ValueError(f"{where}: expected {q8_num_blocks(codes[name].numel())} absmax values for "
                             f"{state_keys(state)[0]}, got {absmax[name].numel()}")
        values[name] = tables[name][codes[name].long()] * absmax[name][blocks]
    return "32bit", values, {}


NO_STATE = (0, "32bit", {}, {}, {})


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
        core_state = self._optimizer._core_state(g, i)
        if core_state["step"] == 0:
            return {}
        group = self._optimizer.param_groups[g]
        return to_tensors(core_state, group["params"][i], self._optimizer._rule_info, group.get("max_unorm", 0.0),
                          self._optimizer._torch_state_names)

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
        loaded = NO_STATE
        if entry:
            loaded = from_entry(entry, self._optimizer._rule_info, f"param group {g}, parameter {i}")
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
