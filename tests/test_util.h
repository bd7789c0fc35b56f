// Helpers shared by the tests: deterministic random values, parameter buffers of any
// dtype with an unaligned start, and the fp32 unit in the last place.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "octopage/optimizer.h"
#include "octopage/tensor.h"
#include "src/quant/float_convert.h"
#include "src/rules/registry.h"

namespace octopage::testing {

inline std::vector<float> normal_values(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(n);
  for (float& v : values) v = normal(rng);
  return values;
}

inline std::vector<float> uniform_values(std::size_t n, std::uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(lo, hi);
  std::vector<float> values(n);
  for (float& v : values) v = uniform(rng);
  return values;
}

// The value as stored in dtype (round to nearest even), back as fp32.
inline float round_to(DType dtype, float value) {
  switch (dtype) {
    case DType::kFloat32: return value;
    case DType::kBFloat16: return quant::float_from_bf16(quant::bf16_from_float(value));
    case DType::kFloat16: return quant::float_from_fp16(quant::fp16_from_float(value));
  }
  return value;
}

// A dense buffer of `numel` elements of `dtype` that starts `offset` elements past a
// 64-byte boundary, so kernels see unaligned starts.
class HostTensor {
 public:
  HostTensor(DType dtype, std::int64_t numel, std::int64_t offset = 0)
      : dtype_(dtype), numel_(numel), offset_(offset),
        storage_((static_cast<std::size_t>(numel + offset) * dtype_size(dtype)) + 128) {}

  HostTensor(DType dtype, const std::vector<float>& values, std::int64_t offset = 0)
      : HostTensor(dtype, static_cast<std::int64_t>(values.size()), offset) {
    set(values);
  }

  void* data() {
    auto base = reinterpret_cast<std::uintptr_t>(storage_.data());
    base = (base + 63) / 64 * 64;
    return reinterpret_cast<char*>(base) + offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
  }
  const void* data() const { return const_cast<HostTensor*>(this)->data(); }
  std::int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  TensorRef ref() { return TensorRef{data(), numel_, dtype_, Device::kCPU}; }

  void set(const std::vector<float>& values) {
    for (std::int64_t i = 0; i < numel_; ++i) set(i, values[static_cast<std::size_t>(i)]);
  }
  void set(std::int64_t i, float value) {
    switch (dtype_) {
      case DType::kFloat32: static_cast<float*>(data())[i] = value; break;
      case DType::kBFloat16: static_cast<std::uint16_t*>(data())[i] = quant::bf16_from_float(value); break;
      case DType::kFloat16: static_cast<std::uint16_t*>(data())[i] = quant::fp16_from_float(value); break;
    }
  }
  float get(std::int64_t i) const {
    switch (dtype_) {
      case DType::kFloat32: return static_cast<const float*>(data())[i];
      case DType::kBFloat16: return quant::float_from_bf16(static_cast<const std::uint16_t*>(data())[i]);
      case DType::kFloat16: return quant::float_from_fp16(static_cast<const std::uint16_t*>(data())[i]);
    }
    return 0.0f;
  }
  std::vector<float> values() const {
    std::vector<float> out(static_cast<std::size_t>(numel_));
    for (std::int64_t i = 0; i < numel_; ++i) out[static_cast<std::size_t>(i)] = get(i);
    return out;
  }
  // The raw bytes, for bitwise comparisons.
  std::vector<std::uint8_t> bytes() const {
    const auto* p = static_cast<const std::uint8_t*>(data());
    return std::vector<std::uint8_t>(p, p + numel_ * static_cast<std::int64_t>(dtype_size(dtype_)));
  }

