#include "src/engine/tiers.h"

#include <algorithm>
#include <cstdlib>

#include "octopage/allocator.h"
#include "octopage/error.h"
#include "src/memory/cuda_memory.h"
#include "src/quant/formats.h"

namespace octopage::engine {
namespace {

// The most bytes one 8-bit block of state can take: fp32 values of the most states.
constexpr std::uint64_t kMaxBlockBytes = rules::kMaxStates * quant::kQ8BlockSize * sizeof(float);

}  // namespace

void check_tier_options(const TierOptions& o) {
  using memory::kFileAlignment;
  OCTOPAGE_CHECK(o.chunk_bytes >= kFileAlignment && o.chunk_bytes % kFileAlignment == 0,
                 "expected chunk_bytes to be a positive multiple of ", kFileAlignment,
                 " (one aligned chunk holds at least one block of ", quant::kQ8BlockSize,
                 " values, up to ", kMaxBlockBytes, " bytes of state), got ", o.chunk_bytes);
  OCTOPAGE_CHECK(o.ring_bytes >= 3 * o.chunk_bytes, "expected ring_bytes >= 3 * chunk_bytes = ",
                 3 * o.chunk_bytes, " (one chunk read ahead, one updated, one written back), got ",
                 o.ring_bytes);
  OCTOPAGE_CHECK(o.io_backend == IoBackend::kAuto || o.io_backend == IoBackend::kIoUring ||
                     o.io_backend == IoBackend::kThreads,
                 "expected io_backend auto, io_uring or threads, got #", static_cast<int>(o.io_backend));
  if (!o.offload_dir.empty()) memory::check_state_directory(o.offload_dir);
}

Tiers::Tiers(const TierOptions& options) : options_(options), directory_(options.offload_dir, options.keep_files) {
  check_tier_options(options_);
}

Tiers::~Tiers() {
  io_queue_.reset();  // no I/O in flight once the queue is gone; then the files go
}

memory::StagingRing& Tiers::ring() {
  if (!ring_) ring_ = std::make_unique<memory::StagingRing>(options_, offload_file_ ? offload_file_->size() : 0);
  return *ring_;
}

memory::IoQueue& Tiers::io_queue() {
  if (!io_queue_) {
    OCTOPAGE_CHECK_RUNTIME(offload_file_ != nullptr, "internal error: no offload file for the I/O queue");
    // Every slot may have a request in flight.
    io_queue_ = memory::make_io_queue(options_.io_backend, offload_file_->fd(),
                                      static_cast<unsigned>(ring().num_slots()));
  }
  return *io_queue_;
}

std::vector<std::string> Tiers::files() const {
  std::vector<std::string> paths;
  for (const auto* f : {paged_file_.get(), offload_file_.get()}) {
    if (f != nullptr) paths.push_back(f->path());
  }
  return paths;
}

std::uint64_t Tiers::paged_resident_bytes() const {
  std::uint64_t bytes = 0;
  for (const auto& weak : mappings_) {
    if (const auto region = weak.lock()) bytes += region->resident_bytes();
  }
  return bytes;
}

void Tiers::page_out() const {
  for (const auto& weak : mappings_) {
    if (const auto region = weak.lock()) region->page_out();
  }
}

memory::StateFile& Tiers::file(std::unique_ptr<memory::StateFile>& slot, const char* kind, bool direct) {
  if (!slot) slot = std::make_unique<memory::StateFile>(directory_, kind, direct);
  return *slot;
}

void Tiers::place(const std::vector<ParamState*>& states) {
  std::vector<ParamState*> in_ram, on_gpu, paged, offloaded, offloaded_from_gpu;
  for (ParamState* s : states) {
    if (s->numel == 0) continue;  // no bytes to place (an empty shard)
    if (s->device == Device::kCUDA) {
      (s->placement == Placement::kOffload ? offloaded_from_gpu : on_gpu).push_back(s);
      continue;
    }
    if (s->placement == Placement::kDevice) in_ram.push_back(s);
    if (s->placement == Placement::kPaged) paged.push_back(s);
    if (s->placement == Placement::kOffload) offloaded.push_back(s);
  }
  const std::uint64_t paged_size = paged_file_ ? paged_file_->size() : 0;
  try {
    for (ParamState* s : in_ram) place_in_memory(*s, host_allocator());
    for (ParamState* s : on_gpu) {
      Allocator& allocator = s->placement == Placement::kPaged   ? memory::cuda::managed_allocator()
                             : s->placement == Placement::kCpuStep ? host_allocator()
                                                                   : device_allocator();
      place_in_memory(*s, allocator);
    }
    if (!offloaded_from_gpu.empty()) place_in_host_records(offloaded_from_gpu);
    if (!paged.empty()) place_paged(paged);
    if (!offloaded.empty()) place_offloaded(offloaded);
  } catch (...) {
    for (ParamState* s : states) {
      for (memory::Buffer& b : s->buffers) b = memory::Buffer();
      s->mapping.reset();
      s->host_buffer.reset();
    }
    if (paged_file_) paged_file_->shrink_to(paged_size);
    throw;
  }
}

void Tiers::place_in_memory(ParamState& s, Allocator& allocator) {
  for (int k = 0; k < s.num_states; ++k) {
    s.buffers[k] = memory::Buffer(allocator, s.array_bytes(k, s.numel), s.spec().states[k].name);
    s.values[k] = s.buffers[k].as<char>();
  }
  for (int k = 0; k < s.num_absmax(); ++k) {
    memory::Buffer& buffer = s.buffers[rules::kMaxStates + k];
    buffer = memory::Buffer(allocator, s.absmax_bytes(s.numel), "absmax");
    s.absmax[k] = buffer.as<float>();
  }
}

// One region for all: every array starts on its own page, so the prefetch and release
// hints of one array never touch another's pages.
void Tiers::place_paged(const std::vector<ParamState*>& states) {
  using memory::align_up;
  std::uint64_t total = 0;
  for (const ParamState* s : states) {
    for (int k = 0; k < s->num_states; ++k) total += align_up(s->array_bytes(k, s->numel), memory::kFileAlignment);
    for (int k = 0; k < s->num_absmax(); ++k) total += align_up(s->absmax_bytes(s->numel), memory::kFileAlignment);
  }
  memory::StateFile& f = file(paged_file_, "paged", false);
  const std::uint64_t offset = f.reserve(total);
  std::shared_ptr<memory::MappedRegion> region;
  try {
    region = std::make_shared<memory::MappedRegion>(f, offset, total);
  } catch (...) {
    f.shrink_to(offset);
    throw;
  }
  mappings_.push_back(region);
  std::uint64_t at = 0;
  for (ParamState* s : states) {
    s->mapping = region;
    for (int k = 0; k < s->num_states; ++k) {
      s->values[k] = region->data() + at;
      at += align_up(s->array_bytes(k, s->numel), memory::kFileAlignment);
    }
    for (int k = 0; k < s->num_absmax(); ++k) {
      s->absmax[k] = reinterpret_cast<float*>(region->data() + at);
      at += align_up(s->absmax_bytes(s->numel), memory::kFileAlignment);
    }
  }
}

// A CUDA parameter's offloaded state: records as the file would hold them, in one host
// buffer for the states placed together (page-locked unless pin_host_memory is false).
void Tiers::place_in_host_records(const std::vector<ParamState*>& states) {
  std::uint64_t total = 0;
  for (ParamState* s : states) {
    s->lay_out_records(options_.chunk_bytes);
    total += s->file_bytes();
  }
  Allocator& allocator = options_.pin_host_memory ? memory::cuda::pinned_allocator() : host_allocator();
  auto buffer = std::make_shared<memory::Buffer>(allocator, total,
                                                 options_.pin_host_memory
                                                     ? "offloaded state (page-locked; pin_host_memory=False takes pageable memory)"
                                                     : "offloaded state");
  std::uint64_t at = 0;
  for (ParamState* s : states) {
    s->host_buffer = buffer;
    s->host_records = buffer->as<char>() + at;
    at += s->file_bytes();
  }
}

Allocator& Tiers::device_allocator() const {
  return options_.device_allocator ? *options_.device_allocator : memory::cuda::device_allocator();
}

CudaOffloadRing& Tiers::cuda_ring(std::uint64_t offload_bytes) {
  if (!cuda_ring_) {
    cuda_ring_ = std::make_unique<CudaOffloadRing>(memory::StagingRing::slots_for(options_, offload_bytes),
                                                   options_.chunk_bytes, device_allocator());
  }
  return *cuda_ring_;
}

CpuStepRing& Tiers::cpu_step_ring(std::uint64_t parameter_bytes) {
  if (!cpu_step_ring_) {
    cpu_step_ring_ = std::make_unique<CpuStepRing>(memory::StagingRing::slots_for(options_, 2 * parameter_bytes),
                                                   options_.chunk_bytes, options_.pin_host_memory);
  }
  return *cpu_step_ring_;
}

std::array<std::uint64_t, kNumTiers> Tiers::staging_bytes_by_tier() const {
  std::array<std::uint64_t, kNumTiers> bytes{};
  bytes[static_cast<std::size_t>(Tier::kHost)] = (ring_ ? ring_->bytes() : 0) + (cpu_step_ring_ ? cpu_step_ring_->bytes() : 0);
  bytes[static_cast<std::size_t>(Tier::kDevice)] = cuda_ring_ ? cuda_ring_->bytes() : 0;
  return bytes;
}

// Records as big as a ring slot allows (Note [Offload records]), laid out in the order
// given, which is the order step() streams them in.
void Tiers::place_offloaded(const std::vector<ParamState*>& states) {
  std::uint64_t total = 0;
  for (ParamState* s : states) {
    s->lay_out_records(options_.chunk_bytes);
    total += s->file_bytes();
  }
  memory::StateFile& f = file(offload_file_, "offload", options_.direct_io);
  std::uint64_t at = f.reserve(total);
  for (ParamState* s : states) {
    s->file_offset = at;
    at += s->file_bytes();
  }
}

}  // namespace octopage::engine
