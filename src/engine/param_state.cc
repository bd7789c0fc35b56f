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
  std::uint64_t absmax[2] = {0, 0};
  std::uint64_t values[3] = {0, 0, 0};
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
kernels::Chunk param_chunk(const Parameter& param, DType dtype, std::int64_t begin, std::int64_t n) {
  const std::size_t element = dtype_size(dtype);
  kernels::Chunk c;
  if (param.value.data != nullptr) c.param = static_cast<char*>(param.value.data) + begin * element;
  if (param.grad.data != nullptr) c.grad = static_cast<const char*>(param.grad.data) + begin * element;
  c.n = n;
  return c;
}

}  // namespace

std::unique_ptr<ParamState> ParamState::make(StateFormat format, DType dtype, std::int64_t numel,
                                             bool amsgrad, Placement placement, Device device) {
  auto state = std::make_unique<ParamState>();
  state->format = format;
  state->dtype = dtype;
  state->placement = placement;
  state->device = device;
  state->numel = numel;
  state->amsgrad = amsgrad;
  state->num_states = amsgrad ? 3 : 2;
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

kernels::Chunk ParamState::chunk(const Parameter& param, std::int64_t begin, std::int64_t n) const {
  kernels::Chunk c = param_chunk(param, dtype, begin, n);
  for (int k = 0; k < num_states; ++k) c.state[k] = values[k] + begin * value_bytes();
  for (int k = 0; k < num_absmax(); ++k) c.absmax[k] = absmax[k] + begin / quant::kQ8BlockSize;
  return c;
}

kernels::Chunk ParamState::record_chunk(const Parameter& param, char* record, std::int64_t begin,
                                        std::int64_t n) const {
  const std::int64_t first = begin / record_elements * record_elements;
  const RecordLayout layout = record_layout(*this, std::min(record_elements, numel - first));
  const std::int64_t offset = begin - first;
  kernels::Chunk c = param_chunk(param, dtype, begin, n);
  for (int k = 0; k < num_states; ++k) c.state[k] = record + layout.values[k] + offset * value_bytes();
  for (int k = 0; k < num_absmax(); ++k) {
    c.absmax[k] = reinterpret_cast<float*>(record + layout.absmax[k]) + offset / quant::kQ8BlockSize;
  }
  return c;
}

void ParamState::zero_fill(const kernels::Chunk& c) const {
  const auto count = static_cast<std::size_t>(c.n);
  if (format == StateFormat::kFp32) {
    for (int k = 0; k < num_states; ++k) std::fill_n(static_cast<float*>(c.state[k]), count, 0.0f);
    return;
  }
  const std::uint8_t zero_code[2] = {quant::signed_code().zero_index, quant::unsigned_code().zero_index};
  const auto blocks = static_cast<std::size_t>(quant::q8_num_blocks(c.n));
  for (int k = 0; k < num_states; ++k) {
    std::memset(c.state[k], zero_code[k], count);
    std::fill_n(c.absmax[k], blocks, 0.0f);
  }
}

void ParamState::zero_fill_cuda(const kernels::Chunk& c, CudaStream stream) const {
  // fp32 zero and absmax 0 are all-zero bytes; 8-bit zero is the code's zero_index.
  const std::uint8_t zero_code[2] = {quant::signed_code().zero_index, quant::unsigned_code().zero_index};
  for (int k = 0; k < num_states; ++k) {
    memory::cuda::fill_async(c.state[k], format == StateFormat::kQ8 ? zero_code[k] : 0, array_bytes(k, c.n), stream);
  }
  for (int k = 0; k < num_absmax(); ++k) memory::cuda::fill_async(c.absmax[k], 0, absmax_bytes(c.n), stream);
}

template <class Visit>
void ParamState::for_each_piece(const memory::StateFile* file, memory::IoKind io, Visit visit) const {
  const Parameter none{};
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

// A snapshot's arrays as a chunk of n elements in its format, to copy from or into.
kernels::Chunk snapshot_chunk(StateSnapshot& s) {
  kernels::Chunk c;
  if (s.format == StateFormat::kFp32) {
    c.state[0] = s.state1.data();
    c.state[1] = s.state2.data();
    c.state[2] = s.state2_max.empty() ? nullptr : s.state2_max.data();
    c.n = static_cast<std::int64_t>(s.state1.size());
  } else {
    c.state[0] = s.state1_codes.data();
    c.state[1] = s.state2_codes.data();
    c.absmax[0] = s.absmax1.data();
    c.absmax[1] = s.absmax2.data();
    c.n = static_cast<std::int64_t>(s.state1_codes.size());
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
  const auto n = static_cast<std::size_t>(numel);
  if (format == StateFormat::kFp32) {
    s.state1.resize(n);
    s.state2.resize(n);
    if (amsgrad) s.state2_max.resize(n);
  } else {
    s.state1_codes.resize(n);
    s.state2_codes.resize(n);
    s.absmax1.resize(static_cast<std::size_t>(quant::q8_num_blocks(numel)));
    s.absmax2.resize(s.absmax1.size());
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
}

StateSnapshot converted(StateSnapshot s, StateFormat format, bool amsgrad) {
  if (!amsgrad) s.state2_max.clear();
  if (s.step == 0 || s.format == format) return s;
  const quant::DynamicCode* codes[2] = {&quant::signed_code(), &quant::unsigned_code()};
  if (format == StateFormat::kQ8) {
    const auto n = static_cast<std::int64_t>(s.state1.size());
    s.state1_codes.resize(s.state1.size());
    s.state2_codes.resize(s.state2.size());
    s.absmax1.resize(static_cast<std::size_t>(quant::q8_num_blocks(n)));
    s.absmax2.resize(s.absmax1.size());
    quant::quantize_reference(*codes[0], s.state1.data(), n, s.state1_codes.data(), s.absmax1.data());
    quant::quantize_reference(*codes[1], s.state2.data(), n, s.state2_codes.data(), s.absmax2.data());
    s.state1 = {};
    s.state2 = {};
  } else {
    const auto n = static_cast<std::int64_t>(s.state1_codes.size());
    s.state1.resize(s.state1_codes.size());
    s.state2.resize(s.state2_codes.size());
    quant::dequantize_reference(*codes[0], s.state1_codes.data(), s.absmax1.data(), n, s.state1.data());
    quant::dequantize_reference(*codes[1], s.state2_codes.data(), s.absmax2.data(), n, s.state2.data());
    s.state1_codes = {};
    s.state2_codes = {};
    s.absmax1 = {};
    s.absmax2 = {};
  }
  s.format = format;
  return s;
}

}  // namespace octopage::engine
