#include "src/engine/checks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <ostream>

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

void check_non_negative(double value, const char* name, const Where& where) {
  OCTOPAGE_CHECK(std::isfinite(value) && value >= 0.0, where, "expected ", name,
                 " to be finite and >= 0, got ", value);
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
void check_state_options(int optim_bits, Placement placement, bool amsgrad, const Where& where) {
  OCTOPAGE_CHECK(optim_bits == 32 || optim_bits == 8, where,
                 "expected optim_bits 32 or 8, got ", optim_bits);
  OCTOPAGE_CHECK(!(amsgrad && optim_bits == 8), where,
                 "amsgrad=True is not supported with 8-bit state (optim_bits=8): use "
                 "optim_bits=32 or amsgrad=False");
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

void check_group_options(const GroupOptions& o, std::size_t group) {
  const Where where{group, 0, false};
  check_non_negative(o.lr, "lr", where);
  check_non_negative(o.eps, "eps", where);
  check_non_negative(o.weight_decay, "weight_decay", where);
  for (int k = 0; k < 2; ++k) {
    OCTOPAGE_CHECK(o.betas[k] >= 0.0 && o.betas[k] < 1.0, where, "expected 0 <= betas[", k,
                   "] < 1, got ", o.betas[k]);
  }
  check_state_options(o.optim_bits, o.placement, o.amsgrad, where);
  OCTOPAGE_CHECK(o.min_8bit_size >= 0, where, "expected min_8bit_size >= 0, got ",
                 o.min_8bit_size);
}

void check_parameter(const Parameter& p, const GroupOptions& options, std::size_t group,
                     std::size_t index, bool cuda_memory) {
  const Where where{group, index, true};
  if (p.overrides.optim_bits || p.overrides.placement) {
    check_state_options(p.overrides.optim_bits.value_or(options.optim_bits),
                        p.overrides.placement.value_or(options.placement), options.amsgrad, where);
  }
  OCTOPAGE_CHECK(p.overrides.format_numel.value_or(p.value.numel) >= p.value.numel, where,
                 "expected format_numel (the whole parameter's size) >= the buffer's ", p.value.numel,
                 " elements, got ", *p.overrides.format_numel);
  check_tensor(p.value, "parameter", where, cuda_memory);
  OCTOPAGE_CHECK(p.value.device == Device::kCUDA ||
                     p.overrides.placement.value_or(options.placement) != Placement::kCpuStep,
                 where, "expected a cuda parameter for placement 'cpu_step' (it runs a GPU's update on the CPU), "
                 "got a cpu parameter: use 'device', 'paged' or 'offload'");
  if (p.grad.data == nullptr) return;  // no gradient: skipped by step()
  check_tensor(p.grad, "gradient", where, cuda_memory);
  OCTOPAGE_CHECK(p.grad.numel == p.value.numel, where, "expected a gradient of ", p.value.numel,
                 " elements (the parameter's), got ", p.grad.numel);
  OCTOPAGE_CHECK(p.grad.dtype == p.value.dtype, where, "expected gradient dtype ",
                 dtype_name(p.value.dtype), " (the parameter's), got ", dtype_name(p.grad.dtype));
  OCTOPAGE_CHECK(p.grad.device == p.value.device, where, "expected the gradient on ",
                 device_name(p.value.device), " (the parameter's device), got ", device_name(p.grad.device));
}

void check_state_fits(const ParamState& state, const Parameter& p, const GroupOptions& options,
                      std::size_t group, std::size_t index) {
  const Where where{group, index, true};
  OCTOPAGE_CHECK(p.value.numel == state.numel, where, "expected ", state.numel,
                 " elements (the size its optimizer state was created for), got ", p.value.numel);
  OCTOPAGE_CHECK(p.value.dtype == state.dtype, where, "expected dtype ", dtype_name(state.dtype),
                 " (the dtype its optimizer state was created for), got ",
                 dtype_name(p.value.dtype));
  OCTOPAGE_CHECK(p.value.device == state.device, where, "expected a ", device_name(state.device),
                 " parameter (the device its optimizer state was created on), got a ",
                 device_name(p.value.device), " one: save the state and load it after moving the model");
  OCTOPAGE_CHECK(options.amsgrad == state.amsgrad, where, "expected amsgrad=",
                 state.amsgrad ? "True" : "False",
                 " (its optimizer state was created so), got amsgrad=",
                 options.amsgrad ? "True" : "False");
}

void check_loaded_state(const StateSnapshot& s, std::int64_t numel, bool amsgrad, std::size_t group,
                        std::size_t index) {
  const Where where{group, index, true};
  OCTOPAGE_CHECK(s.step >= 0, where, "expected a state's step >= 0, got ", s.step);
  if (s.step == 0) return;  // no state: the parameter starts afresh
  const auto check_size = [&](std::size_t size, std::int64_t expected, const char* name) {
    OCTOPAGE_CHECK(size == static_cast<std::size_t>(expected), where, "expected ", name, " of ",
                   expected, " values (", numel, " elements), got ", size,
                   ": the state belongs to a parameter of another size");
  };
  if (s.format == StateFormat::kFp32) {
    check_size(s.state1.size(), numel, "state1 (exp_avg)");
    check_size(s.state2.size(), numel, "state2 (exp_avg_sq)");
    if (!s.state2_max.empty()) check_size(s.state2_max.size(), numel, "max_exp_avg_sq");
    OCTOPAGE_CHECK(s.state1_codes.empty() && s.state2_codes.empty() && s.absmax1.empty() &&
                       s.absmax2.empty(),
                   where, "expected a 32-bit state without 8-bit codes or absmax");
  } else {
    check_size(s.state1_codes.size(), numel, "state1 (8-bit codes)");
    check_size(s.state2_codes.size(), numel, "state2 (8-bit codes)");
    check_size(s.absmax1.size(), quant::q8_num_blocks(numel), "absmax1");
    check_size(s.absmax2.size(), quant::q8_num_blocks(numel), "absmax2");
    OCTOPAGE_CHECK(s.state1.empty() && s.state2.empty() && s.state2_max.empty(), where,
                   "expected an 8-bit state without 32-bit values");
  }
  OCTOPAGE_CHECK(!amsgrad || !s.state2_max.empty(), where,
                 "the group has amsgrad=True but the state has no max_exp_avg_sq (it was saved "
                 "with amsgrad=False or with 8-bit state)");
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
