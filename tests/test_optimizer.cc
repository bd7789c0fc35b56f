// octopage::Optimizer end to end: lazy state, per-parameter step counts, hyperparameter
// changes between steps against the fp64 oracle, and the properties the issue names
// (lr=0 leaves parameters bitwise unchanged, runs are deterministic, results do not
// depend on the thread count, state memory is what the format says).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "octopage/octopage.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/quant/q8_reference.h"
#include "src/rules/registry.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

using testing::TestParam;
using testing::TrainingRun;

GroupOptions options_for(std::string_view rule, int optim_bits) {
  GroupOptions o = default_options(rule);
  o.set("lr", 1e-2);
  o.optim_bits = optim_bits;
  return o;
}

TEST(Optimizer, StateIsCreatedLazilyAndParametersWithoutGradientsAreSkipped) {
  TestParam a(DType::kFloat32, 5000, 1), b(DType::kFloat32, 300, 2);
  Optimizer opt("adamw", options_for("adamw", 8));
  ParamGroup& group = opt.add_param_group({a.parameter(), b.parameter()});
  EXPECT_EQ(opt.state(0, 0).step, 0);
  EXPECT_EQ(opt.memory_report().total_state_bytes(), 0u);

  a.set_grad(10);
  group.set_grad(1, TensorRef{});  // b has no gradient this step
  const std::vector<std::uint8_t> b_before = b.value.bytes();
  opt.step();
  EXPECT_EQ(opt.state(0, 0).step, 1);
  EXPECT_EQ(opt.state(0, 0).format, StateFormat::kQ8);
  EXPECT_EQ(opt.state(0, 1).step, 0);
  EXPECT_EQ(b.value.bytes(), b_before);

  group.set_grad(1, b.grad.ref());
  b.set_grad(11);
  opt.step();
  EXPECT_EQ(opt.state(0, 0).step, 2);
  EXPECT_EQ(opt.state(0, 1).step, 1);
  EXPECT_EQ(opt.state(0, 1).format, StateFormat::kFp32);  // 300 < min_8bit_size
  EXPECT_NE(b.value.bytes(), b_before);
}

// Runs `steps` steps of the optimizer and, element by element, of the rule's fp64 oracle
// (from the registry), with the hyperparameters `schedule` sets before each step;
// `has_grad` says on which steps the parameter gets a gradient. Then compares parameter
// and state.
void expect_follows_oracle(std::string_view rule_name, const GroupOptions& start, DType dtype, int steps,
                           const std::function<void(int, GroupOptions&)>& schedule,
                           const std::function<bool(int)>& has_grad) {
  constexpr std::int64_t n = 777;
  const rules::RuleEntry& rule = rules::rule_entry(rule_name);
  TestParam param(dtype, n, 3);
  Optimizer opt(rule_name, start);
  ParamGroup& group = opt.add_param_group({param.parameter()});

  std::vector<double> p_oracle(n);
  std::vector<std::vector<double>> oracle(n, std::vector<double>(rules::kMaxStates, 0.0));
  for (std::int64_t i = 0; i < n; ++i) p_oracle[i] = param.value.get(i);
  std::int64_t t = 0;
  int row = 0;
  for (int s = 0; s < steps; ++s) {
    schedule(s, group.options);
    if (!has_grad(s)) {
      group.set_grad(0, TensorRef{});
      opt.step();
      continue;
    }
    group.set_grad(0, param.grad.ref());
    param.set_grad(100 + s);
    opt.step();
    ++t;
    const std::vector<double> values = testing::resolved_values(rule, group.options);
    row = rule.row(values.data());
    for (std::int64_t i = 0; i < n; ++i) {
      rule.oracle(values.data(), row, t, param.grad.get(i), p_oracle[i], oracle[i].data());
      // The parameter is stored in its dtype after every step: where the oracle rounds
      // to the stored value, it continues from the stored value too.
      if (testing::round_to(dtype, static_cast<float>(p_oracle[i])) == param.value.get(i)) {
        p_oracle[i] = param.value.get(i);
      }
    }
  }
  EXPECT_EQ(opt.state(0, 0).step, t);
  const StateSnapshot state = opt.state(0, 0);
  const VariantInfo& variant = rule.info.variants[static_cast<std::size_t>(row)];
  ASSERT_EQ(state.arrays.size(), variant.states.size());
  // A state's rounding is relative to the terms it sums, which may cancel (an average of
  // gradients of both signs): a floor at the state's scale over the tensor.
  std::vector<double> scale(variant.states.size(), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < variant.states.size(); ++k) scale[k] = std::max(scale[k], std::fabs(oracle[i][k]));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = param.value.get(i);
    // fp32 math drifts from fp64 by a few ulps per step; 16-bit storage by up to a unit.
    const double unit = dtype == DType::kFloat32
                            ? 0.0
                            : std::ldexp(std::fabs(p), dtype == DType::kBFloat16 ? -7 : -10);
    ASSERT_NEAR(p, p_oracle[i], 1e-5 * std::fabs(p_oracle[i]) + unit + 1e-7) << "element " << i;
    for (std::size_t k = 0; k < variant.states.size(); ++k) {
      const double expected = oracle[i][k];
      ASSERT_NEAR(state.at(variant.states[k].name).values[i], expected, 1e-4 * std::fabs(expected) + 1e-5 * scale[k])
          << "element " << i << " of " << variant.states[k].name;
    }
  }
}

