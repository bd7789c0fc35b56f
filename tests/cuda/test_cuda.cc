// The CUDA backend against the CPU: every kernel bitwise equal to the scalar reference
// kernels (parameters, fp32 state, 8-bit codes and absmax) with many parameters in one
// launch; the optimizer with CUDA parameters bitwise equal to the CPU optimizer in the
// `device` and `paged` placements, on a stream of the caller's, and across state loads
// between CPU and CUDA. Tests that need a GPU skip, saying why, on a machine without
// one; what a build without a GPU must do (refuse CUDA buffers, saying why) is tested
// there instead.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "octopage/octopage.h"
#include "src/kernels/cuda/cuda_kernels.h"
#include "src/kernels/reference/reference_kernels.h"
#include "tests/kernel_cases.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

using testing::KernelCase;
using testing::KernelRun;

#define OCTOPAGE_REQUIRE_GPU()                                                     \
  do {                                                                            \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no GPU: " << cuda_unavailable_reason(); \
  } while (false)

void check(cudaError_t status) { ASSERT_EQ(status, cudaSuccess) << cudaGetErrorString(status); }

// Device memory holding a copy of host bytes, copied back on request.
class DeviceCopy {
 public:
  DeviceCopy(const void* host, std::size_t bytes) : bytes_(bytes) {
    check(cudaMalloc(&data_, bytes == 0 ? 1 : bytes));
    if (bytes > 0) check(cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice));
  }
  ~DeviceCopy() { cudaFree(data_); }
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
  void* data() const { return data_; }
  void copy_to(void* host) const {
    if (bytes_ > 0) check(cudaMemcpy(host, data_, bytes_, cudaMemcpyDeviceToHost));
  }
  void copy_from(const void* host) const {
    if (bytes_ > 0) check(cudaMemcpy(data_, host, bytes_, cudaMemcpyHostToDevice));
  }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// A kernel run's buffers on the device, as a device chunk; back() copies every buffer
// the kernel writes back into the run's host buffers.
class DeviceChunk {
 public:
  DeviceChunk(const KernelCase& c, KernelRun& run, std::int64_t n) : host_(run.chunk()) {
    const auto count = static_cast<std::size_t>(n);
    const std::size_t blocks = static_cast<std::size_t>(quant::q8_num_blocks(n));
    add(host_.param, count * dtype_size(c.dtype), &device_.param);
    const void* grad = host_.grad;
    add(grad, count * dtype_size(c.dtype), const_cast<void**>(&device_.grad));
    for (int k = 0; k < c.num_states(); ++k) {
      add(host_.state[k], count * (c.format == StateFormat::kQ8 ? 1 : sizeof(float)), &device_.state[k]);
      if (c.format == StateFormat::kQ8) {
        add(host_.absmax[k], blocks * sizeof(float), reinterpret_cast<void**>(&device_.absmax[k]));
      }
    }
    device_.n = n;
  }
  const kernels::Chunk& chunk() const { return device_; }
  void back() {
    for (std::size_t b = 0; b < copies_.size(); ++b) copies_[b]->copy_to(hosts_[b]);
  }

 private:
  void add(const void* host, std::size_t bytes, void** device) {
    copies_.push_back(std::make_unique<DeviceCopy>(host, bytes));
    hosts_.push_back(const_cast<void*>(host));
    *device = copies_.back()->data();
  }
  kernels::Chunk host_;
  kernels::Chunk device_;
  std::vector<std::unique_ptr<DeviceCopy>> copies_;
  std::vector<void*> hosts_;
};

TEST(CudaBuild, SaysWhetherItCanRun) {
  EXPECT_TRUE(cuda_built());
  int count = 0;
  const bool runtime_sees_gpu = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
  EXPECT_EQ(cuda_device_count() > 0, runtime_sees_gpu);
  EXPECT_EQ(cuda_unavailable_reason().empty(), runtime_sees_gpu) << cuda_unavailable_reason();
}

// Without a GPU a CUDA buffer is refused with the reason; with one, a host address
// passed as a CUDA buffer is refused. Either way before anything is created.
TEST(CudaBuild, RefusesCudaBuffersItCannotStep) {
  std::vector<float> host(5000, 1.0f), grad(5000, 0.5f);
  Optimizer opt("adamw");
  const Parameter p{{host.data(), 5000, DType::kFloat32, Device::kCUDA},
                    {grad.data(), 5000, DType::kFloat32, Device::kCUDA}};
  try {
    opt.add_param_group({p});
    FAIL() << "a CUDA buffer at a host address was accepted";
  } catch (const Error& e) {
    const std::string expected = cuda_device_count() == 0 ? "expected a usable CUDA device for the cuda parameter"
                                                          : "data in CUDA device or managed memory, got a host address";
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  EXPECT_EQ(opt.num_param_groups(), 0u);
}

// A parameter on another GPU than the current one is refused, saying which to make current.
TEST(CudaBuild, RefusesParametersOnAnotherDevice) {
  if (cuda_device_count() < 2) GTEST_SKIP() << "needs 2 GPUs, found " << cuda_device_count();
  check(cudaSetDevice(1));
  void* p = nullptr;
  check(cudaMalloc(&p, 5000 * sizeof(float)));
  check(cudaSetDevice(0));
  Optimizer opt("adamw");
  try {
    opt.add_param_group({Parameter{{p, 5000, DType::kFloat32, Device::kCUDA}, {}}});
    ADD_FAILURE() << "a parameter on device 1 was accepted while device 0 is current";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("on the current CUDA device 0 (octopage steps there), got one on device 1"),
              std::string::npos) << e.what();
  }
  cudaFree(p);
}

// Every case and size of tests/kernel_cases.h as tasks of one launch call (so
// several launches' worth of descriptors and tiles of many sizes), 3 steps, against
// the scalar reference.
TEST(CudaKernels, MatchTheReferenceBitwise) {
  OCTOPAGE_REQUIRE_GPU();
  for (const KernelCase& c : testing::all_cases()) {
    SCOPED_TRACE(c.name());
    std::vector<std::unique_ptr<KernelRun>> expected, actual;
    std::vector<std::unique_ptr<DeviceChunk>> device;
    for (std::int64_t n : testing::kSizes) {
      for (std::int64_t offset : {0, 1}) {
        const std::uint64_t seed = 1234 + static_cast<std::uint64_t>(n);
        expected.push_back(std::make_unique<KernelRun>(c, n, offset, seed));
        expected.back()->run(kernels::reference_kernels().get(c.row, c.format, c.dtype), 3);
        actual.push_back(std::make_unique<KernelRun>(c, n, offset, seed));
        device.push_back(std::make_unique<DeviceChunk>(c, *actual.back(), n));
      }
    }
    for (int t = 1; t <= 3; ++t) {
      std::vector<kernels::cuda::CudaTask> tasks;
      for (const auto& d : device) tasks.push_back({d->chunk(), testing::test_scalars(c, t)});
      ASSERT_EQ(kernels::cuda::launch(c.row, c.format, c.dtype, tasks.data(), tasks.size(), nullptr), 0);
    }
    check(cudaDeviceSynchronize());
    for (std::size_t r = 0; r < device.size(); ++r) {
      device[r]->back();
      SCOPED_TRACE("run " + std::to_string(r));
      testing::expect_same_bytes(expected[r]->outputs(), actual[r]->outputs());
    }
  }
}

// An optimizer over test parameters in device memory, fed the same gradients as
// testing::TrainingRun feeds its CPU parameters.
struct CudaTrainingRun {
  std::vector<testing::TestParam> host;
  std::vector<std::unique_ptr<DeviceCopy>> values, grads;
  Optimizer opt;
  CudaTrainingRun(std::string_view rule, GroupOptions options, DType dtype, const std::vector<std::int64_t>& sizes,
                  TierOptions tiers = {})
      : opt(rule, options, std::move(tiers)) {
    host.reserve(sizes.size());
    std::vector<Parameter> refs;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      host.emplace_back(dtype, sizes[k], 50 + k);
      const std::size_t bytes = static_cast<std::size_t>(sizes[k]) * dtype_size(dtype);
      values.push_back(std::make_unique<DeviceCopy>(host.back().value.data(), bytes));
      grads.push_back(std::make_unique<DeviceCopy>(host.back().grad.data(), bytes));
      refs.push_back({{values.back()->data(), sizes[k], dtype, Device::kCUDA},
                      {grads.back()->data(), sizes[k], dtype, Device::kCUDA}});
    }
    opt.add_param_group(refs);
  }
  void steps(int count) {
    for (int s = 0; s < count; ++s) {
      for (std::size_t k = 0; k < host.size(); ++k) {
        host[k].set_grad(1000 * s + k);
        grads[k]->copy_from(host[k].grad.data());
      }
      opt.step();
    }
    check(cudaStreamSynchronize(static_cast<cudaStream_t>(opt.cuda_stream())));
  }
  // As testing::TrainingRun::bits().
  std::vector<std::vector<std::uint8_t>> bits() {
    std::vector<std::vector<std::uint8_t>> out;
    for (std::size_t k = 0; k < host.size(); ++k) {
      values[k]->copy_to(host[k].value.data());
      testing::append_bits(out, host[k].value.bytes(), opt.state(0, k));
    }
    return out;
  }
};