 private:
  DType dtype_;
  std::int64_t numel_;
  std::int64_t offset_;
  std::vector<std::uint8_t> storage_;
};

// A parameter of `n` normal values with its gradient buffer, owned by the test.
struct TestParam {
  HostTensor value;
  HostTensor grad;
  TestParam(DType dtype, std::int64_t n, std::uint64_t seed)
      : value(dtype, normal_values(static_cast<std::size_t>(n), seed)), grad(dtype, n) {}
  Parameter parameter() { return Parameter{value.ref(), grad.ref()}; }
  // A fresh gradient of normal values with standard deviation 0.01.
  void set_grad(std::uint64_t seed) {
    grad.set(normal_values(static_cast<std::size_t>(grad.numel()), seed, 0.01f));
  }
};

// A parameter's bytes and every byte of its state, appended to `out` (kBitsPerParam
// entries): what TrainingRun::bits() compares, for a parameter wherever it lives. The
// state's arrays in order, their fp32 values, then their absmax, then their 8-bit codes,
// each padded to rules::kMaxStates entries so every parameter takes as many.
inline void append_bits(std::vector<std::vector<std::uint8_t>>& out, std::vector<std::uint8_t> param_bytes,
                        const StateSnapshot& s) {
  out.push_back(std::move(param_bytes));
  out.push_back({static_cast<std::uint8_t>(s.step), static_cast<std::uint8_t>(s.format)});
  if (s.arrays.size() > static_cast<std::size_t>(rules::kMaxStates)) {
    throw std::length_error("a state of " + std::to_string(s.arrays.size()) + " arrays, more than rules::kMaxStates");
  }
  const auto floats = [&](const std::vector<float> StateArray::*field) {
    for (std::size_t k = 0; k < static_cast<std::size_t>(rules::kMaxStates); ++k) {
      if (k >= s.arrays.size()) {
        out.emplace_back();
        continue;
      }
      const std::vector<float>& v = s.arrays[k].*field;
      const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
      out.emplace_back(p, p + v.size() * sizeof(float));
    }
  };
  floats(&StateArray::values);
  floats(&StateArray::absmax);
  for (std::size_t k = 0; k < static_cast<std::size_t>(rules::kMaxStates); ++k) {
    out.push_back(k < s.arrays.size() ? s.arrays[k].codes : std::vector<std::uint8_t>{});
  }
}

// An optimizer over one param group of test parameters of the given sizes.
struct TrainingRun {
  std::vector<TestParam> params;
  Optimizer opt;
  TrainingRun(std::string_view rule, GroupOptions options, DType dtype, const std::vector<std::int64_t>& sizes,
              TierOptions tiers = {})
      : opt(rule, options, std::move(tiers)) {
    params.reserve(sizes.size());
    std::vector<Parameter> refs;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      params.emplace_back(dtype, sizes[k], 50 + k);
      refs.push_back(params.back().parameter());
    }
    opt.add_param_group(refs);
  }
  // `count` steps, every parameter with a fresh gradient each step.
  void steps(int count) {
    for (int s = 0; s < count; ++s) {
      for (std::size_t k = 0; k < params.size(); ++k) params[k].set_grad(1000 * s + k);
      opt.step();
    }
  }
  // Every parameter's bytes and every byte of its state, wherever the state lives.
  std::vector<std::vector<std::uint8_t>> bits() const {
    std::vector<std::vector<std::uint8_t>> out;
    for (std::size_t k = 0; k < params.size(); ++k) append_bits(out, params[k].value.bytes(), opt.state(0, k));
    return out;
  }
  // Entries of bits() per parameter: its bytes, step and format, then per state array
  // its values, absmax and codes.
  static constexpr std::size_t kBitsPerParam = 2 + 3 * static_cast<std::size_t>(rules::kMaxStates);
};

// The distance between x and the next fp32 away from zero.
inline double ulp(float x) {
  const float a = std::fabs(x);
  return static_cast<double>(std::nextafter(a, INFINITY)) - static_cast<double>(a);
}

inline const DType kAllDTypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};

// Small ring slots, so a few hundred thousand elements make many records, several records
// per batch and a ring that wraps many times.
inline TierOptions small_ring(IoBackend backend = IoBackend::kAuto) {
  TierOptions t;
  t.chunk_bytes = 16 << 10;
  t.ring_bytes = 4 * t.chunk_bytes;
  t.io_backend = backend;
  return t;
}

// A group's hyperparameters in the rule's slots (as the engine resolves them).
inline std::vector<double> resolved_values(const rules::RuleEntry& rule, const GroupOptions& options) {
  std::vector<double> values;
  for (const HyperparameterInfo& h : rule.info.hyperparameters) {
    for (double v : options.values(h.name)) values.push_back(v);
  }
  return values;
}

// Options that select each variant of a rule, from the registry alone: the rule's
// defaults, and the defaults with one or two flags set or hyperparameters that default to
// 0 set to 0.5 (amsgrad=True, momentum=0.5, momentum=0.5 and centered=True), skipping
// combinations the rule refuses. A test that loops over these covers every variant of
// every registered rule.
struct VariantExample {
  int variant;  // index into RuleInfo::variants
  GroupOptions options;
};
inline std::vector<VariantExample> variant_examples(std::string_view rule_name) {
  const rules::RuleEntry& rule = rules::rule_entry(rule_name);
  std::vector<const HyperparameterInfo*> zeros;
  for (const HyperparameterInfo& h : rule.info.hyperparameters) {
    if (h.defaults.size() == 1 && h.defaults[0] == 0.0) zeros.push_back(&h);
  }
  const auto set = [](GroupOptions o, const HyperparameterInfo* h) {
    return o.set(h->name, h->kind == HyperparameterKind::kFlag ? 1.0 : 0.5);
  };
  std::vector<GroupOptions> candidates{default_options(rule_name)};
  for (std::size_t a = 0; a < zeros.size(); ++a) candidates.push_back(set(default_options(rule_name), zeros[a]));
  for (std::size_t a = 0; a < zeros.size(); ++a) {
    for (std::size_t b = a + 1; b < zeros.size(); ++b) {
      candidates.push_back(set(set(default_options(rule_name), zeros[a]), zeros[b]));
    }
  }
  std::vector<VariantExample> examples;
  for (GroupOptions& o : candidates) {
    const std::vector<double> values = resolved_values(rule, o);
    if (rule.check(values.data()) != nullptr) continue;
    const int variant = rule.row(values.data());
    bool seen = false;
    for (const VariantExample& e : examples) seen = seen || e.variant == variant;
    if (!seen) examples.push_back({variant, o});
  }
  if (examples.size() != static_cast<std::size_t>(rule.num_rows)) {
    throw std::logic_error("variant_examples found " + std::to_string(examples.size()) + " of the " +
                           std::to_string(rule.num_rows) + " variants of " + rule.info.name);
  }
  return examples;
}

inline GroupOptions adamw_options(int bits, Placement placement, bool amsgrad = false) {
  GroupOptions o = default_options("adamw");
  o.optim_bits = bits;
  o.placement = placement;
  o.set("amsgrad", amsgrad ? 1.0 : 0.0);
  return o;
}

}  // namespace octopage::testing