// The rule's math alone: lr set, and no update-norm cap (LAMB's and LARS's default one
// has its own tests).
GroupOptions with_lr(GroupOptions o, double lr = 1e-2) {
  o.max_unorm = 0.0;
  return o.set("lr", lr);
}

TEST(Optimizer, FollowsTheOracleForEveryRuleVariantAndDtype) {
  const auto constant = [](int, GroupOptions&) {};
  const auto always = [](int) { return true; };
  for (const RuleInfo& rule : registered_rules()) {
    for (const testing::VariantExample& example : testing::variant_examples(rule.name)) {
      for (DType dtype : testing::kAllDTypes) {
        SCOPED_TRACE(rule.name + " " + rule.variants[example.variant].name + " " + dtype_name(dtype));
        expect_follows_oracle(rule.name, with_lr(example.options), dtype, 12, constant, always);
      }
    }
  }
}

TEST(Optimizer, HyperparametersChangedBetweenStepsTakeEffect) {
  // A schedule that touches every hyperparameter, the way LR schedulers and users do.
  const auto schedule = [](int s, GroupOptions& o) {
    o.set("lr", 1e-2 * std::pow(0.8, s));
    o.set("betas", {0.9 - 0.01 * s, 0.999 - 0.001 * s});
    o.set("eps", s % 2 ? 1e-8 : 1e-6);
    o.set("weight_decay", 0.01 * (s % 3));
  };
  for (const char* rule : {"adam", "adamw"}) {
    SCOPED_TRACE(rule);
    expect_follows_oracle(rule, options_for(rule, 32), DType::kFloat32, 10, schedule, [](int) { return true; });
  }
}

TEST(Optimizer, EachParameterCountsItsOwnSteps) {
  // Gradients only on some steps: bias correction must use the parameter's own count.
  expect_follows_oracle("adamw", options_for("adamw", 32), DType::kFloat32, 12, [](int, GroupOptions&) {},
                        [](int s) { return s % 3 != 1; });
}

