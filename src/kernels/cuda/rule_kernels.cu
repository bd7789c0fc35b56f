// The CUDA kernels of every registered rule: a row's update on one element per thread step,
// several elements per thread, many parameters' chunks per launch (their descriptors
// travel in the kernel argument, so a step allocates and copies nothing), on the
// caller's stream. 8-bit state: one warp per block of 256 values, the block's new
// absmax by warp shuffles, codes by src/quant/q8_codec.h (the byte-lookup encoder: one
// bucket lookup and one compare per value, the reference encoder's codes) from the
// thread block's shared copy of both codes, which each thread block loads once and uses
// for many tiles.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

#include "src/kernels/cuda/cuda_kernels.h"
#include "src/kernels/kernel_table.h"
#include "src/kernels/scalar_element.h"
#include "src/quant/formats.h"
#include "src/quant/param_io.h"
#include "src/quant/q8_codec.h"
#include "src/quant/q8_lookup_tables.h"
#include "src/rules/scalar_ops.h"

namespace octopage::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kFp32PerThread = static_cast<int>(kFp32TileElements / kThreads);
constexpr int kQ8BlocksPerTile = kThreads / kWarpSize;  // one warp per 8-bit block
constexpr int kQ8PerLane = static_cast<int>(quant::kQ8BlockSize / kWarpSize);
static_assert(kFp32TileElements % kThreads == 0);
static_assert(kQ8TileElements == kQ8BlocksPerTile * quant::kQ8BlockSize);

// A launch's tasks, passed by value as the kernel's argument: under the 4 KiB of
// parameter space that every CUDA version and GPU allows.
constexpr int kMaxTasksPerLaunch = 30;  // 128-byte descriptors (3 states, RuleScalars)
struct Batch {
  CudaTask tasks[kMaxTasksPerLaunch];
  int first_tile[kMaxTasksPerLaunch + 1];  // task t updates tiles [first_tile[t], first_tile[t + 1])
  int num_tasks;
};
static_assert(sizeof(Batch) <= 4096, "a launch's descriptors must fit the kernel argument space");

// The dynamic codes on the device: [0] signed, [1] unsigned.
__device__ quant::Q8DeviceCode g_codes[2];
constexpr int kCodeWords = static_cast<int>(sizeof(quant::Q8DeviceCode) * 2 / sizeof(std::uint32_t));
static_assert(sizeof(quant::Q8DeviceCode) % sizeof(std::uint32_t) == 0);

// Thread blocks of an 8-bit launch per multiprocessor: each loops over tiles, so the
// shared copy of the codes is loaded once per thread block, not once per tile.
constexpr int kQ8BlocksPerSm = 8;

__device__ int task_of(const Batch& batch, int tile) {
  int t = 0;
  while (tile >= batch.first_tile[t + 1]) ++t;
  return t;
}

// The reference's max (std::max(a, |x|)), so a block's absmax has the reference's bits.
__device__ __forceinline__ float max_of(float a, float b) { return a < b ? b : a; }

template <class Rule, DType kDType>
__global__ void __launch_bounds__(kThreads) fp32_kernel(const __grid_constant__ Batch batch) {
  const int t = task_of(batch, static_cast<int>(blockIdx.x));
  const Chunk& c = batch.tasks[t].chunk;
  const auto scalars = rules::unpack_scalars<typename Rule::Scalars>(batch.tasks[t].scalars);
  const std::int64_t tile_begin = static_cast<std::int64_t>(blockIdx.x - batch.first_tile[t]) * kFp32TileElements;
#pragma unroll
  for (int e = 0; e < kFp32PerThread; ++e) {
    const std::int64_t i = tile_begin + e * kThreads + threadIdx.x;
    if (i < c.n) update_fp32_element<Rule, kDType>(scalars, batch.tasks[t].scalars.grad_scale, c, i);
  }
}

// One 8-bit block of 256 values, updated by one warp: decode, update, the block's new
// absmax (Note [Block absmax]), encode.
template <class Rule, DType kDType>
__device__ __forceinline__ void q8_block(const quant::Q8DeviceCode* codes, const Chunk& c,
                                         const typename Rule::Scalars& scalars, float grad_scale,
                                         std::int64_t block) {
  constexpr int K = Rule::kNumStates;
  const std::int64_t begin = block * quant::kQ8BlockSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const quant::Q8DeviceCode* code[K];
  float old_absmax[K];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    code[k] = &codes[Rule::state_signed(k) ? 0 : 1];
    old_absmax[k] = c.absmax[k][block];
  }

  const rules::ScalarOps ops;
  float updated[K][kQ8PerLane];
  float block_max[K];
#pragma unroll
  for (int k = 0; k < K; ++k) block_max[k] = 0.0f;
#pragma unroll
  for (int e = 0; e < kQ8PerLane; ++e) {
    const std::int64_t i = begin + e * kWarpSize + lane;
    if (i >= c.n) continue;
    float p = quant::load_element<kDType>(c.param, i);
    float state[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      state[k] = quant::q8_decode(*code[k], static_cast<const std::uint8_t*>(c.state[k])[i], old_absmax[k]);
    }
    Rule::update(ops, scalars, quant::load_element<kDType>(c.grad, i) * grad_scale, p, state);
    quant::store_element<kDType>(c.param, i, p);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      updated[k][e] = state[k];
      block_max[k] = max_of(block_max[k], fabsf(state[k]));
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
#pragma unroll
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      block_max[k] = max_of(block_max[k], __shfl_xor_sync(0xFFFFFFFFu, block_max[k], offset));
    }
  }

#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float scale = block_max[k] > 0.0f ? 1.0f / block_max[k] : 1.0f;  // See Note [Block absmax]
    auto* out = static_cast<std::uint8_t*>(c.state[k]);
