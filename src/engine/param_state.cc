#include "src/engine/param_state.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "octopage/error.h"
#include "src/memory/cuda_memory.h"
#include "src/memory/io_queue.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/quant/q8_reference.h"

namespace octopage::engine {
namespace {

// The state arrays of one record of n elements laid out as Note [Offload records] says.
struct RecordLayout {
  std::uint64_t absmax[rules::kMaxStates] = {};
  std::uint64_t values[rules::kMaxStates] = {};
  std::uint64_t bytes = 0;
};

RecordLayout record_layout(const ParamState& s, std::int64_t n) {
  RecordLayout layout;
  std::uint64_t at = 0;
  for (int k = 0; k < s.num_absmax(); ++k) {
    layout.absmax[k] = at;
    at += s.absmax_bytes(n);
  }
  for (int k = 0; k < s.num_states; ++k) {
    layout.values[k] = at;
    at += s.array_bytes(k, n);
  }
  layout.bytes = at;
  return layout;
}

// The parameter side of a chunk (none for a snapshot, which has no parameter).
kernels::Chunk param_chunk(const ElementBuffers& e, DType dtype, std::int64_t begin, std::int64_t n) {
  const auto offset = (begin - e.first) * static_cast<std::int64_t>(dtype_size(dtype));
  kernels::Chunk c;
  if (e.param != nullptr) c.param = static_cast<char*>(e.param) + offset;
  if (e.grad != nullptr) c.grad = static_cast<const char*>(e.grad) + offset;
  c.n = n;
  return c;
}

}  // namespace

std::unique_ptr<ParamState> ParamState::make(StateFormat format, DType dtype, std::int64_t numel,
                                             int row, Placement placement, Device device) {
  auto state = std::make_unique<ParamState>();
  state->format = format;
  state->dtype = dtype;
  state->device = device;
  state->numel = numel;
  state->row = row;
  state->num_states = rules::row_spec(row).num_states;
  // A rule without state (SGD without momentum) has nothing to page or stream: its
  // update runs where the parameter is.
  state->placement = state->num_states > 0 ? placement : Placement::kDevice;
  return state;
}

std::uint64_t ParamState::array_bytes(int, std::int64_t n) const {
  return static_cast<std::uint64_t>(n) * value_bytes();
}

std::uint64_t ParamState::absmax_bytes(std::int64_t n) const {
  return format == StateFormat::kQ8 ? static_cast<std::uint64_t>(quant::q8_num_blocks(n)) * sizeof(float) : 0;
}

std::uint64_t ParamState::bytes_of(std::int64_t n) const {
  return num_states * array_bytes(0, n) + num_absmax() * absmax_bytes(n);
}

void ParamState::lay_out_records(std::uint64_t chunk_bytes) {
  const auto blocks = static_cast<std::int64_t>(chunk_bytes / bytes_of(quant::kQ8BlockSize));
  record_elements = std::min(blocks * quant::kQ8BlockSize, numel);
  record_stride = memory::align_up(bytes_of(record_elements), memory::kFileAlignment);
}

std::int64_t ParamState::num_records() const {
  return record_elements > 0 ? (numel + record_elements - 1) / record_elements : 0;
}

std::uint64_t ParamState::record_file_bytes(std::int64_t r) const {
  const std::int64_t n = std::min(record_elements, numel - r * record_elements);
  return memory::align_up(bytes_of(n), memory::kFileAlignment);
}

std::uint64_t ParamState::file_bytes() const {
  const std::int64_t records = num_records();
  return records == 0 ? 0 : (records - 1) * record_stride + record_file_bytes(records - 1);
}

kernels::Chunk ParamState::chunk(const ElementBuffers& elements, std::int64_t begin, std::int64_t n) const {
  kernels::Chunk c = param_chunk(elements, dtype, begin, n);
  for (int k = 0; k < num_states; ++k) c.state[k] = values[k] + begin * value_bytes();
  for (int k = 0; k < num_absmax(); ++k) c.absmax[k] = absmax[k] + begin / quant::kQ8BlockSize;
  return c;
}

kernels::Chunk ParamState::record_chunk(const ElementBuffers& elements, char* record, std::int64_t begin,
                                        std::int64_t n) const {
  const std::int64_t first = begin / record_elements * record_elements;
  const RecordLayout layout = record_layout(*this, std::min(record_elements, numel - first));
  const std::int64_t offset = begin - first;
  kernels::Chunk c = param_chunk(elements, dtype, begin, n);
  for (int k = 0; k < num_states; ++k) c.state[k] = record + layout.values[k] + offset * value_bytes();
  for (int k = 0; k < num_absmax(); ++k) {
    c.absmax[k] = reinterpret_cast<float*>(record + layout.absmax[k]) + offset / quant::kQ8BlockSize;
  }
  return c;
}

namespace {

const quant::DynamicCode& code_of(bool is_signed) {
  return is_signed ? quant::signed_code() : quant::unsigned_code();
}

// The byte that fills state k's array when it is zero: fp32 zero is all-zero bytes, 8-bit
// zero is the code's zero_index.
std::uint8_t zero_byte(const ParamState& s, int k) {
  return s.format == StateFormat::kQ8 ? code_of(s.spec().states[k].is_signed).zero_index : 0;
}

}  // namespace

void ParamState::zero_fill(const kernels::Chunk& c) const {
  const auto count = static_cast<std::size_t>(c.n);
  if (format == StateFormat::kFp32) {
    for (int k = 0; k < num_states; ++k) std::fill_n(static_cast<float*>(c.state[k]), count, 0.0f);
    return;
  }
  const auto blocks = static_cast<std::size_t>(quant::q8_num_blocks(c.n));
  for (int k = 0; k < num_states; ++k) {
    std::memset(c.state[k], zero_byte(*this, k), count);
    std::fill_n(c.absmax[k], blocks, 0.0f);
  }
}

void ParamState::zero_fill_cuda(const kernels::Chunk& c, CudaStream stream) const {
  for (int k = 0; k < num_states; ++k) memory::cuda::fill_async(c.state[k], zero_byte(*this, k), array_bytes(k, c.n), stream);
  for (int k = 0; k < num_absmax(); ++k) memory::cuda::fill_async(c.absmax[k], 0, absmax_bytes(c.n), stream);
}

template <class Visit>
void ParamState::for_each_piece(const memory::StateFile* file, memory::IoKind io, Visit visit) const {
  const ElementBuffers none{};
  if (numel == 0) return;  // nothing placed, nothing to copy
  if (placement != Placement::kOffload) {
    visit(chunk(none, 0, numel), std::int64_t{0});
    return;
  }
  if (device == Device::kCUDA) {  // records in host memory
    for (std::int64_t r = 0; r < num_records(); ++r) {
      const std::int64_t begin = r * record_elements;
      visit(record_chunk(none, host_record(r), begin, std::min(record_elements, numel - begin)), begin);
    }
    return;
  }
  OCTOPAGE_CHECK_RUNTIME(file != nullptr, "internal error: offloaded state without its file");
  const std::unique_ptr<char, decltype(&std::free)> record(
      static_cast<char*>(std::aligned_alloc(memory::kFileAlignment, record_stride)), &std::free);
  OCTOPAGE_CHECK_RUNTIME(record != nullptr, "out of memory: could not allocate ", record_stride,
                         " bytes to stage offloaded state");
  const bool reading = io == memory::IoKind::kRead;
  if (!reading) std::memset(record.get(), 0, record_stride);  // the padding written too
  for (std::int64_t r = 0; r < num_records(); ++r) {
    const memory::IoRequest request{io, record.get(), record_file_bytes(r), file_offset + r * record_stride, 0};
    const auto transfer = [&] {
      const int error = memory::transfer(file->fd(), request);
      OCTOPAGE_CHECK_RUNTIME(error == 0, "could not ", reading ? "read" : "write", " offloaded optimizer state ",
                             reading ? "from" : "to", " '", file->path(), "': ", memory::io_error_text(error));
    };
    if (reading) transfer();
    const std::int64_t begin = r * record_elements;
    visit(record_chunk(none, record.get(), begin, std::min(record_elements, numel - begin)), begin);
    if (!reading) transfer();
  }
}

namespace {

// A snapshot's arrays (in its row's order) as a chunk in its format, to copy from or into.
kernels::Chunk snapshot_chunk(StateSnapshot& s) {
  kernels::Chunk c;
  for (std::size_t k = 0; k < s.arrays.size(); ++k) {
    StateArray& a = s.arrays[k];
    if (s.format == StateFormat::kFp32) {
      c.state[k] = a.values.data();
      c.n = static_cast<std::int64_t>(a.values.size());
    } else {
      c.state[k] = a.codes.data();
      c.absmax[k] = a.absmax.data();
      c.n = static_cast<std::int64_t>(a.codes.size());
    }
  }
  return c;
}

// How a snapshot or restore copies s's arrays. A CUDA parameter's state is first let
// finish the work queued on `stream`; then only `device` state needs a CUDA copy: managed
// (paged) memory and the host memory of offload and cpu_step take memcpy.
auto copier(const ParamState& s, CudaStream stream) {
  if (s.device == Device::kCUDA) memory::cuda::synchronize(stream);
  const bool device_memory = s.device == Device::kCUDA && s.placement == Placement::kDevice;
  return [device_memory, stream](void* dst, const void* src, std::size_t bytes) {
    if (device_memory) {
      memory::cuda::copy_after(dst, src, bytes, stream);
    } else {
      std::memcpy(dst, src, bytes);
    }
  };
}

}  // namespace

StateSnapshot ParamState::snapshot(const memory::StateFile* file, CudaStream stream) const {
  const auto copy = copier(*this, stream);
  StateSnapshot s;
  s.step = step;
  s.format = format;
  s.placement = placement;
  s.gnorm_vec = gnorm_vec;
  s.unorm_vec = unorm_vec;
  const auto n = static_cast<std::size_t>(numel);
  for (int k = 0; k < num_states; ++k) {
    StateArray& a = s.arrays.emplace_back();
    a.name = spec().states[k].name;
    if (format == StateFormat::kFp32) {
      a.values.resize(n);
    } else {
      a.codes.resize(n);
      a.absmax.resize(static_cast<std::size_t>(quant::q8_num_blocks(numel)));
    }
  }
  const kernels::Chunk out = snapshot_chunk(s);
  for_each_piece(file, memory::IoKind::kRead, [&](const kernels::Chunk& c, std::int64_t begin) {
    for (int k = 0; k < num_states; ++k) {
      copy(static_cast<char*>(out.state[k]) + begin * value_bytes(), c.state[k], array_bytes(k, c.n));
    }
    for (int k = 0; k < num_absmax(); ++k) {
      copy(out.absmax[k] + begin / quant::kQ8BlockSize, c.absmax[k], absmax_bytes(c.n));
    }
  });
  return s;
}

void ParamState::restore(const StateSnapshot& snapshot, const memory::StateFile* file, CudaStream stream) {
  const auto copy = copier(*this, stream);
  const kernels::Chunk in = snapshot_chunk(const_cast<StateSnapshot&>(snapshot));  // read only
  for_each_piece(file, memory::IoKind::kWrite, [&](const kernels::Chunk& c, std::int64_t begin) {
    for (int k = 0; k < num_states; ++k) {
      copy(c.state[k], static_cast<const char*>(in.state[k]) + begin * value_bytes(), array_bytes(k, c.n));
    }
    for (int k = 0; k < num_absmax(); ++k) {
      copy(c.absmax[k], in.absmax[k] + begin / quant::kQ8BlockSize, absmax_bytes(c.n));
    }
  });
  step = snapshot.step;
  gnorm_vec = snapshot.gnorm_vec;
  unorm_vec = snapshot.unorm_vec;
}

StateSnapshot converted(StateSnapshot s, StateFormat format, int row) {
  if (s.step == 0) return s;
  const rules::RowSpec& spec = rules::row_spec(row);
  std::vector<StateArray> arrays;
  for (int k = 0; k < spec.num_states; ++k) {
    StateArray* found = s.find(spec.states[k].name);
    OCTOPAGE_CHECK_RUNTIME(found != nullptr, "internal error: a loaded state without its ", spec.states[k].name);
    StateArray a = std::move(*found);
    const quant::DynamicCode& code = code_of(spec.states[k].is_signed);
    if (s.format == StateFormat::kFp32 && format == StateFormat::kQ8) {
      const auto n = static_cast<std::int64_t>(a.values.size());
      a.codes.resize(a.values.size());
      a.absmax.resize(static_cast<std::size_t>(quant::q8_num_blocks(n)));
      quant::quantize_reference(code, a.values.data(), n, a.codes.data(), a.absmax.data());
      a.values = {};
    } else if (s.format == StateFormat::kQ8 && format == StateFormat::kFp32) {
      const auto n = static_cast<std::int64_t>(a.codes.size());
      a.values.resize(a.codes.size());
      quant::dequantize_reference(code, a.codes.data(), a.absmax.data(), n, a.values.data());
      a.codes = {};
      a.absmax = {};
    }
    arrays.push_back(std::move(a));
  }
  s.arrays = std::move(arrays);
  s.format = format;
  return s;
}

}  // namespace octopage::engine