// Note [Percentile clipping] against its definition, written here in fp32 over exact
// (long double) norms as bitsandbytes 0.49 computes it, feeding the rule's fp64 oracle
// the scaled gradient: 130 steps wrap the 100-step history, and every seventh gradient
// is ten times larger, so those steps clip. Halfway, the state goes through a snapshot
// into a new optimizer, which continues as if nothing happened.
TEST(Optimizer, PercentileClippingFollowsItsDefinition) {
  constexpr std::int64_t n = 70001;  // two chunks of the sum and a tail
  constexpr int kPercentile = 5, kSteps = 130;
  const rules::RuleEntry& rule = rules::rule_entry("adamw");
  TestParam param(DType::kFloat32, n, 3);
  GroupOptions options = options_for("adamw", 32);
  options.percentile_clipping = kPercentile;
  auto opt = std::make_unique<Optimizer>("adamw", options);
  opt->add_param_group({param.parameter()});

  std::vector<double> p_oracle(n);
  std::vector<std::vector<double>> state(n, std::vector<double>(rules::kMaxStates, 0.0));
  for (std::int64_t i = 0; i < n; ++i) p_oracle[i] = param.value.get(i);
  std::vector<float> history;
  int clipped = 0;
  for (int t = 1; t <= kSteps; ++t) {
    param.grad.set(testing::normal_values(n, 100 + t, t % 7 == 0 ? 0.1f : 0.01f));
    opt->step();
    long double exact = 0.0L;
    for (std::int64_t i = 0; i < n; ++i) exact += static_cast<long double>(param.grad.get(i)) * param.grad.get(i);
    const auto n2 = static_cast<float>(exact);
    const std::size_t slot = static_cast<std::size_t>(t) % 100;
    if (history.empty()) history.assign(100, n2);
    history[slot] = n2;
    std::vector<float> sorted = history;
    std::sort(sorted.begin(), sorted.end());
    const float current = std::sqrt(history[slot]), clip = std::sqrt(sorted[kPercentile]);
    const float scale = current > clip ? clip / current : 1.0f;
    clipped += scale < 1.0f;
    const std::vector<double> values = testing::resolved_values(rule, opt->param_group(0).options);
    for (std::int64_t i = 0; i < n; ++i) {
      const double g = static_cast<double>(param.grad.get(i) * scale);  // the kernels scale in fp32
      rule.oracle(values.data(), 0, t, g, p_oracle[i], state[i].data());
    }
    ASSERT_EQ(opt->state(0, 0).gnorm_vec, history) << "step " << t;
    if (t == kSteps / 2) {  // resume from a snapshot
      const StateSnapshot saved = opt->state(0, 0);
      opt = std::make_unique<Optimizer>("adamw", options);
      opt->add_param_group({param.parameter()});
      opt->load_state({{0, 0, saved}});
    }
  }
  EXPECT_GE(clipped, 15);  // the large gradients after the history filled
  const StateSnapshot final_state = opt->state(0, 0);
  // fp32 drifts from fp64 by a few ulps of each step's move (at most about lr = 1e-2).
  const double drift = kSteps * 1e-2 * 1e-6;
  for (std::int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(param.value.get(i), p_oracle[i], 1e-5 * std::fabs(p_oracle[i]) + drift) << "element " << i;
    ASSERT_NEAR(final_state.at("exp_avg").values[i], state[i][0], 1e-4 * std::fabs(state[i][0]) + 1e-9);
  }
}

