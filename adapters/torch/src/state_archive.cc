// A parameter's state in a torch::optim archive (Note [Archive state keys]): written from
// and read into the core's StateSnapshot by the registry's state names, so a rule's
// states need no code here.
#include "adapters/torch/src/state_archive.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace octopage::torch {
namespace {

using ::torch::serialize::InputArchive;
using ::torch::serialize::OutputArchive;

constexpr const char* kStepKey = "step";
constexpr const char* kGnormKey = "gnorm_vec";  // percentile_clipping's history, as bitsandbytes names it
constexpr const char* kUnormKey = "unorm_vec";  // max_unorm's last squared update norm, as bitsandbytes names it

// A tensor that owns `values` without copying them.
template <class T>
::torch::Tensor tensor_of(std::vector<T> values, ::torch::ScalarType type) {
  auto* owner = new std::vector<T>(std::move(values));
  return ::torch::from_blob(
      owner->data(), {static_cast<std::int64_t>(owner->size())}, [owner](void*) { delete owner; },
      ::torch::TensorOptions().dtype(type));
}

template <class T>
std::vector<T> values_of(const ::torch::Tensor& t) {
  const ::torch::Tensor dense = t.contiguous();
  const T* begin = dense.const_data_ptr<T>();
  return std::vector<T>(begin, begin + dense.numel());
}

const StateInfo& state_info(const std::vector<StateInfo>& states, const std::string& name) {
  for (const StateInfo& state : states) {
    if (state.name == name) return state;
  }
  TORCH_CHECK(false, "expected a state of the optimizer's rule, got the core's state array '", name, "'");
}

// The states that share `state`'s bitsandbytes name, in registry order.
std::vector<const StateInfo*> sharing(const std::vector<StateInfo>& states, const StateInfo& state) {
  std::vector<const StateInfo*> out;
  for (const StateInfo& s : states) {
    if (s.bnb_name == state.bnb_name) out.push_back(&s);
  }
  return out;
}

// Note [Archive state keys]
// A parameter's state in the archive, by the registry's names for the rule's states
// (octopage::StateInfo), so a rule's states need no code here:
//  - step: the parameter's step (an int). torch::optim::SGD keeps none: an archive
//    without one is at step 1 when it holds state (SGD's update depends only on whether
//    its momentum buffer exists), else at step 0 (no state).
//  - 32-bit state: each state's values under torch's name (exp_avg, momentum_buffer,
//    square_avg, sum, ...), shaped as the parameter, as torch::optim writes them.
//  - 8-bit state: each state's codes (uint8) under bitsandbytes' name (state1, ...) and
//    its absmax under bitsandbytes' absmax name: absmax1 for state1 ("absmax" and what
//    follows "state"), <name>_absmax for a name not of that form. States that share a
//    bitsandbytes name (AdEMAMix's m1 and m2 are both state1) are stacked in registry
//    order, as bitsandbytes stacks them: codes of shape (k, *param.shape), absmax (k, blocks).
//  - gnorm_vec: percentile_clipping's history of squared gradient norms (fp32, 100
//    values), and unorm_vec: max_unorm's last squared update norm (1 value), when the
//    parameter has them.
std::string absmax_key(const StateInfo& state) {
  constexpr std::string_view kCodesPrefix = "state";
  const std::string& codes = state.bnb_name;
  if (codes.size() > kCodesPrefix.size() && codes.compare(0, kCodesPrefix.size(), kCodesPrefix) == 0) {
    return "absmax" + codes.substr(kCodesPrefix.size());
  }
  return codes + "_absmax";
}

// `t` (flat) as the parameter's shape, with `stacked` > 1 rows in front.
::torch::Tensor shaped(const ::torch::Tensor& t, const ::torch::Tensor& param, std::int64_t stacked) {
  if (t.numel() != stacked * param.numel()) return t;
  std::vector<std::int64_t> shape;
  if (stacked > 1) shape.push_back(stacked);
  shape.insert(shape.end(), param.sizes().begin(), param.sizes().end());
  return t.view(shape);
}

void write_codes(OutputArchive& archive, std::vector<StateArray*> arrays, const StateInfo& state,
                 const ::torch::Tensor& param) {
  const auto k = static_cast<std::int64_t>(arrays.size());
  if (k == 1) {
    archive.write(state.bnb_name, shaped(tensor_of(std::move(arrays[0]->codes), ::torch::kByte), param, 1));
    archive.write(absmax_key(state), tensor_of(std::move(arrays[0]->absmax), ::torch::kFloat));
    return;
  }
  std::vector<::torch::Tensor> codes, absmax;
  for (StateArray* a : arrays) {
    codes.push_back(tensor_of(std::move(a->codes), ::torch::kByte));
    absmax.push_back(tensor_of(std::move(a->absmax), ::torch::kFloat));
  }
  archive.write(state.bnb_name, shaped(::torch::stack(codes).flatten(), param, k));
  archive.write(absmax_key(state), ::torch::stack(absmax));
}

// The tensor under `key`, or an undefined tensor when the archive has none.
::torch::Tensor read_tensor(InputArchive& archive, const std::string& key, ::torch::ScalarType type,
                            std::size_t group, std::size_t index) {
  c10::IValue value;
  if (!archive.try_read(key, value)) return {};
  TORCH_CHECK_VALUE(value.isTensor(), "param group ", group, ", parameter ", index, ": expected ", key,
                    " in the checkpoint to be a tensor, got ", value.tagKind());
  ::torch::Tensor t = value.toTensor().to(::torch::kCPU);
  if (type == ::torch::kFloat) {
    TORCH_CHECK_VALUE(t.is_floating_point(), "param group ", group, ", parameter ", index, ": expected ", key,
                      " in the checkpoint to be floating point, got ", t.scalar_type());
    return t.to(::torch::kFloat);  // exact from bf16 and fp16 (torch keeps state in the parameter's dtype)
  }
  TORCH_CHECK_VALUE(t.scalar_type() == type, "param group ", group, ", parameter ", index, ": expected ", key,
                    " in the checkpoint of dtype ", type, ", got ", t.scalar_type());
  return t;
}

// Whether the archive holds `state`'s 8-bit codes: under a key only 8-bit state uses, or
// as bytes under a key it shares with 32-bit state.
bool has_codes(InputArchive& archive, const StateInfo& state) {
  c10::IValue value;
  if (!archive.try_read(state.bnb_name, value)) return false;
  return state.bnb_name != state.name || (value.isTensor() && value.toTensor().scalar_type() == ::torch::kByte);
}

// The 8-bit arrays under `state`'s keys: one, or one per state that shares them.
void read_codes(InputArchive& archive, const std::vector<StateInfo>& states, const StateInfo& state,
                std::size_t group, std::size_t index, StateSnapshot& s) {
  const std::vector<const StateInfo*> stacked = sharing(states, state);
  const auto k = static_cast<std::int64_t>(stacked.size());
  const std::string absmax_name = absmax_key(state);
  const ::torch::Tensor codes = read_tensor(archive, state.bnb_name, ::torch::kByte, group, index);
  const ::torch::Tensor absmax = read_tensor(archive, absmax_name, ::torch::kFloat, group, index);
  TORCH_CHECK_VALUE(absmax.defined(), "param group ", group, ", parameter ", index, ": expected ", absmax_name,
                    " in the checkpoint's state, which has ", state.bnb_name);
  if (k > 1) {
    TORCH_CHECK_VALUE(codes.dim() >= 1 && codes.size(0) == k && absmax.dim() >= 1 && absmax.size(0) == k,
                      "param group ", group, ", parameter ", index, ": expected ", state.bnb_name, " and ",
                      absmax_name, " to stack ", k, " states in their first dimension, got shapes ", codes.sizes(),
                      " and ", absmax.sizes());
  }
  for (std::int64_t j = 0; j < k; ++j) {
    StateArray& array = s.arrays.emplace_back();
    array.name = stacked[static_cast<std::size_t>(j)]->name;
    array.codes = values_of<std::uint8_t>(k > 1 ? codes[j] : codes);
    array.absmax = values_of<float>(k > 1 ? absmax[j] : absmax);
  }
}

}  // namespace

