// octopage_bench: step throughput of AdamW with fp32 and 8-bit state, for fp32 and bf16
// parameters, next to the machine's memory bandwidth measured in the same run (a
// STREAM triad). Prints a table (or JSON lines) and checks the issue's targets. A
// program that prints figures, never a test: nothing here fails on a slow machine.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "octopage/octopage.h"
#include "src/engine/thread_pool.h"
#include "src/kernels/cpu/cpu_kernels.h"
#include "src/quant/float_convert.h"
#include "perf/common.h"
#include "perf/step_bench.h"
#include "perf/triad.h"

namespace octopage::perf {
namespace {

using nlohmann::json;

constexpr const char* kUsageBody = R"( [options]

Step throughput of octopage's AdamW (32-bit and 8-bit state, fp32 and bf16 parameters)
next to the memory bandwidth of this machine, measured by a STREAM triad in the same run.

options (--flag=value or --flag value):
  --sizes=LIST     parameter sizes, e.g. 1M,10M,100M (K, M, G suffixes; default 1M,10M,100M)
  --overhead=N     also step N parameters of 4096 elements each (default 1000; 0: skip)
  --threads=N      threads (default: octopage::num_threads(), i.e. OCTOPAGE_NUM_THREADS or
                   every core)
  --min-time=S     time each case for at least S seconds (default 1.0)
  --target=NAME    run the kernels of this SIMD target (AVX3_DL, AVX3, AVX2, SSE4, ...; the
                   ones this CPU can run), as if the CPU had nothing better (default: the best)
  --quick          --sizes=1M,10M --overhead=1000 --min-time=0.2, a smaller triad
  --format=F       stdout as 'table' (default) or 'jsonl'
  --jsonl=PATH     also write every figure as JSON lines to PATH
  --help           this text
)";

struct Config {
  std::vector<std::int64_t> sizes{1'000'000, 10'000'000, 100'000'000};
  std::int64_t overhead_params = 1000;
  int threads = 0;
  std::string target;  // empty: the best this CPU runs
  double min_time = 1.0;
  bool quick = false;
  OutputOptions output;
};

std::int64_t parse_count(std::string_view text, std::string_view flag) {
  if (text.empty()) usage_error("empty value for " + std::string(flag));
  std::int64_t scale = 1;
  switch (text.back()) {
    case 'K': case 'k': scale = 1'000; break;
    case 'M': case 'm': scale = 1'000'000; break;
    case 'G': case 'g': scale = 1'000'000'000; break;
    default: break;
  }
  if (scale != 1) text.remove_suffix(1);
  std::int64_t value = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9' || value > (std::int64_t{1} << 40)) {
      usage_error("expected a count like 10M for " + std::string(flag) + ", got '" +
                  std::string(text) + "'");
    }
    value = value * 10 + (ch - '0');
  }
  return value * scale;
}

Config parse_args(int argc, char** argv) {
  Config config;
  bool sizes_given = false, overhead_given = false, min_time_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool takes_value = arg != "--help" && arg != "-h" && arg != "--quick";
    const auto [flag, value] = next_flag(argc, argv, i, takes_value);
    if (flag == "--help" || flag == "-h") {
      std::cout << g_usage;
      std::exit(0);
    } else if (flag == "--quick") {
      config.quick = true;
    } else if (flag == "--sizes") {
      config.sizes.clear();
      for (std::size_t begin = 0; begin <= value.size();) {
        std::size_t end = value.find(',', begin);
        if (end == std::string_view::npos) end = value.size();
        const std::int64_t n = parse_count(value.substr(begin, end - begin), flag);
        if (n <= 0) usage_error("expected sizes > 0 for --sizes");
        config.sizes.push_back(n);
        begin = end + 1;
      }
      sizes_given = true;
    } else if (flag == "--overhead") {
      config.overhead_params = parse_count(value, flag);
      overhead_given = true;
    } else if (flag == "--threads") {
      config.threads = static_cast<int>(parse_count(value, flag));
      if (config.threads <= 0) usage_error("expected --threads >= 1");
    } else if (flag == "--target") {
      config.target = std::string(value);
    } else if (flag == "--min-time") {
      char* end = nullptr;
      const std::string text(value);
      config.min_time = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(config.min_time > 0 && config.min_time < 600)) {
        usage_error("expected --min-time in (0, 600) seconds, got '" + text + "'");
      }
      min_time_given = true;
    } else if (!config.output.parse(flag, value)) {
      usage_error("unknown option '" + std::string(arg) + "'");
    }
  }
  if (config.quick) {
    if (!sizes_given) config.sizes = {1'000'000, 10'000'000};
    if (!overhead_given) config.overhead_params = 1000;
    if (!min_time_given) config.min_time = 0.2;
  }
  return config;
}

