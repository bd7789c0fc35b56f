// The knobs of an optimizer, with PyTorch's and bitsandbytes' names and defaults, so an
// adapter is a field copy. Plain data: checking them is the Optimizer's job
// (Optimizer::step validates every group before it changes anything).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "octopage/allocator.h"

namespace octopage {

// Where optimizer state lives (see DESIGN.md, "Placement of state"). On the CPU:
// kDevice: RAM. kPaged: a file-backed mapping the system pages in and out, told what
// comes next. kOffload: a file, streamed through a fixed staging ring during step().
// kCpuStep needs a GPU build and is refused on the CPU.
enum class Placement : std::uint8_t { kDevice, kPaged, kOffload, kCpuStep };

// How a parameter's state is stored: fp32, or 8-bit block-wise (Note [Q8 block format]).
enum class StateFormat : std::uint8_t { kFp32, kQ8 };

constexpr const char* placement_name(Placement placement) {
  switch (placement) {
    case Placement::kDevice: return "device";
    case Placement::kPaged: return "paged";
    case Placement::kOffload: return "offload";
    case Placement::kCpuStep: return "cpu_step";
  }
  return "unknown placement";
}

// One hyperparameter of a group: its name and its value(s); a flag is 0 or 1.
struct Hyperparameter {
  std::string name;
  std::vector<double> values;
};

// Options of one parameter group. The rule's hyperparameters (octopage/rules.h lists
// each rule's, with torch.optim's names: "lr", "betas", "eps", "weight_decay",
// "amsgrad", ...) may change between steps, so schedulers work; those that select a
// variant (amsgrad) and the state options (optim_bits, min_8bit_size, placement) apply
// to parameters whose state is created afterwards. A hyperparameter a group does not
// set takes the optimizer's default; one the rule does not have is an error at the
// optimizer's next check.
struct GroupOptions {
  // 32: fp32 state. 8: 8-bit block-wise dynamic state (bitsandbytes' format) for
  // parameters with at least min_8bit_size elements, fp32 state for smaller ones.
  int optim_bits = 32;
  std::int64_t min_8bit_size = 4096;
  Placement placement = Placement::kDevice;
  // bitsandbytes' (<= 0.49) percentile_clipping: with P < 100, each parameter keeps the
  // squared gradient norms of its last 100 steps, and a step whose norm is above the
  // P-th smallest of them has its gradient scaled down to it (Note [Percentile
  // clipping]). 100: off. CPU parameters only, for now.
  int percentile_clipping = 100;
  // bitsandbytes' max_unorm (RULES.md 1.8): > 0 caps each tensor's step at max_unorm
  // times the parameter's norm, ||u|| <= max_unorm * ||p||, by scaling the step (never
  // the decoupled decay); u is the rule's update direction without weight decay. Every
  // state format (bitsandbytes clips only 32-bit state) and CPU placement; CPU
  // parameters only, for now. LAMB and LARS default to 1.0 and 0.02 (default_options).
  double max_unorm = 0.0;

  GroupOptions& set(std::string_view name, double value) { return set(name, std::vector<double>{value}); }
  GroupOptions& set(std::string_view name, std::vector<double> values);
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // The value of a one-value hyperparameter, and all values of any; Error when unset.
  double get(std::string_view name) const;
  const std::vector<double>& values(std::string_view name) const;
  void erase(std::string_view name);
  const std::vector<Hyperparameter>& hyperparameters() const { return hyperparameters_; }
  const Hyperparameter* find(std::string_view name) const;

 private:
  std::vector<Hyperparameter> hyperparameters_;
};

// How `offload` reads and writes its file.
// kAuto: io_uring where the kernel allows it, else IO threads over pread/pwrite.
enum class IoBackend : std::uint8_t { kAuto, kIoUring, kThreads };

// The lower tier of an optimizer's `paged` and `offload` state: where its files go and
// how state is streamed. One per optimizer; checked when the optimizer is built.
struct TierOptions {
  // Directory for state files; it must exist and be writable. Empty: a new temporary
  // directory under $TMPDIR (or /tmp), removed with the optimizer.
  std::string offload_dir;
  // Keep the state files (and a temporary directory) when the optimizer goes away.
  bool keep_files = false;
  // `offload`: state is streamed through a ring of slots of chunk_bytes each: at most
  // ring_bytes / chunk_bytes slots, at least 3 (one read ahead, one updated, one written
  // back), and no more than it takes to hold the offloaded state when the ring is made
  // (its first offloaded step), so a little offloaded state costs a little ring. A
  // chunk_bytes is a multiple of 4096; a chunk holds whole blocks of 256 values. `paged`
  // prefetches one chunk_bytes window per state buffer ahead of the update.
  std::uint64_t ring_bytes = std::uint64_t{32} << 20;
  std::uint64_t chunk_bytes = std::uint64_t{4} << 20;
  // Bypass the page cache (O_DIRECT) where the file system allows it.
  bool direct_io = true;
  IoBackend io_backend = IoBackend::kAuto;
  // CUDA parameters' `device` state comes from this allocator when set (the torch
  // adapters pass PyTorch's caching allocator, so torch.cuda.memory_allocated() counts
  // it); otherwise from cudaMalloc. It must allocate on the parameters' device.
  std::shared_ptr<Allocator> device_allocator;
  // CUDA `offload` and `cpu_step` state lives in page-locked host memory, so its copies
  // run asynchronously at the link's full speed; false takes pageable memory instead,
  // for hosts short of pinnable RAM, at the cost of the overlap.
  bool pin_host_memory = true;
};

// The options of a new group of `rule` (a name from octopage/rules.h): every
// hyperparameter at torch.optim's default (AdamW decays by 1e-2, Adam not at all), the
// rule's max_unorm (RuleInfo::default_max_unorm), 32-bit state on the device. Throws Error for an unknown rule.
GroupOptions default_options(std::string_view rule);

}  // namespace octopage