const std::vector<std::int64_t> kModelSizes = {5000, 100, 70000, 0, 257};

GroupOptions options_for(int bits, Placement placement) {
  GroupOptions o = default_options("adamw");
  o.set("lr", 1e-2);
  o.optim_bits = bits;
  o.placement = placement;
  return o;
}

// Small chunks and a 3-slot ring, so offload and cpu_step reuse every slot many times.
TierOptions small_rings() {
  TierOptions t;
  t.chunk_bytes = 8192;
  t.ring_bytes = 3 * t.chunk_bytes;
  return t;
}

TEST(CudaOptimizer, EveryPlacementMatchesTheCpuBitwise) {
  OCTOPAGE_REQUIRE_GPU();
  for (int bits : {32, 8}) {
    for (DType dtype : testing::kAllDTypes) {
      testing::TrainingRun cpu("adamw", options_for(bits, Placement::kDevice), dtype, kModelSizes);
      cpu.steps(5);
      for (Placement placement : {Placement::kDevice, Placement::kPaged, Placement::kOffload, Placement::kCpuStep}) {
        for (bool pinned : {true, false}) {
          if (!pinned && (placement == Placement::kDevice || placement == Placement::kPaged)) continue;
          SCOPED_TRACE(std::to_string(bits) + "-bit " + dtype_name(dtype) + " " + placement_name(placement) +
                       (pinned ? "" : " (pageable host memory)"));
          TierOptions tiers = small_rings();
          tiers.pin_host_memory = pinned;
          CudaTrainingRun gpu("adamw", options_for(bits, placement), dtype, kModelSizes, tiers);
          gpu.steps(5);
          testing::expect_same_bytes(cpu.bits(), gpu.bits());
          const MemoryReport report = gpu.opt.memory_report();
          const std::uint64_t state = cpu.opt.memory_report().state_bytes_in(Tier::kHost);
          const Tier tier = placement == Placement::kDevice ? Tier::kDevice : Tier::kHost;
          EXPECT_EQ(report.state_bytes_in(tier), state);
          EXPECT_EQ(report.total_state_bytes(), state);
          const std::uint64_t ring = placement == Placement::kOffload || placement == Placement::kCpuStep ? 3 * 8192 : 0;
          EXPECT_EQ(report.staging_bytes, ring);
          if (ring > 0) {
            EXPECT_EQ(report.staging_tier, placement == Placement::kOffload ? Tier::kDevice : Tier::kHost);
          }
        }
      }
    }
  }
}

