// The kernel cases every backend's kernel test runs, from the rule registry: each row
// (rule and variant), state format and dtype, inputs with the values kernels must get right, in buffers with
// unaligned starts, and a bytewise comparison of everything a kernel writes. Shared by
// tests/test_kernels.cc (CPU SIMD targets) and tests/cuda/test_cuda.cc.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "src/kernels/chunk.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/rules/registry.h"
#include "tests/test_util.h"

namespace octopage::testing {

using kernels::Chunk;
using kernels::Kernel;

// One kernel of the table: a row of a registered rule, a state format, a param dtype.
struct KernelCase {
  int row;
  StateFormat format;
  DType dtype;

  const rules::RuleEntry& rule() const {
    for (const rules::RuleEntry& e : rules::rule_entries()) {
      if (row >= e.first_row && row < e.first_row + e.num_rows) return e;
    }
    throw std::out_of_range("no rule has row " + std::to_string(row));
  }
  const rules::RowSpec& spec() const { return rules::row_spec(row); }
  int num_states() const { return spec().num_states; }
  std::string name() const {
    return rule().info.name + "[" + spec().variant + "]" + (format == StateFormat::kQ8 ? "_q8_" : "_fp32_") +
           dtype_name(dtype);
  }
};

// Every kernel every backend must have: each row of each registered rule, in fp32 and,
// where the row's states may be 8-bit, in 8 bits, for each param dtype.
inline std::vector<KernelCase> all_cases() {
  std::vector<KernelCase> cases;
  for (int row = 0; row < rules::kNumRows; ++row) {
    for (StateFormat format : {StateFormat::kFp32, StateFormat::kQ8}) {
      if (format == StateFormat::kQ8 && !rules::row_spec(row).quantizable) continue;
      for (DType dtype : kAllDTypes) cases.push_back({row, format, dtype});
    }
  }
  return cases;
}

// A rule's resolved hyperparameters for the kernel tests: its defaults, with lr 1e-2 and
// (where it has one) weight_decay 0.1, so that every term of the update matters.
inline std::vector<double> test_values(const rules::RuleEntry& rule, double lr = 1e-2) {
  std::vector<double> values;
  for (const rules::HyperSpec& h : rule.hyperparameters) {
    for (int k = 0; k < h.arity; ++k) {
      double v = h.defaults[k];
      if (std::string_view(h.name) == "lr") v = lr;
      if (std::string_view(h.name) == "weight_decay") v = 0.1;
      values.push_back(v);
    }
  }
  return values;
}

// The scalars of step t for a case's row.
inline rules::RuleScalars test_scalars(const KernelCase& c, std::int64_t t, double lr = 1e-2) {
  const rules::RuleEntry& rule = c.rule();
  return rule.scalars(test_values(rule, lr).data(), c.row - rule.first_row, t);
}

// Gradients with the values kernels must get right: NaN, infinities, a finite value
// whose square overflows, signed zeros, and a block of zeros.
inline std::vector<float> test_gradients(std::int64_t n, std::uint64_t seed) {
  std::vector<float> g = normal_values(static_cast<std::size_t>(n), seed, 0.01f);
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % 97 == 3) g[i] = std::numeric_limits<float>::quiet_NaN();
    if (i % 101 == 5) g[i] = std::numeric_limits<float>::infinity();
    if (i % 103 == 7) g[i] = -std::numeric_limits<float>::infinity();
    if (i % 107 == 11) g[i] = 3e19f;  // g*g overflows fp32
    if (i % 109 == 13) g[i] = -0.0f;
    if (i >= 512 && i < 768) g[i] = 0.0f;  // a whole block without gradient signal
  }
  return g;
}

