// STREAM-style triads with Highway, dispatched to the best target of this CPU: STREAM's
// own a = b + s*c with streaming (non-temporal) stores, and the in-place b = b + s*c, the
// access pattern of an optimizer step (every line written was just read). Both move 12
// bytes per element, as STREAM counts them.
#include "perf/triad.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "perf/triad.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "hwy/targets.h"
#include "src/engine/thread_pool.h"

HWY_BEFORE_NAMESPACE();
namespace octopage::perf::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// a[i] = b[i] + scalar*c[i] for i in [0, n); a, b, c aligned, n a multiple of the lanes.
void Triad(float* HWY_RESTRICT a, const float* HWY_RESTRICT b, const float* HWY_RESTRICT c,
           float scalar, std::size_t n) {
  const hn::ScalableTag<float> d;
  const auto s = hn::Set(d, scalar);
  for (std::size_t i = 0; i < n; i += hn::Lanes(d)) {
    hn::Stream(hn::MulAdd(s, hn::Load(d, c + i), hn::Load(d, b + i)), d, a + i);
  }
}

// b[i] = b[i] + scalar*c[i], in place.
void TriadInPlace(float* HWY_RESTRICT b, const float* HWY_RESTRICT c, float scalar,
                  std::size_t n) {
  const hn::ScalableTag<float> d;
  const auto s = hn::Set(d, scalar);
  for (std::size_t i = 0; i < n; i += hn::Lanes(d)) {
    hn::Store(hn::MulAdd(s, hn::Load(d, c + i), hn::Load(d, b + i)), d, b + i);
  }
}

}  // namespace octopage::perf::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace octopage::perf {

HWY_EXPORT(Triad);
HWY_EXPORT(TriadInPlace);

namespace {

constexpr std::int64_t kTaskElements = std::int64_t{1} << 16;  // 256 KiB per array per task

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TriadResult measure_triad(std::int64_t elements, int repetitions) {
  elements = (elements + kTaskElements - 1) / kTaskElements * kTaskElements;
  const auto n = static_cast<std::size_t>(elements);
  auto a = hwy::AllocateAligned<float>(n);
  auto b = hwy::AllocateAligned<float>(n);
  auto c = hwy::AllocateAligned<float>(n);
  const std::int64_t tasks = elements / kTaskElements;
  const auto triad = HWY_DYNAMIC_DISPATCH(Triad);
  // First touch on the threads that will use the memory; also the warm-up.
  engine::ThreadPool::instance().parallel_for(tasks, [&](std::int64_t t) {
    const std::size_t begin = static_cast<std::size_t>(t * kTaskElements);
    std::fill_n(a.get() + begin, kTaskElements, 0.0f);
    std::fill_n(b.get() + begin, kTaskElements, 1.0f);
    std::fill_n(c.get() + begin, kTaskElements, 2.0f);
  });

  // Alternate the two kernels so that both see the same noise.
  std::vector<double> rates, in_place_rates;
  const auto in_place = HWY_DYNAMIC_DISPATCH(TriadInPlace);
  for (int r = 0; r < repetitions; ++r) {
    auto start = std::chrono::steady_clock::now();
    engine::ThreadPool::instance().parallel_for(tasks, [&](std::int64_t t) {
      const std::size_t begin = static_cast<std::size_t>(t * kTaskElements);
      triad(a.get() + begin, b.get() + begin, c.get() + begin, 3.0f, kTaskElements);
    });
    rates.push_back(12.0 * static_cast<double>(elements) / seconds_since(start) / 1e9);
    start = std::chrono::steady_clock::now();
    engine::ThreadPool::instance().parallel_for(tasks, [&](std::int64_t t) {
      const std::size_t begin = static_cast<std::size_t>(t * kTaskElements);
      in_place(b.get() + begin, c.get() + begin, 1e-30f, kTaskElements);
    });
    in_place_rates.push_back(12.0 * static_cast<double>(elements) / seconds_since(start) / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  std::sort(in_place_rates.begin(), in_place_rates.end());
  TriadResult result;
  result.best_gb_per_s = rates.back();
  result.median_gb_per_s = rates[rates.size() / 2];
  result.in_place_best_gb_per_s = in_place_rates.back();
  result.in_place_median_gb_per_s = in_place_rates[in_place_rates.size() / 2];
  result.elements = elements;
  result.repetitions = repetitions;
  result.target = hwy::TargetName(hwy::SupportedAndGeneratedTargets().front());  // best first
  return result;
}

}  // namespace octopage::perf
#endif  // HWY_ONCE