// max_unorm against bitsandbytes' definition (RULES.md 1.8), written here in fp64 per
// rule: u from the raw gradient and the state before the step, s = max_unorm * ||p|| /
// ||u|| when ||u|| is larger, the step (here: lr, with no weight decay) scaled by s.
TEST(Optimizer, MaxUnormFollowsItsDefinition) {
  constexpr std::int64_t n = 70001;
  constexpr int kSteps = 12;
  struct Case {
    const char* rule;
    GroupOptions options;
    // u of one element from the raw gradient, the oracle's state before the step, step t.
    std::function<double(double g, const double* state, std::int64_t t)> u;
  };
  const std::vector<Case> cases = {
      {"adamw", default_options("adamw").set("lr", 1e-2).set("weight_decay", 0.0),
       [](double g, const double* state, std::int64_t t) {
         const double m = 0.9 * state[0] + 0.1 * g, v = 0.999 * state[1] + 0.001 * g * g;
         return (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.999, t))) + 1e-8);
       }},
      {"sgd", default_options("sgd").set("lr", 0.5).set("momentum", 0.9),
       [](double g, const double* state, std::int64_t t) { return t == 1 ? g : 0.9 * state[0] + g; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rule);
    const rules::RuleEntry& rule = rules::rule_entry(c.rule);
    TestParam param(DType::kFloat32, n, 3);
    GroupOptions options = c.options;
    options.max_unorm = 0.02;
    Optimizer opt(c.rule, options);
    opt.add_param_group({param.parameter()});
    std::vector<double> p_oracle(n);
    std::vector<std::vector<double>> state(n, std::vector<double>(rules::kMaxStates, 0.0));
    for (std::int64_t i = 0; i < n; ++i) p_oracle[i] = param.value.get(i);
    int clipped = 0;
    for (int t = 1; t <= kSteps; ++t) {
      param.grad.set(testing::normal_values(n, 100 + t, t % 4 == 0 ? 0.1f : 0.01f));
      long double u2 = 0.0L, p2 = 0.0L;
      for (std::int64_t i = 0; i < n; ++i) {
        const double u = c.u(param.grad.get(i), state[i].data(), t);
        u2 += static_cast<long double>(u) * u;
        p2 += static_cast<long double>(param.value.get(i)) * param.value.get(i);
      }
      const double limit = 0.02 * std::sqrt(static_cast<double>(p2)), u_norm = std::sqrt(static_cast<double>(u2));
      const double scale = u_norm > limit ? limit / u_norm : 1.0;
      clipped += scale < 1.0;
      opt.step();
      std::vector<double> values = testing::resolved_values(rule, opt.param_group(0).options);
      values[0] *= scale;  // lr: the whole step, as there is no weight decay
      const int row = rule.row(values.data());
      for (std::int64_t i = 0; i < n; ++i) rule.oracle(values.data(), row, t, param.grad.get(i), p_oracle[i], state[i].data());
      for (std::int64_t i = 0; i < n; ++i) {
        // Where the parameter was stored, the oracle continues from it.
        ASSERT_NEAR(param.value.get(i), p_oracle[i], 1e-5 * std::fabs(p_oracle[i]) + 1e-6) << "step " << t << " element " << i;
        p_oracle[i] = param.value.get(i);
      }
    }
    EXPECT_GE(clipped, 3);
  }
}

// A max_unorm no step reaches changes no bit: the pass only measures.
TEST(Optimizer, MaxUnormAboveEveryStepChangesNothing) {
  const std::vector<std::int64_t> sizes = {70001, 300, 1};
  GroupOptions off = options_for("adamw", 32), far = off;
  far.max_unorm = 1e9;
  TrainingRun a("adamw", off, DType::kBFloat16, sizes), b("adamw", far, DType::kBFloat16, sizes);
  a.steps(5);
  b.steps(5);
  EXPECT_EQ(a.bits(), b.bits());
}