// Parameter and gradient buffers of one case, filled in parallel (first touch on the
// threads that will step them).
class Buffers {
 public:
  Buffers(DType dtype, std::int64_t numel, std::uint64_t seed)
      : dtype_(dtype),
        param_(alloc(numel * static_cast<std::int64_t>(dtype_size(dtype)))),
        grad_(alloc(numel * static_cast<std::int64_t>(dtype_size(dtype)))) {
    constexpr std::int64_t kTask = std::int64_t{1} << 16;
    engine::ThreadPool::instance().parallel_for((numel + kTask - 1) / kTask, [&](std::int64_t t) {
      const std::int64_t end = std::min(numel, (t + 1) * kTask);
      for (std::int64_t i = t * kTask; i < end; ++i) {
        set(param_.get(), i, hash_value(static_cast<std::uint64_t>(i), seed, 1.0f));
        set(grad_.get(), i, hash_value(static_cast<std::uint64_t>(i), ~seed, 1e-3f));
      }
    });
  }
  TensorRef param(std::int64_t offset, std::int64_t n) { return ref(param_.get(), offset, n); }
  TensorRef grad(std::int64_t offset, std::int64_t n) { return ref(grad_.get(), offset, n); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  using Memory = std::unique_ptr<char, Free>;

  static Memory alloc(std::int64_t bytes) {
    const auto size = static_cast<std::size_t>((std::max<std::int64_t>(bytes, 1) + 63) / 64 * 64);
    Memory memory(static_cast<char*>(std::aligned_alloc(64, size)));
    if (!memory) {
      std::fprintf(stderr, "octopage_bench: out of memory allocating %zu bytes\n", size);
      std::exit(1);
    }
    return memory;
  }
  void set(char* base, std::int64_t i, float value) const {
    if (dtype_ == DType::kFloat32) {
      reinterpret_cast<float*>(base)[i] = value;
    } else {
      reinterpret_cast<std::uint16_t*>(base)[i] = quant::bf16_from_float(value);
    }
  }
  TensorRef ref(char* base, std::int64_t offset, std::int64_t n) const {
    return TensorRef{base + offset * static_cast<std::int64_t>(dtype_size(dtype_)), n, dtype_,
                     Device::kCPU};
  }

  DType dtype_;
  Memory param_, grad_;
};

struct Case {
  std::string name;         // "1M", "1000x4096"
  DType dtype;
  int optim_bits;
  std::int64_t num_params;  // tensors
  std::int64_t numel;       // elements per tensor
};

struct StepResult {
  Case c;
  double best_seconds = 0, median_seconds = 0;
  int steps = 0;
  double state_bytes_per_param = 0;
  double traffic_bytes_per_param = 0;
  double params_per_s = 0, gb_per_s = 0, fraction_of_limit = 0;
};

// Bytes one step must move per parameter, counted as STREAM counts them (each array
// read once, written once): read parameter and gradient, write parameter, read and
// write both moments (fp32: 4 bytes each; 8-bit: 1 byte plus its block's absmax).
double traffic_bytes_per_param(DType dtype, int optim_bits) {
  const double param = static_cast<double>(dtype_size(dtype));
  const double state = optim_bits == 32 ? 2 * 2 * 4.0 : 2 * 2 * (1.0 + 4.0 / 256.0);
  return 3 * param + state;
}

StepResult run_case(const Case& c, double min_time, double limit_gb_per_s) {
  const std::int64_t total = c.num_params * c.numel;
  Buffers buffers(c.dtype, total, 0x0C7012u + static_cast<std::uint64_t>(c.numel));
  std::vector<Parameter> params;
  for (std::int64_t i = 0; i < c.num_params; ++i) {
    params.push_back({buffers.param(i * c.numel, c.numel), buffers.grad(i * c.numel, c.numel)});
  }
  GroupOptions options = default_options("adamw");
  options.optim_bits = c.optim_bits;
  Optimizer optimizer("adamw", options);
  optimizer.add_param_group(std::move(params));
  optimizer.step();  // creates the state
  optimizer.step();  // warm

  std::vector<double> times;
  double elapsed = 0;
  while ((elapsed < min_time || times.size() < 5) && times.size() < 1000) {
    const auto start = std::chrono::steady_clock::now();
    optimizer.step();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    elapsed += times.back();
  }
  std::sort(times.begin(), times.end());

  StepResult r;
  r.c = c;
  r.steps = static_cast<int>(times.size());
  r.best_seconds = times.front();
  r.median_seconds = times[times.size() / 2];
  r.state_bytes_per_param = static_cast<double>(optimizer.memory_report().total_state_bytes()) /
                            static_cast<double>(total);
  r.traffic_bytes_per_param = traffic_bytes_per_param(c.dtype, c.optim_bits);
  r.params_per_s = static_cast<double>(total) / r.median_seconds;
  r.gb_per_s = r.params_per_s * r.traffic_bytes_per_param / 1e9;
  r.fraction_of_limit = r.gb_per_s / limit_gb_per_s;
  return r;
}

std::string size_name(std::int64_t n) {
  if (n % 1'000'000'000 == 0) return std::to_string(n / 1'000'000'000) + "G";
  if (n % 1'000'000 == 0) return std::to_string(n / 1'000'000) + "M";
  if (n % 1'000 == 0) return std::to_string(n / 1'000) + "K";
  return std::to_string(n);
}

const StepResult* find(const std::vector<StepResult>& results, const std::string& name,
                       DType dtype, int optim_bits) {
  for (const StepResult& r : results) {
    if (r.c.name == name && r.c.dtype == dtype && r.c.optim_bits == optim_bits) return &r;
  }
  return nullptr;
}

// The issue's targets, each checked on the figures of this run.
void report_targets(const std::vector<StepResult>& results, Output& out) {
  out.print("\ntargets (this run):\n");
  // op is ">=", "<=" or "==".
  auto verdict = [&](const std::string& target, const std::string& where, double measured,
                     const char* op, double bound) {
    const std::string o = op;
    const bool met = o == ">=" ? measured >= bound : o == "<=" ? measured <= bound : measured == bound;
    out.print("  %-40s %-9s %7.3f (%s %.3f)  %s\n", target.c_str(), where.c_str(), measured, op,
              bound, met ? "met" : "NOT MET");
    out.record({{"kind", "target"}, {"target", target}, {"case", where}, {"measured", measured},
                {"op", o}, {"bound", bound}, {"met", met}});
  };
  for (const StepResult& r : results) {
    if (r.c.num_params != 1) continue;
    const std::string where = r.c.name + " " + dtype_name(r.c.dtype);
    if (r.c.optim_bits == 32) {
      verdict("state bytes/param, 32-bit", where, r.state_bytes_per_param, "==", 8.0);
      if (r.c.dtype == DType::kFloat32) {
        verdict("fp32 32-bit: fraction of bandwidth limit", where, r.fraction_of_limit, ">=", 0.75);
      }
    } else {
      verdict("state bytes/param, 8-bit", where, r.state_bytes_per_param, "<=", 2.04);
      if (const StepResult* base = find(results, r.c.name, r.c.dtype, 32)) {
        verdict("8-bit params/s / 32-bit params/s", where, r.params_per_s / base->params_per_s,
                ">=", 1.0);
      }
      if (r.c.dtype == DType::kBFloat16) {
        if (const StepResult* fp32 = find(results, r.c.name, DType::kFloat32, 8)) {
          verdict("8-bit: bf16 params/s / fp32 params/s", where,
                  r.params_per_s / fp32->params_per_s, ">=", 1.0);
        }
      }
    }
  }
}

// The SIMD target called `name` among those this CPU runs.
std::int64_t find_target(const std::string& name) {
  std::string known;
  for (std::int64_t target : kernels::cpu::cpu_targets()) {
    if (kernels::cpu::cpu_target_name(target) == name) return target;
    known += (known.empty() ? "" : ", ") + kernels::cpu::cpu_target_name(target);
  }
  usage_error("--target=" + name + " is not one this CPU runs (" + known + ")");
  return 0;
}

int run(const Config& config) {
  if (config.threads > 0) set_num_threads(config.threads);
  std::optional<kernels::cpu::ScopedCpuTarget> forced;
  if (!config.target.empty()) forced.emplace(find_target(config.target));
  Output out(config.output);
  const std::string target = kernels::cpu::cpu_kernels().target_name;

  out.print("octopage_bench: AdamW step, %d threads, SIMD target %s\n", num_threads(),
            target.c_str());
  out.print("measuring memory bandwidth (STREAM triad)...\n");
  const TriadResult triad =
      measure_triad(config.quick ? std::int64_t{1} << 24 : std::int64_t{1} << 25,
                    config.quick ? 8 : 20);
  out.print("triad a=b+s*c: %.1f GB/s best, %.1f median; in place b=b+s*c: %.1f best, %.1f "
            "median\n(3 x %.0f MiB, %d runs each, %s); bandwidth limit: %.1f GB/s\n\n",
            triad.best_gb_per_s, triad.median_gb_per_s, triad.in_place_best_gb_per_s,
            triad.in_place_median_gb_per_s, static_cast<double>(triad.elements) * 4 / (1 << 20),
            triad.repetitions, triad.target, triad.limit_gb_per_s());
  out.record({{"kind", "triad"}, {"best_gb_per_s", triad.best_gb_per_s},
              {"median_gb_per_s", triad.median_gb_per_s},
              {"in_place_best_gb_per_s", triad.in_place_best_gb_per_s},
              {"in_place_median_gb_per_s", triad.in_place_median_gb_per_s},
              {"limit_gb_per_s", triad.limit_gb_per_s()}, {"elements", triad.elements},
              {"repetitions", triad.repetitions}, {"target", triad.target},
              {"threads", num_threads()}});

  std::vector<Case> cases;
  for (std::int64_t n : config.sizes) {
    for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
      for (int bits : {32, 8}) cases.push_back({size_name(n), dtype, bits, 1, n});
    }
  }
  if (config.overhead_params > 0) {
    for (int bits : {32, 8}) {
      cases.push_back({std::to_string(config.overhead_params) + "x4096", DType::kFloat32, bits,
                       config.overhead_params, 4096});
    }
  }

