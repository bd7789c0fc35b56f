#include "src/engine/checks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <ostream>
#include <string>

#include "octopage/cuda.h"
#include "octopage/error.h"
#include "src/engine/param_state.h"
#include "src/memory/cuda_memory.h"
#include "src/quant/formats.h"

namespace octopage::engine {
namespace {

struct Where {
  std::size_t group;
  std::size_t index;
  bool is_param;
};

std::ostream& operator<<(std::ostream& out, const Where& where) {
  if (where.group == kDefaults) return out << "optimizer defaults: ";
  out << "param group " << where.group;
  if (where.is_param) out << ", parameter " << where.index;
  return out << ": ";
}

// One value of a hyperparameter (value k of its arity) against its range.
void check_value(const rules::HyperSpec& h, int k, double v, const Where& where) {
  const std::string name = h.arity > 1 ? std::string(h.name) + "[" + std::to_string(k) + "]" : h.name;
  if (h.kind == rules::HyperKind::kFlag) {
    OCTOPAGE_CHECK(v == 0.0 || v == 1.0, where, "expected ", name, " to be True or False (1 or 0), got ", v);
  } else if (h.max == rules::kUnbounded) {
    OCTOPAGE_CHECK(std::isfinite(v) && v >= h.min, where, "expected ", name, " to be finite and >= ", h.min,
                   ", got ", v);
  } else {
    OCTOPAGE_CHECK(v >= h.min && (h.max_exclusive ? v < h.max : v <= h.max), where, "expected ", h.min,
                   " <= ", name, h.max_exclusive ? " < " : " <= ", h.max, ", got ", v);
  }
}

std::string hyperparameter_names(const rules::RuleEntry& rule) {
  std::string names;
  for (const rules::HyperSpec& h : rule.hyperparameters) names += (names.empty() ? "" : ", ") + std::string(h.name);
  return names;
}

// Note [Checking CUDA buffers]
// A TensorRef tagged cuda must hold device (or managed) memory of the current device, or
// a kernel would fault on it. Asking the runtime (cudaPointerGetAttributes) costs a
// driver call per buffer, as much as a small tensor's whole update, so it is asked when a
// parameter is added and when its state is created. Later steps trust the tag, which the
// adapters take from the framework's own tensor, and check only what is cheap: the tag,
// that the gradient's device is the parameter's, and that the state's is too.
void check_tensor(const TensorRef& t, const char* name, const Where& where, bool cuda_memory) {
  OCTOPAGE_CHECK(t.numel >= 0, where, "expected ", name, " element count >= 0, got ", t.numel);
  OCTOPAGE_CHECK(t.data != nullptr || t.numel == 0, where, "expected a non-null ", name,
                 " pointer for ", t.numel, " elements, got nullptr");
  OCTOPAGE_CHECK(t.dtype == DType::kFloat32 || t.dtype == DType::kBFloat16 ||
                     t.dtype == DType::kFloat16,
                 where, "expected ", name, " dtype float32, bfloat16 or float16, got dtype #",
                 static_cast<int>(t.dtype));
  if (t.device == Device::kCPU) return;
  OCTOPAGE_CHECK(t.device == Device::kCUDA, where, "expected ", name, " on the cpu or cuda, got device #",
                 static_cast<int>(t.device));
  OCTOPAGE_CHECK(cuda_built(), where, "expected ", name,
                 " on the cpu: this build of octopage has no CUDA backend, got a cuda buffer");
  OCTOPAGE_CHECK(cuda_device_count() > 0, where, "expected a usable CUDA device for the cuda ", name, ", got none: ",
                 cuda_unavailable_reason());
  if (t.numel == 0 || !cuda_memory) return;  // See Note [Checking CUDA buffers]
  const int device = memory::cuda::cuda_memory_device(t.data);
  OCTOPAGE_CHECK(device >= 0, where, "expected the cuda ", name,
                 "'s data in CUDA device or managed memory, got a host address");
  const int current = memory::cuda::current_device();
  OCTOPAGE_CHECK(device == current, where, "expected the cuda ", name, " on the current CUDA device ", current,
                 " (octopage steps there), got one on device ", device,
                 ": make its device current first (torch.cuda.set_device)");
}

// The options that shape a state: of a group, or of a parameter with its overrides.
void check_state_options(int optim_bits, Placement placement, int row, const Where& where) {
  OCTOPAGE_CHECK(optim_bits == 32 || optim_bits == 8, where,
                 "expected optim_bits 32 or 8, got ", optim_bits);
  const rules::RowSpec& spec = rules::row_spec(row);
  OCTOPAGE_CHECK(spec.quantizable || optim_bits != 8, where, spec.variant,
                 " is not supported with 8-bit state (optim_bits=8): use optim_bits=32 or ",
                 spec.quantizable_alternative);
  const bool cpu_step_ok = placement == Placement::kCpuStep && cuda_built();  // for cuda parameters only
  OCTOPAGE_CHECK(placement == Placement::kDevice || placement == Placement::kPaged ||
                     placement == Placement::kOffload || cpu_step_ok,
                 where, "expected placement 'device', 'paged' or 'offload', got '",
                 placement_name(placement), "'",
                 placement == Placement::kCpuStep
                     ? ": 'cpu_step' runs a GPU's update on the CPU and needs the CUDA backend, "
                       "which this build does not have"
                     : "");
}

}  // namespace

Resolved check_group_options(const rules::RuleEntry& rule, const GroupOptions& o, const GroupOptions* defaults,
                             std::size_t group, std::optional<std::size_t> param) {
  const Where where{group, param.value_or(0), param.has_value()};
  for (const Hyperparameter& given : o.hyperparameters()) {
    const bool known = std::any_of(rule.hyperparameters.begin(), rule.hyperparameters.end(),
                                   [&](const rules::HyperSpec& h) { return given.name == h.name; });
    OCTOPAGE_CHECK(known, where, "expected hyperparameters of ", rule.info.display_name, " (",
                   hyperparameter_names(rule), "), got '", given.name, "'");
  }
  Resolved resolved;
  resolved.values.reserve(static_cast<std::size_t>(rule.num_slots));
  for (const rules::HyperSpec& h : rule.hyperparameters) {
    const Hyperparameter* value = o.find(h.name);
    if (value == nullptr && defaults != nullptr) value = defaults->find(h.name);
    if (value == nullptr) {
      resolved.values.insert(resolved.values.end(), h.defaults, h.defaults + h.arity);
      continue;
    }
    OCTOPAGE_CHECK(value->values.size() == static_cast<std::size_t>(h.arity), where, "expected ", h.name,
                   " to have ", h.arity, h.arity == 1 ? " value" : " values", ", got ", value->values.size());
    for (int k = 0; k < h.arity; ++k) {
      check_value(h, k, value->values[k], where);
      resolved.values.push_back(value->values[k]);
    }
  }
  const char* problem = rule.check(resolved.values.data());
  OCTOPAGE_CHECK(problem == nullptr, where, problem);
  resolved.row = rule.first_row + rule.row(resolved.values.data());
  check_state_options(o.optim_bits, o.placement, resolved.row, where);
  OCTOPAGE_CHECK(o.min_8bit_size >= 0, where, "expected min_8bit_size >= 0, got ",
                 o.min_8bit_size);
  OCTOPAGE_CHECK(o.percentile_clipping >= 0 && o.percentile_clipping <= 100, where,
                 "expected percentile_clipping in [0, 100] (100: off), got ", o.percentile_clipping);
  OCTOPAGE_CHECK(std::isfinite(o.max_unorm) && o.max_unorm >= 0.0, where,
                 "expected max_unorm to be finite and >= 0 (0: off), got ", o.max_unorm);
  return resolved;
}

bool has_option_overrides(const ParamOverrides& overrides) {
  return !overrides.hyperparameters.empty() || overrides.min_8bit_size || overrides.max_unorm;
}

GroupOptions overridden(GroupOptions options, const ParamOverrides& overrides) {
  for (const Hyperparameter& h : overrides.hyperparameters) options.set(h.name, h.values);
  options.min_8bit_size = overrides.min_8bit_size.value_or(options.min_8bit_size);
  options.max_unorm = overrides.max_unorm.value_or(options.max_unorm);
  return options;
}

Resolved check_overridden_options(const rules::RuleEntry& rule, const GroupOptions& options,
                                  const GroupOptions* defaults, int group_row, std::size_t group, std::size_t index) {
  const Resolved resolved = check_group_options(rule, options, defaults, group, index);
  const Where where{group, index, true};
  OCTOPAGE_CHECK(resolved.row == group_row, where, "expected overrides that keep its group's ",
                 rules::row_spec(group_row).variant, ", got overrides that select ", rules::row_spec(resolved.row).variant,
                 ": a parameter's state follows its group's variant");
  return resolved;
}

void check_parameter(const Parameter& p, const GroupOptions& options, int row, std::size_t group,
                     std::size_t index, bool cuda_memory) {
  const Where where{group, index, true};
  if (p.overrides.optim_bits || p.overrides.placement) {
    check_state_options(p.overrides.optim_bits.value_or(options.optim_bits),
                        p.overrides.placement.value_or(options.placement), row, where);
  }
  OCTOPAGE_CHECK(p.overrides.format_numel.value_or(p.value.numel) >= p.value.numel, where,
                 "expected format_numel (the whole parameter's size) >= the buffer's ", p.value.numel,
                 " elements, got ", *p.overrides.format_numel);
  check_tensor(p.value, "parameter", where, cuda_memory);
  OCTOPAGE_CHECK(p.value.device == Device::kCUDA ||
                     p.overrides.placement.value_or(options.placement) != Placement::kCpuStep,
                 where, "expected a cuda parameter for placement 'cpu_step' (it runs a GPU's update on the CPU), "
                 "got a cpu parameter: use 'device', 'paged' or 'offload'");
  OCTOPAGE_CHECK(p.value.device != Device::kCUDA || (options.percentile_clipping == 100 && options.max_unorm == 0.0),
                 where, "expected percentile_clipping=100 and max_unorm=0 (off) for a cuda parameter, got ",
                 options.percentile_clipping, " and ", options.max_unorm,
                 ": the CUDA backend does not take whole-tensor norms yet; clip with "
                 "torch.nn.utils.clip_grad_norm_ instead");
  if (p.grad.data == nullptr) return;  // no gradient: skipped by step()
  check_tensor(p.grad, "gradient", where, cuda_memory);
  OCTOPAGE_CHECK(p.grad.numel == p.value.numel, where, "expected a gradient of ", p.value.numel,
                 " elements (the parameter's), got ", p.grad.numel);
  OCTOPAGE_CHECK(p.grad.dtype == p.value.dtype, where, "expected gradient dtype ",
                 dtype_name(p.value.dtype), " (the parameter's), got ", dtype_name(p.grad.dtype));
  OCTOPAGE_CHECK(p.grad.device == p.value.device, where, "expected the gradient on ",
                 device_name(p.value.device), " (the parameter's device), got ", device_name(p.grad.device));
}

void check_state_fits(const ParamState& state, const Parameter& p, int row, std::size_t group,
                      std::size_t index) {
  const Where where{group, index, true};
  OCTOPAGE_CHECK(p.value.numel == state.numel, where, "expected ", state.numel,
                 " elements (the size its optimizer state was created for), got ", p.value.numel);
  OCTOPAGE_CHECK(p.value.dtype == state.dtype, where, "expected dtype ", dtype_name(state.dtype),
                 " (the dtype its optimizer state was created for), got ",
                 dtype_name(p.value.dtype));
  OCTOPAGE_CHECK(p.value.device == state.device, where, "expected a ", device_name(state.device),
                 " parameter (the device its optimizer state was created on), got a ",
                 device_name(p.value.device), " one: save the state and load it after moving the model");
  OCTOPAGE_CHECK(row == state.row, where, "expected ", state.spec().variant,
                 " (its optimizer state was created so), got ", rules::row_spec(row).variant);
}

void check_loaded_state(const StateSnapshot& s, std::int64_t numel, const rules::RuleEntry& rule, int row,
                        std::size_t group, std::size_t index) {
  const Where where{group, index, true};
  OCTOPAGE_CHECK(s.step >= 0, where, "expected a state's step >= 0, got ", s.step);
  if (s.step == 0) return;  // no state: the parameter starts afresh
  const auto check_size = [&](std::size_t size, std::int64_t expected, const std::string& name) {
    OCTOPAGE_CHECK(size == static_cast<std::size_t>(expected), where, "expected ", name, " of ",
                   expected, " values (", numel, " elements), got ", size,
                   ": the state belongs to a parameter of another size");
  };
  const auto spec_of = [&](const std::string& name) -> const rules::StateSpec* {
    for (int r = rule.first_row; r < rule.first_row + rule.num_rows; ++r) {
      const rules::RowSpec& spec = rules::row_spec(r);
      for (int k = 0; k < spec.num_states; ++k) {
        if (name == spec.states[k].name) return &spec.states[k];
      }
    }
    return nullptr;
  };
  for (std::size_t a = 0; a < s.arrays.size(); ++a) {
    const StateArray& array = s.arrays[a];
    const rules::StateSpec* state = spec_of(array.name);
    OCTOPAGE_CHECK(state != nullptr, where, "expected states of ", rule.info.display_name,
                   ", got a state array '", array.name, "': the state belongs to another rule");
    for (std::size_t b = 0; b < a; ++b) {
      OCTOPAGE_CHECK(s.arrays[b].name != array.name, where, "expected each state array once, got '",
                     array.name, "' twice");
    }
    // Named as bitsandbytes' state_dict has them: "state1 (exp_avg)", "absmax1".
    const std::string bnb = state->bnb_name;
    if (s.format == StateFormat::kFp32) {
      check_size(array.values.size(), numel, bnb == array.name ? bnb : bnb + " (" + array.name + ")");
      OCTOPAGE_CHECK(array.codes.empty() && array.absmax.empty(), where,
                     "expected a 32-bit state without 8-bit codes or absmax, got them in ", array.name);
    } else {
      const bool numbered = bnb.rfind("state", 0) == 0;
      check_size(array.codes.size(), numel, bnb + " (8-bit codes)");
      check_size(array.absmax.size(), quant::q8_num_blocks(numel),
                 numbered ? "absmax" + bnb.substr(5) : bnb + " absmax");
      OCTOPAGE_CHECK(array.values.empty(), where, "expected an 8-bit state without 32-bit values, got them in ",
                     array.name);
    }
  }
  OCTOPAGE_CHECK(s.gnorm_vec.empty() || s.gnorm_vec.size() == kGnormHistory, where, "expected gnorm_vec of ",
                 kGnormHistory, " values (percentile_clipping's history) or none, got ", s.gnorm_vec.size());
  OCTOPAGE_CHECK(s.unorm_vec.size() <= 1, where, "expected unorm_vec of 1 value (max_unorm's last squared update "
                 "norm) or none, got ", s.unorm_vec.size());
  const rules::RowSpec& spec = rules::row_spec(row);
  for (int k = 0; k < spec.num_states; ++k) {
    OCTOPAGE_CHECK(s.find(spec.states[k].name) != nullptr, where, "the group has ", spec.variant,
                   " but the state has no ", spec.states[k].name,
                   " (it was saved with another setting or with 8-bit state)");
  }
}

ParamSpan span_of(const Parameter& p, std::size_t group, std::size_t index) {
  const char* begin = static_cast<const char*>(p.value.data);
  return {begin, begin + p.value.numel * static_cast<std::int64_t>(dtype_size(p.value.dtype)),
          group, index};
}

void check_no_overlap(std::vector<ParamSpan> spans) {
  std::erase_if(spans, [](const ParamSpan& s) { return s.begin == s.end; });
  const std::less<const char*> before;
  std::sort(spans.begin(), spans.end(),
            [&](const ParamSpan& a, const ParamSpan& b) { return before(a.begin, b.begin); });
  for (std::size_t i = 1; i < spans.size(); ++i) {
    const ParamSpan& a = spans[i - 1];
    const ParamSpan& b = spans[i];
    OCTOPAGE_CHECK(!before(b.begin, a.end), "expected every parameter in its own memory, got "
                   "parameter ", a.index, " of param group ", a.group, " and parameter ", b.index,
                   " of param group ", b.group,
                   " sharing memory (a parameter may appear only once)");
  }
}

}  // namespace octopage::engine