// max_unorm on 8-bit state (LAMB8bit, LARS8bit): each capped step is the uncapped step
// from the same state and gradient (a second optimizer loaded with the state) scaled by
// s = min(1, max_unorm * ||p|| / ||u||); without weight decay the uncapped step is
// lr * u, so ||u|| is its norm over lr.
TEST(Optimizer, MaxUnormScalesEightBitSteps) {
  constexpr std::int64_t n = 70001;
  struct Case {
    const char* rule;
    double lr;
  };
  for (const Case& c : {Case{"lamb", 1e-2}, Case{"lars", 0.5}}) {
    SCOPED_TRACE(c.rule);
    GroupOptions capped_options = default_options(c.rule).set("lr", c.lr).set("weight_decay", 0.0);
    capped_options.optim_bits = 8;
    capped_options.max_unorm = 0.02;
    GroupOptions free_options = capped_options;
    free_options.max_unorm = 0.0;
    TestParam param(DType::kFloat32, n, 3);
    Optimizer capped(c.rule, capped_options);
    capped.add_param_group({param.parameter()});
    int clipped = 0;
    for (int t = 1; t <= 8; ++t) {
      param.grad.set(testing::normal_values(n, 100 + t, t % 4 == 0 ? 0.1f : 0.01f));
      const std::vector<float> before = param.value.values();
      TestParam twin(DType::kFloat32, n, 3);
      twin.value.set(before);
      twin.grad.set(param.grad.values());
      Optimizer free(c.rule, free_options);
      free.add_param_group({twin.parameter()});
      if (t > 1) free.load_state({{0, 0, capped.state(0, 0)}});
      capped.step();
      free.step();
      ASSERT_EQ(capped.state(0, 0).format, StateFormat::kQ8);
      double p2 = 0.0, free2 = 0.0, dot = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        const double step_free = twin.value.get(i) - before[i], step_capped = param.value.get(i) - before[i];
        p2 += static_cast<double>(before[i]) * before[i];
        free2 += step_free * step_free;
        dot += step_free * step_capped;
      }
      const double u_norm = std::sqrt(free2) / c.lr;
      const double expected = std::min(1.0, 0.02 * std::sqrt(p2) / u_norm);
      clipped += expected < 1.0;
      EXPECT_NEAR(dot / free2, expected, 1e-4 * expected) << "step " << t;
      for (std::int64_t i = 0; i < n; ++i) {
        const double step_free = twin.value.get(i) - before[i];
        ASSERT_NEAR(param.value.get(i) - before[i], expected * step_free,
                    1e-4 * std::fabs(step_free) + 2e-7 * std::fabs(before[i]) + 1e-12)
            << "step " << t << " element " << i;
      }
    }
    EXPECT_GE(clipped, 3);
  }
}

// bitsandbytes' override_config: a parameter's hyperparameters, max_unorm and
// min_8bit_size shadow its group's. Each overridden parameter steps bitwise as it would
// alone in a group with those options; the others as their group says; and the override
// holds while the group's lr changes (as a scheduler would change it).
TEST(Optimizer, OverridesShadowTheGroupPerParameter) {
  GroupOptions group_options = options_for("lamb", 8);
  group_options.max_unorm = 0.0;
  ParamOverrides overrides;
  overrides.hyperparameters = {{"lr", {0.05}}, {"betas", {0.8, 0.99}}};
  overrides.max_unorm = 0.01;
  overrides.min_8bit_size = 1 << 20;  // keeps this 70001-element parameter in 32 bits
  GroupOptions alone_options = group_options;
  alone_options.set("lr", 0.05).set("betas", std::vector<double>{0.8, 0.99});
  alone_options.max_unorm = 0.01;
  alone_options.min_8bit_size = 1 << 20;

  TestParam a(DType::kFloat32, 70001, 1), b(DType::kFloat32, 5000, 2);
  TestParam a_alone(DType::kFloat32, 70001, 1), b_alone(DType::kFloat32, 5000, 2);
  Optimizer together("lamb", group_options);
  Parameter pa = a.parameter();
  pa.overrides = overrides;
  ParamGroup& group = together.add_param_group({pa, b.parameter()});
  Optimizer only_a("lamb", alone_options), only_b("lamb", group_options);
  ParamGroup& group_a = only_a.add_param_group({a_alone.parameter()});
  ParamGroup& group_b = only_b.add_param_group({b_alone.parameter()});
  for (int t = 0; t < 4; ++t) {
    for (TestParam* p : {&a, &a_alone}) p->set_grad(50 + t);
    for (TestParam* p : {&b, &b_alone}) p->set_grad(70 + t);
    const double lr = 1e-2 * (t + 1);  // the group's schedule: the override ignores it
    group.options.set("lr", lr);
    group_b.options.set("lr", lr);
    together.step();
    only_a.step();
    only_b.step();
  }
  EXPECT_EQ(a.value.bytes(), a_alone.value.bytes());
  EXPECT_EQ(b.value.bytes(), b_alone.value.bytes());
  EXPECT_EQ(together.state(0, 0).format, StateFormat::kFp32);
  EXPECT_EQ(together.state(0, 1).format, StateFormat::kQ8);
  EXPECT_EQ(together.state(0, 0).unorm_vec, only_a.state(0, 0).unorm_vec);
  EXPECT_EQ(together.state(0, 0).unorm_vec.size(), 1u);
  EXPECT_TRUE(together.state(0, 1).unorm_vec.empty());  // its group does not cap
  (void)group_a;
}

