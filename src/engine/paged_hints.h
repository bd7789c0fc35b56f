// What `paged` state tells the system during a step: the state of the next window of
// chunks is prefetched while the current one is updated and, when RAM is short, the
// window before last is released (first to evict). With RAM to spare, releasing would
// only make the system age pages the next step needs again (it measured 1.5-2x slower
// steps here), so it is not done. A window is about chunk_bytes of state, so the hints
// cost a few system calls per megabytes, not per chunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "src/kernels/chunk.h"

namespace octopage::engine {

struct ParamState;

class PagedHints {
 public:
  explicit PagedHints(std::uint64_t window_bytes) : window_bytes_(window_bytes) {}

  // Before the step: prefetch the first window, and decide whether to release windows
  // (when the paged state of this step is more than half the RAM available now).
  void start();

  // Adds the chunk that task `task` updates (tasks are added in the order they run).
  void add(std::size_t task, const ParamState& state, const kernels::Chunk& chunk);
  // When a task starts: if it opens a window, prefetch the next and release an old one.
  void on_task(std::size_t task) const;

 private:
  struct Range {
    const char* begin;
    std::size_t bytes;
  };
  struct Window {
    std::size_t first_task;
    std::vector<Range> ranges;  // merged where adjacent
    std::uint64_t bytes = 0;
  };
  void prefetch(std::size_t window) const;
  void release(std::size_t window) const;

  std::uint64_t window_bytes_;
  std::uint64_t total_bytes_ = 0;
  bool release_ = false;
  std::vector<Window> windows_;
  std::vector<std::size_t> opens_;  // per task: window it opens + 1, or 0
};

}  // namespace octopage::engine
