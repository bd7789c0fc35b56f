// Every kernel of every registered rule on every compiled SIMD target against the
// scalar reference kernels,
// bitwise (parameters, fp32 state, 8-bit codes and absmax), at odd sizes and unaligned
// starts; the reference kernels against the fp64 oracle within stated budgets; and the
// non-finite gradient policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "src/kernels/cpu/cpu_kernels.h"
#include "src/kernels/reference/reference_kernels.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/quant/q8_reference.h"
#include "src/rules/registry.h"
#include "tests/kernel_cases.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

using kernels::Kernel;
using testing::all_cases;
using testing::KernelCase;
using testing::KernelRun;
using testing::kSizes;
using testing::expect_same_bytes;
using testing::test_gradients;
using testing::test_values;

const quant::DynamicCode& code_of(bool is_signed) {
  return is_signed ? quant::signed_code() : quant::unsigned_code();
}

TEST(Kernels, EveryTargetMatchesTheReferenceBitwise) {
  const std::vector<std::int64_t> targets = kernels::cpu::cpu_targets();
  ASSERT_FALSE(targets.empty());
  for (const KernelCase& c : all_cases()) {
    for (std::int64_t n : kSizes) {
      for (std::int64_t offset : {0, 1}) {
        SCOPED_TRACE(c.name() + " n=" + std::to_string(n) + " offset=" + std::to_string(offset));
        KernelRun expected(c, n, offset, 1234 + static_cast<std::uint64_t>(n));
        expected.run(kernels::reference_kernels().get(c.row, c.format, c.dtype), 3);
        for (std::int64_t target : targets) {
          SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
          kernels::cpu::ScopedCpuTarget force(target);
          const Kernel kernel = kernels::cpu::cpu_kernels().kernels.get(c.row, c.format, c.dtype);
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
TEST(Kernels, EveryTargetStoresSpecialBf16ParametersAsTheReference) {
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
      KernelRun expected(c, n, 0, 99);
      with_specials(expected);
      expected.run(kernels::reference_kernels().get(c.row, c.format, c.dtype), 2, lr);
      for (std::int64_t target : kernels::cpu::cpu_targets()) {
        SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
        kernels::cpu::ScopedCpuTarget force(target);
        KernelRun actual(c, n, 0, 99);
        with_specials(actual);
        actual.run(kernels::cpu::cpu_kernels().kernels.get(c.row, c.format, c.dtype), 2, lr);
        expect_same_bytes(expected.outputs(), actual.outputs());
      }
    }
  }
}

// A row whose states are never 8-bit (amsgrad's max_exp_avg_sq) has no 8-bit kernel on
// any backend; every other combination has one.
TEST(Kernels, TablesHaveExactlyTheRegisteredKernels) {
  for (int row = 0; row < rules::kNumRows; ++row) {
    for (StateFormat format : {StateFormat::kFp32, StateFormat::kQ8}) {
      for (DType dtype : testing::kAllDTypes) {
        const bool exists = format == StateFormat::kFp32 || rules::row_spec(row).quantizable;
        SCOPED_TRACE(std::string(rules::row_spec(row).variant) + " " + dtype_name(dtype));
        EXPECT_EQ(kernels::cpu::cpu_kernels().kernels.get(row, format, dtype) != nullptr, exists);
        EXPECT_EQ(kernels::reference_kernels().get(row, format, dtype) != nullptr, exists);
      }
    }
  }
}

// --- The reference kernels against the fp64 oracle ---------------------------------

// One fp32 rounding of each of the rule's few operations, with margin: the fp32 rule
// result is within kRuleUlps units of 2^-24 times the size of the terms it adds up.
constexpr double kRuleUlps = 16.0;
constexpr double kEps32 = 1.0 / 16777216.0;  // 2^-24

// How far a stored parameter may be from the oracle: the rule's fp32 error, plus half a
// unit in the last place of the dtype the parameter is stored in (one rounding; for a
// parameter among fp16's subnormals, half their spacing of 2^-24).
double param_tolerance(DType dtype, double p_old, double p_new) {
  const double rule = kRuleUlps * kEps32 * (std::fabs(p_old) + std::fabs(p_new - p_old));
  double half_unit = 0.0;
  if (dtype == DType::kBFloat16) half_unit = std::ldexp(std::fabs(p_new), -8);
  if (dtype == DType::kFloat16) half_unit = std::max(std::ldexp(std::fabs(p_new), -11), std::ldexp(1.0, -25));
  return rule + half_unit + 1e-30;
}

// How far fp32 state k may be from the oracle: the rule's fp32 error on the terms it
// adds up (the old and new values, and the gradient, squared for unsigned states, which
// hold second moments).
double state_tolerance(bool is_signed, double old_value, double new_value, double g_eff) {
  const double g_term = is_signed ? std::fabs(g_eff) : g_eff * g_eff;
  return kRuleUlps * kEps32 * (std::fabs(old_value) + std::fabs(new_value) + g_term) + 1e-30;
}

TEST(Kernels, ReferenceFollowsTheOracle) {
  constexpr std::int64_t n = 4099;
  constexpr std::int64_t kStep = 7;  // a step past the first, so bias corrections matter
  for (const KernelCase& c : all_cases()) {
    SCOPED_TRACE(c.name());
    const rules::RuleEntry& rule = c.rule();
    const rules::RowSpec& spec = c.spec();
    const int K = spec.num_states;
    const int local_row = c.row - rule.first_row;
    const std::vector<double> values = test_values(rule);
    KernelRun run(c, n, 1, 99);

    // The oracle starts from the kernel's inputs as the kernel reads them.
    std::vector<double> p_oracle(n);
    std::vector<std::vector<double>> state(n, std::vector<double>(rules::kMaxStates, 0.0));
    for (std::int64_t i = 0; i < n; ++i) {
      p_oracle[i] = run.param().get(i);
      for (int k = 0; k < K; ++k) {
        if (c.format == StateFormat::kFp32) {
          state[i][k] = run.state(k).get(i);
        } else {
          state[i][k] = quant::decode_reference(code_of(spec.states[k].is_signed), run.codes(k)[i],
                                                run.absmax(k)[i / quant::kQ8BlockSize]);
        }
      }
    }
    const std::vector<float> p_old = run.param().values();
    const std::vector<float> g = run.grad().values();
    const std::vector<std::vector<double>> start = state;
    std::vector<double> g_eff(n), sensitivity(n);
    std::vector<std::vector<double>> state_sensitivity(n, std::vector<double>(rules::kMaxStates, 0.0));
    for (std::int64_t i = 0; i < n; ++i) {
      const double p_start = p_oracle[i];
      const std::vector<double> s_start = state[i];
      g_eff[i] = rule.oracle(values.data(), local_row, kStep, g[i], p_oracle[i], state[i].data());
      // The kernel adds L2 decay to the gradient in fp32: what that rounding moves the
      // step and the states by (through 1/sqrt(v), say) is how far the oracle moves them
      // for gradients that much apart (test_values' weight_decay is 0.1).
      const double rounding = kRuleUlps * kEps32 * (std::fabs(g[i]) + 0.1 * std::fabs(p_start));
      for (double nudge : {-rounding, rounding}) {
        double p_nudged = p_start;
        std::vector<double> s = s_start;
        rule.oracle(values.data(), local_row, kStep, g[i] + nudge, p_nudged, s.data());
        sensitivity[i] = std::max(sensitivity[i], std::fabs(p_nudged - p_oracle[i]));
        for (int k = 0; k < K; ++k) {
          state_sensitivity[i][k] = std::max(state_sensitivity[i][k], std::fabs(s[k] - state[i][k]));
        }
      }
    }

    kernels::reference_kernels().get(c.row, c.format, c.dtype)(run.chunk(), testing::test_scalars(c, kStep));

    int code_mismatches = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double p = run.param().get(i);
      ASSERT_LE(std::fabs(p - p_oracle[i]), param_tolerance(c.dtype, p_old[i], p_oracle[i]) + sensitivity[i])
          << "element " << i << ": parameter " << p << ", oracle " << p_oracle[i];
      if (c.format == StateFormat::kFp32) {
        for (int k = 0; k < K; ++k) {
          ASSERT_LE(std::fabs(run.state(k).get(i) - state[i][k]),
                    state_tolerance(spec.states[k].is_signed, start[i][k], state[i][k], g_eff[i]) +
                        state_sensitivity[i][k])
              << "element " << i << " state " << spec.states[k].name;
        }
      } else if (i % quant::kQ8BlockSize == 0) {
        // Code space: the kernel's codes against the reference encoder applied to the
        // oracle's state, block by block.
        const std::int64_t len = std::min(quant::kQ8BlockSize, n - i);
        for (int k = 0; k < K; ++k) {
          std::vector<float> block(len);
          for (std::int64_t j = 0; j < len; ++j) block[j] = static_cast<float>(state[i + j][k]);
          std::vector<std::uint8_t> codes(len);
          float absmax = 0.0f;
          quant::quantize_block_reference(code_of(spec.states[k].is_signed), block.data(), len, codes.data(), &absmax);
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

TEST(Kernels, NonFiniteGradientSkipsOnlyItsElement) {
  constexpr std::int64_t n = 4099;
  for (const KernelCase& c : all_cases()) {
    SCOPED_TRACE(c.name());
    KernelRun run(c, n, 0, 7);
    const std::vector<std::uint8_t> param_before = run.param().bytes();
    std::vector<std::vector<float>> state_before;
    for (int k = 0; c.format == StateFormat::kFp32 && k < c.num_states(); ++k) {
      state_before.push_back(run.state(k).values());
    }
    std::vector<std::vector<float>> decoded_before(c.num_states());
    if (c.format == StateFormat::kQ8) {
      for (int k = 0; k < c.num_states(); ++k) {
        decoded_before[k].resize(n);
        quant::dequantize_reference(code_of(c.spec().states[k].is_signed), run.codes(k), run.absmax(k), n,
                                    decoded_before[k].data());
      }
    }
    const std::vector<float> g = run.grad().values();
    run.run(kernels::cpu::cpu_kernels().kernels.get(c.row, c.format, c.dtype), 1);

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
          for (int k = 0; k < c.num_states(); ++k) {
            const float absmax = run.absmax(k)[i / quant::kQ8BlockSize];
            const float after = quant::decode_reference(code_of(c.spec().states[k].is_signed), run.codes(k)[i], absmax);
            ASSERT_LE(std::fabs(after - decoded_before[k][i]), 0.0071f * absmax) << "element " << i;
          }
        }
      } else {
        ASSERT_TRUE(std::isfinite(run.param().get(i))) << "element " << i;
      }
    }
    EXPECT_GT(skipped, 100);
    for (std::int64_t b = 0; c.format == StateFormat::kQ8 && b < quant::q8_num_blocks(n); ++b) {
      for (int k = 0; k < c.num_states(); ++k) ASSERT_TRUE(std::isfinite(run.absmax(k)[b])) << "block " << b;
    }
  }
}

// --- Sums of squares (Note [Deterministic sums]) --------------------------------------

TEST(Kernels, SumOfSquaresIsTheReferenceBitwiseOnEveryTargetAndCloseToExact) {
  for (DType dtype : testing::kAllDTypes) {
    for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{15}, std::int64_t{17}, std::int64_t{255},
                           std::int64_t{256}, std::int64_t{4099}, std::int64_t{70001}}) {
      for (std::int64_t offset : {0, 1}) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + " n=" + std::to_string(n) + " offset=" + std::to_string(offset));
        std::vector<float> values = testing::normal_values(static_cast<std::size_t>(n), 5 + static_cast<std::uint64_t>(n));
        for (std::int64_t i = 0; i < n; i += 7) values[i] *= 1e3f;  // a spread of magnitudes
        const testing::HostTensor x(dtype, values, offset);
        std::vector<double> expected_blocks(static_cast<std::size_t>(kernels::reduce_blocks(n)));
        kernels::reference_sum_squares(dtype)(x.data(), n, expected_blocks.data());
        const double expected = kernels::fold_blocks(expected_blocks.data(), kernels::reduce_blocks(n));
        long double exact = 0.0L;  // the values as stored, squared and summed in long double
        for (std::int64_t i = 0; i < n; ++i) exact += static_cast<long double>(x.get(i)) * x.get(i);
        EXPECT_NEAR(expected, static_cast<double>(exact), 1e-13 * static_cast<double>(exact) + 1e-300);
        for (std::int64_t target : kernels::cpu::cpu_targets()) {
          SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
          kernels::cpu::ScopedCpuTarget force(target);
          std::vector<double> blocks(expected_blocks.size(), -1.0);
          kernels::cpu::cpu_kernels().sum_squares[static_cast<int>(dtype)](x.data(), n, blocks.data());
          EXPECT_EQ(std::memcmp(blocks.data(), expected_blocks.data(), blocks.size() * sizeof(double)), 0);
        }
      }
    }
  }
}