  out.print("%-10s %-5s %-6s %10s %8s %8s %9s %10s %6s\n", "params", "dtype", "state",
            "Mparam/s", "GB/s", "%limit", "ms/step", "stateB/p", "steps");
  std::vector<StepResult> results;
  for (const Case& c : cases) {
    const StepResult r = run_case(c, config.min_time, triad.limit_gb_per_s());
    out.print("%-10s %-5s %-6s %10.0f %8.1f %7.0f%% %9.3f %10.4f %6d\n", c.name.c_str(),
              c.dtype == DType::kFloat32 ? "fp32" : "bf16", c.optim_bits == 32 ? "32-bit" : "8-bit",
              r.params_per_s / 1e6, r.gb_per_s, 100 * r.fraction_of_limit, r.median_seconds * 1e3,
              r.state_bytes_per_param, r.steps);
    out.record({{"kind", "step"}, {"rule", "AdamW"}, {"case", c.name},
                {"dtype", dtype_name(c.dtype)}, {"optim_bits", c.optim_bits},
                {"num_params", c.num_params}, {"numel", c.numel},
                {"elements", c.num_params * c.numel}, {"params_per_s", r.params_per_s},
                {"gb_per_s", r.gb_per_s}, {"fraction_of_limit", r.fraction_of_limit},
                {"traffic_bytes_per_param", r.traffic_bytes_per_param},
                {"state_bytes_per_param", r.state_bytes_per_param},
                {"median_seconds", r.median_seconds}, {"best_seconds", r.best_seconds},
                {"steps", r.steps}, {"threads", num_threads()}, {"target", target}});
    results.push_back(r);
  }
  out.print("\nMparam/s and GB/s from the median step; GB/s counts the bytes a step must move\n"
            "(28/param fp32 32-bit, 22 bf16 32-bit, 16.1 fp32 8-bit, 10.1 bf16 8-bit);\n"
            "%%limit is that over the bandwidth limit measured in this run.\n");
  report_targets(results, out);
  return 0;
}

}  // namespace

int step_bench_main(int argc, char** argv, const char* program) {
  static const std::string usage = std::string("usage: ") + program + kUsageBody;
  g_program = program;
  g_usage = usage.c_str();
  const Config config = parse_args(argc, argv);
  try {
    return run(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace octopage::perf
