"""Per-parameter overrides, as bitsandbytes' GlobalOptimManager: e.g. an embedding kept
in 32-bit state, or one large tensor offloaded while the rest stays on the device.

    mng = octopage.optim.GlobalOptimManager.get_instance()
    mng.register_parameters(model.parameters())        # optional, as in bitsandbytes
    mng.override_config(model.emb.weight, "optim_bits", 32)
    opt = octopage.optim.AdamW8bit(model.parameters())

Overrides are looked up when a parameter is added to an optimizer and apply to the
state created for it. Keys: ``optim_bits`` (8 or 32), ``placement`` ('device', 'paged',
'offload') and ``is_paged`` (True means placement 'paged').
"""
import weakref

_KEYS = ("optim_bits", "placement", "is_paged")


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
            if k not in _KEYS:
                raise ValueError(f"expected an override of {', '.join(_KEYS)}, got {k!r}: octopage "
                                 "overrides the state's format and placement, not hyperparameters")
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
        """(optim_bits or None, placement or None, format_numel or None) for the core.
        format_numel (the size that decides 8-bit or 32-bit) is set by the optimizer for
        sharded parameters, never by the manager."""
        entry = self._overrides.get(id(p))
        if entry is None or entry[0]() is not p:
            return (None, None, None)
        config = entry[1]
        return (config.get("optim_bits"), config.get("placement"), None)
