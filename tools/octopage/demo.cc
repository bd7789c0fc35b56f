#include "tools/octopage/demo.h"

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "octopage/options.h"
#include "perf/llama_config.h"
#include "tools/octopage/args.h"
#include "tools/octopage/optimizers.h"
#include "tools/octopage/plot.h"
#include "tools/octopage/table.h"

extern char** environ;

namespace octopage::cli {

const char* const kDemoUsage = R"(usage: octopage demo [options]      (or just: octopage [options])

Trains a small LLaMA-style model on generated text with AdamW (32-bit state), AdamW8bit,
PagedAdamW8bit and offloaded AdamW8bit (or the optimizers of --optimizers), from the same
seed and on the same batches, each in its own process, and shows what each costs and
learns: peak RSS, optimizer state in RAM and in file, step times, tokens/s, final loss
relative to the first, and whether each tiered run is bitwise the run with the same
state in RAM. Writes demo.csv, demo.json, loss.png and memory.png (and each run's JSON
under runs/) to the output directory.

options (--flag value or --flag=value):
  --out DIR          output directory (default: octopage-demo)
  --optimizers LIST  comma-separated (default adamw,adamw8bit,paged-adamw8bit,
                     offload-adamw8bit), any rule's: lion8bit, paged-ademamix8bit,
                     sgd, ...; see 'octopage train --help' for the keys
  --model NAME       tiny, small (default), llama-220m or llama-1b
  --tie-embeddings   the output head shares the embedding's weight (default: untied)
  --steps N          training steps per optimizer (default 200)
  --batch N          sequences per step (default 16)
  --sequence N       tokens per sequence (default 128)
  --lr X             peak learning rate (default: each rule's, see 'octopage train --help')
  --seed N           weights, text and batches (default 1)
  --threads N        CPU threads per run (default: every core)
  --device D         cpu (default); cuda where octopage was built with CUDA
  --offload-dir D    where paged and offloaded state goes (default: a temporary directory)
  --ring-kib N       the offload staging ring (default 1024: these models are small;
                     octopage's default is 32768)
  --chunk-kib N      a ring slot (default 256)
  --quiet            no progress bars
)";

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct DemoOptions {
  fs::path out = "octopage-demo";
  std::vector<const OptimizerChoice*> optimizers;
  std::vector<std::string> train_args;  // passed to every `octopage train`
};

DemoOptions parse(int argc, char** argv) {
  DemoOptions d;
  std::vector<std::string> keys = {"adamw", "adamw8bit", "paged-adamw8bit", "offload-adamw8bit"};
  std::string model = "small", ring = "1024", chunk = "256";
  const auto pass = [&](const char* flag, const std::string& value) {
    d.train_args.insert(d.train_args.end(), {flag, value});
  };
  parse_flags(argc, argv, 0, {
      {"--out", [&](std::string_view v) { d.out = std::string(v); }},
      {"--optimizers", [&](std::string_view v) { keys = parse_list("--optimizers", v); }},
      {"--model", [&](std::string_view v) { model = v; }},
      {"--tie-embeddings", [&](std::string_view) { d.train_args.push_back("--tie-embeddings"); }, false},
      {"--steps", [&](std::string_view v) { pass("--steps", std::to_string(parse_integer("--steps", v, 2))); }},
      {"--batch", [&](std::string_view v) { pass("--batch", std::to_string(parse_integer("--batch", v, 1))); }},
      {"--sequence", [&](std::string_view v) { pass("--sequence", std::to_string(parse_integer("--sequence", v, 2))); }},
      {"--lr", [&](std::string_view v) { parse_positive("--lr", v); pass("--lr", std::string(v)); }},
      {"--seed", [&](std::string_view v) { pass("--seed", std::to_string(parse_integer("--seed", v, 0))); }},
      {"--threads", [&](std::string_view v) { pass("--threads", std::to_string(parse_integer("--threads", v, 1, 4096))); }},
      {"--device", [&](std::string_view v) { check_device(v); pass("--device", std::string(v)); }},
      {"--offload-dir", [&](std::string_view v) { pass("--offload-dir", std::string(v)); }},
      {"--ring-kib", [&](std::string_view v) { ring = std::to_string(parse_integer("--ring-kib", v, 1)); }},
      {"--chunk-kib", [&](std::string_view v) { chunk = std::to_string(parse_integer("--chunk-kib", v, 1)); }},
      {"--quiet", [&](std::string_view) { d.train_args.push_back("--quiet"); }, false},
  });
  if (perf::find_llama_config(model) == nullptr) {
    throw UsageError("expected --model " + perf::llama_config_names() + ", got '" + model + "'");
  }
  pass("--model", model);
  pass("--ring-kib", ring);
  pass("--chunk-kib", chunk);
  for (const std::string& key : keys) {
    const OptimizerChoice* c = find_optimizer(key);
    if (c == nullptr) throw UsageError("expected --optimizers from " + optimizer_keys() + ", got '" + key + "'");
    d.optimizers.push_back(c);
  }
  return d;
}

// Makes the output directories and checks that files can be written there, before any
// training.
void prepare_output(const fs::path& out) {
  std::error_code error;
  fs::create_directories(out / "runs", error);
  const fs::path probe = out / ".octopage-write-test";
  std::ofstream(probe) << "ok";
  if (error || !fs::exists(probe)) {
    throw std::runtime_error("cannot write to the output directory '" + out.string() + "'" +
                             (error ? ": " + error.message() : std::string()) + "; choose another with --out");
  }
  fs::remove(probe);
}

std::string self_path() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw std::runtime_error(std::string("cannot find this program's path: ") + std::strerror(errno));
  return std::string(path, static_cast<std::size_t>(n));
}

// Runs `octopage train` for one optimizer in a child process; returns its result with
// the peak RSS the OS measured for the child.
json run_child(const std::string& exe, const OptimizerChoice& c, const DemoOptions& d) {
  const fs::path result = d.out / "runs" / (c.key + ".json");
  std::vector<std::string> args = {exe, "train", "--optimizer", c.key, "--json", result.string(), "--no-print"};
  args.insert(args.end(), d.train_args.begin(), d.train_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ);
  if (spawn_error != 0) throw std::runtime_error("cannot start '" + exe + "': " + std::strerror(spawn_error));
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waiting for a training run: ") + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("the " + c.name + " run failed (" +
                             (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                                : "signal " + std::to_string(WTERMSIG(status))) +
                             "); its messages are above");
  }
  std::ifstream in(result);
  json run = json::parse(in);
  run["peak_rss_bytes"] = static_cast<double>(usage.ru_maxrss) * 1024;  // the OS's, in KiB on Linux
  return run;
}

