// octopage_tiers_bench: what each placement costs for a LLaMA-shaped set of parameters:
// AdamW with 32-bit and 8-bit state on the device (RAM), paged and offloaded: step time,
// state bytes per tier, and the peak resident memory the OS measured. Each case runs in
// its own child process, so its peak is its own. Also measures the state file's
// sequential bandwidth, to judge the offload step against it. Prints figures only.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "octopage/octopage.h"
#include "perf/common.h"
#include "perf/llama_config.h"
#include "src/engine/thread_pool.h"
#include "src/memory/io_queue.h"
#include "src/memory/state_file.h"

namespace octopage::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage = R"(usage: octopage_tiers_bench [options]

AdamW and AdamW8bit with state on the device (RAM), paged and offloaded, for a
LLaMA-shaped set of fp32 parameters: step time, state per tier, peak resident memory.

options (--flag=value or --flag value):
  --model=NAME     llama-220m (default), llama-1b, small, or tiny (a few MB, for tests)
  --steps=N        timed steps per case after the first (default 5); the targets use
                   the best, as this machine is shared and noisy
  --offload-dir=D  where paged and offloaded state go (default: a temporary directory)
  --ring-mib=N     the staging ring (default: octopage's default)
  --chunk-mib=N    a ring slot (default: octopage's default)
  --format=F       stdout as 'table' (default) or 'jsonl'
  --jsonl=PATH     also write every figure as JSON lines to PATH
  --help           this text
)";

using perf::hash_value;
using perf::LlamaConfig;
using perf::next_flag;
using perf::Output;
using perf::OutputOptions;
using perf::usage_error;

struct Case {
  const char* name;  // as bitsandbytes would call it
  int bits;
  Placement placement;
};
const Case kCases[] = {
    {"AdamW", 32, Placement::kDevice},         {"AdamW8bit", 8, Placement::kDevice},
    {"PagedAdamW", 32, Placement::kPaged},     {"PagedAdamW8bit", 8, Placement::kPaged},
    {"offloaded AdamW", 32, Placement::kOffload}, {"offloaded AdamW8bit", 8, Placement::kOffload},
};

struct Config {
  LlamaConfig model = *perf::find_llama_config("llama-220m");
  int steps = 5;
  TierOptions tiers;
  OutputOptions output;
};

std::int64_t positive(std::string_view flag, std::string_view value) {
  char* end = nullptr;
  const std::string text(value);
  const long long n = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n <= 0) {
    usage_error("expected " + std::string(flag) + "=N with N > 0, got '" + text + "'");
  }
  return n;
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    const auto [flag, value] = next_flag(argc, argv, i, true);
    if (flag == "--model") {
      const LlamaConfig* m = perf::find_llama_config(value);
      if (m == nullptr) usage_error("expected --model=" + perf::llama_config_names() + ", got '" + std::string(value) + "'");
      c.model = *m;
    } else if (flag == "--steps") {
      c.steps = static_cast<int>(positive(flag, value));
    } else if (flag == "--offload-dir") {
      c.tiers.offload_dir = value;
    } else if (flag == "--ring-mib") {
      c.tiers.ring_bytes = static_cast<std::uint64_t>(positive(flag, value)) << 20;
    } else if (flag == "--chunk-mib") {
      c.tiers.chunk_bytes = static_cast<std::uint64_t>(positive(flag, value)) << 20;
    } else if (!c.output.parse(flag, value)) {
      usage_error("unknown option '" + std::string(arg) + "'");
    }
  }
  try {
    Optimizer check("adamw", default_options("adamw"), c.tiers);  // bad dir or ring: say so now
  } catch (const Error& e) {
    usage_error(e.what());
  }
  return c;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Fills fp32 values on all threads: the figures do not depend on them, only the memory
