// The fused CPU kernels, compiled once per Highway target. One pass per chunk: load
// parameter and gradient, decode state, apply the rule (src/rules), encode state with
// each block's new absmax, store. Full vectors first, then single lanes for the tail,
// through the same code, so every element of every size gets the same bits. Names:
// octopage's per-target functions are snake_case like all of octopage's code; Highway's
// API (hn::LoadU, hn::Max, ...) keeps its own PascalCase, which tells the two apart.
#include "src/kernels/cpu/cpu_kernels.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/cpu/cpu_kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "src/kernels/cpu/hwy_ops-inl.h"
#include "src/kernels/cpu/q8-inl.h"
#include "src/kernels/kernel_table.h"
#include "src/quant/formats.h"
#include "src/quant/param_io.h"
#include "src/rules/rule.h"
#include "src/rules/scalar_ops.h"


HWY_BEFORE_NAMESPACE();
namespace octopage::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using quant::kQ8BlockSize;

#include "src/rules/registry.inc"  // this target's copy of every rule

// Room for a row's states (a zero-length array is not C++).
template <class Row>
constexpr int kStateSlots = Row::kNumStates > 0 ? Row::kNumStates : 1;

template <class Rule, DType kDType, class D>
HWY_INLINE void fp32_lanes(D d, const typename Rule::Scalars& scalars, float grad_scale, const Chunk& c,
                           std::size_t i) {
  const HwyOps<D> ops{d};
  auto p = load_f32<kDType>(d, c.param, i);
  hn::Vec<D> state[kStateSlots<Rule>];
  for (int k = 0; k < Rule::kNumStates; ++k) {
    state[k] = hn::LoadU(d, static_cast<const float*>(c.state[k]) + i);
  }
  Rule::update(ops, scalars, hn::Mul(load_f32<kDType>(d, c.grad, i), hn::Set(d, grad_scale)), p, state);
  store_f32<kDType>(d, p, c.param, i);
  for (int k = 0; k < Rule::kNumStates; ++k) {
    hn::StoreU(state[k], d, static_cast<float*>(c.state[k]) + i);
  }
}

// Updates the lanes at chunk element i, block offset j: the block's decoded state in
// `state` is replaced by the updated state, and block_max tracks max |state|.
template <class Rule, DType kDType, class D>
HWY_INLINE void q8_lanes(D d, const typename Rule::Scalars& scalars, float grad_scale, const Chunk& c,
                         std::size_t i, std::size_t j, float (*state)[kQ8BlockSize], hn::Vec<D>* block_max) {
  const HwyOps<D> ops{d};
  auto p = load_f32<kDType>(d, c.param, i);
  hn::Vec<D> lanes[kStateSlots<Rule>];
  for (int k = 0; k < Rule::kNumStates; ++k) lanes[k] = hn::LoadU(d, state[k] + j);
  Rule::update(ops, scalars, hn::Mul(load_f32<kDType>(d, c.grad, i), hn::Set(d, grad_scale)), p, lanes);
  store_f32<kDType>(d, p, c.param, i);
  for (int k = 0; k < Rule::kNumStates; ++k) {
    hn::StoreU(lanes[k], d, state[k] + j);
    block_max[k] = hn::Max(block_max[k], hn::Abs(lanes[k]));
  }
}

// One block of an 8-bit chunk: decode, update every element, then encode with the
// block's new absmax (Note [Block absmax]).
template <class Rule, DType kDType>
HWY_INLINE void q8_block(const typename Rule::Scalars& scalars, float grad_scale, const Chunk& c,
                        const Q8Codebook* books, std::int64_t begin, std::size_t len) {
  constexpr int K = Rule::kNumStates;
  const std::int64_t block = begin / kQ8BlockSize;
  HWY_ALIGN float state[K][kQ8BlockSize];
  for (int k = 0; k < K; ++k) {
    decode_block_q8(books[k], static_cast<const std::uint8_t*>(c.state[k]) + begin, len,
                  c.absmax[k][block], state[k]);
  }

  const hn::ScalableTag<float> d;
  const std::size_t N = hn::Lanes(d);
  hn::Vec<decltype(d)> block_max[K];
  for (int k = 0; k < K; ++k) block_max[k] = hn::Zero(d);
  std::size_t j = 0;
  for (; j + N <= len; j += N) q8_lanes<Rule, kDType>(d, scalars, grad_scale, c, begin + j, j, state, block_max);
  float new_absmax[K];
  for (int k = 0; k < K; ++k) new_absmax[k] = hn::GetLane(hn::MaxOfLanes(d, block_max[k]));
  if (j < len) {
    const hn::CappedTag<float, 1> d1;
    hn::Vec<decltype(d1)> tail_max[K];
    for (int k = 0; k < K; ++k) tail_max[k] = hn::Zero(d1);
    for (; j < len; ++j) q8_lanes<Rule, kDType>(d1, scalars, grad_scale, c, begin + j, j, state, tail_max);
    for (int k = 0; k < K; ++k) new_absmax[k] = std::max(new_absmax[k], hn::GetLane(tail_max[k]));
  }

  for (int k = 0; k < K; ++k) {
    auto* codes = static_cast<std::uint8_t*>(c.state[k]) + begin;
    if (Rule::state_signed(k)) {
      encode_block_q8<true>(books[k], state[k], len, new_absmax[k], codes);
    } else {
      encode_block_q8<false>(books[k], state[k], len, new_absmax[k], codes);
    }
    c.absmax[k][block] = new_absmax[k];
  }
}