TEST(Optimizer, PercentileClippingOutOfRangeIsRefused) {
  GroupOptions options = options_for("adamw", 32);
  for (int bad : {-1, 101}) {
    options.percentile_clipping = bad;
    try {
      Optimizer opt("adamw", options);
      ADD_FAILURE() << "percentile_clipping=" << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected percentile_clipping in [0, 100] (100: off), got " +
                                           std::to_string(bad)),
                std::string::npos)
          << e.what();
    }
  }
}

// Sizes that span several chunks (of 65,536), odd tails and many small tensors.
const std::vector<std::int64_t> kMixedSizes = {300000, 4096, 4097, 255, 1, 70000, 4096, 8192};

TEST(Optimizer, ZeroLearningRateLeavesParametersBitwiseUnchanged) {
  for (int bits : {32, 8}) {
    for (DType dtype : testing::kAllDTypes) {
      for (const char* rule : {"adam", "adamw"}) {
        SCOPED_TRACE(std::to_string(bits) + " " + dtype_name(dtype) + " " + rule);
        GroupOptions o = options_for(rule, bits);
        o.set("lr", 0.0);
        o.set("weight_decay", 0.1);
        TrainingRun run(rule, o, dtype, kMixedSizes);
        std::vector<std::vector<std::uint8_t>> before;
        for (const TestParam& p : run.params) before.push_back(p.value.bytes());
        run.steps(3);
        for (std::size_t k = 0; k < run.params.size(); ++k) {
          EXPECT_EQ(run.params[k].value.bytes(), before[k]) << "parameter " << k;
        }
        EXPECT_EQ(run.opt.state(0, 0).step, 3);  // ...while the state did step
      }
    }
  }
}

TEST(Optimizer, TwoRunsGiveBitwiseTheSameResult) {
  for (int bits : {32, 8}) {
    TrainingRun first("adamw", options_for("adamw", bits), DType::kBFloat16, kMixedSizes);
    TrainingRun second("adamw", options_for("adamw", bits), DType::kBFloat16, kMixedSizes);
    first.steps(4);
    second.steps(4);
    EXPECT_EQ(first.bits(), second.bits()) << bits << "-bit state";
  }
}

TEST(Optimizer, ResultDoesNotDependOnTheThreadCount) {
  const int original = num_threads();
  for (int bits : {32, 8}) {
    std::vector<std::vector<std::uint8_t>> reference;
    for (int threads : {1, 2, 3, 7}) {
      set_num_threads(threads);
      ASSERT_EQ(num_threads(), threads);
      TrainingRun run("adamw", options_for("adamw", bits), DType::kFloat32, kMixedSizes);
      run.steps(3);
      if (reference.empty()) {
        reference = run.bits();
      } else {
        EXPECT_EQ(run.bits(), reference) << bits << "-bit state, " << threads << " threads";
      }
    }
  }
  set_num_threads(original);
}

