// One parameter's optimizer state: its format, step count, placement and where its bytes
// are. Created when the parameter first has a gradient; placed by engine::Tiers; zero-
// filled by the first step's workers, chunk by chunk, so the pages are first touched by
// the thread that updates them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "octopage/cuda.h"
#include "octopage/optimizer.h"
#include "src/kernels/chunk.h"
#include "src/rules/registry.h"
#include "src/memory/buffer.h"
#include "src/memory/io_queue.h"
#include "src/memory/mapped_region.h"
#include "src/memory/state_file.h"

namespace octopage::engine {

// Where a kernel finds a parameter's elements and its gradient's: element `first` at
// `param` and `grad` (the buffers themselves: first = 0; a staging slot: the first
// element it holds). nullptr: none, as for a snapshot, which copies state only.
struct ElementBuffers {
  void* param = nullptr;
  const void* grad = nullptr;
  std::int64_t first = 0;
};

inline ElementBuffers buffers_of(const Parameter& p) { return {p.value.data, p.grad.data, 0}; }

// Note [Offload records]
// `offload` state is stored chunk-major: the parameter's elements are cut into records
// of record_elements (a multiple of the 8-bit block), and a record holds everything the
// update of those elements needs, so it moves in one read and one write:
//   [absmax of each 8-bit state][values or codes of state 0][state 1][state 2]
// (absmax first keeps the floats aligned whatever the codes' length). Records start
// record_stride bytes apart (a multiple of the file alignment, for direct I/O); the last
// one is shorter.
struct ParamState {
  std::int64_t step = 0;
  StateFormat format = StateFormat::kFp32;
  DType dtype = DType::kFloat32;
  Placement placement = Placement::kDevice;
  // Where the state is: kCPU (RAM, a mapping or a file) or kCUDA (device memory for
  // `device`, managed memory for `paged`), the device of its parameter.
  Device device = Device::kCPU;
  std::int64_t numel = 0;
  int row = 0;  // the kernel row (rule and variant) the state was made for: rules::row_spec
  int num_states = 0;
  // Note [Percentile clipping]: the last 100 squared gradient norms (in RAM wherever the
  // state is; empty until a step clips).
  std::vector<float> gnorm_vec;
  std::vector<float> unorm_vec;  // StateSnapshot::unorm_vec: max_unorm's last ||u||^2, or none

  // kDevice and kPaged: the state arrays in memory, owned by `buffers` (device) or
  // `mapping` (paged; shared by the states placed in the same step).
  char* values[rules::kMaxStates] = {};   // fp32 values, or 8-bit codes
  float* absmax[rules::kMaxStates] = {};  // 8-bit state only
  memory::Buffer buffers[2 * rules::kMaxStates];
  std::shared_ptr<memory::MappedRegion> mapping;

  // kOffload: see Note [Offload records]. The records are in the offload file at
  // file_offset, or, for a CUDA parameter, in host memory at host_records (owned by
  // host_buffer, shared by the states placed in the same step).
  std::uint64_t file_offset = 0;
  char* host_records = nullptr;
  std::shared_ptr<memory::Buffer> host_buffer;
  std::int64_t record_elements = 0;
  std::uint64_t record_stride = 0;

  // The layout only; engine::Tiers gives it a home.
  static std::unique_ptr<ParamState> make(StateFormat format, DType dtype, std::int64_t numel,
                                          int row, Placement placement,
                                          Device device = Device::kCPU);
  const rules::RowSpec& spec() const { return rules::row_spec(row); }

  std::size_t value_bytes() const { return format == StateFormat::kQ8 ? 1 : sizeof(float); }
  int num_absmax() const { return format == StateFormat::kQ8 ? num_states : 0; }
  // Bytes of state array k (k < num_states) and of absmax array k, for n elements.
  std::uint64_t array_bytes(int k, std::int64_t n) const;
  std::uint64_t absmax_bytes(std::int64_t n) const;
  // State bytes of n elements: every array, no alignment.
  std::uint64_t bytes_of(std::int64_t n) const;
  std::uint64_t bytes() const { return bytes_of(numel); }

  // kOffload: cuts the state into records as big as a ring slot of chunk_bytes allows
  // (Note [Offload records]); then records, and the bytes that record r takes in the file.
  void lay_out_records(std::uint64_t chunk_bytes);
  std::int64_t num_records() const;
  std::uint64_t record_file_bytes(std::int64_t r) const;
  std::uint64_t file_bytes() const;  // all records

  // A kernel's view of elements [begin, begin + n) of the parameter (in `elements`) and
  // of this state, which lives in memory (kDevice, kPaged) or, for kOffload, in
  // `record`: the staged copy of the record that holds element `begin` (begin and n
  // within that record).
  kernels::Chunk chunk(const ElementBuffers& elements, std::int64_t begin, std::int64_t n) const;
  kernels::Chunk record_chunk(const ElementBuffers& elements, char* record, std::int64_t begin,
                              std::int64_t n) const;
  // Writes the zero state into a chunk's state in host memory, or, enqueued on `stream`,
  // in CUDA device or managed memory.
  void zero_fill(const kernels::Chunk& chunk) const;
  void zero_fill_cuda(const kernels::Chunk& chunk, CudaStream stream) const;
  // Where record r of `offload` state is in host memory (CUDA parameters only).
  char* host_record(std::int64_t r) const { return host_records + r * record_stride; }

  // A copy of the state; kOffload reads it from `file` (throws Error(kRuntime) on I/O
  // errors); kCUDA copies after the work on `stream`.
  StateSnapshot snapshot(const memory::StateFile* file, CudaStream stream = nullptr) const;
  // Writes a checked snapshot of this state's format, numel and row (converted(): its
  // arrays in the row's order) into the state's home (kOffload: into `file`) and takes
  // its step.
  void restore(const StateSnapshot& snapshot, const memory::StateFile* file, CudaStream stream = nullptr);

 private:
  // Calls visit(chunk, begin) on every piece of the state: the whole of it in memory, or
  // record by record for kOffload, read from `file` before the visit (kRead) or written
  // to it after (kWrite).
  template <class Visit>
  void for_each_piece(const memory::StateFile* file, memory::IoKind io, Visit visit) const;
};

// The snapshot with the arrays of kernel row `row`, in its order, in `format` (Note
// [Loading state]): the same values, quantized with the reference encoder or decoded;
// arrays the row does not keep are dropped. check_loaded_state() has checked that
// every array the row keeps is there.
StateSnapshot converted(StateSnapshot snapshot, StateFormat format, int row);

}  // namespace octopage::engine