std::vector<StateInfo> rule_states(const RuleInfo& rule) {
  std::vector<StateInfo> states;
  for (const VariantInfo& variant : rule.variants) {
    for (const StateInfo& state : variant.states) {
      const auto same = [&](const StateInfo& known) { return known.name == state.name; };
      if (std::none_of(states.begin(), states.end(), same)) states.push_back(state);
    }
  }
  return states;
}

// See Note [Archive state keys].
void write_state(OutputArchive& archive, StateSnapshot s, const ::torch::Tensor& param,
                 const std::vector<StateInfo>& states) {
  archive.write(kStepKey, c10::IValue(s.step));
  if (!s.gnorm_vec.empty()) archive.write(kGnormKey, tensor_of(std::move(s.gnorm_vec), ::torch::kFloat));
  if (!s.unorm_vec.empty()) archive.write(kUnormKey, tensor_of(std::move(s.unorm_vec), ::torch::kFloat));
  if (s.format == StateFormat::kFp32) {
    for (StateArray& array : s.arrays) {
      const StateInfo& state = state_info(states, array.name);
      archive.write(state.name, shaped(tensor_of(std::move(array.values), ::torch::kFloat), param, 1));
    }
    return;
  }
  std::vector<bool> written(s.arrays.size(), false);
  for (std::size_t i = 0; i < s.arrays.size(); ++i) {
    if (written[i]) continue;
    const StateInfo& state = state_info(states, s.arrays[i].name);
    std::vector<StateArray*> same_key;
    for (std::size_t j = i; j < s.arrays.size(); ++j) {
      if (state_info(states, s.arrays[j].name).bnb_name == state.bnb_name) {
        same_key.push_back(&s.arrays[j]);
        written[j] = true;
      }
    }
    write_codes(archive, std::move(same_key), state, param);
  }
}