// max_unorm's direction norms: every target's block sums are the reference's, bitwise,
// for every row, state format and dtype (the gradient scaled first; 8-bit state decoded).
TEST(Kernels, DirectionNormIsTheReferenceBitwiseOnEveryTarget) {
  for (const KernelCase& c : all_cases()) {
    for (std::int64_t n : {std::int64_t{1}, std::int64_t{17}, std::int64_t{256}, std::int64_t{4099}}) {
      SCOPED_TRACE(c.name() + " n=" + std::to_string(n));
      KernelRun run(c, n, 1, 77);
      rules::RuleScalars scalars = testing::test_scalars(c, 3);
      scalars.grad_scale = 0.75f;
      std::vector<double> expected(static_cast<std::size_t>(kernels::reduce_blocks(n)));
      kernels::reference_direction_norms().get(c.row, c.format, c.dtype)(run.chunk(), scalars, expected.data());
      EXPECT_GT(kernels::fold_blocks(expected.data(), kernels::reduce_blocks(n)), 0.0);
      for (std::int64_t target : kernels::cpu::cpu_targets()) {
        SCOPED_TRACE("target " + kernels::cpu::cpu_target_name(target));
        kernels::cpu::ScopedCpuTarget force(target);
        std::vector<double> actual(expected.size(), -1.0);
        kernels::cpu::cpu_kernels().direction_norms.get(c.row, c.format, c.dtype)(run.chunk(), scalars, actual.data());
        EXPECT_EQ(std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(double)), 0);
      }
    }
  }
}

}  // namespace
}  // namespace octopage
