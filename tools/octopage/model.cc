#include "tools/octopage/model.h"

#include <cmath>

namespace octopage::cli {
namespace {

namespace F = ::torch::nn::functional;
using ::torch::indexing::Slice;

::torch::nn::Linear linear(std::int64_t in, std::int64_t out) {
  return ::torch::nn::Linear(::torch::nn::LinearOptions(in, out).bias(false));
}

// Rotates each head's halves (x1, x2) by the position's angles: (x1 cos - x2 sin,
// x1 sin + x2 cos). x: (batch, heads, time, head_dim).
::torch::Tensor rotate(const ::torch::Tensor& x, const ::torch::Tensor& cos, const ::torch::Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  const ::torch::Tensor x1 = x.index({"...", Slice(0, half)});
  const ::torch::Tensor x2 = x.index({"...", Slice(half)});
  return ::torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

}  // namespace

RmsNormImpl::RmsNormImpl(std::int64_t dim) : weight_(register_parameter("weight", ::torch::ones({dim}))) {}

::torch::Tensor RmsNormImpl::forward(const ::torch::Tensor& x) {
  return x * ::torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-5) * weight_;
}

AttentionImpl::AttentionImpl(const perf::LlamaConfig& c)
    : heads_(c.heads), kv_heads_(c.kv_heads), head_dim_(c.head_dim()),
      q_(register_module("q", linear(c.hidden, c.hidden))),
      k_(register_module("k", linear(c.hidden, c.kv_dim()))),
      v_(register_module("v", linear(c.hidden, c.kv_dim()))),
      o_(register_module("o", linear(c.hidden, c.hidden))) {}

::torch::Tensor AttentionImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& cos, const ::torch::Tensor& sin) {
  const std::int64_t batch = x.size(0), time = x.size(1);
  const auto heads = [&](const ::torch::Tensor& t, std::int64_t n) {
    return t.view({batch, time, n, head_dim_}).transpose(1, 2);
  };
  ::torch::Tensor q = rotate(heads(q_(x), heads_), cos, sin);
  ::torch::Tensor k = rotate(heads(k_(x), kv_heads_), cos, sin);
  ::torch::Tensor v = heads(v_(x), kv_heads_);
  if (kv_heads_ != heads_) {  // each key/value head serves heads / kv_heads query heads
    k = k.repeat_interleave(heads_ / kv_heads_, 1);
    v = v.repeat_interleave(heads_ / kv_heads_, 1);
  }
  const ::torch::Tensor y = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  return o_(y.transpose(1, 2).reshape({batch, time, heads_ * head_dim_}));
}

MlpImpl::MlpImpl(const perf::LlamaConfig& c)
    : gate_(register_module("gate", linear(c.hidden, c.intermediate))),
      up_(register_module("up", linear(c.hidden, c.intermediate))),
      down_(register_module("down", linear(c.intermediate, c.hidden))) {}

::torch::Tensor MlpImpl::forward(const ::torch::Tensor& x) { return down_(F::silu(gate_(x)) * up_(x)); }

BlockImpl::BlockImpl(const perf::LlamaConfig& c)
    : attention_norm_(register_module("attention_norm", RmsNorm(c.hidden))),
      attention_(register_module("attention", Attention(c))),
      mlp_norm_(register_module("mlp_norm", RmsNorm(c.hidden))),
      mlp_(register_module("mlp", Mlp(c))) {}

::torch::Tensor BlockImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& cos, const ::torch::Tensor& sin) {
  const ::torch::Tensor h = x + attention_(attention_norm_(x), cos, sin);
  return h + mlp_(mlp_norm_(h));
}

LlamaImpl::LlamaImpl(const perf::LlamaConfig& c, std::int64_t max_sequence) : config_(c) {
  embedding_ = register_module("embedding", ::torch::nn::Embedding(c.vocab, c.hidden));
  layers_ = register_module("layers", ::torch::nn::ModuleList());
  for (std::int64_t l = 0; l < c.layers; ++l) layers_->push_back(Block(c));
  norm_ = register_module("norm", RmsNorm(c.hidden));
  if (!c.tied) head_ = register_module("head", linear(c.hidden, c.vocab));

  ::torch::NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.layers));
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    ::torch::Tensor p = item.value();
    if (p.dim() == 1) continue;  // norms stay 1
    const bool into_residual = name.ends_with(".o.weight") || name.ends_with(".down.weight");
    p.normal_(0.0, into_residual ? residual_std : 0.02);
  }

  // Rotary angles: position t, pair i turns by t / 10000^(2i / head_dim).
  const std::int64_t half = c.head_dim() / 2;
  const ::torch::Tensor inverse_frequency =
      ::torch::pow(10000.0, -::torch::arange(0, half, ::torch::kFloat64) * 2.0 / static_cast<double>(c.head_dim()));
  const ::torch::Tensor angles = ::torch::outer(::torch::arange(max_sequence, ::torch::kFloat64), inverse_frequency);
  cos_ = angles.cos().to(::torch::kFloat32);
  sin_ = angles.sin().to(::torch::kFloat32);
}

::torch::Tensor LlamaImpl::forward(const ::torch::Tensor& tokens) {
  const std::int64_t time = tokens.size(1);
  TORCH_CHECK_VALUE(time <= cos_.size(0), "expected at most ", cos_.size(0), " tokens per sequence, got ", time);
  const ::torch::Tensor cos = cos_.index({Slice(0, time)}), sin = sin_.index({Slice(0, time)});
  ::torch::Tensor x = embedding_(tokens);
  for (const auto& layer : *layers_) x = layer->as<Block>()->forward(x, cos, sin);
  x = norm_(x);
  return config_.tied ? ::torch::matmul(x, embedding_->weight.t()) : head_(x);
}

::torch::Tensor LlamaImpl::loss(const ::torch::Tensor& tokens) {
  const std::int64_t time = tokens.size(1) - 1;
  const ::torch::Tensor logits = forward(tokens.index({Slice(), Slice(0, time)}));
  const ::torch::Tensor targets = tokens.index({Slice(), Slice(1)});
  return F::cross_entropy(logits.reshape({-1, config_.vocab}), targets.reshape({-1}));
}

}  // namespace octopage::cli