// See Note [Archive state keys].
StateSnapshot read_state(InputArchive& archive, const std::vector<StateInfo>& states, std::size_t group,
                         std::size_t index) {
  StateSnapshot s;
  c10::IValue step;
  const bool has_step = archive.try_read(kStepKey, step);
  if (has_step) {
    TORCH_CHECK_VALUE(step.isInt() || (step.isTensor() && step.toTensor().numel() == 1), "param group ", group,
                      ", parameter ", index, ": expected the checkpoint's step to be an integer, got ",
                      step.tagKind());
    s.step = step.isTensor() ? step.toTensor().item<std::int64_t>() : step.toInt();
    if (s.step == 0) return s;  // no state
  }
  const ::torch::Tensor gnorm = read_tensor(archive, kGnormKey, ::torch::kFloat, group, index);
  if (gnorm.defined()) s.gnorm_vec = values_of<float>(gnorm);
  const ::torch::Tensor unorm = read_tensor(archive, kUnormKey, ::torch::kFloat, group, index);
  if (unorm.defined()) s.unorm_vec = values_of<float>(unorm);

  const auto coded = [&](const StateInfo& state) { return has_codes(archive, state); };
  if (std::any_of(states.begin(), states.end(), coded)) {
    s.format = StateFormat::kQ8;
    std::vector<std::string> read;
    for (const StateInfo& state : states) {
      if (!coded(state) || std::find(read.begin(), read.end(), state.bnb_name) != read.end()) continue;
      read.push_back(state.bnb_name);
      read_codes(archive, states, state, group, index, s);
    }
  } else {
    s.format = StateFormat::kFp32;
    for (const StateInfo& state : states) {
      const ::torch::Tensor values = read_tensor(archive, state.name, ::torch::kFloat, group, index);
      if (!values.defined()) continue;
      StateArray& array = s.arrays.emplace_back();
      array.name = state.name;
      array.values = values_of<float>(values);
    }
  }
  if (!has_step) s.step = s.arrays.empty() ? 0 : 1;
  return s;
}

}  // namespace octopage::torch
