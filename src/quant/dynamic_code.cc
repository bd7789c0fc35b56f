// Builds the dynamic codes. A code is dense near zero: decade i = 0..6 covers
// magnitudes [0.1, 1) * 10^(i-6) with 2^i (signed) or 2^(i+1) (unsigned) values, the
// midpoints of an fp32 linspace(0.1, 1, k); 0 and 1 complete it.
#include "src/quant/dynamic_code.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "octopage/codes.h"
#include "octopage/error.h"

namespace octopage::quant {
namespace {

constexpr int kDecades = 7;

// torch.linspace(start, end, k, dtype=float32) as the CPU kernel computes it on a
// current x86 CPU: step rounded to fp32, then start + step*j for the first half and
// end - step*(k-1-j) for the second, each with one rounding (an FMA).
std::vector<float> linspace_fp32(float start, float end, int k) {
  const float step = (end - start) / static_cast<float>(k - 1);
  std::vector<float> points(static_cast<std::size_t>(k));
  for (int j = 0; j < k; ++j) {
    points[j] = j < k / 2 ? std::fma(step, static_cast<float>(j), start)
                          : std::fma(-step, static_cast<float>(k - 1 - j), end);
  }
  return points;
}

// 10^e for e = -6..0, correctly rounded to fp32 (as Python's float 10**e then fp32).
float power_of_ten(int e) {
  static constexpr double kPowers[kDecades] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  return static_cast<float>(kPowers[e + kDecades - 1]);
}

}  // namespace

DynamicCode make_dynamic_code(bool is_signed) {
  std::vector<float> values;
  values.reserve(kCodeSize);
  for (int decade = 0; decade < kDecades; ++decade) {
    const int k = (is_signed ? (1 << decade) : (2 << decade)) + 1;
    const std::vector<float> points = linspace_fp32(0.1f, 1.0f, k);
    const float scale = power_of_ten(decade - (kDecades - 1));
    for (int j = 0; j + 1 < k; ++j) {
      const float mean = (points[j] + points[j + 1]) / 2.0f;
      values.push_back(scale * mean);
      if (is_signed) values.push_back(-(scale * mean));
    }
  }
  values.push_back(0.0f);
  values.push_back(1.0f);
  OCTOPAGE_CHECK_RUNTIME(values.size() == kCodeSize, "expected ", kCodeSize,
                         " dynamic code values, built ", values.size());
  std::sort(values.begin(), values.end());

  DynamicCode code;
  code.is_signed = is_signed;
  std::copy(values.begin(), values.end(), code.values.begin());
  for (int i = 0; i + 1 < kCodeSize; ++i) {
    OCTOPAGE_CHECK_RUNTIME(code.values[i] < code.values[i + 1],
                           "dynamic code values must be distinct and sorted");
    code.midpoints[i] = (code.values[i] + code.values[i + 1]) * 0.5f;
  }
  const auto zero = std::find(values.begin(), values.end(), 0.0f);
  code.zero_index = static_cast<std::uint8_t>(zero - values.begin());
  return code;
}

const DynamicCode& signed_code() {
  static const DynamicCode code = make_dynamic_code(true);
  return code;
}

const DynamicCode& unsigned_code() {
  static const DynamicCode code = make_dynamic_code(false);
  return code;
}

}  // namespace octopage::quant

namespace octopage {

const std::array<float, 256>& q8_code_values(bool is_signed) {
  return (is_signed ? quant::signed_code() : quant::unsigned_code()).values;
}

}  // namespace octopage
