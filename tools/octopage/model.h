// The LLaMA-style language model `octopage train` and `demo` train, in LibTorch: token
// embedding; per layer RMSNorm, causal self-attention with rotary position embedding
// (grouped-query when kv_heads < heads), RMSNorm, SwiGLU MLP, each with a residual; a
// final RMSNorm and the output head (or the embedding's weight when tied). Its
// parameters are perf::parameter_shapes(config), in that order. No dropout, no bias: a
// forward pass is a function of the weights and the tokens.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "perf/llama_config.h"

// TORCH_MODULE with torch named from the global namespace: inside namespace octopage,
// `torch::` is octopage::torch (the LibTorch optimizer classes).
#define OCTOPAGE_CLI_MODULE(Name)                                 \
  class Name : public ::torch::nn::ModuleHolder<Name##Impl> {     \
   public:                                                        \
    using ::torch::nn::ModuleHolder<Name##Impl>::ModuleHolder;    \
    using Impl = Name##Impl;                                      \
  }

namespace octopage::cli {

class RmsNormImpl : public ::torch::nn::Module {
 public:
  explicit RmsNormImpl(std::int64_t dim);
  ::torch::Tensor forward(const ::torch::Tensor& x);

 private:
  ::torch::Tensor weight_;
};
OCTOPAGE_CLI_MODULE(RmsNorm);

class AttentionImpl : public ::torch::nn::Module {
 public:
  explicit AttentionImpl(const perf::LlamaConfig& config);
  // x: (batch, time, hidden); cos, sin: (time, head_dim / 2).
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& cos, const ::torch::Tensor& sin);

 private:
  std::int64_t heads_, kv_heads_, head_dim_;
  ::torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, o_{nullptr};
};
OCTOPAGE_CLI_MODULE(Attention);

class MlpImpl : public ::torch::nn::Module {
 public:
  explicit MlpImpl(const perf::LlamaConfig& config);
  ::torch::Tensor forward(const ::torch::Tensor& x);  // down(silu(gate(x)) * up(x))

 private:
  ::torch::nn::Linear gate_{nullptr}, up_{nullptr}, down_{nullptr};
};
OCTOPAGE_CLI_MODULE(Mlp);

class BlockImpl : public ::torch::nn::Module {
 public:
  explicit BlockImpl(const perf::LlamaConfig& config);
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& cos, const ::torch::Tensor& sin);

 private:
  RmsNorm attention_norm_{nullptr};
  Attention attention_{nullptr};
  RmsNorm mlp_norm_{nullptr};
  Mlp mlp_{nullptr};
};
OCTOPAGE_CLI_MODULE(Block);

class LlamaImpl : public ::torch::nn::Module {
 public:
  // Weights from torch's current random generator: normal(0, 0.02), the projections
  // into the residual stream (o, down) scaled by 1/sqrt(2 * layers); norms 1.
  LlamaImpl(const perf::LlamaConfig& config, std::int64_t max_sequence);
  // tokens: (batch, time) int64, time <= max_sequence; returns logits (batch, time, vocab).
  ::torch::Tensor forward(const ::torch::Tensor& tokens);
  // Mean cross-entropy of predicting tokens[:, 1:] from tokens[:, :-1].
  ::torch::Tensor loss(const ::torch::Tensor& tokens);
  const perf::LlamaConfig& config() const { return config_; }

 private:
  perf::LlamaConfig config_;
  ::torch::nn::Embedding embedding_{nullptr};
  ::torch::nn::ModuleList layers_;
  RmsNorm norm_{nullptr};
  ::torch::nn::Linear head_{nullptr};
  ::torch::Tensor cos_, sin_;  // rotary tables, (max_sequence, head_dim / 2); not parameters
};
OCTOPAGE_CLI_MODULE(Llama);

}  // namespace octopage::cli
