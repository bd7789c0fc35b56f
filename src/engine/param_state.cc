#include "src/engine/param_state.h"

#include <algorithm>
#include <cstring>

#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"

namespace octopage::engine {
namespace {

constexpr const char* kStateNames[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};

template <class T>
std::vector<T> copy_of(const memory::Buffer& buffer) {
  const T* data = buffer.as<const T>();
  return std::vector<T>(data, data + buffer.bytes() / sizeof(T));
}

}  // namespace

std::unique_ptr<ParamState> ParamState::create(StateFormat format, DType dtype,
                                               std::int64_t numel, bool amsgrad,
                                               Allocator& allocator) {
  auto state = std::make_unique<ParamState>();
  state->format = format;
  state->dtype = dtype;
  state->numel = numel;
  state->amsgrad = amsgrad;
  state->num_states = amsgrad ? 3 : 2;
  const auto n = static_cast<std::size_t>(numel);
  for (int k = 0; k < state->num_states; ++k) {
    const std::size_t bytes = format == StateFormat::kQ8 ? n : n * sizeof(float);
    state->values[k] = memory::Buffer(allocator, bytes, kStateNames[k]);
    if (format == StateFormat::kQ8) {
      const auto blocks = static_cast<std::size_t>(quant::q8_num_blocks(numel));
      state->absmax[k] = memory::Buffer(allocator, blocks * sizeof(float), "absmax");
    }
  }
  return state;
}

std::uint64_t ParamState::bytes() const {
  std::uint64_t total = 0;
  for (const memory::Buffer& b : values) total += b.bytes();
  for (const memory::Buffer& b : absmax) total += b.bytes();
  return total;
}

void ParamState::zero_fill(std::int64_t begin, std::int64_t n) {
  const auto first = static_cast<std::size_t>(begin);
  const auto count = static_cast<std::size_t>(n);
  if (format == StateFormat::kFp32) {
    for (int k = 0; k < num_states; ++k) std::fill_n(values[k].as<float>() + first, count, 0.0f);
    return;
  }
  const std::uint8_t zero_code[2] = {quant::signed_code().zero_index,
                                     quant::unsigned_code().zero_index};
  const auto first_block = static_cast<std::size_t>(begin / quant::kQ8BlockSize);
  const auto blocks = static_cast<std::size_t>(quant::q8_num_blocks(n));
  for (int k = 0; k < num_states; ++k) {
    std::memset(values[k].as<std::uint8_t>() + first, zero_code[k], count);
    std::fill_n(absmax[k].as<float>() + first_block, blocks, 0.0f);
  }
}

kernels::Chunk ParamState::chunk(const Parameter& param, std::int64_t begin,
                                 std::int64_t n) const {
  const std::size_t element = dtype_size(dtype);
  kernels::Chunk c;
  c.param = static_cast<char*>(param.value.data) + begin * element;
  c.grad = static_cast<const char*>(param.grad.data) + begin * element;
  c.n = n;
  const std::size_t state_element = format == StateFormat::kQ8 ? 1 : sizeof(float);
  for (int k = 0; k < num_states; ++k) {
    c.state[k] = values[k].as<char>() + begin * state_element;
    if (format == StateFormat::kQ8) c.absmax[k] = absmax[k].as<float>() + begin / quant::kQ8BlockSize;
  }
  return c;
}

StateSnapshot ParamState::snapshot() const {
  StateSnapshot s;
  s.step = step;
  s.format = format;
  if (format == StateFormat::kFp32) {
    s.state1 = copy_of<float>(values[0]);
    s.state2 = copy_of<float>(values[1]);
    if (amsgrad) s.state2_max = copy_of<float>(values[2]);
  } else {
    s.state1_codes = copy_of<std::uint8_t>(values[0]);
    s.state2_codes = copy_of<std::uint8_t>(values[1]);
    s.absmax1 = copy_of<float>(absmax[0]);
    s.absmax2 = copy_of<float>(absmax[1]);
  }
  return s;
}

}  // namespace octopage::engine