// One kernel's inputs, in buffers with unaligned starts, stepped in place.
class KernelRun {
 public:
  KernelRun(const KernelCase& c, std::int64_t n, std::int64_t offset, std::uint64_t seed)
      : case_(c), n_(n),
        param_(c.dtype, normal_values(static_cast<std::size_t>(n), seed), offset),
        grad_(c.dtype, test_gradients(n, seed + 1), offset) {
    std::mt19937_64 rng(seed + 2);
    const auto blocks = static_cast<std::size_t>(quant::q8_num_blocks(n));
    for (int k = 0; k < c.num_states(); ++k) {
      const bool is_signed = c.spec().states[k].is_signed;
      if (c.format == StateFormat::kFp32) {
        // Signed states hold averages of gradients; unsigned ones second moments, which
        // exceed the squared first moments (so centered RMSprop's v - a*a stays positive).
        std::vector<float> s = normal_values(static_cast<std::size_t>(n), seed + 3 + k, is_signed ? 0.001f : 0.01f);
        if (!is_signed) {
          for (float& x : s) x = x * x + 1e-4f;
        }
        state_.emplace_back(DType::kFloat32, s, offset);
      } else {
        HostTensor codes(DType::kFloat32, (n + 3) / 4 + 1, offset);  // n bytes
        auto* bytes = static_cast<std::uint8_t*>(codes.data());
        std::uniform_int_distribution<int> code(0, 255);
        for (std::int64_t i = 0; i < n; ++i) bytes[i] = static_cast<std::uint8_t>(code(rng));
        codes_.push_back(std::move(codes));
        std::vector<float> absmax = uniform_values(blocks, seed + 5 + k, 0.0f, is_signed ? 0.02f : 1e-4f);
        if (blocks > 1) absmax[1] = 0.0f;  // a block whose state is all zero...
        absmax_.emplace_back(DType::kFloat32, absmax, offset);
        const std::uint8_t zero = is_signed ? quant::signed_code().zero_index : quant::unsigned_code().zero_index;
        for (std::int64_t i = 256; i < std::min<std::int64_t>(n, 512); ++i) bytes[i] = zero;  // ...encoded so
      }
    }
  }

  Chunk chunk() {
    Chunk ch;
    ch.param = param_.data();
    ch.grad = grad_.data();
    ch.n = n_;
    for (int k = 0; k < case_.num_states(); ++k) {
      if (case_.format == StateFormat::kFp32) {
        ch.state[k] = state_[k].data();
      } else {
        ch.state[k] = codes_[k].data();
        ch.absmax[k] = static_cast<float*>(absmax_[k].data());
      }
    }
    return ch;
  }

  void run(Kernel kernel, int steps, double lr = 1e-2) {
    for (int t = 1; t <= steps; ++t) kernel(chunk(), test_scalars(case_, t, lr));
  }

  // Every byte the kernel may write: parameter, then each state buffer.
  std::vector<std::vector<std::uint8_t>> outputs() const {
    std::vector<std::vector<std::uint8_t>> out{param_.bytes()};
    for (const HostTensor& s : state_) out.push_back(s.bytes());
    for (const HostTensor& c : codes_) {
      const auto* p = static_cast<const std::uint8_t*>(c.data());
      out.emplace_back(p, p + n_);
    }
    for (const HostTensor& a : absmax_) out.push_back(a.bytes());
    return out;
  }

  HostTensor& param() { return param_; }
  HostTensor& grad() { return grad_; }
  HostTensor& state(int k) { return state_[k]; }
  const std::uint8_t* codes(int k) const { return static_cast<const std::uint8_t*>(codes_[k].data()); }
  const float* absmax(int k) const { return static_cast<const float*>(absmax_[k].data()); }

 private:
  KernelCase case_;
  std::int64_t n_;
  HostTensor param_;
  HostTensor grad_;
  std::vector<HostTensor> state_;   // fp32 state
  std::vector<HostTensor> codes_;   // 8-bit codes (stored in a float tensor's bytes)
  std::vector<HostTensor> absmax_;  // 8-bit absmax
};

inline const char* const kBufferNames[] = {"param", "state 0", "state 1", "state 2", "absmax 0", "absmax 1", "absmax 2"};

inline void expect_same_bytes(const std::vector<std::vector<std::uint8_t>>& expected,
                       const std::vector<std::vector<std::uint8_t>>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (std::size_t b = 0; b < expected.size(); ++b) {
    const auto mismatch = std::mismatch(expected[b].begin(), expected[b].end(), actual[b].begin());
    EXPECT_TRUE(mismatch.first == expected[b].end())
        << "buffer " << b << " (" << kBufferNames[std::min<std::size_t>(b, 6)]
        << ") differs first at byte " << (mismatch.first - expected[b].begin()) << " of "
        << expected[b].size();
  }
}

// The sizes the issue names: empty, one, a block -1/0/+1, 4099 and 1M+17.
inline const std::int64_t kSizes[] = {0, 1, 255, 256, 257, 4099, (1 << 20) + 17};

}  // namespace octopage::testing
