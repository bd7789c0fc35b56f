// octopage::torch optimizers against LibTorch's own torch::optim::Adam/AdamW (fp32, two
// param groups, a scheduler, a skipped gradient), every placement, 8-bit against 32-bit,
// the core called directly (bf16/fp16), save/load round trips (bitwise, across
// placements, to and from torch::optim archives), torch::optim semantics, bad arguments.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <regex>
#include <string>
#include <type_traits>
#include <vector>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/schedulers/step_lr.h>
#include <torch/types.h>

#include "octopage/torch/optim.h"
#include "tests/torch/torch_test_util.h"

namespace octopage::torch {
namespace {

using ::torch::Tensor;
using ::torch::optim::OptimizerParamGroup;
using namespace ::octopage::torch::testing;  // NOLINT(google-build-using-namespace)

constexpr int kSteps = 8;

// Two groups: the first with the optimizer's defaults, the second with lr 3e-3 and
// weight decay 0.05, in the options type of the optimizer.
template <class Options>
std::vector<OptimizerParamGroup> two_groups(const std::vector<Tensor>& params) {
  std::vector<OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{params[0], params[1]});
  groups.emplace_back(std::vector<Tensor>{params[2], params[3]},
                      std::make_unique<Options>(Options(3e-3).weight_decay(0.05)));
  return groups;
}

// Steps `steps` times with a StepLR scheduler (halving lr every 3 steps); from step 4 on,
// group 1 decays by 0.02 (options edited between steps).
template <class Opt, class Options>
void train(Opt& opt, const std::vector<Tensor>& params, int steps) {
  ::torch::optim::StepLR scheduler(opt, /*step_size=*/3, /*gamma=*/0.5);
  for (int step = 0; step < steps; ++step) {
    if (step == 4) static_cast<Options&>(opt.param_groups()[1].options()).weight_decay(0.02);
    set_gradients(params, step);
    opt.step();
    scheduler.step();
  }
}

// --- Parity with torch::optim::Adam and torch::optim::AdamW --------------------------

struct ParityCase {
  bool decoupled;
  bool amsgrad;
  Placement placement;
};

std::string case_name(const ParityCase& c) {
  return std::string(c.decoupled ? "AdamW" : "Adam") + (c.amsgrad ? "Amsgrad" : "") + "_" +
         placement_name(c.placement);
}
void PrintTo(const ParityCase& c, std::ostream* out) { *out << case_name(c); }

class TorchParity : public ::testing::TestWithParam<ParityCase> {};

template <class TorchOpt, class TorchOptions, class TorchState, class Ours>
void check_parity(const ParityCase& c) {
  TempDir dir;
  const std::vector<Tensor> initial = make_params(::torch::kFloat);
  const std::vector<Tensor> ours = leaf_copies(initial), theirs = leaf_copies(initial);
  Ours opt(two_groups<AdamOptions>(ours), AdamOptions().amsgrad(c.amsgrad).placement(c.placement), tiers_in(dir));
  TorchOpt ref(two_groups<TorchOptions>(theirs), TorchOptions().amsgrad(c.amsgrad));
  train<Ours, AdamOptions>(opt, ours, kSteps);
  train<TorchOpt, TorchOptions>(ref, theirs, kSteps);

  for (std::size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_LT(relative_error(ours[i], theirs[i]), 1e-6);
    const auto [g, k] = position(i);
    const StateSnapshot s = opt.core_state(g, k);
    const auto& expected = static_cast<const TorchState&>(*ref.state().at(theirs[i].unsafeGetTensorImpl()));
    EXPECT_EQ(s.step, expected.step());
    EXPECT_EQ(s.step, i == 1 ? kSteps - 1 : kSteps);
    EXPECT_EQ(s.format, StateFormat::kFp32);
    EXPECT_EQ(s.placement, c.placement);
    EXPECT_LT(relative_error(from_vector(s.at("exp_avg").values), expected.exp_avg()), 1e-6);
    EXPECT_LT(relative_error(from_vector(s.at("exp_avg_sq").values), expected.exp_avg_sq()), 1e-6);
    if (c.amsgrad) {
      EXPECT_LT(relative_error(from_vector(s.at("max_exp_avg_sq").values), expected.max_exp_avg_sq()), 1e-6);
    }
  }
  // The scheduler and the edit reached the core through the group options.
  EXPECT_DOUBLE_EQ(opt.options(1).lr(), ref.param_groups()[1].options().get_lr());
  EXPECT_LT(opt.options(1).lr(), 3e-3);
  EXPECT_DOUBLE_EQ(opt.options(1).weight_decay(), 0.02);
}

TEST_P(TorchParity, Fp32MatchesTorchOptim) {
  const ParityCase c = GetParam();
  if (c.decoupled) {
    check_parity<::torch::optim::AdamW, ::torch::optim::AdamWOptions, ::torch::optim::AdamWParamState, AdamW>(c);
  } else {
    check_parity<::torch::optim::Adam, ::torch::optim::AdamOptions, ::torch::optim::AdamParamState, Adam>(c);
  }
}

std::vector<ParityCase> parity_cases() {
  std::vector<ParityCase> cases;
  for (bool decoupled : {false, true}) {
    for (bool amsgrad : {false, true}) {
      for (Placement p : {Placement::kDevice, Placement::kPaged, Placement::kOffload}) {
        cases.push_back({decoupled, amsgrad, p});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllPlacements, TorchParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<ParityCase>& info) { return case_name(info.param); });

// --- 8-bit state --------------------------------------------------------------------

class EightBit : public ::testing::TestWithParam<::torch::ScalarType> {};

TEST_P(EightBit, BitwiseEqualAcrossPlacementsAndCloseTo32bit) {
  TempDir dir;
  const std::vector<Tensor> initial = make_params(GetParam());
  const auto run = [&](auto make) {
    std::vector<Tensor> params = leaf_copies(initial);
    auto opt = make(two_groups<AdamOptions>(params));
    train<std::remove_reference_t<decltype(*opt)>, AdamOptions>(*opt, params, kSteps);
    return std::make_pair(params, std::move(opt));
  };
  auto [device, device_opt] = run([&](auto groups) { return std::make_unique<AdamW8bit>(groups); });
  auto [paged, paged_opt] = run([&](auto groups) { return std::make_unique<PagedAdamW8bit>(groups, AdamOptions(), tiers_in(dir)); });
  auto [offload, offload_opt] = run([&](auto groups) {
    return std::make_unique<AdamW8bit>(groups, AdamOptions().placement(Placement::kOffload), tiers_in(dir));
  });
  for (std::size_t i = 0; i < initial.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    const auto [g, k] = position(i);
    EXPECT_TRUE(::torch::equal(device[i], paged[i]));
    EXPECT_TRUE(::torch::equal(device[i], offload[i]));
    const StateSnapshot s = device_opt->core_state(g, k);
    expect_same_state(s, paged_opt->core_state(g, k));
    expect_same_state(s, offload_opt->core_state(g, k));
    EXPECT_EQ(paged_opt->core_state(g, k).placement, Placement::kPaged);
    EXPECT_EQ(offload_opt->core_state(g, k).placement, Placement::kOffload);
    // Parameters of at least min_8bit_size elements have 8-bit state, smaller ones fp32.
    EXPECT_EQ(s.format, initial[i].numel() >= 4096 ? StateFormat::kQ8 : StateFormat::kFp32);
  }
  const MemoryReport report = device_opt->memory_report();
  EXPECT_EQ(report.tensors_8bit, 2);
  EXPECT_EQ(report.tensors_32bit, 2);

  // 8-bit training follows 32-bit: the total update differs by a few percent (more for
  // bf16 parameters, whose per-step updates are themselves rounded to a bf16 step).
  auto [fp32, fp32_opt] = run([&](auto groups) { return std::make_unique<AdamW32bit>(groups); });
  const double budget = GetParam() == ::torch::kFloat ? 0.05 : 0.15;
  for (std::size_t i = 0; i < initial.size(); ++i) {
    const Tensor p0 = initial[i].to(::torch::kDouble);
    const Tensor d8 = device[i].detach().to(::torch::kDouble) - p0;
    const Tensor d32 = fp32[i].detach().to(::torch::kDouble) - p0;
    EXPECT_LT(((d8 - d32).norm() / d32.norm()).item<double>(), budget) << "parameter " << i;
    if (initial[i].numel() < 4096) {
      EXPECT_TRUE(::torch::equal(device[i], fp32[i]));  // both have fp32 state
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, EightBit, ::testing::Values(::torch::kFloat, ::torch::kBFloat16),
                         [](const ::testing::TestParamInfo<::torch::ScalarType>& info) {
                           return std::string(c10::toString(info.param));
                         });

// --- The adapter hands the core exactly its buffers ----------------------------------

TEST(TorchAdapter, SixteenBitParametersStepAsTheCoreDoes) {
  for (::torch::ScalarType dtype : {::torch::kBFloat16, ::torch::kHalf}) {
    for (int bits : {32, 8}) {
      SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + std::to_string(bits) + "-bit");
      const std::vector<Tensor> initial = make_params(dtype);
      const std::vector<Tensor> ours = leaf_copies(initial);
      std::vector<Tensor> direct;
      for (const Tensor& p : initial) direct.push_back(p.clone());
      AdamW opt(ours, AdamOptions(1e-2).optim_bits(bits));
      GroupOptions options = default_options("adamw");
      options.set("lr", 1e-2);
      options.optim_bits = bits;
      octopage::Optimizer core("adamw", options);
      const DType core_dtype = dtype == ::torch::kBFloat16 ? DType::kBFloat16 : DType::kFloat16;
      std::vector<Parameter> params;
      for (Tensor& p : direct) params.push_back({{p.data_ptr(), p.numel(), core_dtype}, {}, {}});
      ParamGroup& group = core.add_param_group(std::move(params));
      for (int step = 0; step < 5; ++step) {
        set_gradients(ours, step);
        for (std::size_t i = 0; i < ours.size(); ++i) {
          const Tensor& grad = ours[i].grad();
          group.set_grad(i, grad.defined() ? TensorRef{grad.data_ptr(), grad.numel(), core_dtype} : TensorRef{});
        }
        opt.step();
        core.step();
      }
      for (std::size_t i = 0; i < ours.size(); ++i) {
        EXPECT_EQ(ours[i].scalar_type(), dtype);
        EXPECT_TRUE(::torch::equal(ours[i].detach(), direct[i])) << "parameter " << i;
        EXPECT_FALSE(::torch::equal(ours[i].detach(), initial[i])) << "parameter " << i;
      }
    }
  }
}

// --- Save and load --------------------------------------------------------------------

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&, const TempDir&)>;

struct RoundTripCase {
  std::string name;
  MakeOptimizer saver, loader;
};

void PrintTo(const RoundTripCase& c, std::ostream* out) { *out << c.name; }

class RoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

// Training k steps, saving, loading into a fresh optimizer over copies of the parameters
// and training on gives bitwise what uninterrupted training gives.
TEST_P(RoundTrip, ContinuesBitwiseAsUninterrupted) {
  TempDir dir;
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  std::unique_ptr<Optimizer> a = GetParam().saver(params, dir);
  for (int step = 0; step < 4; ++step) {
    set_gradients(params, step);
    a->step();
  }
  a->options(1).lr(2e-3).set("eps", 1e-7);  // hyperparameters travel with the checkpoint
  const std::string checkpoint = saved(*a);

  const std::vector<Tensor> resumed = leaf_copies(params);
  std::unique_ptr<Optimizer> b = GetParam().loader(resumed, dir);
  load_into(*b, checkpoint);
  EXPECT_DOUBLE_EQ(b->options(1).lr(), 2e-3);
  EXPECT_DOUBLE_EQ(b->options(1).get("eps"), 1e-7);
  step_both_and_expect_the_same(*a, *b, params, resumed, 4, 8);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto [g, k] = position(i);
    EXPECT_EQ(b->core_state(g, k).placement, b->options(g).placement());
  }
  EXPECT_FALSE(::torch::equal(params[0], make_params(::torch::kFloat)[0]));
}

template <class Opt>
MakeOptimizer make(AdamOptions options = {}) {
  return [options](const std::vector<Tensor>& params, const TempDir& dir) {
    return std::make_unique<Opt>(two_groups<AdamOptions>(params), options, tiers_in(dir));
  };
}

INSTANTIATE_TEST_SUITE_P(
    Placements, RoundTrip,
    ::testing::Values(
        RoundTripCase{"AdamW_device_to_device", make<AdamW>(), make<AdamW>()},
        RoundTripCase{"AdamW8bit_device_to_offload", make<AdamW8bit>(),
                      make<AdamW8bit>(AdamOptions().placement(Placement::kOffload))},
        RoundTripCase{"PagedAdamW8bit_to_device", make<PagedAdamW8bit>(), make<AdamW8bit>()},
        RoundTripCase{"Adam32bit_amsgrad_offload_to_paged",
                      make<Adam32bit>(AdamOptions().amsgrad(true).placement(Placement::kOffload)),
                      make<PagedAdam32bit>(AdamOptions().amsgrad(true))}),
    [](const ::testing::TestParamInfo<RoundTripCase>& info) { return info.param.name; });

// torch::optim::AdamW's checkpoint loads into octopage's AdamW and the reverse, and both
// continue as the other would.
TEST(SaveLoad, TorchOptimArchivesLoadBothWays) {
  const std::vector<Tensor> initial = make_params(::torch::kFloat);
  const std::vector<Tensor> ours = leaf_copies(initial), theirs = leaf_copies(initial);
  AdamW opt(two_groups<AdamOptions>(ours));
  ::torch::optim::AdamW ref(two_groups<::torch::optim::AdamWOptions>(theirs));
  for (int step = 0; step < 4; ++step) {
    set_gradients(ours, step);
    set_gradients(theirs, step);
    opt.step();
    ref.step();
  }
  const std::vector<Tensor> ours_from_theirs = leaf_copies(theirs), theirs_from_ours = leaf_copies(ours);
  AdamW loaded_ours(two_groups<AdamOptions>(ours_from_theirs), AdamOptions(0.5));
  ::torch::optim::AdamW loaded_theirs(two_groups<::torch::optim::AdamWOptions>(theirs_from_ours));
  load_into(loaded_ours, saved(ref));
  load_into(loaded_theirs, saved(opt));
  EXPECT_DOUBLE_EQ(loaded_ours.options(0).lr(), 1e-3);
  EXPECT_EQ(loaded_ours.core_state(1, 1).step, 4);
  EXPECT_EQ(loaded_ours.core_state(0, 1).step, 3);  // no gradient at step 2

  // An 8-bit optimizer takes the 32-bit checkpoint, quantized.
  const std::vector<Tensor> eight_bit_params = leaf_copies(theirs);
  AdamW8bit eight_bit(two_groups<AdamOptions>(eight_bit_params));
  load_into(eight_bit, saved(ref));
  EXPECT_EQ(eight_bit.core_state(0, 0).format, StateFormat::kQ8);
  EXPECT_EQ(eight_bit.core_state(0, 0).step, 4);

  for (int step = 4; step < 8; ++step) {
    for (const auto* params : {&ours, &theirs, &ours_from_theirs, &theirs_from_ours}) set_gradients(*params, step);
    opt.step();
    ref.step();
    loaded_ours.step();
    loaded_theirs.step();
  }
  for (std::size_t i = 0; i < initial.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_LT(relative_error(ours_from_theirs[i], theirs[i]), 1e-6);
    EXPECT_LT(relative_error(theirs_from_ours[i], ours[i]), 1e-6);
  }
}

// --- torch::optim semantics ------------------------------------------------------------

TEST(TorchSemantics, ClassDefaultsAndGroupOptions) {
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  AdamW8bit adamw8({OptimizerParamGroup({params[0], params[1]}),
                    OptimizerParamGroup({params[2]}, std::make_unique<AdamOptions>(AdamOptions().weight_decay(0)))},
                   AdamOptions(0.05));
  EXPECT_DOUBLE_EQ(adamw8.options(0).lr(), 0.05);
  EXPECT_DOUBLE_EQ(adamw8.options(0).weight_decay(), 1e-2);
  EXPECT_EQ(adamw8.options(0).optim_bits(), 8);
  EXPECT_EQ(adamw8.options(0).placement(), Placement::kDevice);
  EXPECT_DOUBLE_EQ(adamw8.options(1).lr(), 0.05);  // unset in the group: the defaults'
  EXPECT_DOUBLE_EQ(adamw8.options(1).weight_decay(), 0.0);  // set: kept, though 0
  EXPECT_EQ(adamw8.options(1).optim_bits(), 8);
  EXPECT_STREQ(adamw8.name(), "AdamW8bit");

  PagedAdam paged({params[3]});
  EXPECT_DOUBLE_EQ(paged.options(0).lr(), 1e-3);
  EXPECT_DOUBLE_EQ(paged.options(0).weight_decay(), 0.0);
  EXPECT_EQ(paged.options(0).optim_bits(), 32);
  EXPECT_EQ(paged.options(0).placement(), Placement::kPaged);
  EXPECT_EQ(paged.rule().name, "adam");
  EXPECT_TRUE(std::tuple(0.9, 0.999) == paged.options(0).betas());
  EXPECT_DOUBLE_EQ(paged.options(0).eps(), 1e-8);

  Adam plain({params[3].detach().clone().set_requires_grad(true)}, AdamOptions().optim_bits(8));
  EXPECT_EQ(plain.options(0).optim_bits(), 8);  // the plain names take optim_bits
}

TEST(TorchSemantics, ClosureGroupsAddedLaterZeroGradAndVersions) {
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  Adam opt({params[0], params[1]}, AdamOptions(1e-2));
  opt.add_param_group(OptimizerParamGroup({params[3]}, std::make_unique<AdamOptions>(AdamOptions(0.1))));
  ::torch::optim::Optimizer& base = opt;
  base.add_param_group(OptimizerParamGroup({params[2]}));  // torch's: registered at step()
  ASSERT_EQ(opt.param_groups().size(), 3u);
  // A group the core refuses (a parameter already in group 0) is not added.
  EXPECT_THROW(opt.add_param_group(OptimizerParamGroup({params[0]})), c10::ValueError);
  EXPECT_EQ(opt.param_groups().size(), 3u);
  EXPECT_DOUBLE_EQ(opt.options(1).lr(), 0.1);
  EXPECT_DOUBLE_EQ(opt.options(2).lr(), 1e-2);

  ::torch::manual_seed(7);
  const Tensor x = ::torch::randn({64, 80});
  const std::vector<Tensor> before = [&] {
    std::vector<Tensor> copies;
    for (const Tensor& p : params) copies.push_back(p.detach().clone());
    return copies;
  }();
  const auto version = params[0]._version();
  Tensor expected_loss;
  const Tensor loss = opt.step([&] {
    opt.zero_grad();
    Tensor l = (params[0] * x).sum() + params[1].square().sum() + params[2].sum() + params[3].abs().sum();
    l.backward();
    expected_loss = l;
    return l;
  });
  ASSERT_TRUE(loss.defined());
  EXPECT_TRUE(loss.is_same(expected_loss));
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_FALSE(::torch::equal(params[i].detach(), before[i])) << "parameter " << i;
    EXPECT_TRUE(params[i].grad().defined());
  }
  EXPECT_GT(params[0]._version(), version);  // autograd sees the in-place update
  EXPECT_EQ(opt.core_state(1, 0).step, 1);
  EXPECT_EQ(opt.core_state(2, 0).step, 1);
  EXPECT_EQ(opt.core().num_param_groups(), 3u);
  // lr 1e-2, first step of Adam: every element moves by lr against its gradient's sign.
  EXPECT_LT(relative_error(before[2] - params[2].detach(), ::torch::full_like(before[2], 1e-2)), 1e-5);
  opt.zero_grad();
  EXPECT_FALSE(params[0].grad().defined());
  EXPECT_FALSE(opt.step().defined());  // no gradients: nothing changes, no loss
  EXPECT_EQ(opt.core_state(0, 0).step, 1);
}

// --- Bad arguments ----------------------------------------------------------------------

struct BadCase {
  std::string name;
  std::function<void()> run;
  std::string message;  // a regex the error's message contains
};

void expect_value_error(const BadCase& c) {
  SCOPED_TRACE(c.name);
  try {
    c.run();
    ADD_FAILURE() << "expected c10::ValueError";
  } catch (const c10::ValueError& e) {
    EXPECT_TRUE(std::regex_search(e.what_without_backtrace(), std::regex(c.message)))
        << e.what_without_backtrace() << "\ndoes not match " << c.message;
  }
}

Tensor leaf(Tensor t) { return t.set_requires_grad(t.is_floating_point()); }

TEST(BadArguments, RaiseValueErrorAtConstruction) {
  TempDir dir;
  const Tensor p = leaf(::torch::randn({8, 6}));
  const std::vector<BadCase> cases = {
      {"non-contiguous", [] { Adam({::torch::randn({8, 6}).t()}); },
       "parameter 0: expected a contiguous parameter"},
      {"meta device", [] { Adam({leaf(::torch::empty({4}, ::torch::Device(::torch::kMeta)))}); },
       "expected the parameter on the CPU, got a tensor on meta"},
      {"float64", [] { Adam({leaf(::torch::randn({4}, ::torch::kDouble))}); },
       "dtype float32, bfloat16 or float16, got Double"},
      {"int64", [] { Adam({::torch::arange(4)}); }, "dtype float32, bfloat16 or float16, got Long"},
      {"sparse", [] { Adam({::torch::randn({4}).to_sparse()}); }, "expected a dense parameter"},
      {"the same parameter twice", [&] { Adam({p, p}); }, "sharing memory"},
      {"8bit class with optim_bits 32", [&] { Adam8bit({p}, AdamOptions().optim_bits(32)); },
       "Adam8bit always keeps 8-bit state"},
      {"32bit class with optim_bits 8", [&] { AdamW32bit({p}, AdamOptions().optim_bits(8)); },
       "AdamW32bit always keeps 32-bit state"},
      {"paged class elsewhere", [&] { PagedAdamW({p}, AdamOptions().placement(Placement::kOffload)); },
       "PagedAdamW places its state 'paged'.*got 'offload'"},
      {"negative lr", [&] { AdamW({p}, AdamOptions(-1.0)); }, "expected lr to be finite and >= 0, got -1"},
      {"beta of 1", [&] { AdamW({p}, AdamOptions().betas({0.9, 1.0})); }, "expected 0 <= betas\\[1\\] < 1"},
      {"optim_bits 4", [&] { Adam({p}, AdamOptions().optim_bits(4)); }, "expected optim_bits 32 or 8, got 4"},
      {"8-bit amsgrad", [&] { AdamW8bit({p}, AdamOptions().amsgrad(true)); }, "amsgrad=True is not supported"},
      {"cpu_step", [&] { Adam({p}, AdamOptions().placement(Placement::kCpuStep)); }, "needs the CUDA backend"},
      {"bad group options", [&] {
         Adam({OptimizerParamGroup({p}, std::make_unique<AdamOptions>(AdamOptions().eps(-1)))});
       }, "param group 0: expected eps to be finite and >= 0"},
      {"torch's options in a group", [&] {
         Adam({OptimizerParamGroup({p}, std::make_unique<::torch::optim::AdamOptions>(0.1))});
       }, "expected a param group's options to be octopage::torch options"},
      {"missing offload_dir", [&] {
         TierOptions tiers;
         tiers.offload_dir = dir.path() + "/missing";
         Adam({p}, AdamOptions().placement(Placement::kOffload), tiers);
       }, "missing"},
  };
  for (const BadCase& c : cases) expect_value_error(c);
}

// A bad input found by step() or load() changes nothing.
TEST(BadArguments, StepAndLoadChangeNothingOnError) {
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  AdamW opt(two_groups<AdamOptions>(params));
  set_gradients(params, 0);
  opt.step();
  const std::string checkpoint = saved(opt);
  const auto snapshot = [&] {
    std::vector<Tensor> copies;
    for (const Tensor& p : params) copies.push_back(p.detach().clone());
    return copies;
  };
  const std::vector<Tensor> before = snapshot();
  const StateSnapshot state_before = opt.core_state(0, 0);

  const Tensor other = leaf(::torch::randn({5}));
  const std::vector<BadCase> cases = {
      {"non-contiguous gradient", [&] {
         set_gradients(params, 1);
         params[0].mutable_grad() = ::torch::randn({80, 64}).t();
         opt.step();
       }, "param group 0, parameter 0: expected a contiguous gradient"},
      {"gradient of another dtype", [&] {
         set_gradients(params, 1);
         params[3].mutable_grad() = params[3].grad().to(::torch::kBFloat16);
         opt.step();
       }, "param group 1, parameter 1: expected gradient dtype float32 \\(the parameter's\\), got bfloat16"},
      {"invalid lr set between steps", [&] {
         set_gradients(params, 1);
         opt.options(1).lr(-0.5);
         opt.step();
       }, "param group 1: expected lr to be finite and >= 0"},
      {"a parameter added to an existing group", [&] {
         set_gradients(params, 1);
         opt.param_groups()[0].params().push_back(other);
         opt.step();
       }, "param group 0: expected 2 parameters \\(as when the group was added\\), got 3"},
      {"a checkpoint of another group count", [&] {
         const std::vector<Tensor> one = leaf_copies(params);
         AdamW single(one);
         set_gradients(one, 0);
         single.step();
         load_into(opt, saved(single));
       }, "expected a checkpoint of 2 param groups \\(this optimizer's\\), got 1"},
      {"a checkpoint of other sizes", [&] {
         std::vector<Tensor> swapped = leaf_copies(params);
         std::swap(swapped[0], swapped[1]);
         AdamW other_sizes(two_groups<AdamOptions>(swapped));
         set_gradients(swapped, 0);
         other_sizes.step();
         load_into(opt, saved(other_sizes));
       }, "param group 0, parameter 0: expected state1 \\(exp_avg\\) of 5120 values"},
  };
  for (const BadCase& c : cases) {
    expect_value_error(c);
    if (opt.param_groups()[0].params().size() > 2) opt.param_groups()[0].params().pop_back();
    opt.options(1).lr(3e-3);
    const std::vector<Tensor> after = snapshot();
    for (std::size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(::torch::equal(after[i], before[i])) << c.name;
    expect_same_state(opt.core_state(0, 0), state_before);
  }
  // Still usable: it loads its own checkpoint and steps.
  load_into(opt, checkpoint);
  set_gradients(params, 1);
  opt.step();
  EXPECT_EQ(opt.core_state(0, 0).step, 2);
}

}  // namespace
}  // namespace octopage::torch
