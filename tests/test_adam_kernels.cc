// Every Adam kernel on every compiled SIMD target against the scalar reference kernels,
// bitwise (parameters, fp32 state, 8-bit codes and absmax), at odd sizes and unaligned
// starts; the reference kernels against the fp64 oracle within stated budgets; and the
// non-finite gradient policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "src/kernels/cpu/cpu_kernels.h"
#include "src/kernels/reference/adam_reference.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/quant/q8_reference.h"
#include "src/rules/adam.h"
#include "src/rules/adam_oracle.h"
#include "tests/adam_kernel_cases.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

using kernels::AdamKernel;
using testing::all_cases;
using testing::KernelCase;
using testing::KernelRun;
using testing::kSizes;
using testing::expect_same_bytes;
using testing::test_gradients;
using testing::test_hyper;

TEST(AdamKernels, EveryTargetMatchesTheReferenceBitwise) {
  const std::vector<std::int64_t> targets = kernels::cpu::cpu_targets();
  ASSERT_FALSE(targets.empty());
  for (const KernelCase& c : all_cases()) {
    for (std::int64_t n : kSizes) {
      for (std::int64_t offset : {0, 1}) {
        SCOPED_TRACE(c.name() + " n=" + std::to_string(n) + " offset=" + std::to_string(offset));
        KernelRun expected(c, n, offset, 1234 + static_cast<std::uint64_t>(n));
        expected.run(kernels::adam_reference_kernels().get(c.variant(), c.format, c.dtype), 3);
        for (std::int64_t target : targets) {
          SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
          kernels::cpu::ScopedCpuTarget force(target);
          const AdamKernel kernel = kernels::cpu::cpu_kernels().adam.get(c.variant(), c.format, c.dtype);
          ASSERT_NE(kernel, nullptr);
          KernelRun actual(c, n, offset, 1234 + static_cast<std::uint64_t>(n));
          actual.run(kernel, 3);
          expect_same_bytes(expected.outputs(), actual.outputs());
        }
      }
    }
  }
}

// bf16 parameters that a fast store could get wrong (Note [Native bf16 stores] in
// src/kernels/cpu/hwy_ops-inl.h): denormals, NaNs with payloads, zeros, infinities, the
// largest finite value, spread so that some vectors hold several kinds and some none,
// stepped with lr 0 (they come back as stored, NaNs as 0x7FC0) and with lr 1e-2.
TEST(AdamKernels, EveryTargetStoresSpecialBf16ParametersAsTheReference) {
  const std::uint16_t specials[] = {0x0001, 0x8003, 0x007F, 0x0080, 0x7FC1, 0xFF81, 0x7FFF,
                                    0x0000, 0x8000, 0x7F80, 0xFF80, 0x7F7F, 0x3F80};
  constexpr std::int64_t n = 1024;
  const auto with_specials = [&](KernelRun& run) {
    auto* bits = static_cast<std::uint16_t*>(run.param().data());
    for (std::int64_t i = 0; i < n; i += 3) bits[i] = specials[(i / 3) % std::size(specials)];
    for (std::int64_t i = 512; i < 528; ++i) bits[i] = 0x0000;  // a vector of zeros alone
  };
  for (const KernelCase& c : all_cases()) {
    if (c.dtype != DType::kBFloat16) continue;
    for (double lr : {0.0, 1e-2}) {
      SCOPED_TRACE(c.name() + " lr=" + std::to_string(lr));
      rules::AdamHyper hyper = test_hyper();
      hyper.lr = lr;
      KernelRun expected(c, n, 0, 99);
      with_specials(expected);
      expected.run(kernels::adam_reference_kernels().get(c.variant(), c.format, c.dtype), 2, hyper);
      for (std::int64_t target : kernels::cpu::cpu_targets()) {
        SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
        kernels::cpu::ScopedCpuTarget force(target);
        KernelRun actual(c, n, 0, 99);
        with_specials(actual);
        actual.run(kernels::cpu::cpu_kernels().adam.get(c.variant(), c.format, c.dtype), 2, hyper);
        expect_same_bytes(expected.outputs(), actual.outputs());
      }
    }
  }
}