// How far ahead of the block being updated an 8-bit step asks for its memory. The
// block's phases (decode, update, encode) touch five streams in bursts, which the
// hardware prefetchers follow too late at sizes beyond the caches.
constexpr std::int64_t kPrefetchBlocks = 4;  // measured: 4, 8 and 16 alike, 0 about 15% slower at 10M

template <class Rule, DType kDType>
HWY_INLINE void prefetch_q8_block(const Chunk& c, std::int64_t begin) {
  if (begin >= c.n) return;
  constexpr std::int64_t kLine = 64;
  const std::int64_t element = kDType == DType::kFloat32 ? 4 : 2;
  const auto* param = static_cast<const char*>(c.param) + begin * element;
  const auto* grad = static_cast<const char*>(c.grad) + begin * element;
  for (std::int64_t b = 0; b < kQ8BlockSize * element; b += kLine) {
    hwy::Prefetch(param + b);
    hwy::Prefetch(grad + b);
  }
  for (int k = 0; k < Rule::kNumStates; ++k) {
    const auto* codes = static_cast<const char*>(c.state[k]) + begin;
    for (std::int64_t b = 0; b < kQ8BlockSize; b += kLine) hwy::Prefetch(codes + b);
  }
}

struct SimdKernels {
  // Note [Deterministic sums] over direction(), as sum_squares below: the direction of N
  // lanes at a time (N fp64 lanes of the 16), promoted to fp64 and squared. 8-bit state
  // is decoded a block at a time first (a reduce block is a block of the 8-bit format).
  template <class Rule, StateFormat kFormat, DType kDType>
  static void direction_norm(const Chunk& c, const rules::RuleScalars& packed, double* block_sums) {
    static_assert(kReduceBlock == kQ8BlockSize, "an 8-bit block decodes into one reduce block");
    const auto scalars = rules::unpack_scalars<typename Rule::Scalars>(packed);
    const hn::CappedTag<double, kReduceLanes> d64;
    const hn::Rebind<float, decltype(d64)> d32;
    const HwyOps<decltype(d32)> ops{d32};
    const rules::ScalarOps scalar_ops;
    const std::size_t N = hn::Lanes(d64);
    const std::size_t vectors = kReduceLanes / N;
    const auto scale = hn::Set(d32, packed.grad_scale);
    Q8Codebook books[kStateSlots<Rule>];
    HWY_ALIGN float decoded[kStateSlots<Rule>][kQ8BlockSize];
    if constexpr (kFormat == StateFormat::kQ8) {
      for (int k = 0; k < Rule::kNumStates; ++k) books[k] = Q8Codebook::of(Rule::state_signed(k));
    }
    for (std::int64_t begin = 0; begin < c.n; begin += kReduceBlock) {
      const auto len = static_cast<std::size_t>(std::min(kReduceBlock, c.n - begin));
      const float* state_at[kStateSlots<Rule>];  // the block's state as fp32
      for (int k = 0; k < Rule::kNumStates; ++k) {
        if constexpr (kFormat == StateFormat::kQ8) {
          decode_block_q8(books[k], static_cast<const std::uint8_t*>(c.state[k]) + begin, len,
                          c.absmax[k][begin / kQ8BlockSize], decoded[k]);
          state_at[k] = decoded[k];
        } else {
          state_at[k] = static_cast<const float*>(c.state[k]) + begin;
        }
      }
      const auto* grad = static_cast<const char*>(c.grad) + begin * (kDType == DType::kFloat32 ? 4 : 2);
      hn::Vec<decltype(d64)> acc[kReduceLanes];
      for (std::size_t v = 0; v < vectors; ++v) acc[v] = hn::Zero(d64);
      std::size_t j = 0;
      for (; j + kReduceLanes <= len; j += kReduceLanes) {
        for (std::size_t v = 0; v < vectors; ++v) {
          const std::size_t i = j + v * N;
          hn::Vec<decltype(d32)> state[kStateSlots<Rule>];
          for (int k = 0; k < Rule::kNumStates; ++k) state[k] = hn::LoadU(d32, state_at[k] + i);
          const auto g = hn::Mul(load_f32<kDType>(d32, grad, i), scale);
          const auto x = hn::PromoteTo(d64, Rule::direction(ops, scalars, g, state));
          acc[v] = hn::Add(acc[v], hn::Mul(x, x));
        }
      }
      HWY_ALIGN double lanes[kReduceLanes];
      for (std::size_t v = 0; v < vectors; ++v) hn::Store(acc[v], d64, lanes + v * N);
      for (; j < len; ++j) {
        float state[kStateSlots<Rule>];
        for (int k = 0; k < Rule::kNumStates; ++k) state[k] = state_at[k][j];
        const auto i = static_cast<std::int64_t>(j);
        const double x = Rule::direction(scalar_ops, scalars, quant::load_element<kDType>(grad, i) * packed.grad_scale, state);
        lanes[j % kReduceLanes] += x * x;
      }
      double block = 0.0;
      for (double lane : lanes) block += lane;
      block_sums[begin / kReduceBlock] = block;
    }
  }

