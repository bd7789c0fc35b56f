#include "tools/octopage/memory.h"

#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "octopage/octopage.h"
#include "perf/llama_config.h"
#include "tools/octopage/args.h"
#include "tools/octopage/optimizers.h"
#include "tools/octopage/recipes.h"
#include "tools/octopage/table.h"

namespace octopage::cli {

const char* const kMemoryUsage = R"(usage: octopage memory [options]

The memory each optimizer needs for a LLaMA-style model of a named size, planned from the
parameters' shapes without training: parameters, gradients, optimizer state in RAM and in
the state file, the staging ring, and the peak RAM they add up to (activations not
counted; paged state is counted in the file, though the system keeps what it likes of it
in RAM).

options (--flag value or --flag=value):
  --model NAME       llama-220m (default), llama-1b, small or tiny
  --tie-embeddings   the output head shares the embedding's weight (default: untied)
  --optimizers LIST  comma-separated (default adamw,adamw8bit,paged-adamw,paged-adamw8bit,
                     offload-adamw,offload-adamw8bit), any rule's (lion8bit, sgd, ...,
                     planned with the state its training keeps); see 'octopage train --help'
  --dtype D          the parameters' and gradients' dtype: fp32 (default), bf16 or fp16
  --ring-mib N       the offload staging ring (default: octopage's, 32)
  --chunk-mib N      a ring slot (default: octopage's, 4)
  --json             print JSON instead of the table
)";

namespace {

struct MemoryOptions {
  perf::LlamaConfig model = *perf::find_llama_config("llama-220m");
  std::vector<const OptimizerChoice*> optimizers;
  std::int64_t dtype_bytes = 4;
  TierOptions tiers;
  bool json = false;
};

MemoryOptions parse(int argc, char** argv) {
  MemoryOptions m;
  std::vector<std::string> keys = {"adamw", "adamw8bit", "paged-adamw", "paged-adamw8bit", "offload-adamw",
                                   "offload-adamw8bit"};
  bool tied = false;
  parse_flags(argc, argv, 0, {
      {"--model", [&](std::string_view v) {
         const perf::LlamaConfig* config = perf::find_llama_config(v);
         if (config == nullptr) throw UsageError("expected --model " + perf::llama_config_names() + ", got '" + std::string(v) + "'");
         m.model = *config;
       }},
      {"--optimizers", [&](std::string_view v) { keys = parse_list("--optimizers", v); }},
      {"--dtype", [&](std::string_view v) {
         if (v != "fp32" && v != "bf16" && v != "fp16") throw UsageError("expected --dtype fp32, bf16 or fp16, got '" + std::string(v) + "'");
         m.dtype_bytes = v == "fp32" ? 4 : 2;
       }},
      {"--ring-mib", [&](std::string_view v) { m.tiers.ring_bytes = static_cast<std::uint64_t>(parse_integer("--ring-mib", v, 1)) << 20; }},
      {"--chunk-mib", [&](std::string_view v) { m.tiers.chunk_bytes = static_cast<std::uint64_t>(parse_integer("--chunk-mib", v, 1)) << 20; }},
      {"--tie-embeddings", [&](std::string_view) { tied = true; }, false},
      {"--json", [&](std::string_view) { m.json = true; }, false},
  });
  m.model.tied = m.model.tied || tied;
  for (const std::string& key : keys) {
    const OptimizerChoice* c = find_optimizer(key);
    if (c == nullptr) throw UsageError("expected --optimizers from " + optimizer_keys() + ", got '" + key + "'");
    m.optimizers.push_back(c);
  }
  if (m.tiers.ring_bytes < 3 * m.tiers.chunk_bytes) {
    throw UsageError("expected --ring-mib at least 3 x --chunk-mib (one chunk read, one updated, one written)");
  }
  return m;
}

}  // namespace

int run_memory(int argc, char** argv) {
  const MemoryOptions m = parse(argc, argv);
  const std::vector<std::int64_t> numels = perf::parameter_numels(m.model);
  const double params = static_cast<double>(perf::parameter_count(m.model) * m.dtype_bytes);

  nlohmann::json rows = nlohmann::json::array();
  for (const OptimizerChoice* c : m.optimizers) {
    GroupOptions options = training_options(c->rule);  // the state its training keeps (SGD's momentum, ...)
    options.optim_bits = c->bits;
    options.placement = c->placement;
    const MemoryReport r = plan_memory(c->rule, numels, options, m.tiers);
    const double ram = static_cast<double>(r.state_bytes_in(Tier::kHost));
    rows.push_back({{"optimizer", c->key}, {"name", c->name}, {"param_bytes", params}, {"grad_bytes", params},
                    {"state_ram_bytes", ram}, {"state_file_bytes", r.state_bytes_in(Tier::kFile)},
                    {"staging_bytes", r.staging_bytes}, {"peak_ram_bytes", 2 * params + ram + static_cast<double>(r.staging_bytes)},
                    {"tensors_8bit", r.tensors_8bit}, {"tensors_32bit", r.tensors_32bit}});
  }
  const nlohmann::json& base = rows[0];  // "saved vs" the first optimizer listed
  for (auto& row : rows) {
    row["state_ram_saved"] = base["state_ram_bytes"].get<double>() > 0
                                 ? 1.0 - row["state_ram_bytes"].get<double>() / base["state_ram_bytes"].get<double>() : 0.0;
    row["peak_ram_saved"] = 1.0 - row["peak_ram_bytes"].get<double>() / base["peak_ram_bytes"].get<double>();
  }
  if (m.json) {
    std::cout << nlohmann::json{{"kind", "memory"}, {"model", m.model.name}, {"parameters", perf::parameter_count(m.model)},
                                {"dtype_bytes", m.dtype_bytes}, {"optimizers", rows}}.dump(1) << "\n";
    return 0;
  }
  Table t;
  t.header.push_back(m.model.name + " (" + fixed(static_cast<double>(perf::parameter_count(m.model)) / 1e6, 1) + "M params)");
  for (const auto& row : rows) t.header.push_back(row["name"]);
  const auto add = [&](const std::string& label, auto cell) {
    std::vector<std::string> line{label};
    for (const auto& row : rows) line.push_back(cell(row));
    t.rows.push_back(std::move(line));
  };
  const auto mib_of = [](const char* key) { return [key](const nlohmann::json& row) { return mib(row[key].get<double>()); }; };
  add("parameters (MiB)", mib_of("param_bytes"));
  add("gradients (MiB)", mib_of("grad_bytes"));
  add("optimizer state in RAM (MiB)", mib_of("state_ram_bytes"));
  add("optimizer state in file (MiB)", mib_of("state_file_bytes"));
  add("staging ring (MiB)", mib_of("staging_bytes"));
  add("peak RAM, no activations (MiB)", mib_of("peak_ram_bytes"));
  add("state in RAM saved vs " + base["name"].get<std::string>(),
      [](const nlohmann::json& row) { return percent(row["state_ram_saved"].get<double>()); });
  add("peak RAM saved vs " + base["name"].get<std::string>(),
      [](const nlohmann::json& row) { return percent(row["peak_ram_saved"].get<double>()); });
  add("tensors with 8-bit state", [](const nlohmann::json& row) {
    return std::to_string(row["tensors_8bit"].get<std::int64_t>()) + " of " +
           std::to_string(row["tensors_8bit"].get<std::int64_t>() + row["tensors_32bit"].get<std::int64_t>());
  });
  t.print(std::cout);
  return 0;
}

}  // namespace octopage::cli