double state_ram(const json& run) {
  return run["state_bytes"]["host"].get<double>() + run["state_bytes"]["staging"].get<double>();
}
double state_total(const json& run) {
  return run["state_bytes"]["host"].get<double>() + run["state_bytes"]["file"].get<double>();
}

// The run of `choice`'s device twin among the runs, or nullptr.
const json* twin_run(const json& runs, const OptimizerChoice& choice) {
  const OptimizerChoice* twin = device_twin(choice);
  for (const json& r : runs) {
    if (twin != nullptr && r["optimizer"] == twin->key) return &r;
  }
  return nullptr;
}

// For an 8-bit run with state in RAM, the run of the same rule with 32-bit state in RAM
// among the runs (what it must learn as well as, in a quarter of the memory), or nullptr.
const json* full_state_run(const json& runs, const OptimizerChoice& c) {
  if (c.torch_reference || c.bits != 8 || c.placement != Placement::kDevice) return nullptr;
  for (const json& r : runs) {
    const OptimizerChoice& d = *find_optimizer(r["optimizer"].get<std::string>());
    if (!d.torch_reference && d.rule == c.rule && d.bits == 32 && d.placement == Placement::kDevice) return &r;
  }
  return nullptr;
}

bool bitwise_equal(const json& a, const json& b) {
  return a["param_hash"] == b["param_hash"] && a["losses"] == b["losses"];
}

Table demo_table(const json& runs, const json& base) {
  Table t;
  t.header.push_back("");
  for (const json& r : runs) t.header.push_back(r["optimizer_name"]);
  const auto add = [&](const std::string& label, auto cell) {
    std::vector<std::string> line{label};
    for (const json& r : runs) line.push_back(cell(r));
    t.rows.push_back(std::move(line));
  };
  const std::string base_name = base["optimizer_name"];
  add("peak RSS (MiB, OS)", [](const json& r) { return mib(r["peak_rss_bytes"].get<double>()); });
  add("parameters + gradients (MiB)",
      [](const json& r) { return mib(r["param_bytes"].get<double>() + r["grad_bytes"].get<double>()); });
  add("optimizer state in RAM (MiB)", [](const json& r) { return mib(r["state_bytes"]["host"].get<double>()); });
  add("optimizer state in file (MiB)", [](const json& r) { return mib(r["state_bytes"]["file"].get<double>()); });
  add("staging ring (MiB)", [](const json& r) { return mib(r["state_bytes"]["staging"].get<double>()); });
  add("state RAM saved vs " + base_name,
      [&](const json& r) { return percent(1.0 - state_ram(r) / state_ram(base)); });
  add("peak RSS saved vs " + base_name, [&](const json& r) {
    return percent(1.0 - r["peak_rss_bytes"].get<double>() / base["peak_rss_bytes"].get<double>());
  });
  add("optimizer step (ms)", [](const json& r) { return fixed(r["optimizer_step_ms"].get<double>(), 2); });
  add("training step (ms)", [](const json& r) { return fixed(r["step_ms"].get<double>(), 1); });
  add("tokens/s", [](const json& r) { return fixed(r["tokens_per_s"].get<double>(), 0); });
  add("final training loss", [](const json& r) { return fixed(r["final_train_loss"].get<double>(), 4); });
  add("evaluation loss", [](const json& r) { return fixed(r["eval_loss"].get<double>(), 4); });
  add("evaluation loss vs " + base_name, [&](const json& r) {
    return percent(r["eval_loss"].get<double>() / base["eval_loss"].get<double>() - 1.0, true);
  });
  add("bitwise the run with state in RAM", [&](const json& r) -> std::string {
    const json* twin = twin_run(runs, *find_optimizer(r["optimizer"].get<std::string>()));
    if (twin == nullptr) return "-";
    return (bitwise_equal(r, *twin) ? "yes (" : "NO (") + (*twin)["optimizer_name"].get<std::string>() + ")";
  });
  return t;
}