// they touch does.
void fill(float* values, std::int64_t n, std::uint64_t seed, float scale) {
  constexpr std::int64_t kPiece = 1 << 20;
  engine::ThreadPool::instance().parallel_for((n + kPiece - 1) / kPiece, [&](std::int64_t p) {
    const std::int64_t end = std::min(n, (p + 1) * kPiece);
    for (std::int64_t i = p * kPiece; i < end; ++i) values[i] = hash_value(static_cast<std::uint64_t>(i), seed, scale);
  });
}

// One case, in a child process: params and grads, the first step (creates state), then
// timed steps. Returns the figures as JSON.
json run_case(const Config& config, const Case& c) {
  const std::vector<std::int64_t> sizes = perf::parameter_numels(config.model);
  const std::int64_t total = perf::parameter_count(config.model);
  std::vector<float> values(static_cast<std::size_t>(total)), grads(static_cast<std::size_t>(total));
  fill(values.data(), total, 1, 0.02f);
  fill(grads.data(), total, 2, 1e-3f);
  GroupOptions options = default_options("adamw");
  options.optim_bits = c.bits;
  options.placement = c.placement;
  Optimizer opt("adamw", options, config.tiers);
  std::vector<Parameter> params;
  std::int64_t at = 0;
  for (std::int64_t n : sizes) {
    params.push_back({{values.data() + at, n}, {grads.data() + at, n}});
    at += n;
  }
  opt.add_param_group(params);
  auto t0 = Clock::now();
  opt.step();
  const double first = seconds_since(t0);
  std::vector<double> times;
  for (int s = 0; s < config.steps; ++s) {
    t0 = Clock::now();
    opt.step();
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  const MemoryReport r = opt.memory_report();
  return {{"kind", "case"}, {"model", config.model.name}, {"case", c.name}, {"optim_bits", c.bits},
          {"threads", num_threads()},
          {"placement", placement_name(c.placement)}, {"params", total},
          {"first_step_s", first}, {"step_s", times.front()}, {"step_median_s", times[times.size() / 2]},
          {"state_ram_bytes", r.state_bytes_in(Tier::kHost)}, {"state_file_bytes", r.state_bytes_in(Tier::kFile)},
          {"staging_bytes", r.staging_bytes}, {"peak_ram_bytes", r.peak_bytes_in(Tier::kHost)},
          {"paged_resident_bytes", r.paged_resident_bytes}};
}

// Runs f in a child process; returns its JSON and its peak resident memory.
json in_child(const std::function<json()>& f) {
  int fds[2];
  if (::pipe(fds) != 0) usage_error("cannot make a pipe");
  std::cout.flush();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    int rc = 0;
    try {
      out = f().dump();
    } catch (const std::exception& e) {
      out = json{{"error", e.what()}}.dump();
      rc = 1;
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(rc);
  }
  ::close(fds[1]);
  std::string text;
  char buffer[4096];
  for (long n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  json result = text.empty() ? json{{"error", "the case's process died"}} : json::parse(text);
  result["peak_rss_bytes"] = static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;
  return result;
}

// Sequential write, then read, of `bytes` through octopage's own I/O queue and file, in
// chunk_bytes requests with every ring slot in flight: what offload can hope for.
json file_bandwidth(const TierOptions& tiers, std::uint64_t bytes) {
  memory::StateDirectory dir(tiers.offload_dir, false);
  memory::StateFile file(dir, "bandwidth", tiers.direct_io);
  file.reserve(memory::align_up(bytes, tiers.chunk_bytes));
  const auto depth = static_cast<unsigned>(tiers.ring_bytes / tiers.chunk_bytes);
  auto queue = memory::make_io_queue(tiers.io_backend, file.fd(), depth);
  std::vector<char*> buffers(depth);
  for (auto& b : buffers) {
    b = static_cast<char*>(std::aligned_alloc(memory::kFileAlignment, tiers.chunk_bytes));
    std::fill_n(b, tiers.chunk_bytes, 1);
  }
  const std::uint64_t requests = (bytes + tiers.chunk_bytes - 1) / tiers.chunk_bytes;
  json result{{"kind", "file"}, {"bytes", requests * tiers.chunk_bytes}, {"io_backend", queue->name()},
              {"direct_io", file.direct()}, {"path", file.path()}};
  for (memory::IoKind kind : {memory::IoKind::kWrite, memory::IoKind::kRead}) {
    const auto t0 = Clock::now();
    std::uint64_t submitted = 0, done = 0;
    while (done < requests) {
      while (submitted < requests && submitted - done < depth) {
        queue->submit({kind, buffers[submitted % depth], tiers.chunk_bytes, submitted * tiers.chunk_bytes, submitted});
        ++submitted;
      }
      const memory::IoCompletion c = queue->wait();
      if (c.error != 0) throw Error(ErrorKind::kRuntime, "file bandwidth: " + memory::io_error_text(c.error));
      ++done;
    }
    if (kind == memory::IoKind::kWrite) ::fdatasync(file.fd());
    const double gbs = static_cast<double>(requests * tiers.chunk_bytes) / seconds_since(t0) / 1e9;
    result[kind == memory::IoKind::kWrite ? "write_gb_per_s" : "read_gb_per_s"] = gbs;
  }
  for (auto* b : buffers) std::free(b);
  return result;
}

double mib(double bytes) { return bytes / (1 << 20); }

int run(int argc, char** argv) {
  const Config config = parse(argc, argv);
  Output out(config.output);
  const bool table = out.table();
  const std::int64_t total = perf::parameter_count(config.model);
  const double params_and_grads = 8.0 * static_cast<double>(total);
  if (table) {
    // No octopage::num_threads() here: the thread pool must first start in the children.
    std::printf("octopage_tiers_bench: %s, %.1fM fp32 parameters (%zu tensors), ring %.0f MiB in %.0f MiB "
                "chunks\n", config.model.name.c_str(), total / 1e6, perf::parameter_shapes(config.model).size(),
                mib(config.tiers.ring_bytes), mib(config.tiers.chunk_bytes));
  }
  std::vector<json> results;
  for (const Case& c : kCases) {
    if (table) std::fprintf(stderr, "  running %s...\n", c.name);
    json r = in_child([&] { return run_case(config, c); });
    if (r.contains("error")) {
      std::fprintf(stderr, "octopage_tiers_bench: %s failed: %s\n", c.name, r["error"].get<std::string>().c_str());
      return 1;
    }
    out.record(r);
    results.push_back(r);
  }
  const std::uint64_t offload8_bytes = results[5]["state_file_bytes"];
  json file = in_child([&] { return file_bandwidth(config.tiers, std::max<std::uint64_t>(offload8_bytes, 256 << 20)); });
  if (file.contains("error")) {
    std::fprintf(stderr, "octopage_tiers_bench: file bandwidth failed: %s\n", file["error"].get<std::string>().c_str());
    return 1;
  }
  file.erase("peak_rss_bytes");
  out.record(file);

  if (table) {
    std::printf("\n| %-34s |", "");
    for (const json& r : results) std::printf(" %19s |", r["case"].get<std::string>().c_str());
    std::printf("\n|%s|", std::string(36, '-').c_str());
    for (std::size_t i = 0; i < results.size(); ++i) std::printf("%s|", std::string(21, '-').c_str());
    std::printf("\n");
    const auto row = [&](const char* label, auto value) {
      std::printf("| %-34s |", label);
      for (const json& r : results) std::printf(" %19s |", value(r).c_str());
      std::printf("\n");
    };
    const auto fmt = [](const char* f, double v) {
      char text[64];
      std::snprintf(text, sizeof text, f, v);
      return std::string(text);
    };
    const double adamw_rss = results[0]["peak_rss_bytes"];
    const double adamw_state = results[0]["state_ram_bytes"];
    row("step time (s, best)", [&](const json& r) { return fmt("%.3f", r["step_s"]); });
    row("step time (s, median)", [&](const json& r) { return fmt("%.3f", r["step_median_s"]); });
    row("first step (s, creates state)", [&](const json& r) { return fmt("%.3f", r["first_step_s"]); });
    row("state in RAM (MiB)", [&](const json& r) { return fmt("%.1f", mib(r["state_ram_bytes"])); });
    row("state in file (MiB)", [&](const json& r) { return fmt("%.1f", mib(r["state_file_bytes"])); });
    row("staging ring (MiB)", [&](const json& r) { return fmt("%.1f", mib(r["staging_bytes"])); });
    row("paged state resident now (MiB)", [&](const json& r) { return fmt("%.1f", mib(r["paged_resident_bytes"])); });
    row("peak RSS (MiB, OS)", [&](const json& r) { return fmt("%.1f", mib(r["peak_rss_bytes"])); });
    row("peak RSS - params - grads (MiB)", [&](const json& r) {
      return fmt("%.1f", mib(r["peak_rss_bytes"].get<double>() - params_and_grads));
    });
    row("state RAM saved vs AdamW", [&](const json& r) {
      const double ram = r["state_ram_bytes"].get<double>() + r["staging_bytes"].get<double>();
      return fmt("%.1f%%", 100.0 * (1.0 - ram / adamw_state));
    });
    row("peak RSS saved vs AdamW", [&](const json& r) {
      return fmt("%.1f%%", 100.0 * (1.0 - r["peak_rss_bytes"].get<double>() / adamw_rss));
    });

    const double read_gbs = file["read_gb_per_s"], write_gbs = file["write_gb_per_s"];
    std::printf("\nstate file: %s, %s I/O, sequential write %.2f GB/s, read %.2f GB/s\n",
                file["io_backend"].get<std::string>().c_str(), file["direct_io"].get<bool>() ? "direct" : "buffered",
                write_gbs, read_gbs);
    std::printf("\ntargets (this run):\n");
    for (int bits : {32, 8}) {
      const json& device = results[bits == 32 ? 0 : 1];
      const json& paged = results[bits == 32 ? 2 : 3];
      const json& offload = results[bits == 32 ? 4 : 5];
      const double bytes = offload["state_file_bytes"];
      const double io = bytes / (read_gbs * 1e9) + bytes / (write_gbs * 1e9);
      const double bound = std::max(device["step_s"].get<double>(), io);
      const double ratio = offload["step_s"].get<double>() / bound;
      std::printf("  %-2d-bit offload step / max(device step %.3f s, state I/O %.3f s)  %.3f (<= 1.15)  %s\n", bits,
                  device["step_s"].get<double>(), io, ratio, ratio <= 1.15 ? "met" : "NOT MET");
      const double paged_ratio = paged["step_s"].get<double>() / device["step_s"].get<double>();
      std::printf("  %-2d-bit paged step / device step                              %.3f (<= 1.10)  %s\n", bits,
                  paged_ratio, paged_ratio <= 1.10 ? "met" : "NOT MET");
      const double over = offload["peak_rss_bytes"].get<double>() - params_and_grads;
      std::printf("  %-2d-bit offload peak RSS - params - grads = %.1f MiB (ring %.1f MiB + process)\n", bits,
                  mib(over), mib(offload["staging_bytes"]));
    }
    const double state_ram = results[5]["state_ram_bytes"].get<double>() + results[5]["staging_bytes"].get<double>();
    std::printf("  offloaded AdamW8bit state RAM (state + ring)                   %.1f MiB (<= 64 for llama-1b)\n",
                mib(state_ram));
  }
  return 0;
}

}  // namespace
}  // namespace octopage::bench

int main(int argc, char** argv) {
  octopage::perf::g_program = "octopage_tiers_bench";
  octopage::perf::g_usage = octopage::bench::kUsage;
  return octopage::bench::run(argc, argv);
}
