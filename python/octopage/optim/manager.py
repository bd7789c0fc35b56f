"""Per-parameter overrides, as bitsandbytes' GlobalOptimManager: e.g. an embedding kept
in 32-bit state, or one large tensor offloaded while the rest stays on the device.

    mng = octopage.optim.GlobalOptimManager.get_instance()
    mng.register_parameters(model.parameters())        # optional, as in bitsandbytes
    mng.override_config(model.emb.weight, "optim_bits", 32)
    opt = octopage.optim.AdamW8bit(model.parameters())

Overrides are looked up when a parameter is added to an optimizer. Keys:
bitsandbytes' ``optim_bits`` (8 or 32), ``min_8bit_size``, ``max_unorm``, ``skip_zeros``
(False only: no kernel of octopage's or bitsandbytes' honours it reliably) and the
hyperparameters ``lr``, ``betas``, ``eps``, ``weight_decay``, ``alpha``, ``t_alpha``,
``t_beta3``, and any other hyperparameter of the optimizer's rule (``momentum``, ...);
octopage's ``placement`` ('device', 'paged', 'offload') and ``is_paged`` (True means
placement 'paged'). The state options apply to the state created for the parameter;
hyperparameters and max_unorm at every step, shadowing the group's (and a scheduler's),
as in bitsandbytes. The optimizer checks the values against its rule when the parameter
is added (an lr of -1, or 'alpha' for AdamW, is refused then).
"""
import numbers
import weakref

# bitsandbytes' keys for the state and the clipping (the rest are hyperparameters).
_STATE_KEYS = ("optim_bits", "min_8bit_size", "placement", "is_paged", "max_unorm", "skip_zeros")


class GlobalOptimManager:
    _instance = None

    def __init__(self):
        raise RuntimeError("use GlobalOptimManager.get_instance()")

    @classmethod
    def get_instance(cls):
        if cls._instance is None:
            cls._instance = cls.__new__(cls)
            cls._instance.initialize()
        return cls._instance

    def initialize(self):
        """Forgets every override."""
        # Keyed by id(p), with a weak reference so a dead tensor's id is never reused.
        self._overrides = {}

    def register_parameters(self, params):
        """Accepted for bitsandbytes compatibility: overrides follow the tensor itself,
        so registering first is not needed."""
        for p in params:
            if isinstance(p, dict):  # a param group
                self.register_parameters(p["params"])

    def override_config(self, parameters, key=None, value=None, key_value_dict=None):
        """Overrides key=value (or every item of key_value_dict) for one parameter or a
        list of them."""
        if key_value_dict is None:
            if key is None:
                raise ValueError("expected a key and a value, or key_value_dict")
            key_value_dict = {key: value}
        config = {}
        for k, v in key_value_dict.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise ValueError(f"expected an override name such as 'lr' or 'optim_bits', got {k!r}")
            if k == "skip_zeros":
                if v is not False:
                    raise ValueError(f"skip_zeros=True is not supported (bitsandbytes' kernels honour it only in "
                                     f"some 32-bit paths), got {v!r}")
                continue
            if k == "min_8bit_size" and (not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0):
                raise ValueError(f"expected min_8bit_size to be an int >= 0, got {v!r}")
            if k == "max_unorm" and (not isinstance(v, numbers.Real) or isinstance(v, bool) or not v >= 0):
                raise ValueError(f"expected max_unorm to be a number >= 0, got {v!r}")
            if k == "optim_bits" and (v not in (8, 32) or isinstance(v, bool)):
                raise ValueError(f"expected optim_bits 8 or 32, got {v!r}")
            if k == "placement" and v not in ("device", "paged", "offload", "cpu_step"):
                raise ValueError(f"expected placement 'device', 'paged' or 'offload', got {v!r}")
            if k == "is_paged":
                if not isinstance(v, bool):
                    raise ValueError(f"expected is_paged to be True or False, got {v!r}")
                k, v = "placement", ("paged" if v else "device")
            config[k] = v
        if not isinstance(parameters, (list, tuple)):
            parameters = [parameters]
        for p in parameters:
            entry = self._overrides.get(id(p))
            if entry is None or entry[0]() is not p:
                entry = (weakref.ref(p), {})
                self._overrides[id(p)] = entry
            entry[1].update(config)

    def register_module_override(self, module, param_name, config):
        """Overrides config for module's parameter param_name."""
        self.override_config(getattr(module, param_name), key_value_dict=config)

    def overrides_for(self, p):
        """p's overrides as a dict for the core ({} when it has none): state options by
        name, hyperparameters by name (tuples for betas)."""
        entry = self._overrides.get(id(p))
        if entry is None or entry[0]() is not p:
            return {}
        return {k: tuple(v) if isinstance(v, list) else v for k, v in entry[1].items()}