#pragma unroll
    for (int e = 0; e < kQ8PerLane; ++e) {
      const std::int64_t i = begin + e * kWarpSize + lane;
      if (i < c.n) out[i] = quant::q8_encode(*code[k], updated[k][e] * scale);
    }
    if (lane == 0) c.absmax[k][block] = block_max[k];
  }
}

template <class Rule, DType kDType>
__global__ void __launch_bounds__(kThreads) q8_kernel(const __grid_constant__ Batch batch) {
  __shared__ quant::Q8DeviceCode codes[2];  // loaded once per thread block
  auto* words = reinterpret_cast<std::uint32_t*>(codes);
  const auto* source = reinterpret_cast<const std::uint32_t*>(g_codes);
  for (int i = static_cast<int>(threadIdx.x); i < kCodeWords; i += kThreads) words[i] = source[i];
  __syncthreads();

  const int tiles = batch.first_tile[batch.num_tasks];
  for (int tile = static_cast<int>(blockIdx.x); tile < tiles; tile += static_cast<int>(gridDim.x)) {
    const int t = task_of(batch, tile);
    const Chunk& c = batch.tasks[t].chunk;
    const std::int64_t block =
        static_cast<std::int64_t>(tile - batch.first_tile[t]) * kQ8BlocksPerTile + threadIdx.x / kWarpSize;
    if (block * quant::kQ8BlockSize < c.n) {
      const rules::RuleScalars& packed = batch.tasks[t].scalars;
      q8_block<Rule, kDType>(codes, c, rules::unpack_scalars<typename Rule::Scalars>(packed), packed.grad_scale, block);
    }
  }
}

// Readies the current device for 8-bit launches, once per device: copies the dynamic
// codes to it and sets *blocks to the thread blocks of a launch there (kQ8BlocksPerSm per
// multiprocessor).
cudaError_t prepare_q8(int* blocks) {
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) return status;
  static std::mutex mutex;
  static std::vector<int> grid;  // by device; 0: not ready yet
  const std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<std::size_t>(device) >= grid.size()) grid.resize(device + 1, 0);
  if (grid[device] == 0) {
    const quant::Q8DeviceCode host[2] = {quant::signed_device_code(), quant::unsigned_device_code()};
    status = cudaMemcpyToSymbol(g_codes, host, sizeof(host));
    int multiprocessors = 0;
    if (status == cudaSuccess) status = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
    if (status != cudaSuccess) return status;
    grid[device] = multiprocessors * kQ8BlocksPerSm;
  }
  *blocks = grid[device];
  return cudaSuccess;
}

using Launcher = cudaError_t (*)(const CudaTask*, std::size_t, cudaStream_t);

template <class Rule, DType kDType, bool kQ8>
cudaError_t launch_batches(const CudaTask* tasks, std::size_t num_tasks, cudaStream_t stream) {
  constexpr std::int64_t kTile = kQ8 ? kQ8TileElements : kFp32TileElements;
  constexpr std::int64_t kMaxTiles = 0x7FFFFFFF;  // gridDim.x
  int q8_blocks = 0;
  if constexpr (kQ8) {
    const cudaError_t status = prepare_q8(&q8_blocks);
    if (status != cudaSuccess) return status;
  }
  std::size_t t = 0;
  while (t < num_tasks) {
    Batch batch;
    batch.num_tasks = 0;
    std::int64_t tiles = 0;
    for (; t < num_tasks && batch.num_tasks < kMaxTasksPerLaunch; ++t) {
      const std::int64_t task_tiles = (tasks[t].chunk.n + kTile - 1) / kTile;
      if (task_tiles == 0) continue;
      if (tiles + task_tiles > kMaxTiles) {
        if (batch.num_tasks == 0) return cudaErrorInvalidValue;  // the engine cuts chunks far smaller
        break;
      }
      batch.tasks[batch.num_tasks] = tasks[t];
      batch.first_tile[batch.num_tasks] = static_cast<int>(tiles);
      tiles += task_tiles;
      ++batch.num_tasks;
    }
    if (batch.num_tasks == 0) continue;
    batch.first_tile[batch.num_tasks] = static_cast<int>(tiles);
    if constexpr (kQ8) {
      const auto grid = static_cast<unsigned>(std::min<std::int64_t>(tiles, q8_blocks));
      q8_kernel<Rule, kDType><<<grid, kThreads, 0, stream>>>(batch);
    } else {
      fp32_kernel<Rule, kDType><<<static_cast<unsigned>(tiles), kThreads, 0, stream>>>(batch);
    }
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

// Every launcher, [row][state format][param dtype], as KernelTable lays out kernels.
struct LauncherTable {
  Launcher launchers[rules::kNumRows][kNumStateFormats][kNumDTypes] = {};
};

const LauncherTable& launchers() {
  static const LauncherTable table = [] {
    LauncherTable t;
    for_each_kernel<rules::RegisteredRules>([&]<class Row, StateFormat kFormat, DType kDType>(int row) {
      t.launchers[row][static_cast<int>(kFormat)][static_cast<int>(kDType)] =
          &launch_batches<Row, kDType, kFormat == StateFormat::kQ8>;
    });
    return t;
  }();
  return table;
}

}  // namespace

int launch(int row, StateFormat format, DType dtype, const CudaTask* tasks, std::size_t num_tasks,
           void* stream) {
  if (row < 0 || row >= rules::kNumRows) return static_cast<int>(cudaErrorInvalidValue);
  const Launcher launcher = launchers().launchers[row][static_cast<int>(format)][static_cast<int>(dtype)];
  if (launcher == nullptr) return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(launcher(tasks, num_tasks, static_cast<cudaStream_t>(stream)));
}

}  // namespace octopage::kernels::cuda
