// The Adam kernel cases every backend's kernel test runs: each rule variant, state
// format and dtype, inputs with the values kernels must get right, in buffers with
// unaligned starts, and a bytewise comparison of everything a kernel writes. Shared by
// tests/test_adam_kernels.cc (CPU SIMD targets) and tests/cuda/test_cuda.cc.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "src/kernels/chunk.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/rules/adam.h"
#include "tests/test_util.h"

namespace octopage::testing {

using kernels::AdamKernel;
using kernels::AdamVariant;
using kernels::Chunk;

struct KernelCase {
  bool decoupled;
  bool amsgrad;
  StateFormat format;
  DType dtype;

  AdamVariant variant() const { return kernels::adam_variant(decoupled, amsgrad); }
  int num_states() const { return amsgrad ? 3 : 2; }
  std::string name() const {
    return std::string(decoupled ? "adamw" : "adam") + (amsgrad ? "_amsgrad" : "") +
           (format == StateFormat::kQ8 ? "_q8_" : "_fp32_") + dtype_name(dtype);
  }
};

inline std::vector<KernelCase> all_cases() {
  std::vector<KernelCase> cases;
  for (bool decoupled : {false, true}) {
    for (bool amsgrad : {false, true}) {
      for (StateFormat format : {StateFormat::kFp32, StateFormat::kQ8}) {
        if (amsgrad && format == StateFormat::kQ8) continue;
        for (DType dtype : kAllDTypes) cases.push_back({decoupled, amsgrad, format, dtype});
      }
    }
  }
  return cases;
}

inline rules::AdamHyper test_hyper() { return {1e-2, 0.9, 0.999, 1e-8, 0.1}; }

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
      if (c.format == StateFormat::kFp32) {
        std::vector<float> s = normal_values(static_cast<std::size_t>(n), seed + 3 + k, 0.01f);
        if (k >= 1) {
          for (float& x : s) x = x * x;  // second moments are squares
        }
        state_.emplace_back(DType::kFloat32, s, offset);
      } else {
        HostTensor codes(DType::kFloat32, (n + 3) / 4 + 1, offset);  // n bytes
        auto* bytes = static_cast<std::uint8_t*>(codes.data());
        std::uniform_int_distribution<int> code(0, 255);
        for (std::int64_t i = 0; i < n; ++i) bytes[i] = static_cast<std::uint8_t>(code(rng));
        codes_.push_back(std::move(codes));
        std::vector<float> absmax = uniform_values(blocks, seed + 5 + k, 0.0f, k == 0 ? 0.02f : 1e-4f);
        if (blocks > 1) absmax[1] = 0.0f;  // a block whose state is all zero...
        absmax_.emplace_back(DType::kFloat32, absmax, offset);
        const std::uint8_t zero = k == 0 ? quant::signed_code().zero_index : 0;
        for (std::int64_t i = 256; i < std::min<std::int64_t>(n, 512); ++i) bytes[i] = zero;  // ...encoded so
      }
    }
    if (c.amsgrad) {  // v_max >= v
      for (std::int64_t i = 0; i < n; ++i) state_[2].set(i, state_[1].get(i) * 1.5f);
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

  void run(AdamKernel kernel, int steps, const rules::AdamHyper& hyper = test_hyper()) {
    for (int t = 1; t <= steps; ++t) kernel(chunk(), rules::make_adam_scalars(hyper, case_.decoupled, t));
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

inline const char* const kBufferNames[] = {"param", "state 0", "state 1", "state 2", "absmax 0", "absmax 1"};

inline void expect_same_bytes(const std::vector<std::vector<std::uint8_t>>& expected,
                       const std::vector<std::vector<std::uint8_t>>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (std::size_t b = 0; b < expected.size(); ++b) {
    const auto mismatch = std::mismatch(expected[b].begin(), expected[b].end(), actual[b].begin());
    EXPECT_TRUE(mismatch.first == expected[b].end())
        << "buffer " << b << " (" << kBufferNames[std::min<std::size_t>(b, 5)]
        << ") differs first at byte " << (mismatch.first - expected[b].begin()) << " of "
        << expected[b].size();
  }
}

// The sizes the issue names: empty, one, a block -1/0/+1, 4099 and 1M+17.
inline const std::int64_t kSizes[] = {0, 1, 255, 256, 257, 4099, (1 << 20) + 17};

}  // namespace octopage::testing
