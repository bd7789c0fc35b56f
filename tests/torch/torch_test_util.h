// What the LibTorch adapter's tests share: a temporary state directory, parameters of odd
// sizes above and below min_8bit_size, deterministic gradients (one skipped), error
// measures, bitwise state comparison, and archives in memory. No assertions of its own
// beyond the state comparison.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/serialize.h>
#include <torch/types.h>

#include "octopage/torch/optim.h"

namespace octopage::torch::testing {

using ::torch::Tensor;

// A directory for state files, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "octopage_torch_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline TierOptions tiers_in(const TempDir& dir) {
  TierOptions tiers;
  tiers.offload_dir = dir.path();
  tiers.chunk_bytes = 8192;  // several chunks per parameter through a four-slot ring
  tiers.ring_bytes = 4 * 8192;
  return tiers;
}

// Parameters of sizes above and below min_8bit_size (4096), odd sizes.
inline std::vector<Tensor> make_params(::torch::ScalarType dtype, std::uint64_t seed = 0) {
  ::torch::manual_seed(seed);
  std::vector<Tensor> params;
  for (auto shape : std::vector<std::vector<std::int64_t>>{{64, 80}, {300}, {17, 5}, {4099}}) {
    params.push_back(::torch::randn(shape).to(dtype));
  }
  return params;
}

// Leaf copies that require grad, as a model's parameters.
inline std::vector<Tensor> leaf_copies(const std::vector<Tensor>& params) {
  std::vector<Tensor> copies;
  for (const Tensor& p : params) copies.push_back(p.detach().clone().set_requires_grad(true));
  return copies;
}

// Deterministic gradients; parameter 1 gets none at step 2 (it must be skipped).
inline void set_gradients(const std::vector<Tensor>& params, int step) {
  ::torch::manual_seed(1000 + step);
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor g = ::torch::randn(params[i].sizes()).to(params[i].scalar_type());
    params[i].mutable_grad() = (step == 2 && i == 1) ? Tensor() : g;
  }
}

// The (group, index) of make_params' parameter i in two groups of two.
inline std::pair<std::size_t, std::size_t> position(std::size_t i) { return {i < 2 ? 0 : 1, i < 2 ? i : i - 2}; }

// max |a - b| over max |b|: rounding differences relative to the tensor's scale.
inline double relative_error(const Tensor& a, const Tensor& b) {
  const Tensor x = a.detach().to(::torch::kDouble).flatten();
  const Tensor y = b.detach().to(::torch::kDouble).flatten();
  return ((x - y).abs().max() / y.abs().max()).item<double>();
}

inline Tensor from_vector(const std::vector<float>& values) {
  return ::torch::from_blob(const_cast<float*>(values.data()), {static_cast<std::int64_t>(values.size())},
                            ::torch::kFloat)
      .clone();
}

inline void expect_same_state(const StateSnapshot& a, const StateSnapshot& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.gnorm_vec, b.gnorm_vec);
  EXPECT_EQ(a.unorm_vec, b.unorm_vec);
  ASSERT_EQ(a.arrays.size(), b.arrays.size());
  for (std::size_t k = 0; k < a.arrays.size(); ++k) {
    SCOPED_TRACE(a.arrays[k].name);
    EXPECT_EQ(a.arrays[k].name, b.arrays[k].name);
    EXPECT_EQ(a.arrays[k].values, b.arrays[k].values);
    EXPECT_EQ(a.arrays[k].codes, b.arrays[k].codes);
    EXPECT_EQ(a.arrays[k].absmax, b.arrays[k].absmax);
  }
}

// Steps `a` over `params` and `b` over `resumed` alike (steps [first, last)), then expects
// bitwise the same parameters and state in the two.
template <class Opt>
void step_both_and_expect_the_same(Opt& a, Opt& b, const std::vector<Tensor>& params,
                                   const std::vector<Tensor>& resumed, int first, int last) {
  for (int step = first; step < last; ++step) {
    set_gradients(params, step);
    set_gradients(resumed, step);
    a.step();
    b.step();
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_TRUE(::torch::equal(params[i], resumed[i]));
    const auto [g, k] = position(i);
    expect_same_state(a.core_state(g, k), b.core_state(g, k));
  }
}

inline std::string saved(const ::torch::optim::Optimizer& opt) {
  std::ostringstream out;
  ::torch::save(opt, out);
  return out.str();
}

template <class Opt>
void load_into(Opt& opt, const std::string& bytes) {
  std::istringstream in(bytes);
  ::torch::load(opt, in);
}

}  // namespace octopage::torch::testing
