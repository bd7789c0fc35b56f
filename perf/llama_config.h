// LLaMA-style model sizes by name, and the parameter shapes they give: what `octopage
// train`/`demo` train (tiny, small), what `octopage memory` plans (llama-220m, llama-1b)
// and what the tiers and CUDA benchmarks step. Shapes only, framework-free; the LibTorch
// model that has these parameters, in this order, is the command line's (model.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace octopage::perf {

struct LlamaConfig {
  std::string name;
  std::int64_t vocab;         // tokens (the byte-level data uses the first 256)
  std::int64_t hidden;        // model width
  std::int64_t intermediate;  // SwiGLU MLP width
  std::int64_t layers;
  std::int64_t heads;
  std::int64_t kv_heads;      // grouped-query attention: fewer key/value heads
  bool tied;                  // the output head shares the embedding's weight
  std::string note;           // what the size is for

  std::int64_t head_dim() const { return hidden / heads; }
  std::int64_t kv_dim() const { return kv_heads * head_dim(); }
};

inline const std::vector<LlamaConfig>& llama_configs() {
  static const std::vector<LlamaConfig> configs = {
      {"tiny", 256, 64, 176, 2, 4, 4, false, "seconds; for tests"},
      {"small", 256, 256, 688, 4, 4, 4, false, "the demo's default: a few minutes on 2 cores"},
      {"llama-220m", 32000, 1024, 2816, 12, 16, 16, false, "the published paged-optimizer benchmark's size"},
      {"llama-1b", 32000, 2048, 5632, 22, 32, 4, false, "TinyLlama-1.1B's shapes"},
  };
  return configs;
}

// nullptr when there is no such size.
inline const LlamaConfig* find_llama_config(std::string_view name) {
  for (const LlamaConfig& c : llama_configs()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// "tiny, small, llama-220m or llama-1b", for messages.
inline std::string llama_config_names() {
  std::string names;
  const auto& configs = llama_configs();
  for (std::size_t i = 0; i < configs.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == configs.size() ? " or " : ", ") + configs[i].name;
  }
  return names;
}

// Every parameter's shape in the model's order: the embedding; per layer the attention
// norm, q, k, v and o projections, the MLP norm, gate, up and down projections; the final
// norm; the output head unless tied.
inline std::vector<std::vector<std::int64_t>> parameter_shapes(const LlamaConfig& c) {
  std::vector<std::vector<std::int64_t>> shapes{{c.vocab, c.hidden}};
  for (std::int64_t l = 0; l < c.layers; ++l) {
    for (std::vector<std::int64_t> shape :
         {std::vector<std::int64_t>{c.hidden}, {c.hidden, c.hidden}, {c.kv_dim(), c.hidden},
          {c.kv_dim(), c.hidden}, {c.hidden, c.hidden}, {c.hidden}, {c.intermediate, c.hidden},
          {c.intermediate, c.hidden}, {c.hidden, c.intermediate}}) {
      shapes.push_back(std::move(shape));
    }
  }
  shapes.push_back({c.hidden});
  if (!c.tied) shapes.push_back({c.vocab, c.hidden});
  return shapes;
}

inline std::vector<std::int64_t> parameter_numels(const LlamaConfig& c) {
  std::vector<std::int64_t> numels;
  for (const auto& shape : parameter_shapes(c)) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    numels.push_back(n);
  }
  return numels;
}

inline std::int64_t parameter_count(const LlamaConfig& c) {
  std::int64_t total = 0;
  for (std::int64_t n : parameter_numels(c)) total += n;
  return total;
}

}  // namespace octopage::perf
