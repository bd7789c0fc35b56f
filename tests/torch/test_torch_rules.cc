// Every registered rule through the LibTorch classes, driven by the registry: each rule
// has bitsandbytes' classes; each class constructs, steps and gives bitwise what the
// core Optimizer gives with the same options; save/load continues bitwise from 32-bit
// and 8-bit state (across placements) under bitsandbytes' 8-bit keys; SGD, RMSprop and
// Adagrad follow torch::optim's classes, and their archives load both ways.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <torch/optim/adagrad.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/schedulers/step_lr.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>
#include <torch/types.h>

#include "octopage/torch/optim.h"
#include "tests/torch/torch_test_util.h"

namespace octopage::torch {
namespace {

using ::torch::Tensor;
using ::torch::optim::OptimizerParamGroup;
using namespace ::octopage::torch::testing;  // NOLINT(google-build-using-namespace)

constexpr int kSteps = 6;

// The hyperparameters a rule is tested with: its defaults, with those changed where a
// default would leave its state or an 8-bit class unexercised (SGD without momentum
// keeps no state and refuses 8-bit state) or a term off (weight decay, warm-ups).
GroupOptions test_options(const std::string& rule) {
  static const std::map<std::string, std::vector<Hyperparameter>> kSettings = {
      {"adam", {{"weight_decay", {0.01}}}},
      {"sgd", {{"momentum", {0.9}}, {"weight_decay", {0.01}}}},
      {"lion", {{"weight_decay", {0.1}}}},
      {"rmsprop", {{"momentum", {0.5}}, {"weight_decay", {0.01}}}},
      {"adagrad", {{"lr_decay", {0.01}}, {"initial_accumulator_value", {0.1}}}},
      {"ademamix", {{"t_alpha", {4.0}}, {"t_beta3", {4.0}}}},
      {"lars", {{"weight_decay", {0.01}}}},
  };
  GroupOptions options = default_options(rule);
  const auto settings = kSettings.find(rule);
  if (settings != kSettings.end()) {
    for (const Hyperparameter& h : settings->second) options.set(h.name, h.values);
  }
  return options;
}

// The hyperparameters of `core` as the adapter's options (state options unset).
Options options_of(const GroupOptions& core) {
  Options options;
  for (const Hyperparameter& h : core.hyperparameters()) options.set(h.name, h.values);
  return options;
}

// Group 0 at the optimizer's defaults, group 1 at half their lr.
std::vector<OptimizerParamGroup> two_groups(const std::vector<Tensor>& params, double lr) {
  std::vector<OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<Tensor>{params[0], params[1]});
  groups.emplace_back(std::vector<Tensor>{params[2], params[3]}, std::make_unique<Options>(Options(lr / 2)));
  return groups;
}

std::vector<const OptimizerClass*> every_class() {
  std::vector<const OptimizerClass*> out;
  for (const OptimizerClass& c : optimizer_classes()) out.push_back(&c);
  return out;
}

// --- The classes ---------------------------------------------------------------------

TEST(Classes, EveryRegisteredRuleHasBitsandbytesClasses) {
  ASSERT_GE(registered_rules().size(), 9u);
  for (const RuleInfo& rule : registered_rules()) {
    for (const auto& [suffix, bits] : std::vector<std::pair<std::string, int>>{{"", 0}, {"8bit", 8}, {"32bit", 32}}) {
      const std::string name = rule.display_name + suffix;
      const OptimizerClass* c = find_optimizer_class(name);
      ASSERT_NE(c, nullptr) << "no class " << name << " for the registered rule " << rule.name;
      EXPECT_EQ(c->info->rule, rule.name);
      EXPECT_EQ(c->info->bits, bits);
      EXPECT_FALSE(c->info->paged);
    }
  }
  // bitsandbytes' Paged classes.
  for (const char* base : {"Adam", "AdamW", "Lion", "AdEMAMix"}) {
    for (const char* suffix : {"", "8bit", "32bit"}) {
      const std::string name = std::string("Paged") + base + suffix;
      const OptimizerClass* c = find_optimizer_class(name);
      ASSERT_NE(c, nullptr) << name;
      EXPECT_TRUE(c->info->paged);
      EXPECT_EQ(c->info->rule, find_optimizer_class(base)->info->rule);
    }
  }
  for (const OptimizerClass& c : optimizer_classes()) {
    EXPECT_NO_THROW(find_rule(c.info->rule)) << c.info->name;
    EXPECT_EQ(std::string(c.info->name).starts_with("Paged"), c.info->paged) << c.info->name;
    EXPECT_EQ(std::count_if(optimizer_classes().begin(), optimizer_classes().end(),
                            [&](const OptimizerClass& d) { return std::string(d.info->name) == c.info->name; }),
              1) << c.info->name;
  }
  EXPECT_EQ(optimizer_classes().size(), 3 * registered_rules().size() + 12);
}

TEST(Classes, TypedOptionsHaveTorchNamesAndReadUnsetOptionsAsTheRules) {
  const SGDOptions sgd = SGDOptions(0.1).momentum(0.9).nesterov(true).optim_bits(8);
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.1);
  EXPECT_DOUBLE_EQ(sgd.momentum(), 0.9);
  EXPECT_TRUE(sgd.nesterov());
  EXPECT_DOUBLE_EQ(sgd.dampening(), 0.0);  // unset: the registry's default
  EXPECT_FALSE(sgd.is_set("dampening"));
  EXPECT_TRUE(sgd.is_set("optim_bits") && !sgd.is_set("placement"));
  EXPECT_EQ(sgd.group_options().values("nesterov"), std::vector<double>{1.0});
  const AdEMAMixOptions ademamix = AdEMAMixOptions().betas({0.8, 0.99, 0.999}).t_alpha(100);
  EXPECT_EQ(ademamix.group_options().values("betas"), (std::vector<double>{0.8, 0.99, 0.999}));
  EXPECT_DOUBLE_EQ(ademamix.alpha(), 5.0);
  EXPECT_DOUBLE_EQ(LAMBOptions().max_unorm(), 1.0);
  EXPECT_DOUBLE_EQ(LARSOptions().max_unorm(), 0.02);
  EXPECT_DOUBLE_EQ(LARSOptions().max_unorm(0).max_unorm(), 0.0);
  EXPECT_DOUBLE_EQ(LionOptions().lr(), 1e-4);
  EXPECT_EQ(RMSpropOptions().percentile_clipping(5).percentile_clipping(), 5);
  EXPECT_DOUBLE_EQ(AdagradOptions().eps(), 1e-10);
  EXPECT_THROW(Options().get("lr"), c10::ValueError);  // no rule to take a default from
  EXPECT_THROW(SGDOptions().get("betas"), c10::ValueError);

