// octopage._core: the compiled half of the Python package. It binds the framework-free
// C++ optimizer and takes arrays through DLPack (nanobind's ndarray), so it links no
// torch: torch tensors, NumPy arrays and anything else with __dlpack__ work, with every
// torch release. The torch.optim semantics are plain Python (octopage/optim).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "octopage/octopage.h"

namespace nb = nanobind;

namespace octopage::python {
namespace {

using Array = nb::ndarray<nb::ro>;  // any dtype and device: checked here, with a clear message

std::string describe(nb::dlpack::dtype t) {
  const char* kind = "other";
  switch (static_cast<nb::dlpack::dtype_code>(t.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bfloat: kind = "bfloat"; break;
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    case nb::dlpack::dtype_code::Bool: kind = "bool"; break;
    default: break;
  }
  return kind + std::to_string(t.bits);
}

DType dtype_of(const Array& a, const char* what) {
  const nb::dlpack::dtype t = a.dtype();
  if (t == nb::dtype<float>()) return DType::kFloat32;
  if (t.lanes == 1 && t.bits == 16) {
    if (t.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Bfloat)) return DType::kBFloat16;
    if (t.code == static_cast<std::uint8_t>(nb::dlpack::dtype_code::Float)) return DType::kFloat16;
  }
  detail::throw_error(ErrorKind::kInvalidArgument, "expected ", what,
                      " of dtype float32, bfloat16 or float16, got ", describe(t));
}

// A dense row-major tensor: the strides of its shape (dimensions of size 1 may have any;
// an empty tensor is dense whatever its strides).
bool is_contiguous(const Array& a) {
  if (a.size() == 0) return true;
  std::int64_t expected = 1;
  for (std::size_t d = a.ndim(); d-- > 0;) {
    if (a.shape(d) != 1 && a.stride(d) != expected) return false;
    expected *= static_cast<std::int64_t>(a.shape(d));
  }
  return true;
}

TensorRef tensor_ref(const Array& a, const char* what) {
  TensorRef t;
  t.dtype = dtype_of(a, what);
  const bool on_cuda = a.device_type() == nb::device::cuda::value;
  if (on_cuda && !cuda_built()) {
    detail::throw_error(ErrorKind::kInvalidArgument, "expected ", what,
                        " on the CPU, got a CUDA tensor: this build of octopage has no CUDA backend");
  }
  OCTOPAGE_CHECK(on_cuda || a.device_type() == nb::device::cpu::value, "expected ", what,
                 " on the CPU or a CUDA device, got DLPack device type ", a.device_type());
  OCTOPAGE_CHECK(is_contiguous(a), "expected ", what,
                 " to be contiguous (octopage updates memory in place), got a strided view; "
                 "call .contiguous() on the parameter itself, not on a view");
  t.data = a.size() == 0 ? empty_tensor_data() : const_cast<void*>(a.data());
  t.numel = static_cast<std::int64_t>(a.size());
  t.device = on_cuda ? Device::kCUDA : Device::kCPU;
  return t;
}

// A tensor as step() takes it: the (address, numel, dtype code, is_cuda) that
// octopage.optim reads off a dense, contiguous tensor of a supported dtype, which spares
// every tensor of every step a DLPack round trip (about 2 us each; Python reads the four
// in well under one), or any array, converted and checked through DLPack.
using StepTensor = std::variant<std::tuple<std::uintptr_t, std::int64_t, int, bool>, Array>;

TensorRef tensor_ref(const StepTensor& t, const char* what) {
  if (const Array* a = std::get_if<Array>(&t)) return tensor_ref(*a, what);
  const auto& [address, numel, code, is_cuda] = std::get<0>(t);
  OCTOPAGE_CHECK(code >= 0 && code <= static_cast<int>(DType::kFloat16) && numel >= 0,
                 "expected ", what, " as (address, numel, dtype code, is_cuda), got dtype code ", code,
                 " and numel ", numel);
  void* data = numel == 0 ? empty_tensor_data() : reinterpret_cast<void*>(address);
  return TensorRef{data, numel, static_cast<DType>(code), is_cuda ? Device::kCUDA : Device::kCPU};
}

// Device memory for CUDA state from two Python callables, alloc(nbytes) -> address and
// free(address): octopage.optim passes PyTorch's caching allocator, so that
// torch.cuda.memory_allocated() counts octopage's state. Called with or without the GIL.
class PyDeviceAllocator final : public Allocator {
 public:
  PyDeviceAllocator(nb::object alloc, nb::object free) : alloc_(std::move(alloc)), free_(std::move(free)) {}
  ~PyDeviceAllocator() override {
    if (!Py_IsInitialized()) {  // the interpreter is gone: leave the objects alone
      alloc_.release();
      free_.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    alloc_.reset();
    free_.reset();
  }
  void* allocate(std::size_t bytes) override {
    nb::gil_scoped_acquire gil;
    try {
      return reinterpret_cast<void*>(nb::cast<std::uintptr_t>(alloc_(bytes)));
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("octopage: allocating CUDA state through PyTorch");
      return nullptr;  // Buffer reports the failure as out of memory
    }
  }
  void deallocate(void* p, std::size_t) noexcept override {
    if (!Py_IsInitialized()) return;
    nb::gil_scoped_acquire gil;
    try {
      free_(reinterpret_cast<std::uintptr_t>(p));
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("octopage: freeing CUDA state through PyTorch");
    }
  }
  Tier tier() const override { return Tier::kDevice; }

 private:
  nb::object alloc_, free_;
};

Placement placement_from(const std::string& name) {
  if (name == "device") return Placement::kDevice;
  if (name == "paged") return Placement::kPaged;
  if (name == "offload") return Placement::kOffload;
  if (name == "cpu_step") return Placement::kCpuStep;
  detail::throw_error(ErrorKind::kInvalidArgument,
                      "expected placement 'device', 'paged', 'offload' or 'cpu_step', got '", name, "'");
}

// One hyperparameter's value(s) as Python passes them: a number, a bool (a flag: 1 or 0)
// or a tuple or list of numbers ("betas").
std::vector<double> hyperparameter_values(const std::string& name, nb::handle value) {
  const auto number = [&](nb::handle v, const std::string& what) {
    double d = 0.0;
    OCTOPAGE_CHECK(nb::try_cast<double>(v, d), "expected ", what, " to be a number, got ",
                   nb::cast<std::string>(nb::repr(v)));
    return d;
  };
  if (nb::isinstance<nb::tuple>(value) || nb::isinstance<nb::list>(value)) {
    std::vector<double> values;
    std::size_t k = 0;
    for (nb::handle v : value) values.push_back(number(v, name + "[" + std::to_string(k++) + "]"));
    return values;
  }
  if (nb::isinstance<nb::bool_>(value)) return {nb::cast<bool>(value) ? 1.0 : 0.0};
  return {number(value, name)};
}

// A named option's value as T (an int, a number or a string); ValueError saying what was
// expected otherwise.
template <class T>
T option_value(const std::string& name, nb::handle value) {
  T out{};
  const char* what = std::is_same_v<T, std::string> ? "a string" : std::is_floating_point_v<T> ? "a number" : "an int";
  OCTOPAGE_CHECK(nb::try_cast<T>(value, out), "expected ", name, " to be ", what, ", got ",
                 nb::cast<std::string>(nb::repr(value)));
  return out;
}

std::string option_name(nb::handle key, const char* what) {
  std::string name;
  OCTOPAGE_CHECK(nb::try_cast<std::string>(key, name), "expected ", what, " names to be strings, got ",
                 nb::cast<std::string>(nb::repr(key)));
  return name;
}

// A param group's options as Python passes them: a dict of the typed fields optim_bits,
// min_8bit_size, percentile_clipping, max_unorm and placement, and the rule's
// hyperparameters by name (the core refuses names the rule does not have).
GroupOptions group_options(const nb::dict& options) {
  GroupOptions g;
  for (const auto& [key, value] : options) {
    const std::string name = option_name(key, "option");
    if (name == "optim_bits") {
      g.optim_bits = option_value<int>(name, value);
    } else if (name == "min_8bit_size") {
      g.min_8bit_size = option_value<std::int64_t>(name, value);
    } else if (name == "percentile_clipping") {
      g.percentile_clipping = option_value<int>(name, value);
    } else if (name == "max_unorm") {
      g.max_unorm = option_value<double>(name, value);
    } else if (name == "placement") {
      g.placement = placement_from(option_value<std::string>(name, value));
    } else {
      g.set(name, hyperparameter_values(name, value));
    }
  }
  return g;
}

// A parameter's overrides as Python passes them (octopage.optim's GlobalOptimManager): a
// dict of optim_bits, min_8bit_size, placement, max_unorm, format_numel (the whole
// parameter's size for a shard) and the rule's hyperparameters by name.
ParamOverrides param_overrides(const nb::dict& given) {
  ParamOverrides o;
  for (const auto& [key, value] : given) {
    const std::string name = option_name(key, "override");
    if (name == "optim_bits") {
      o.optim_bits = option_value<int>(name, value);
    } else if (name == "min_8bit_size") {
      o.min_8bit_size = option_value<std::int64_t>(name, value);
    } else if (name == "format_numel") {
      o.format_numel = option_value<std::int64_t>(name, value);
    } else if (name == "max_unorm") {
      o.max_unorm = option_value<double>(name, value);
    } else if (name == "placement") {
      o.placement = placement_from(option_value<std::string>(name, value));
    } else {
      o.hyperparameters.push_back({name, hyperparameter_values(name, value)});
    }
  }
  return o;
}

IoBackend io_backend_from(const std::string& name) {
  if (name == "auto") return IoBackend::kAuto;
  if (name == "io_uring") return IoBackend::kIoUring;
  if (name == "threads") return IoBackend::kThreads;
  detail::throw_error(ErrorKind::kInvalidArgument,
                      "expected io_backend 'auto', 'io_uring' or 'threads', got '", name, "'");
}

template <class T>
nb::ndarray<nb::numpy, T> to_numpy(std::vector<T> values) {
  auto* owner = new std::vector<T>(std::move(values));
  nb::capsule free_owner(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(owner->data(), {owner->size()}, free_owner);
}

// A saved state array, copied: exactly `dtype`, on the CPU, contiguous.
template <class T>
std::vector<T> copy_state_array(const std::optional<Array>& a, const char* name) {
  if (!a) return {};
  OCTOPAGE_CHECK(a->dtype() == nb::dtype<T>(), "expected ", name, " of dtype ",
                 describe(nb::dtype<T>()), ", got ", describe(a->dtype()));
  OCTOPAGE_CHECK(a->device_type() == nb::device::cpu::value && is_contiguous(*a), "expected ", name,
                 " as a contiguous CPU array");
  const auto* data = static_cast<const T*>(a->data());
  return std::vector<T>(data, data + a->size());
}

// A dict {name: array} of saved state arrays, each copied as `T`.
template <class T>
std::vector<std::pair<std::string, std::vector<T>>> copy_state_arrays(const std::optional<nb::dict>& arrays,
                                                                      const char* what) {
  std::vector<std::pair<std::string, std::vector<T>>> out;
  if (!arrays) return out;
  for (const auto& [key, value] : *arrays) {
    std::string name;
    OCTOPAGE_CHECK(nb::try_cast<std::string>(key, name), "expected state array names to be strings, got ",
                   nb::cast<std::string>(nb::repr(key)));
    const std::string label = name + " " + what;
    Array a;
    OCTOPAGE_CHECK(nb::try_cast<Array>(value, a), "expected ", label, " as an array, got ",
                   nb::type_name(value.type()).c_str());
    out.emplace_back(name, copy_state_array<T>(a, label.c_str()));
  }
  return out;
}

// One parameter's saved state as Python passes it: (group, index, step, format '8bit' or
// '32bit', {state name: fp32 values or uint8 codes}, {state name: absmax} or None,
// {"gnorm_vec" and/or "unorm_vec": fp32 values} or None), the state names torch's (the
// rule's StateInfo::name).
using SavedState = std::tuple<std::size_t, std::size_t, std::int64_t, std::string, std::optional<nb::dict>,
                              std::optional<nb::dict>, std::optional<nb::dict>>;

StateLoad state_load(const SavedState& saved) {
  const auto& [group, index, step, format, states, absmax, norms] = saved;
  StateLoad load;
  load.group = group;
  load.index = index;
  load.state.step = step;
  for (auto& [name, values] : copy_state_arrays<float>(norms, "(norm history)")) {
    OCTOPAGE_CHECK(name == "gnorm_vec" || name == "unorm_vec", "expected norm histories 'gnorm_vec' or "
                   "'unorm_vec', got '", name, "'");
    (name == "gnorm_vec" ? load.state.gnorm_vec : load.state.unorm_vec) = std::move(values);
  }
  OCTOPAGE_CHECK(format == "8bit" || format == "32bit", "expected a state format '8bit' or '32bit', got '",
                 format, "'");
  if (format == "32bit") {
    load.state.format = StateFormat::kFp32;
    for (auto& [name, values] : copy_state_arrays<float>(states, "(32-bit values)")) {
      load.state.arrays.push_back({name, std::move(values), {}, {}});
    }
    return load;
  }
  load.state.format = StateFormat::kQ8;
  for (auto& [name, codes] : copy_state_arrays<std::uint8_t>(states, "(8-bit codes)")) {
    load.state.arrays.push_back({name, {}, std::move(codes), {}});
  }
  for (auto& [name, values] : copy_state_arrays<float>(absmax, "absmax")) {
    StateArray* array = load.state.find(name);
    OCTOPAGE_CHECK(array != nullptr, "expected an absmax of each 8-bit state array, got one of '", name,
                   "', which has no codes");
    array->absmax = std::move(values);
  }
  return load;
}

// The registry (octopage/rules.h) as plain Python data: a list of dicts mirroring RuleInfo.
nb::list rules_as_python() {
  nb::list rules;
  for (const RuleInfo& rule : registered_rules()) {
    nb::list hyperparameters;
    for (const HyperparameterInfo& h : rule.hyperparameters) {
      nb::dict d;
      d["name"] = h.name;
      d["defaults"] = nb::cast(h.defaults);
      d["kind"] = h.kind == HyperparameterKind::kFlag ? "flag" : "real";
      d["min"] = h.min;
      d["max"] = h.max;
      d["max_exclusive"] = h.max_exclusive;
      hyperparameters.append(d);
    }
    nb::list variants;
    for (const VariantInfo& v : rule.variants) {
      nb::list states;
      for (const StateInfo& s : v.states) {
        nb::dict d;
        d["name"] = s.name;
        d["bnb_name"] = s.bnb_name;
        d["is_signed"] = s.is_signed;
        states.append(d);
      }
      nb::dict d;
      d["name"] = v.name;
      d["states"] = states;
      d["quantizable"] = v.quantizable;
      d["quantizable_alternative"] = v.quantizable_alternative;
      variants.append(d);
    }
    nb::dict d;
    d["name"] = rule.name;
    d["display_name"] = rule.display_name;
    d["default_max_unorm"] = rule.default_max_unorm;
    d["hyperparameters"] = hyperparameters;
    d["variants"] = variants;
    rules.append(d);
  }
  return rules;
}

class PyOptimizer {
 public:
  PyOptimizer(const std::string& rule, std::optional<std::string> offload_dir, bool keep_files,
              std::uint64_t ring_bytes, std::uint64_t chunk_bytes, bool direct_io,
              const std::string& io_backend, const nb::dict& defaults, bool pin_host_memory,
              nb::object device_alloc, nb::object device_free)
      : optimizer_(rule, group_options(defaults),
                   tier_options(std::move(offload_dir), keep_files, ring_bytes, chunk_bytes, direct_io,
                                io_backend, pin_host_memory, std::move(device_alloc), std::move(device_free))) {}

  // The CUDA stream (an address, 0 for the legacy default stream) that CUDA steps, state
  // copies and loads run on; octopage.optim passes torch.cuda.current_stream()'s.
  void set_cuda_stream(std::uintptr_t stream) { optimizer_.set_cuda_stream(reinterpret_cast<CudaStream>(stream)); }

  // Adds a group of parameters (with their overrides); returns its index.
  std::size_t add_group(const std::vector<Array>& params, const std::vector<nb::dict>& overrides,
                        const nb::dict& options) {
    OCTOPAGE_CHECK(overrides.size() == params.size(), "expected one override entry per parameter, got ",
                   overrides.size(), " for ", params.size(), " parameters");
    std::vector<Parameter> group;
    group.reserve(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      Parameter p;
      p.value = tensor_ref(params[i], "a parameter");
      p.overrides = param_overrides(overrides[i]);
      group.push_back(p);
    }
    optimizer_.add_param_group(std::move(group), group_options(options));
    return optimizer_.num_param_groups() - 1;
  }

  // One step: for each group, its current options, parameters and gradients (None: no
  // gradient). Parameters are passed again since a framework may swap their storage.
  using StepGroup = std::tuple<nb::dict, std::vector<StepTensor>, std::vector<std::optional<StepTensor>>>;
  void step(const std::vector<StepGroup>& groups) {
    OCTOPAGE_CHECK(groups.size() == optimizer_.num_param_groups(), "expected ",
                   optimizer_.num_param_groups(), " parameter groups, got ", groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const auto& [options, params, grads] = groups[g];
      ParamGroup& group = optimizer_.param_group(g);
      OCTOPAGE_CHECK(params.size() == group.size() && grads.size() == group.size(), "expected ",
                     group.size(), " parameters and gradients in group ", g, ", got ", params.size(),
                     " and ", grads.size());
      group.options = group_options(options);
      for (std::size_t i = 0; i < params.size(); ++i) {
        group.param(i).value = tensor_ref(params[i], "a parameter");
        group.set_grad(i, grads[i] ? tensor_ref(*grads[i], "a gradient") : TensorRef{});
      }
    }
    nb::gil_scoped_release release;
    optimizer_.step();
  }

  // A copy of a parameter's state: {"step", "format" ('8bit' or '32bit'), "placement",
  // "states": {name: fp32 values or uint8 codes}, and for 8-bit "absmax": {name: absmax}},
  // the names torch's, in the order of the rule variant's states.
  nb::dict state(std::size_t group, std::size_t index) const {
    StateSnapshot s = optimizer_.state(group, index);
    const bool q8 = s.format == StateFormat::kQ8;
    nb::dict d, states, absmax;
    d["step"] = s.step;
    d["format"] = q8 ? "8bit" : "32bit";
    d["placement"] = placement_name(s.placement);
    for (StateArray& a : s.arrays) {
      if (q8) {
        states[a.name.c_str()] = to_numpy(std::move(a.codes));
        absmax[a.name.c_str()] = to_numpy(std::move(a.absmax));
      } else {
        states[a.name.c_str()] = to_numpy(std::move(a.values));
      }
    }
    d["states"] = states;
    if (q8) d["absmax"] = absmax;
    if (!s.gnorm_vec.empty()) d["gnorm_vec"] = to_numpy(std::move(s.gnorm_vec));
    if (!s.unorm_vec.empty()) d["unorm_vec"] = to_numpy(std::move(s.unorm_vec));
    return d;
  }

  // Every parameter's step count, by group (0: no state yet).
  std::vector<std::vector<std::int64_t>> state_steps() const {
    std::vector<std::vector<std::int64_t>> steps(optimizer_.num_param_groups());
    for (std::size_t g = 0; g < steps.size(); ++g) {
      for (std::size_t i = 0; i < optimizer_.param_group(g).size(); ++i) {
        steps[g].push_back(optimizer_.state_step(g, i));
      }
    }
    return steps;
  }

  // Loads saved states (Note [Loading state]) after taking every group's current options,
  // which decide each state's format.
  void load_state(const std::vector<nb::dict>& options, const std::vector<SavedState>& saved) {
    OCTOPAGE_CHECK(options.size() == optimizer_.num_param_groups(), "expected the options of ",
                   optimizer_.num_param_groups(), " parameter groups, got ", options.size());
    std::vector<GroupOptions> converted;
    for (const nb::dict& o : options) converted.push_back(group_options(o));
    std::vector<StateLoad> loads;
    for (const SavedState& s : saved) loads.push_back(state_load(s));
    for (std::size_t g = 0; g < converted.size(); ++g) optimizer_.param_group(g).options = converted[g];
    nb::gil_scoped_release release;
    optimizer_.load_state(std::move(loads));
  }

  nb::dict memory_report() const {
    const MemoryReport r = optimizer_.memory_report();
    nb::dict d;
    nb::dict state, peak;
    for (std::size_t t = 0; t < kNumTiers; ++t) {
      state[tier_name(static_cast<Tier>(t))] = r.state_bytes[t];
      peak[tier_name(static_cast<Tier>(t))] = r.peak_bytes[t];
    }
    d["state_bytes"] = state;
    d["peak_bytes"] = peak;
    d["staging_bytes"] = r.staging_bytes;
    d["staging_tier"] = tier_name(r.staging_tier);
    d["paged_resident_bytes"] = r.paged_resident_bytes;
    d["tensors_8bit"] = r.tensors_8bit;
    d["tensors_32bit"] = r.tensors_32bit;
    d["elements_8bit"] = r.elements_8bit;
    d["elements_32bit"] = r.elements_32bit;
    return d;
  }

  std::vector<std::string> state_files() const { return optimizer_.state_files(); }
  void page_out() {
    nb::gil_scoped_release release;
    optimizer_.page_out();
  }
  bool failed() const { return optimizer_.failed(); }

 private:
  static TierOptions tier_options(std::optional<std::string> offload_dir, bool keep_files,
                                  std::uint64_t ring_bytes, std::uint64_t chunk_bytes, bool direct_io,
                                  const std::string& io_backend, bool pin_host_memory, nb::object device_alloc,
                                  nb::object device_free) {
    TierOptions t;
    t.pin_host_memory = pin_host_memory;
    if (!device_alloc.is_none() && !device_free.is_none()) {
      t.device_allocator = std::make_shared<PyDeviceAllocator>(std::move(device_alloc), std::move(device_free));
    }
    t.offload_dir = offload_dir.value_or("");
    t.keep_files = keep_files;
    t.ring_bytes = ring_bytes;
    t.chunk_bytes = chunk_bytes;
    t.direct_io = direct_io;
    t.io_backend = io_backend_from(io_backend);
    return t;
  }

  Optimizer optimizer_;
};

}  // namespace
}  // namespace octopage::python

NB_MODULE(_core, m) {
  using namespace octopage;
  using octopage::python::PyOptimizer;
  m.doc() = "octopage's compiled core (framework-free; arrays through DLPack)";

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(e.kind() == ErrorKind::kInvalidArgument ? PyExc_ValueError : PyExc_RuntimeError,
                      e.what());
    }
  });

  m.attr("__version__") = OCTOPAGE_VERSION_STRING;
  const TierOptions tiers;
  m.attr("DEFAULT_RING_BYTES") = tiers.ring_bytes;
  m.attr("DEFAULT_CHUNK_BYTES") = tiers.chunk_bytes;
  m.attr("Q8_BLOCK_SIZE") = kQ8BlockSize;
  m.attr("CUDA_BUILT") = cuda_built();
  m.def("cuda_unavailable_reason", &cuda_unavailable_reason,
        "Empty when CUDA tensors can be stepped here, else why not.");
  nb::dict dtype_codes;  // step()'s dtype codes (StepTensor), by torch's dtype names
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) dtype_codes[dtype_name(t)] = static_cast<int>(t);
  m.attr("DTYPE_CODES") = dtype_codes;
  m.def("num_threads", &num_threads, "Threads a step uses, the calling thread included.");
  m.def("set_num_threads", [](int n) {
    OCTOPAGE_CHECK(n >= 1, "expected num_threads >= 1, got ", n);
    set_num_threads(n);
  });

  m.def("follow_num_threads", &follow_num_threads, nb::arg("n"),
        "Use n threads (the framework's) unless set_num_threads or OCTOPAGE_NUM_THREADS chose a count.");
  m.def("rules", &python::rules_as_python,
        "The registered update rules (octopage/rules.h) as a list of dicts mirroring RuleInfo.");
  m.def("q8_code", [](bool is_signed) {
    const auto& values = q8_code_values(is_signed);
    return python::to_numpy(std::vector<float>(values.begin(), values.end()));
  }, nb::arg("signed"), "The 256 values of 8-bit state's code (bitsandbytes' qmap1: signed, qmap2: unsigned).");

  nb::class_<PyOptimizer>(m, "Optimizer")
      .def(nb::init<const std::string&, std::optional<std::string>, bool, std::uint64_t, std::uint64_t,
                    bool, const std::string&, const nb::dict&, bool, nb::object, nb::object>(),
           nb::arg("rule"), nb::arg("offload_dir").none(), nb::arg("keep_files"), nb::arg("ring_bytes"),
           nb::arg("chunk_bytes"), nb::arg("direct_io"), nb::arg("io_backend"), nb::arg("defaults"),
           nb::arg("pin_host_memory") = true, nb::arg("device_alloc").none() = nb::none(),
           nb::arg("device_free").none() = nb::none())
      .def("set_cuda_stream", &PyOptimizer::set_cuda_stream, nb::arg("stream"))
      .def("add_group", &PyOptimizer::add_group, nb::arg("params"), nb::arg("overrides"), nb::arg("options"))
      .def("step", &PyOptimizer::step, nb::arg("groups"))
      .def("state", &PyOptimizer::state, nb::arg("group"), nb::arg("index"))
      .def("state_steps", &PyOptimizer::state_steps)
      .def("load_state", &PyOptimizer::load_state, nb::arg("options"), nb::arg("states"))
      .def("memory_report", &PyOptimizer::memory_report)
      .def("state_files", &PyOptimizer::state_files)
      .def("page_out", &PyOptimizer::page_out)
      .def_prop_ro("failed", &PyOptimizer::failed);
}