TEST(Optimizer, SplittingATensorIntoBlockAlignedParametersChangesNothing) {
  // One 40,960-element parameter and the same values as ten 4,096-element parameters:
  // updates are element-wise and blocks never straddle, so the bits must agree.
  for (int bits : {32, 8}) {
    TestParam whole(DType::kFloat32, 40960, 9);
    Optimizer one("adamw", options_for("adamw", bits));
    one.add_param_group({whole.parameter()});
    std::vector<TestParam> parts;
    parts.reserve(10);
    std::vector<Parameter> refs;
    for (int k = 0; k < 10; ++k) {
      parts.emplace_back(DType::kFloat32, 4096, 0);
      for (std::int64_t i = 0; i < 4096; ++i) parts[k].value.set(i, whole.value.get(4096 * k + i));
      refs.push_back(parts[k].parameter());
    }
    Optimizer many("adamw", options_for("adamw", bits));
    many.add_param_group(refs);
    for (int s = 0; s < 3; ++s) {
      whole.set_grad(77 + s);
      for (int k = 0; k < 10; ++k) {
        for (std::int64_t i = 0; i < 4096; ++i) parts[k].grad.set(i, whole.grad.get(4096 * k + i));
      }
      one.step();
      many.step();
    }
    for (int k = 0; k < 10; ++k) {
      for (std::int64_t i = 0; i < 4096; ++i) {
        ASSERT_EQ(parts[k].value.get(i), whole.value.get(4096 * k + i)) << bits << "-bit, part " << k;
      }
    }
  }
}

TEST(Optimizer, MemoryReportIsWhatTheFormatSays) {
  const std::vector<std::int64_t> sizes = {1 << 20, 4096, 4095, 100};
  std::int64_t total = 0;
  for (std::int64_t n : sizes) total += n;

  TrainingRun fp32("adamw", options_for("adamw", 32), DType::kFloat32, sizes);
  fp32.steps(1);
  MemoryReport r = fp32.opt.memory_report();
  EXPECT_EQ(r.total_state_bytes(), static_cast<std::uint64_t>(8 * total));  // exactly 8 B/param
  EXPECT_EQ(r.state_bytes_in(Tier::kHost), r.total_state_bytes());
  EXPECT_EQ(r.tensors_32bit, 4);
  EXPECT_EQ(r.elements_32bit, total);
  EXPECT_EQ(r.peak_bytes_in(Tier::kHost), r.total_state_bytes());  // no staging ring
  EXPECT_EQ(r.staging_bytes, 0u);

  GroupOptions amsgrad = options_for("adamw", 32);
  amsgrad.set("amsgrad", 1.0);
  TrainingRun with_max("adamw", amsgrad, DType::kFloat32, sizes);
  with_max.steps(1);
  EXPECT_EQ(with_max.opt.memory_report().total_state_bytes(), static_cast<std::uint64_t>(12 * total));

  TrainingRun q8("adamw", options_for("adamw", 8), DType::kFloat32, sizes);
  q8.steps(1);
  r = q8.opt.memory_report();
  // 8-bit for the two tensors of >= min_8bit_size = 4096 elements, fp32 for the others.
  EXPECT_EQ(r.tensors_8bit, 2);
  EXPECT_EQ(r.tensors_32bit, 2);
  EXPECT_EQ(r.elements_8bit, (1 << 20) + 4096);
  const std::int64_t q8_bytes = quant::q8_state_bytes(1 << 20, 2) + quant::q8_state_bytes(4096, 2);
  EXPECT_EQ(r.total_state_bytes(), static_cast<std::uint64_t>(q8_bytes + 8 * (4095 + 100)));
  EXPECT_LE(static_cast<double>(q8_bytes) / static_cast<double>(r.elements_8bit), 2.04);
  EXPECT_EQ(q8.opt.state(0, 0).format, StateFormat::kQ8);
  EXPECT_EQ(q8.opt.state(0, 2).format, StateFormat::kFp32);
}