  template <class Rule, StateFormat kFormat, DType kDType>
  static void kernel(const Chunk& c, const rules::RuleScalars& packed) {
    const auto scalars = rules::unpack_scalars<typename Rule::Scalars>(packed);
    if constexpr (kFormat == StateFormat::kFp32) {
      fp32<Rule, kDType>(c, scalars, packed.grad_scale);
    } else {
      q8<Rule, kDType>(c, scalars, packed.grad_scale);
    }
  }

  template <class Rule, DType kDType>
  static void fp32(const Chunk& c, const typename Rule::Scalars& scalars, float grad_scale) {
    const hn::ScalableTag<float> d;
    const hn::CappedTag<float, 1> d1;
    const std::size_t n = static_cast<std::size_t>(c.n);
    const std::size_t N = hn::Lanes(d);
    std::size_t i = 0;
    for (; i + N <= n; i += N) fp32_lanes<Rule, kDType>(d, scalars, grad_scale, c, i);
    for (; i < n; ++i) fp32_lanes<Rule, kDType>(d1, scalars, grad_scale, c, i);
  }

  template <class Rule, DType kDType>
  static void q8(const Chunk& c, const typename Rule::Scalars& scalars, float grad_scale) {
    Q8Codebook books[Rule::kNumStates];
    for (int k = 0; k < Rule::kNumStates; ++k) books[k] = Q8Codebook::of(Rule::state_signed(k));
    for (std::int64_t begin = 0; begin < c.n; begin += kQ8BlockSize) {
      const auto len = static_cast<std::size_t>(std::min(kQ8BlockSize, c.n - begin));
      prefetch_q8_block<Rule, kDType>(c, begin + kPrefetchBlocks * kQ8BlockSize);
      q8_block<Rule, kDType>(scalars, grad_scale, c, books, begin, len);
    }
  }
};

// Note [Deterministic sums]: 16 fp64 lanes as 16 / N vectors of N lanes, so lane l of
// the block accumulates elements l, l + 16, ... in order, as the reference does.
template <DType kDType>
void sum_squares(const void* values, std::int64_t n, double* block_sums) {
  const hn::CappedTag<double, kReduceLanes> d64;
  const hn::Rebind<float, decltype(d64)> d32;
  const std::size_t N = hn::Lanes(d64);
  const std::size_t vectors = kReduceLanes / N;
  for (std::int64_t begin = 0; begin < n; begin += kReduceBlock) {
    const auto len = static_cast<std::size_t>(std::min(kReduceBlock, n - begin));
    hn::Vec<decltype(d64)> acc[kReduceLanes];
    for (std::size_t v = 0; v < vectors; ++v) acc[v] = hn::Zero(d64);
    std::size_t j = 0;
    for (; j + kReduceLanes <= len; j += kReduceLanes) {
      for (std::size_t v = 0; v < vectors; ++v) {
        const auto x = hn::PromoteTo(d64, load_f32<kDType>(d32, values, begin + j + v * N));
        acc[v] = hn::Add(acc[v], hn::Mul(x, x));
      }
    }
    HWY_ALIGN double lanes[kReduceLanes];
    for (std::size_t v = 0; v < vectors; ++v) hn::Store(acc[v], d64, lanes + v * N);
    for (; j < len; ++j) {
      const double x = quant::load_element<kDType>(values, begin + static_cast<std::int64_t>(j));
      lanes[j % kReduceLanes] += x * x;
    }
    double block = 0.0;
    for (double lane : lanes) block += lane;
    block_sums[begin / kReduceBlock] = block;
  }
}

