// The machine's memory bandwidth, measured as STREAM measures it: a[i] = b[i] + s*c[i]
// with stores that bypass the caches, and the in-place b[i] = b[i] + s*c[i] (an optimizer
// step's pattern), over arrays far larger than the caches, on as many threads as a step
// uses (octopage's own thread pool). Every step figure the benchmark prints is also a fraction of
// the better of the two.
#pragma once

#include <cstdint>

namespace octopage::perf {

struct TriadResult {
  double best_gb_per_s = 0;    // best repetition, bytes moved / s (12 per element)
  double median_gb_per_s = 0;
  double in_place_best_gb_per_s = 0;  // b = b + s*c
  double in_place_median_gb_per_s = 0;
  std::int64_t elements = 0;   // per array
  int repetitions = 0;
  const char* target = "";     // the SIMD target that ran it

  double limit_gb_per_s() const { return best_gb_per_s > in_place_best_gb_per_s ? best_gb_per_s : in_place_best_gb_per_s; }
};

// Runs `repetitions` of each triad over three arrays of `elements` floats each.
TriadResult measure_triad(std::int64_t elements, int repetitions);

// The best SIMD target of this CPU among those compiled here: the one octopage's kernels

}  // namespace octopage::perf