TEST(Optimizer, EightBitStateDecodesToTheMomentsOfTheFirstStep) {
  // From zero state, one step makes m = (1 - beta1) g and v = (1 - beta2) g^2: the codes
  // and absmax in the snapshot must decode to those within the format's budget.
  TestParam p(DType::kFloat32, 5000, 4);
  Optimizer opt("adamw", options_for("adamw", 8));
  opt.add_param_group({p.parameter()});
  p.set_grad(5);
  opt.step();
  const StateSnapshot s = opt.state(0, 0);
  const StateArray& exp_avg = s.at("exp_avg");
  const StateArray& exp_avg_sq = s.at("exp_avg_sq");
  ASSERT_EQ(exp_avg.codes.size(), 5000u);
  ASSERT_EQ(exp_avg.absmax.size(), static_cast<std::size_t>(quant::q8_num_blocks(5000)));
  std::vector<float> m(5000), v(5000);
  quant::dequantize_reference(quant::signed_code(), exp_avg.codes.data(), exp_avg.absmax.data(), 5000, m.data());
  quant::dequantize_reference(quant::unsigned_code(), exp_avg_sq.codes.data(), exp_avg_sq.absmax.data(), 5000,
                              v.data());
  for (std::int64_t i = 0; i < 5000; ++i) {
    const double g = p.grad.get(i);
    const double absmax1 = exp_avg.absmax[i / 256], absmax2 = exp_avg_sq.absmax[i / 256];
    ASSERT_NEAR(m[i], 0.1 * g, 0.0071 * absmax1 + 1e-12) << i;
    ASSERT_NEAR(v[i], 0.001 * g * g, 0.0036 * absmax2 + 1e-15) << i;
  }
}

// An empty shard of a sharded parameter (FSDP2 gives some ranks 0 elements) steps as
// torch.optim steps it: with a gradient its step count advances, without one it does not;
// it holds no state bytes in any placement, and its state saves and loads like any other.
TEST(Optimizer, EmptyParameterWithAGradientCountsItsSteps) {
  for (Placement placement : {Placement::kDevice, Placement::kPaged, Placement::kOffload}) {
    for (int bits : {32, 8}) {
      SCOPED_TRACE(std::string(placement_name(placement)) + " " + std::to_string(bits) + "-bit");
      GroupOptions o = options_for("adamw", bits);
      o.placement = placement;
      TestParam a(DType::kFloat32, 10, 1);
      const TensorRef empty{nullptr, 0, DType::kFloat32};
      const TensorRef empty_grad{empty_tensor_data(), 0, DType::kFloat32};
      ParamOverrides whole;  // the whole parameter is large: 8-bit state, as on the other ranks
      whole.format_numel = 1 << 20;
      Optimizer opt("adamw", o);
      ParamGroup& group = opt.add_param_group({Parameter{empty, empty_grad, whole}, Parameter{empty, empty},
                                               a.parameter()});
      a.set_grad(2);
      opt.step();
      opt.step();
      const StateSnapshot s = opt.state(0, 0);
      EXPECT_EQ(s.step, 2);
      EXPECT_EQ(s.format, bits == 8 ? StateFormat::kQ8 : StateFormat::kFp32);
      EXPECT_EQ(s.placement, placement);
      const StateArray& exp_avg = s.at("exp_avg");
      EXPECT_TRUE(exp_avg.values.empty() && exp_avg.codes.empty() && exp_avg.absmax.empty());
      EXPECT_EQ(opt.state(0, 1).step, 0);  // no gradient, no step
      EXPECT_EQ(opt.state(0, 2).step, 2);
      EXPECT_EQ(opt.memory_report().total_state_bytes(), opt.memory_report().state_bytes_in(
                    placement == Placement::kDevice ? Tier::kHost : Tier::kFile));

      StateSnapshot saved = s;
      saved.step = 7;
      opt.load_state({StateLoad{0, 0, saved}});
      EXPECT_EQ(opt.state(0, 0).step, 7);
      group.set_grad(0, TensorRef{});
      opt.step();
      EXPECT_EQ(opt.state(0, 0).step, 7);
      group.set_grad(0, empty_grad);
      opt.step();
      EXPECT_EQ(opt.state(0, 0).step, 8);
    }
  }
}

}  // namespace
}  // namespace octopage