TEST(AdamKernels, EightBitAmsgradDoesNotExist) {
  for (bool decoupled : {false, true}) {
    for (DType dtype : testing::kAllDTypes) {
      const auto variant = kernels::adam_variant(decoupled, true);
      EXPECT_EQ(kernels::cpu::cpu_kernels().adam.get(variant, StateFormat::kQ8, dtype), nullptr);
      EXPECT_EQ(kernels::adam_reference_kernels().get(variant, StateFormat::kQ8, dtype), nullptr);
    }
  }
}

// --- The reference kernels against the fp64 oracle ---------------------------------

// One fp32 rounding of each of the rule's few operations, with margin: the fp32 rule
// result is within kRuleUlps units of 2^-24 times the size of the terms it adds up.
constexpr double kRuleUlps = 16.0;
constexpr double kEps32 = 1.0 / 16777216.0;  // 2^-24

// How far a stored parameter may be from the oracle: the rule's fp32 error, plus half a
// unit in the last place of the dtype the parameter is stored in (one rounding).
double param_tolerance(DType dtype, double p_old, double p_new) {
  const double rule = kRuleUlps * kEps32 * (std::fabs(p_old) + std::fabs(p_new - p_old));
  const double half_unit = dtype == DType::kFloat32 ? 0.0
                           : std::ldexp(std::fabs(p_new), dtype == DType::kBFloat16 ? -8 : -11);
  return rule + half_unit + 1e-30;
}

rules::AdamOracleConfig oracle_config(const KernelCase& c) {
  const rules::AdamHyper h = test_hyper();
  rules::AdamOracleConfig config;
  config.lr = h.lr;
  config.beta1 = h.beta1;
  config.beta2 = h.beta2;
  config.eps = h.eps;
  config.weight_decay = h.weight_decay;
  config.decoupled = c.decoupled;
  config.amsgrad = c.amsgrad;
  return config;
}

TEST(AdamKernels, ReferenceFollowsTheOracle) {
  constexpr std::int64_t n = 4099;
  constexpr std::int64_t kStep = 7;  // a step past the first, so bias corrections matter
  for (const KernelCase& c : all_cases()) {
    SCOPED_TRACE(c.name());
    KernelRun run(c, n, 1, 99);
    const rules::AdamOracleConfig config = oracle_config(c);

    // The oracle starts from the kernel's inputs as the kernel reads them.
    std::vector<rules::AdamOracleElement> oracle(n);
    for (std::int64_t i = 0; i < n; ++i) {
      auto& e = oracle[i];
      e.p = run.param().get(i);
      if (c.format == StateFormat::kFp32) {
        e.m = run.state(0).get(i);
        e.v = run.state(1).get(i);
        if (c.amsgrad) e.v_max = run.state(2).get(i);
      } else {
        const std::int64_t block = i / quant::kQ8BlockSize;
        e.m = quant::decode_reference(quant::signed_code(), run.codes(0)[i], run.absmax(0)[block]);
        e.v = quant::decode_reference(quant::unsigned_code(), run.codes(1)[i], run.absmax(1)[block]);
      }
    }
    const std::vector<float> p_old = run.param().values();
    const std::vector<float> g = run.grad().values();
    const std::vector<rules::AdamOracleElement> start = oracle;
    for (std::int64_t i = 0; i < n; ++i) rules::adam_oracle_step(config, kStep, g[i], oracle[i]);

    kernels::adam_reference_kernels().get(c.variant(), c.format, c.dtype)(
        run.chunk(), rules::make_adam_scalars(test_hyper(), c.decoupled, kStep));

    int code_mismatches = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto& e = oracle[i];
      const double p = run.param().get(i);
      ASSERT_LE(std::fabs(p - e.p), param_tolerance(c.dtype, p_old[i], e.p))
          << "element " << i << ": parameter " << p << ", oracle " << e.p;
      if (c.format == StateFormat::kFp32) {
        const double g_abs = std::isfinite(g[i]) ? std::fabs(g[i]) : 0.0;  // skipped if not
        const double g_eff = g_abs + (c.decoupled ? 0.0 : config.weight_decay * std::fabs(p_old[i]));
        const double m_scale = config.beta1 * std::fabs(start[i].m) + (1 - config.beta1) * g_eff;
        ASSERT_LE(std::fabs(run.state(0).get(i) - e.m), kRuleUlps * kEps32 * m_scale + 1e-30)
            << "element " << i;
        ASSERT_LE(std::fabs(run.state(1).get(i) - e.v), kRuleUlps * kEps32 * std::fabs(e.v) * 2 + 1e-30)
            << "element " << i;
      } else if (i % quant::kQ8BlockSize == 0) {
        // Code space: the kernel's codes against the reference encoder applied to the
        // oracle's state, block by block.
        const std::int64_t len = std::min(quant::kQ8BlockSize, n - i);
        for (int k = 0; k < 2; ++k) {
          const quant::DynamicCode& code = k == 0 ? quant::signed_code() : quant::unsigned_code();
          std::vector<float> values(len);
          for (std::int64_t j = 0; j < len; ++j) {
            values[j] = static_cast<float>(k == 0 ? oracle[i + j].m : oracle[i + j].v);
          }
          std::vector<std::uint8_t> codes(len);
          float absmax = 0.0f;
          quant::quantize_block_reference(code, values.data(), len, codes.data(), &absmax);
          const float kernel_absmax = run.absmax(k)[i / quant::kQ8BlockSize];
          ASSERT_NEAR(kernel_absmax, absmax, kRuleUlps * kEps32 * absmax + 1e-30) << "block at " << i;
          for (std::int64_t j = 0; j < len; ++j) {
            const int diff = std::abs(static_cast<int>(run.codes(k)[i + j]) - codes[j]);
            ASSERT_LE(diff, 1) << "state " << k << " element " << i + j;
            code_mismatches += diff;
          }
        }
      }
    }
    // Off by one code only where fp32 and fp64 straddle a midpoint: rare.
    EXPECT_LE(code_mismatches, n / 500) << "codes off by one";
  }
}

