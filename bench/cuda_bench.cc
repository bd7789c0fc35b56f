// octopage_cuda_bench: AdamW steps on a CUDA GPU next to the GPU's own measured copy
// bandwidths, for the CUDA backend's targets: 8-bit state on one 67M-element tensor as a
// fraction of the device copy bandwidth, 512 tensors of 64K elements against one big
// tensor, `paged` against `device`, and `offload` against the host<->device transfer
// time at the measured bandwidth; then the paged-optimizer memory table for a LLaMA-shaped
// model (--model, default llama-220m): GPU memory, state per tier and step time per
// optimizer. A program that prints figures, never a test.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "octopage/octopage.h"
#include "perf/llama_config.h"

namespace {

using Clock = std::chrono::steady_clock;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "octopage_cuda_bench: %s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// The median of `runs` timings of f() in seconds, each ended by a device synchronize.
double median_seconds(int runs, const std::function<void()>& f) {
  f();  // warm-up (first steps allocate state)
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    const auto start = Clock::now();
    f();
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + runs / 2, times.end());
  return times[runs / 2];
}

// Bytes per second of a copy of `bytes` (read and written: counted twice for device to
// device, once across the link).
double copy_bandwidth(cudaMemcpyKind kind, std::size_t bytes) {
  void *src = nullptr, *dst = nullptr;
  const bool host_src = kind == cudaMemcpyHostToDevice, host_dst = kind == cudaMemcpyDeviceToHost;
  check(host_src ? cudaMallocHost(&src, bytes) : cudaMalloc(&src, bytes), "allocating");
  check(host_dst ? cudaMallocHost(&dst, bytes) : cudaMalloc(&dst, bytes), "allocating");
  const double seconds = median_seconds(10, [&] { check(cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy"); });
  host_src ? cudaFreeHost(src) : cudaFree(src);
  host_dst ? cudaFreeHost(dst) : cudaFree(dst);
  return static_cast<double>(bytes) * (kind == cudaMemcpyDeviceToDevice ? 2 : 1) / seconds;
}

// fp32 parameters and gradients of the given sizes in device memory, and an AdamW over them.
struct Model {
  std::vector<void*> buffers;
  octopage::Optimizer opt;
  Model(const std::vector<std::int64_t>& sizes, int bits, octopage::Placement placement, octopage::TierOptions tiers = {})
      : opt("adamw", [&] {
          octopage::GroupOptions o = octopage::default_options("adamw");
          o.optim_bits = bits;
          o.placement = placement;
          return o;
        }(), std::move(tiers)) {
    std::vector<octopage::Parameter> params;
    for (std::int64_t n : sizes) {
      void *p = nullptr, *g = nullptr;
      check(cudaMalloc(&p, n * sizeof(float)), "cudaMalloc");
      check(cudaMalloc(&g, n * sizeof(float)), "cudaMalloc");
      check(cudaMemset(p, 0, n * sizeof(float)), "cudaMemset");
      check(cudaMemset(g, 0x3C, n * sizeof(float)), "cudaMemset");  // gradients of about 0.012
      buffers.push_back(p);
      buffers.push_back(g);
      params.push_back({{p, n, octopage::DType::kFloat32, octopage::Device::kCUDA},
                        {g, n, octopage::DType::kFloat32, octopage::Device::kCUDA}});
    }
    opt.add_param_group(params);
  }
  ~Model() {
    for (void* b : buffers) cudaFree(b);
  }
  double step_seconds(int runs) { return median_seconds(runs, [&] { opt.step(); }); }
};

std::uint64_t gpu_bytes_in_use() {
  std::size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  return total - free;
}

// The published paged-optimizer table's rows for a LLaMA-shaped model: each optimizer
// over fp32 parameters and gradients of the model's shapes on the GPU.
void memory_table(const octopage::perf::LlamaConfig& config, nlohmann::json& out) {
  struct Row {
    const char* name;
    int bits;
    octopage::Placement placement;
  };
  const Row rows[] = {{"AdamW", 32, octopage::Placement::kDevice},
                      {"AdamW8bit", 8, octopage::Placement::kDevice},
                      {"PagedAdamW", 32, octopage::Placement::kPaged},
                      {"PagedAdamW8bit", 8, octopage::Placement::kPaged},
                      {"offloaded AdamW8bit", 8, octopage::Placement::kOffload},
                      {"cpu_step AdamW8bit", 8, octopage::Placement::kCpuStep}};
  const std::vector<std::int64_t> numels = octopage::perf::parameter_numels(config);
  const double params = static_cast<double>(octopage::perf::parameter_count(config));
  std::printf("\n%s (%.0fM parameters, fp32), one row per optimizer:\n", config.name.c_str(), params / 1e6);
  std::printf("%-22s %14s %14s %14s %14s %12s\n", "optimizer", "GPU total MiB", "GPU state MiB", "host state MiB",
              "ring MiB", "step ms");
  for (const Row& row : rows) {
    const std::uint64_t before = gpu_bytes_in_use();
    Model m(numels, row.bits, row.placement);
    const std::uint64_t with_model = gpu_bytes_in_use();
    const double seconds = m.step_seconds(row.placement == octopage::Placement::kCpuStep ? 3 : 10);
    const std::uint64_t after = gpu_bytes_in_use();
    const octopage::MemoryReport r = m.opt.memory_report();
    const double mib = 1024.0 * 1024.0;
    const double gpu_state = static_cast<double>(after - with_model) / mib;  // what the GPU holds for the optimizer
    std::printf("%-22s %14.1f %14.1f %14.1f %14.1f %12.2f\n", row.name, static_cast<double>(after - before) / mib,
                gpu_state, static_cast<double>(r.state_bytes_in(octopage::Tier::kHost)) / mib,
                static_cast<double>(r.staging_bytes) / mib, seconds * 1e3);
    out.push_back({{"model", config.name}, {"optimizer", row.name}, {"gpu_total_bytes", after - before},
                   {"gpu_optimizer_bytes", after - with_model},
                   {"state_device_bytes", r.state_bytes_in(octopage::Tier::kDevice)},
                   {"state_host_bytes", r.state_bytes_in(octopage::Tier::kHost)},
                   {"staging_bytes", r.staging_bytes}, {"step_ms", seconds * 1e3}});
  }
  std::printf("GPU total: parameters, gradients and optimizer (cudaMemGetInfo); GPU state: the optimizer's\n"
              "part (paged: the managed pages the GPU holds after its steps); host state: memory_report().\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string jsonl, model = "llama-220m";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--jsonl=", 0) == 0) {
      jsonl = arg.substr(8);
    } else if (arg.rfind("--model=", 0) == 0) {
      model = arg.substr(8);
    } else {
      std::fprintf(stderr, "usage: octopage_cuda_bench [--jsonl=PATH] [--model=%s]\n",
                   octopage::perf::llama_config_names().c_str());
      return 2;
    }
  }
  const octopage::perf::LlamaConfig* config = octopage::perf::find_llama_config(model);
  if (config == nullptr) {
    std::fprintf(stderr, "octopage_cuda_bench: unknown --model '%s' (one of %s)\n", model.c_str(),
                 octopage::perf::llama_config_names().c_str());
    return 2;
  }
  if (!octopage::cuda_unavailable_reason().empty()) {
    std::fprintf(stderr, "octopage_cuda_bench: no GPU to measure: %s\n", octopage::cuda_unavailable_reason().c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const double device_bw = copy_bandwidth(cudaMemcpyDeviceToDevice, std::size_t{1} << 30);
  const double h2d_bw = copy_bandwidth(cudaMemcpyHostToDevice, std::size_t{256} << 20);
  const double d2h_bw = copy_bandwidth(cudaMemcpyDeviceToHost, std::size_t{256} << 20);
  std::printf("octopage_cuda_bench on %s: device copy %.0f GB/s, host to device %.1f GB/s, device to host %.1f GB/s\n",
              prop.name, device_bw / 1e9, h2d_bw / 1e9, d2h_bw / 1e9);

  nlohmann::json out = nlohmann::json::array();
  const auto report = [&](const std::string& name, std::int64_t params, double seconds, double bytes_per_param,
                          const std::string& against, double ratio, const std::string& target) {
    const double gbps = static_cast<double>(params) * bytes_per_param / seconds / 1e9;
    std::printf("%-34s %9.3f ms  %7.0f GB/s  %-28s %6.3f  %s\n", name.c_str(), seconds * 1e3, gbps, against.c_str(),
                ratio, target.c_str());
    out.push_back({{"case", name}, {"params", params}, {"ms", seconds * 1e3}, {"gbps", gbps},
                   {"against", against}, {"ratio", ratio}, {"target", target}});
  };

  constexpr std::int64_t kBig = std::int64_t{1} << 26;  // 67M elements
  const std::vector<std::int64_t> big = {kBig};
  const std::vector<std::int64_t> many(512, std::int64_t{1} << 16);
  const double q8_bytes = 16.0 + 8.0 / 256, fp32_bytes = 28.0;

  double q8_device = 0;
  {
    Model m(big, 8, octopage::Placement::kDevice);
    q8_device = m.step_seconds(50);
    report("AdamW8bit, 1 x 67M, device", kBig, q8_device, q8_bytes, "of device copy bandwidth",
           kBig * q8_bytes / q8_device / device_bw, ">= 0.80");
  }
  {
    Model m(big, 32, octopage::Placement::kDevice);
    const double s = m.step_seconds(50);
    report("AdamW, 1 x 67M, device", kBig, s, fp32_bytes, "of device copy bandwidth", kBig * fp32_bytes / s / device_bw, "");
  }
  {
    Model m(many, 8, octopage::Placement::kDevice);
    const double s = m.step_seconds(50);
    report("AdamW8bit, 512 x 64K, device", kBig / 2, s, q8_bytes, "per element vs 1 x 67M", (s / (kBig / 2)) / (q8_device / kBig),
           "<= 1.20");
  }
  {
    Model m(big, 8, octopage::Placement::kPaged);  // 134 MB of managed state: far below the GPU's free memory
    const double s = m.step_seconds(50);
    report("AdamW8bit, 1 x 67M, paged", kBig, s, q8_bytes, "vs device", s / q8_device, "<= 1.10");
  }
  {
    Model m(big, 8, octopage::Placement::kOffload);
    const double s = m.step_seconds(20);
    const double state = static_cast<double>(m.opt.memory_report().state_bytes_in(octopage::Tier::kHost));
    const double transfer = state / h2d_bw + state / d2h_bw;
    report("AdamW8bit, 1 x 67M, offload", kBig, s, q8_bytes, "vs max(transfer, update)", s / std::max(transfer, q8_device),
           "<= 1.15");
    std::printf("  offload: state on device %llu B (the ring: %llu B), state on host %.0f MB\n",
                static_cast<unsigned long long>(m.opt.memory_report().state_bytes_in(octopage::Tier::kDevice)),
                static_cast<unsigned long long>(m.opt.memory_report().staging_bytes), state / 1e6);
  }
  {
    Model m(big, 8, octopage::Placement::kCpuStep);
    const double s = m.step_seconds(5);
    const double transfer = kBig * 8.0 / d2h_bw + kBig * 4.0 / h2d_bw;  // parameter and gradient down, parameter up
    report("AdamW8bit, 1 x 67M, cpu_step", kBig, s, q8_bytes, "vs parameter+gradient transfer", s / transfer, "");
  }
  memory_table(*config, out);
  if (!jsonl.empty()) {
    std::ofstream file(jsonl);
    for (const auto& line : out) file << line.dump() << "\n";
  }
  return 0;
}