// The issue's targets, checked on this run: [{name, value, limit, met}].
json targets(const json& runs, const json& base) {
  json out = json::array();
  const auto add = [&](std::string name, double value, std::string shown, std::string limit, bool met) {
    out.push_back({{"name", std::move(name)}, {"value", value}, {"shown", std::move(shown)},
                   {"limit", std::move(limit)}, {"met", met}});
  };
  for (const json& r : runs) {
    const OptimizerChoice& c = *find_optimizer(r["optimizer"].get<std::string>());
    if (&r == &base) continue;
    if (const json* full = full_state_run(runs, c)) {
      const std::string full_name = (*full)["optimizer_name"];
      const double loss = r["eval_loss"].get<double>() / (*full)["eval_loss"].get<double>() - 1.0;
      add(c.name + " evaluation loss vs " + full_name, loss, percent(loss, true), "within 1%", std::abs(loss) <= 0.01);
      const double state = state_total(r) / state_total(*full);
      add(c.name + " optimizer state / " + full_name + "'s", state, percent(state), "<= 26%", state <= 0.26);
    }
    if (c.placement == Placement::kOffload) {
      const double ram = state_ram(r), ring = r["state_bytes"]["staging"].get<double>();
      add(c.name + " optimizer state in RAM, ring included", ram, mib(ram) + " MiB",
          "<= the ring, " + mib(ring) + " MiB", ram <= ring);
    }
    if (const json* twin = twin_run(runs, c)) {
      const bool equal = bitwise_equal(r, *twin);
      add(c.name + " bitwise equal to " + (*twin)["optimizer_name"].get<std::string>(), equal, equal ? "yes" : "no",
          "yes", equal);
    }
  }
  return out;
}

void write_charts(const fs::path& out, const json& runs) {
  LineChart loss{"Training loss (same seed and batches)", "step", "loss", {}};
  BarChart memory{"Memory by tier (MiB)", "MiB", {},
                  {"parameters + gradients", "optimizer state in RAM", "staging ring", "optimizer state in file"}, {}};
  for (const json& r : runs) {
    LineSeries series{r["optimizer_name"], {}, r["losses"].get<std::vector<double>>()};
    for (std::size_t i = 0; i < series.y.size(); ++i) series.x.push_back(static_cast<double>(i + 1));
    loss.series.push_back(std::move(series));
    const auto m = [](double bytes) { return bytes / (1 << 20); };
    memory.bars.push_back(r["optimizer_name"]);
    memory.values.push_back({m(r["param_bytes"].get<double>() + r["grad_bytes"].get<double>()),
                             m(r["state_bytes"]["host"].get<double>()), m(r["state_bytes"]["staging"].get<double>()),
                             m(r["state_bytes"]["file"].get<double>())});
  }
  write_line_chart((out / "loss.png").string(), loss);
  write_bar_chart((out / "memory.png").string(), memory);
}

}  // namespace

int run_demo(int argc, char** argv) {
  const DemoOptions d = parse(argc, argv);
  prepare_output(d.out);
  const std::string exe = self_path();
  std::cout << "octopage demo: training with " << d.optimizers.size() << " optimizers, each in its own process; "
            << "results in " << d.out.string() << "/\n" << std::flush;
  json runs = json::array();
  for (const OptimizerChoice* c : d.optimizers) runs.push_back(run_child(exe, *c, d));

  const json& base = runs[0];
  const Table table = demo_table(runs, base);
  const json checks = targets(runs, base);
  const json& first = runs[0];
  std::cout << "\nmodel " << first["options"]["model"].get<std::string>() << " ("
            << fixed(first["parameters"].get<double>() / 1e6, 2) << "M parameters), " << first["last_step"]
            << " steps of " << first["options"]["batch"] << " x " << first["options"]["sequence"] << " tokens, "
            << first["threads"] << " threads\n\n";
  table.print(std::cout);
  std::cout << "\n";
  for (const json& check : checks) {
    std::cout << (check["met"].get<bool>() ? "  met      " : "  NOT MET  ") << check["name"].get<std::string>()
              << ": " << check["shown"].get<std::string>() << " (target " << check["limit"].get<std::string>() << ")\n";
  }

  std::ofstream(d.out / "demo.csv") << table.csv();
  std::ofstream(d.out / "demo.json") << json{{"kind", "demo"}, {"runs", runs}, {"targets", checks}}.dump(1) << "\n";
  write_charts(d.out, runs);
  std::cout << "\nwritten: " << (d.out / "demo.csv").string() << ", " << (d.out / "demo.json").string() << ", "
            << (d.out / "loss.png").string() << ", " << (d.out / "memory.png").string() << "\n";
  return 0;
}

}  // namespace octopage::cli