  const Tensor p = ::torch::randn({8}).set_requires_grad(true);
  LARS lars({p});
  EXPECT_DOUBLE_EQ(lars.options(0).max_unorm(), 0.02);
  EXPECT_DOUBLE_EQ(lars.options(0).momentum(), 0.9);
  EXPECT_EQ(lars.core().param_group(0).options.max_unorm, 0.02);
  LAMB lamb({p.detach().clone().set_requires_grad(true)}, LAMBOptions().max_unorm(0.5));
  EXPECT_DOUBLE_EQ(lamb.options(0).max_unorm(), 0.5);
  // Options of another rule's class: the core names the hyperparameters it expects.
  try {
    AdamW({p.detach().clone().set_requires_grad(true)}, SGDOptions().momentum(0.9));
    ADD_FAILURE() << "expected c10::ValueError";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("momentum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_optimizer("AdamW4bit", {p}), c10::ValueError);
  EXPECT_EQ(make_optimizer("PagedLion8bit", {p.detach().clone().set_requires_grad(true)})->options(0).placement(),
            Placement::kPaged);
}

// --- Every class steps as the core does ------------------------------------------------

class EveryClass : public ::testing::TestWithParam<const OptimizerClass*> {};

TEST_P(EveryClass, StepsBitwiseAsTheCoreWithTheSameOptions) {
  const ClassInfo& info = *GetParam()->info;
  TempDir dir;
  const GroupOptions settings = test_options(info.rule);
  const double lr = settings.get("lr");
  const std::vector<Tensor> initial = make_params(::torch::kFloat);
  const std::vector<Tensor> ours = leaf_copies(initial);
  std::vector<Tensor> direct;
  for (const Tensor& p : initial) direct.push_back(p.clone());
  std::unique_ptr<Optimizer> opt = GetParam()->make(two_groups(ours, lr), options_of(settings), tiers_in(dir));
  EXPECT_STREQ(opt->name(), info.name);
  EXPECT_EQ(opt->rule().name, info.rule);

  GroupOptions core_options = settings;
  core_options.optim_bits = info.bits != 0 ? info.bits : 32;
  core_options.placement = info.paged ? Placement::kPaged : Placement::kDevice;
  octopage::Optimizer core(info.rule, core_options, tiers_in(dir));
  for (std::size_t g = 0; g < 2; ++g) {
    std::vector<Parameter> params;
    for (std::size_t i = 2 * g; i < 2 * g + 2; ++i) {
      params.push_back({{direct[i].data_ptr(), direct[i].numel(), DType::kFloat32}, {}, {}});
    }
    GroupOptions options = core_options;
    if (g == 1) options.set("lr", lr / 2);
    core.add_param_group(std::move(params), options);
  }
  // Every option of the optimizer's groups is set, from the class and the registry.
  for (const HyperparameterInfo& h : opt->rule().hyperparameters) EXPECT_TRUE(opt->options(0).is_set(h.name));
  EXPECT_DOUBLE_EQ(opt->options(1).lr(), lr / 2);
  EXPECT_DOUBLE_EQ(opt->options(0).max_unorm(), opt->rule().default_max_unorm);

  for (int step = 0; step < kSteps; ++step) {
    set_gradients(ours, step);
    for (std::size_t i = 0; i < ours.size(); ++i) {
      const Tensor& grad = ours[i].grad();
      const auto [g, k] = position(i);
      core.param_group(g).set_grad(k, grad.defined() ? TensorRef{grad.data_ptr(), grad.numel(), DType::kFloat32}
                                                     : TensorRef{});
    }
    opt->step();
    core.step();
  }
  for (std::size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    const auto [g, k] = position(i);
    EXPECT_TRUE(::torch::equal(ours[i].detach(), direct[i]));
    EXPECT_FALSE(::torch::equal(ours[i].detach(), initial[i]));
    const StateSnapshot s = opt->core_state(g, k);
    expect_same_state(s, core.state(g, k));
    EXPECT_EQ(s.step, i == 1 ? kSteps - 1 : kSteps);
    EXPECT_EQ(s.format, info.bits == 8 && initial[i].numel() >= 4096 ? StateFormat::kQ8 : StateFormat::kFp32);
    EXPECT_EQ(s.placement, info.paged ? Placement::kPaged : Placement::kDevice);
    EXPECT_FALSE(s.arrays.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryClass, ::testing::ValuesIn(every_class()),
                         [](const ::testing::TestParamInfo<const OptimizerClass*>& info) {
                           return std::string(info.param->info->name);
                         });

// --- Save and load --------------------------------------------------------------------

struct RuleBits {
  std::string rule;
  int bits;
};

std::string class_name(const RuleBits& c) { return find_rule(c.rule).display_name + std::to_string(c.bits) + "bit"; }
void PrintTo(const RuleBits& c, std::ostream* out) { *out << class_name(c); }

std::vector<RuleBits> every_rule_and_bits() {
  std::vector<RuleBits> cases;
  for (const RuleInfo& rule : registered_rules()) {
    for (int bits : {32, 8}) cases.push_back({rule.name, bits});
  }
  return cases;
}

class EveryRuleRoundTrip : public ::testing::TestWithParam<RuleBits> {};

// Training, saving (state in RAM), loading into a fresh optimizer that offloads its state
// and training on gives bitwise what uninterrupted training gives: state, percentile
// clipping's history and hyperparameters travel with the checkpoint.
TEST_P(EveryRuleRoundTrip, ContinuesBitwiseAsUninterrupted) {
  TempDir dir;
  const GroupOptions settings = test_options(GetParam().rule);
  const double lr = settings.get("lr");
  const Options options = options_of(settings).percentile_clipping(90);
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  std::unique_ptr<Optimizer> a = find_optimizer_class(class_name(GetParam()))->make(two_groups(params, lr), options,
                                                                                     tiers_in(dir));
  for (int step = 0; step < 3; ++step) {
    set_gradients(params, step);
    a->step();
  }
  a->options(1).lr(lr / 3);
  const std::string checkpoint = saved(*a);

  const std::vector<Tensor> resumed = leaf_copies(params);
  std::unique_ptr<Optimizer> b = find_optimizer_class(class_name(GetParam()))
                                     ->make(two_groups(resumed, lr), Options(options).placement(Placement::kOffload),
                                            tiers_in(dir));
  load_into(*b, checkpoint);
  EXPECT_DOUBLE_EQ(b->options(1).lr(), lr / 3);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto [g, k] = position(i);
    expect_same_state(a->core_state(g, k), b->core_state(g, k));
    EXPECT_EQ(b->core_state(g, k).placement, Placement::kOffload);
    EXPECT_EQ(b->core_state(g, k).gnorm_vec.size(), 100u);
  }
  step_both_and_expect_the_same(*a, *b, params, resumed, 3, kSteps);
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryRuleRoundTrip, ::testing::ValuesIn(every_rule_and_bits()),
                         [](const ::testing::TestParamInfo<RuleBits>& info) { return class_name(info.param); });

std::vector<std::string> every_rule() {
  std::vector<std::string> names;
  for (const RuleInfo& rule : registered_rules()) names.push_back(rule.name);
  return names;
}

class EveryRule8bit : public ::testing::TestWithParam<std::string> {};

// 8-bit state is written under bitsandbytes' keys: each state's codes (uint8) under its
// bitsandbytes name, shaped as the parameter, with absmax1, absmax2, ...; states that
// share a name (AdEMAMix's m1 and m2) stacked in front, as bitsandbytes stacks them.
TEST_P(EveryRule8bit, WritesBitsandbytesKeys) {
  const RuleInfo& rule = find_rule(GetParam());
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  std::unique_ptr<Optimizer> opt = find_optimizer_class(rule.display_name + "8bit")
                                       ->make({OptimizerParamGroup({params[0]})}, options_of(test_options(rule.name)),
                                              {});
  set_gradients(params, 0);
  opt->step();
  const StateSnapshot s = opt->core_state(0, 0);
  ASSERT_EQ(s.format, StateFormat::kQ8);
  std::istringstream in(saved(*opt));
  ::torch::serialize::InputArchive archive, state, param_state;
  archive.load_from(in);
  archive.read("state", state);
  state.read("0", param_state);
  std::map<std::string, std::int64_t> stacked;  // bitsandbytes name -> the states under it
  for (const StateArray& array : s.arrays) {
    const auto named = [&](const StateInfo& info) { return info.name == array.name; };
    for (const VariantInfo& variant : rule.variants) {
      const auto info = std::find_if(variant.states.begin(), variant.states.end(), named);
      if (info == variant.states.end()) continue;
      ++stacked[info->bnb_name];
      break;
    }
  }
  ASSERT_EQ(static_cast<std::size_t>(std::accumulate(stacked.begin(), stacked.end(), std::int64_t{0},
                                                      [](std::int64_t n, const auto& e) { return n + e.second; })),
            s.arrays.size());
  for (const auto& [key, k] : stacked) {
    SCOPED_TRACE(key);
    Tensor codes;
    ASSERT_TRUE(param_state.try_read(key, codes));
    EXPECT_EQ(codes.scalar_type(), ::torch::kByte);
    std::vector<std::int64_t> shape = params[0].sizes().vec();
    if (k > 1) shape.insert(shape.begin(), k);
    EXPECT_EQ(codes.sizes().vec(), shape);
    Tensor absmax;
    ASSERT_TRUE(param_state.try_read(key.starts_with("state") ? "absmax" + key.substr(5) : key + "_absmax", absmax));
    EXPECT_EQ(absmax.numel(), k * 20);  // 5120 values: 20 blocks of 256
  }
  c10::IValue step;
  ASSERT_TRUE(param_state.try_read("step", step));
  EXPECT_EQ(step.toInt(), 1);
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryRule8bit, ::testing::ValuesIn(every_rule()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// --- torch::optim's SGD, RMSprop and Adagrad ------------------------------------------

// A torch::optim state tensor by its name.
using StateOf = std::function<Tensor(const ::torch::optim::OptimizerParamState&, const std::string&)>;

// Both train the same parameters from the same gradients under a StepLR scheduler;
// parameters and every named state agree to fp32 rounding.
void expect_parity(Optimizer& ours, ::torch::optim::Optimizer& theirs, const std::vector<Tensor>& a,
                   const std::vector<Tensor>& b, const std::vector<std::string>& states, const StateOf& state_of) {
  ::torch::optim::StepLR our_schedule(ours, /*step_size=*/3, /*gamma=*/0.5);
  ::torch::optim::StepLR their_schedule(theirs, /*step_size=*/3, /*gamma=*/0.5);
  for (int step = 0; step < kSteps; ++step) {
    set_gradients(a, step);
    set_gradients(b, step);
    ours.step();
    theirs.step();
    our_schedule.step();
    their_schedule.step();
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_LT(relative_error(a[i], b[i]), 1e-6);
    const StateSnapshot s = ours.core_state(0, i);
    EXPECT_EQ(s.step, i == 1 ? kSteps - 1 : kSteps);
    for (const std::string& name : states) {
      SCOPED_TRACE(name);
      const Tensor expected = state_of(*theirs.state().at(b[i].unsafeGetTensorImpl()), name);
      EXPECT_LT(relative_error(from_vector(s.at(name).values), expected), 1e-6);
    }
  }
}

TEST(TorchParity, SGD) {
  struct Case { double momentum, dampening, weight_decay; bool nesterov; };
  for (const Case c : {Case{0.9, 0.0, 0.0, false}, Case{0.9, 0.0, 0.01, true}, Case{0.8, 0.3, 0.01, false},
                       Case{0.0, 0.0, 0.01, false}}) {
    SCOPED_TRACE(::testing::Message() << "momentum " << c.momentum << " dampening " << c.dampening << " nesterov "
                                      << c.nesterov);
    const std::vector<Tensor> initial = make_params(::torch::kFloat);
    const std::vector<Tensor> a = leaf_copies(initial), b = leaf_copies(initial);
    SGD32bit ours(a, SGDOptions(0.05).momentum(c.momentum).dampening(c.dampening).weight_decay(c.weight_decay)
                         .nesterov(c.nesterov));
    ::torch::optim::SGD theirs(b, ::torch::optim::SGDOptions(0.05).momentum(c.momentum).dampening(c.dampening)
                                      .weight_decay(c.weight_decay).nesterov(c.nesterov));
    expect_parity(ours, theirs, a, b, c.momentum > 0 ? std::vector<std::string>{"momentum_buffer"}
                                                     : std::vector<std::string>{},
                  [](const auto& s, const std::string&) {
                    return static_cast<const ::torch::optim::SGDParamState&>(s).momentum_buffer();
                  });
  }
}

Tensor rmsprop_state(const ::torch::optim::OptimizerParamState& state, const std::string& name) {
  const auto& s = static_cast<const ::torch::optim::RMSpropParamState&>(state);
  return name == "square_avg" ? s.square_avg() : name == "momentum_buffer" ? s.momentum_buffer() : s.grad_avg();
}

TEST(TorchParity, RMSprop) {
  struct Case { double momentum, weight_decay; bool centered; };
  for (const Case c : {Case{0.0, 0.0, false}, Case{0.5, 0.01, false}, Case{0.0, 0.0, true}, Case{0.5, 0.01, true}}) {
    SCOPED_TRACE(::testing::Message() << "momentum " << c.momentum << " centered " << c.centered);
    const std::vector<Tensor> initial = make_params(::torch::kFloat);
    const std::vector<Tensor> a = leaf_copies(initial), b = leaf_copies(initial);
    RMSprop32bit ours(a, RMSpropOptions(1e-3).momentum(c.momentum).weight_decay(c.weight_decay).centered(c.centered));
    ::torch::optim::RMSprop theirs(
        b, ::torch::optim::RMSpropOptions(1e-3).momentum(c.momentum).weight_decay(c.weight_decay).centered(c.centered));
    std::vector<std::string> states = {"square_avg"};
    if (c.momentum > 0) states.push_back("momentum_buffer");
    if (c.centered) states.push_back("grad_avg");
    expect_parity(ours, theirs, a, b, states, rmsprop_state);
  }
}

TEST(TorchParity, Adagrad) {
  const std::vector<Tensor> initial = make_params(::torch::kFloat);
  const std::vector<Tensor> a = leaf_copies(initial), b = leaf_copies(initial);
  Adagrad32bit ours(a, AdagradOptions(0.05).lr_decay(0.01).weight_decay(0.01).initial_accumulator_value(0.1));
  ::torch::optim::Adagrad theirs(
      b, ::torch::optim::AdagradOptions(0.05).lr_decay(0.01).weight_decay(0.01).initial_accumulator_value(0.1));
  expect_parity(ours, theirs, a, b, {"sum"}, [](const auto& s, const std::string&) {
    return static_cast<const ::torch::optim::AdagradParamState&>(s).sum();
  });
}

// A torch::optim checkpoint loads here (its state exactly) and the reverse, and both
// continue as the other would; the 8-bit class takes torch's state quantized.
template <class Ours, class Eight, class Theirs>
void expect_archives_load_both_ways(const std::function<std::unique_ptr<Ours>(std::vector<Tensor>)>& make_ours,
                                    const std::function<std::unique_ptr<Eight>(std::vector<Tensor>)>& make_eight,
                                    const std::function<std::unique_ptr<Theirs>(std::vector<Tensor>)>& make_theirs,
                                    const std::vector<std::string>& states, const StateOf& state_of) {
  const std::vector<Tensor> initial = make_params(::torch::kFloat);
  const std::vector<Tensor> ours = leaf_copies(initial), theirs = leaf_copies(initial);
  std::unique_ptr<Ours> opt = make_ours(ours);
  std::unique_ptr<Theirs> ref = make_theirs(theirs);
  for (int step = 0; step < 4; ++step) {
    set_gradients(ours, step);
    set_gradients(theirs, step);
    opt->step();
    ref->step();
  }
  const std::vector<Tensor> ours_from_theirs = leaf_copies(theirs), theirs_from_ours = leaf_copies(ours);
  std::unique_ptr<Ours> loaded_ours = make_ours(ours_from_theirs);
  std::unique_ptr<Theirs> loaded_theirs = make_theirs(theirs_from_ours);
  loaded_ours->options(0).lr(0.5);  // the checkpoint's lr replaces it
  load_into(*loaded_ours, saved(*ref));
  load_into(*loaded_theirs, saved(*opt));
  EXPECT_DOUBLE_EQ(loaded_ours->options(0).lr(), ref->param_groups()[0].options().get_lr());
  for (std::size_t i = 0; i < initial.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    const StateSnapshot s = loaded_ours->core_state(0, i);
    EXPECT_GT(s.step, 0);
    for (const std::string& name : states) {
      const Tensor expected = state_of(*ref->state().at(theirs[i].unsafeGetTensorImpl()), name).flatten();
      EXPECT_TRUE(::torch::equal(from_vector(s.at(name).values), expected)) << name;
      const Tensor written = state_of(*loaded_theirs->state().at(theirs_from_ours[i].unsafeGetTensorImpl()), name);
      EXPECT_TRUE(::torch::equal(written.flatten(), from_vector(opt->core_state(0, i).at(name).values))) << name;
      EXPECT_EQ(written.sizes(), initial[i].sizes());
    }
  }
  std::unique_ptr<Eight> eight_bit = make_eight(leaf_copies(theirs));
  load_into(*eight_bit, saved(*ref));
  EXPECT_EQ(eight_bit->core_state(0, 0).format, StateFormat::kQ8);

  for (int step = 4; step < 8; ++step) {
    for (const auto* params : {&ours, &theirs, &ours_from_theirs, &theirs_from_ours}) set_gradients(*params, step);
    opt->step();
    ref->step();
    loaded_ours->step();
    loaded_theirs->step();
  }
  for (std::size_t i = 0; i < initial.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_LT(relative_error(ours_from_theirs[i], theirs[i]), 1e-6);
    EXPECT_LT(relative_error(theirs_from_ours[i], ours[i]), 1e-6);
  }
}

TEST(TorchArchives, SGDLoadsBothWays) {
  const auto options = SGDOptions(0.05).momentum(0.9).weight_decay(0.01);
  const auto torch_options = ::torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.01);
  expect_archives_load_both_ways<SGD32bit, SGD8bit, ::torch::optim::SGD>(
      [&](std::vector<Tensor> p) { return std::make_unique<SGD32bit>(p, options); },
      [&](std::vector<Tensor> p) { return std::make_unique<SGD8bit>(p, options); },
      [&](std::vector<Tensor> p) { return std::make_unique<::torch::optim::SGD>(p, torch_options); },
      {"momentum_buffer"}, [](const auto& s, const std::string&) {
        return static_cast<const ::torch::optim::SGDParamState&>(s).momentum_buffer();
      });
}

TEST(TorchArchives, RMSpropLoadsBothWays) {
  const auto options = RMSpropOptions(1e-3).momentum(0.5);
  const auto torch_options = ::torch::optim::RMSpropOptions(1e-3).momentum(0.5);
  expect_archives_load_both_ways<RMSprop32bit, RMSprop8bit, ::torch::optim::RMSprop>(
      [&](std::vector<Tensor> p) { return std::make_unique<RMSprop32bit>(p, options); },
      [&](std::vector<Tensor> p) { return std::make_unique<RMSprop8bit>(p, options); },
      [&](std::vector<Tensor> p) { return std::make_unique<::torch::optim::RMSprop>(p, torch_options); },
      {"square_avg", "momentum_buffer"}, rmsprop_state);
}

TEST(TorchArchives, AdagradLoadsBothWays) {
  const auto options = AdagradOptions(0.05).lr_decay(0.01);
  const auto torch_options = ::torch::optim::AdagradOptions(0.05).lr_decay(0.01);
  expect_archives_load_both_ways<Adagrad32bit, Adagrad8bit, ::torch::optim::Adagrad>(
      [&](std::vector<Tensor> p) { return std::make_unique<Adagrad32bit>(p, options); },
      [&](std::vector<Tensor> p) { return std::make_unique<Adagrad8bit>(p, options); },
      [&](std::vector<Tensor> p) { return std::make_unique<::torch::optim::Adagrad>(p, torch_options); }, {"sum"},
      [](const auto& s, const std::string&) { return static_cast<const ::torch::optim::AdagradParamState&>(s).sum(); });
}

// The checkpoint's hyperparameters choose the variant its state is loaded as (as torch's
// load replaces a group's options); the state options stay this optimizer's.
TEST(TorchArchives, HyperparametersComeFromTheCheckpointStateOptionsStay) {
  const std::vector<Tensor> params = leaf_copies(make_params(::torch::kFloat));
  RMSprop32bit saver(params, RMSpropOptions(1e-3).momentum(0.5).centered(true).max_unorm(0.3));
  set_gradients(params, 0);
  saver.step();
  RMSprop loader(leaf_copies(params), RMSpropOptions(1e-2).placement(Placement::kOffload).min_8bit_size(10));
  load_into(loader, saved(saver));
  EXPECT_DOUBLE_EQ(loader.options(0).lr(), 1e-3);
  EXPECT_DOUBLE_EQ(loader.options(0).momentum(), 0.5);
  EXPECT_TRUE(loader.options(0).centered());
  EXPECT_DOUBLE_EQ(loader.options(0).max_unorm(), 0.3);
  EXPECT_EQ(loader.options(0).placement(), Placement::kOffload);
  EXPECT_EQ(loader.options(0).min_8bit_size(), 10);
  expect_same_state(loader.core_state(0, 0), saver.core_state(0, 0));
  EXPECT_NE(loader.core_state(0, 0).find("grad_avg"), nullptr);

  // An 8-bit optimizer refuses centered state (it has no 8-bit form) and changes nothing.
  const std::vector<Tensor> other = leaf_copies(params);
  RMSprop8bit eight_bit(other, RMSpropOptions(1e-3));
  set_gradients(other, 0);
  eight_bit.step();
  const StateSnapshot before = eight_bit.core_state(0, 0);
  EXPECT_THROW(load_into(eight_bit, saved(saver)), c10::ValueError);
  EXPECT_FALSE(eight_bit.options(0).centered());
  expect_same_state(eight_bit.core_state(0, 0), before);
}

}  // namespace
}  // namespace octopage::torch
