#include "src/engine/paged_hints.h"

#include "src/engine/param_state.h"
#include "src/memory/mapped_region.h"

namespace octopage::engine {

void PagedHints::add(std::size_t task, const ParamState& state, const kernels::Chunk& c) {
  if (windows_.empty() || windows_.back().bytes >= window_bytes_) {
    windows_.push_back({task, {}, 0});
    if (opens_.size() <= task) opens_.resize(task + 1, 0);
    opens_[task] = windows_.size();
  }
  Window& w = windows_.back();
  const auto add_range = [&](const void* begin, std::size_t bytes) {
    const char* p = static_cast<const char*>(begin);
    for (Range& r : w.ranges) {
      if (r.begin + r.bytes == p) {  // continues a range of this window
        r.bytes += bytes;
        return;
      }
    }
    w.ranges.push_back({p, bytes});
  };
  for (int k = 0; k < state.num_states; ++k) add_range(c.state[k], state.array_bytes(k, c.n));
  for (int k = 0; k < state.num_absmax(); ++k) add_range(c.absmax[k], state.absmax_bytes(c.n));
  w.bytes += state.bytes_of(c.n);
  total_bytes_ += state.bytes_of(c.n);
}

void PagedHints::start() {
  if (windows_.empty()) return;
  const std::uint64_t available = memory::available_ram_bytes();
  release_ = available == 0 || total_bytes_ > available / 2;
  prefetch(0);
}

void PagedHints::on_task(std::size_t task) const {
  if (task >= opens_.size() || opens_[task] == 0) return;
  const std::size_t window = opens_[task] - 1;
  prefetch(window + 1);
  if (release_ && window >= 2) release(window - 2);
}

void PagedHints::prefetch(std::size_t window) const {
  if (window >= windows_.size()) return;
  for (const Range& r : windows_[window].ranges) memory::prefetch(r.begin, r.bytes);
}

void PagedHints::release(std::size_t window) const {
  for (const Range& r : windows_[window].ranges) memory::release(r.begin, r.bytes);
}

}  // namespace octopage::engine