template <class D>
HWY_INLINE float max_abs(D d, const float* values, std::size_t n) {
  const hn::CappedTag<float, 1> d1;
  const std::size_t N = hn::Lanes(d);
  auto m = hn::Zero(d);
  auto tail = hn::Zero(d1);
  std::size_t i = 0;
  for (; i + N <= n; i += N) m = hn::Max(m, hn::Abs(hn::LoadU(d, values + i)));
  for (; i < n; ++i) tail = hn::Max(tail, hn::Abs(hn::LoadU(d1, values + i)));
  return std::max(hn::GetLane(hn::MaxOfLanes(d, m)), hn::GetLane(tail));
}

// Block-wise over any n, through a block buffer (the block code may read and write up
// to a multiple of 64 values).
void q8_quantize_all(bool is_signed, const float* values, std::int64_t n, std::uint8_t* codes,
                float* absmax) {
  const hn::ScalableTag<float> d;
  const Q8Codebook book = Q8Codebook::of(is_signed);
  HWY_ALIGN float block[kQ8BlockSize];
  for (std::int64_t begin = 0; begin < n; begin += kQ8BlockSize) {
    const auto len = static_cast<std::size_t>(std::min(kQ8BlockSize, n - begin));
    std::copy_n(values + begin, len, block);
    std::fill(block + len, block + kQ8BlockSize, 0.0f);
    const float block_max = max_abs(d, block, len);
    if (is_signed) {
      encode_block_q8<true>(book, block, len, block_max, codes + begin);
    } else {
      encode_block_q8<false>(book, block, len, block_max, codes + begin);
    }
    absmax[begin / kQ8BlockSize] = block_max;
  }
}

void q8_dequantize_all(bool is_signed, const std::uint8_t* codes, const float* absmax,
                  std::int64_t n, float* values) {
  const Q8Codebook book = Q8Codebook::of(is_signed);
  HWY_ALIGN float block[kQ8BlockSize];
  for (std::int64_t begin = 0; begin < n; begin += kQ8BlockSize) {
    const auto len = static_cast<std::size_t>(std::min(kQ8BlockSize, n - begin));
    decode_block_q8(book, codes + begin, len, absmax[begin / kQ8BlockSize], block);
    std::copy_n(block, len, values + begin);
  }
}

const CpuKernels* get_cpu_kernels() {
  static const CpuKernels kernels = [] {
    CpuKernels k;
    k.target_name = hwy::TargetName(HWY_TARGET);
    k.kernels = make_kernel_table<RegisteredRules, SimdKernels>();
    k.direction_norms = make_direction_norm_table<RegisteredRules, SimdKernels>();
    k.sum_squares[static_cast<int>(DType::kFloat32)] = &sum_squares<DType::kFloat32>;
    k.sum_squares[static_cast<int>(DType::kBFloat16)] = &sum_squares<DType::kBFloat16>;
    k.sum_squares[static_cast<int>(DType::kFloat16)] = &sum_squares<DType::kFloat16>;
    k.q8_quantize = &q8_quantize_all;
    k.q8_dequantize = &q8_dequantize_all;
    return k;
  }();
  return &kernels;
}

}  // namespace octopage::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace octopage::kernels::cpu {

HWY_EXPORT(get_cpu_kernels);

const CpuKernels& cpu_kernels() { return *HWY_DYNAMIC_DISPATCH(get_cpu_kernels)(); }

std::vector<std::int64_t> cpu_targets() {
  std::vector<std::int64_t> targets = hwy::SupportedAndGeneratedTargets();
  std::sort(targets.begin(), targets.end());  // a lower bit is a better target
  return targets;
}

std::string cpu_target_name(std::int64_t target) { return hwy::TargetName(target); }

ScopedCpuTarget::ScopedCpuTarget(std::int64_t target) { hwy::SetSupportedTargetsForTest(target); }
ScopedCpuTarget::~ScopedCpuTarget() { hwy::SetSupportedTargetsForTest(0); }

}  // namespace octopage::kernels::cpu
#endif  // HWY_ONCE