// Paged state pushed to the host between steps comes back, and the run goes on bitwise.
TEST(CudaOptimizer, PagedStatePagesOutAndComesBack) {
  OCTOPAGE_REQUIRE_GPU();
  testing::TrainingRun cpu("adamw", options_for(8, Placement::kDevice), DType::kFloat32, kModelSizes);
  CudaTrainingRun gpu("adamw", options_for(8, Placement::kPaged), DType::kFloat32, kModelSizes);
  for (int round = 0; round < 2; ++round) {
    cpu.steps(2);
    gpu.steps(2);
    gpu.opt.page_out();
  }
  testing::expect_same_bytes(cpu.bits(), gpu.bits());
}

TEST(CudaOptimizer, RunsOnTheCallersStream) {
  OCTOPAGE_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  testing::TrainingRun cpu("adam", options_for(8, Placement::kDevice), DType::kBFloat16, kModelSizes);
  cpu.steps(4);
  CudaTrainingRun gpu("adam", options_for(8, Placement::kDevice), DType::kBFloat16, kModelSizes);
  gpu.opt.set_cuda_stream(stream);
  gpu.steps(4);
  testing::expect_same_bytes(cpu.bits(), gpu.bits());
  check(cudaStreamDestroy(stream));
}

// State saved on one device loads on the other, and the runs go on bitwise alike: CPU
// to CUDA (paged), then CUDA back to a new CPU optimizer.
TEST(CudaOptimizer, StateLoadsAcrossCpuAndCuda) {
  OCTOPAGE_REQUIRE_GPU();
  for (int bits : {32, 8}) {
    SCOPED_TRACE(std::to_string(bits) + "-bit");
    testing::TrainingRun cpu("adamw", options_for(bits, Placement::kDevice), DType::kFloat32, kModelSizes);
    cpu.steps(3);
    CudaTrainingRun gpu("adamw", options_for(bits, Placement::kPaged), DType::kFloat32, kModelSizes);
    std::vector<StateLoad> to_gpu;
    for (std::size_t k = 0; k < kModelSizes.size(); ++k) {
      to_gpu.push_back({0, k, cpu.opt.state(0, k)});
      gpu.host[k].value.set(cpu.params[k].value.values());
      gpu.values[k]->copy_from(gpu.host[k].value.data());
    }
    gpu.opt.load_state(to_gpu);
    cpu.steps(2);  // both runs see the same two gradients
    gpu.steps(2);
    testing::expect_same_bytes(cpu.bits(), gpu.bits());

    testing::TrainingRun back("adamw", options_for(bits, Placement::kDevice), DType::kFloat32, kModelSizes);
    std::vector<StateLoad> to_cpu;
    for (std::size_t k = 0; k < kModelSizes.size(); ++k) {
      to_cpu.push_back({0, k, gpu.opt.state(0, k)});
      back.params[k].value.set(gpu.host[k].value.values());
    }
    back.opt.load_state(to_cpu);
    back.steps(1);
    gpu.steps(1);
    testing::expect_same_bytes(back.bits(), gpu.bits());
  }
}

}  // namespace
}  // namespace octopage