TEST(AdamKernels, NonFiniteGradientSkipsOnlyItsElement) {
  constexpr std::int64_t n = 4099;
  for (const KernelCase& c : all_cases()) {
    SCOPED_TRACE(c.name());
    KernelRun run(c, n, 0, 7);
    const std::vector<std::uint8_t> param_before = run.param().bytes();
    std::vector<std::vector<float>> state_before;
    for (int k = 0; c.format == StateFormat::kFp32 && k < c.num_states(); ++k) {
      state_before.push_back(run.state(k).values());
    }
    std::vector<float> decoded_before[2];
    if (c.format == StateFormat::kQ8) {
      for (int k = 0; k < 2; ++k) {
        decoded_before[k].resize(n);
        quant::dequantize_reference(k == 0 ? quant::signed_code() : quant::unsigned_code(),
                                    run.codes(k), run.absmax(k), n, decoded_before[k].data());
      }
    }
    const std::vector<float> g = run.grad().values();
    run.run(kernels::cpu::cpu_kernels().adam.get(c.variant(), c.format, c.dtype), 1);

    const std::size_t element = dtype_size(c.dtype);
    const std::vector<std::uint8_t> param_after = run.param().bytes();
    int skipped = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const bool finite_square = std::isfinite(g[i] * g[i]);
      const bool same = std::equal(param_before.begin() + i * element, param_before.begin() + (i + 1) * element,
                                   param_after.begin() + i * element);
      if (!finite_square) {
        ++skipped;
        ASSERT_TRUE(same) << "element " << i << " with gradient " << g[i] << " was updated";
        for (std::size_t k = 0; k < state_before.size(); ++k) {
          ASSERT_EQ(run.state(static_cast<int>(k)).get(i), state_before[k][i]) << "element " << i;
        }
        if (c.format == StateFormat::kQ8) {
          // Re-encoded with the block's new absmax: within half a code step of before.
          for (int k = 0; k < 2; ++k) {
            const float absmax = run.absmax(k)[i / quant::kQ8BlockSize];
            const float after = quant::decode_reference(k == 0 ? quant::signed_code() : quant::unsigned_code(),
                                                        run.codes(k)[i], absmax);
            ASSERT_LE(std::fabs(after - decoded_before[k][i]), 0.0071f * absmax) << "element " << i;
          }
        }
      } else {
        ASSERT_TRUE(std::isfinite(run.param().get(i))) << "element " << i;
      }
    }
    EXPECT_GT(skipped, 100);
    for (std::int64_t b = 0; c.format == StateFormat::kQ8 && b < quant::q8_num_blocks(n); ++b) {
      ASSERT_TRUE(std::isfinite(run.absmax(0)[b]) && std::isfinite(run.absmax(1)[b])) << "block " << b;
    }
  }
}

}  // namespace
}  // namespace octopage
