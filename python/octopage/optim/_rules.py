"""The update rules of octopage's core as Python reads them: ``octopage._core.rules()``
(the registry of include/octopage/rules.h), read once and looked up by name. Nothing
here knows any rule: a rule added to the registry is described here without new code.
"""
from octopage import _core


class Rule:
    """A rule of the registry: its hyperparameters (torch.optim's names, defaults and
    kinds) and its states (torch's and bitsandbytes' state_dict names) over all variants."""

    def __init__(self, info):
        self.name = info["name"]
        self.display_name = info["display_name"]
        self.default_max_unorm = info["default_max_unorm"]  # bitsandbytes' LAMB 1.0, LARS 0.02, else 0
        self.hyperparameters = info["hyperparameters"]  # dicts: name, defaults, kind, min, max, ...
        self.variants = info["variants"]  # dicts: name, states, quantizable, quantizable_alternative
        states = {}
        for variant in self.variants:
            for state in variant["states"]:
                states.setdefault(state["name"], state)
        # Every state any variant keeps, by torch's name, in the variants' order.
        self.states = states
        in_variants = [{s["name"] for s in v["states"]} for v in self.variants]
        # The states of every variant: a saved state of this rule has them all.
        self.required_states = [s for s in states.values() if all(s["name"] in names for names in in_variants)]
        # The states that may be 8-bit: those of a quantizable variant.
        self.quantizable_states = [s for s in states.values()
                                   if any(v["quantizable"] and s["name"] in names
                                          for v, names in zip(self.variants, in_variants))]

    def __repr__(self):
        return f"<octopage rule {self.name!r} ({self.display_name})>"


_rules = None


def registered():
    """Every registered rule, by name, in registry order."""
    global _rules
    if _rules is None:
        _rules = {info["name"]: Rule(info) for info in _core.rules()}
    return _rules


def find(name):
    """The rule called name; ValueError naming the registered ones when there is none."""
    rules = registered()
    if name not in rules:
        raise ValueError(f"expected a rule among {', '.join(repr(n) for n in rules)}, got {name!r}")
    return rules[name]
