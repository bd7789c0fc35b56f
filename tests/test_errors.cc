// Bad inputs as a table: each row is a mutation that makes one input bad, where the
// API must catch it (constructor, add_param_group, step), and the message it must give.
// A rejected add_param_group adds nothing; a rejected step changes no parameter and no
// state, and the optimizer steps normally once the input is fixed.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <regex>
#include <string>
#include <vector>

#include "octopage/octopage.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

using testing::TestParam;

// What a row may break: the options and the two parameters of param group 1, and a
// parameter that is already in the optimizer (param group 0, parameter 1) with the
// same element count and dtype as parameter 1, for rows that alias it.
struct Target {
  GroupOptions& options;
  Parameter& param0;
  Parameter& param1;
  const Parameter& resident;
};

// The sizes every fixture uses: parameter 1 of each group is 8-bit state sized.
constexpr std::int64_t kResidentNumel = 5000;
constexpr std::int64_t kParam1Numel = 5000;

GroupOptions eight_bit_options() {
  GroupOptions o = default_options("adamw");
  o.set("lr", 1e-2);
  o.optim_bits = 8;
  return o;
}

// Stages at which a row's mutation must be caught (a bit mask).
enum Stage : unsigned {
  kAtConstruction = 1,  // as the optimizer's defaults (options rows only)
  kAtAddParamGroup = 2,
  kAtStep = 4,
};

struct ErrorCase {
  const char* name;
  unsigned stages;
  // What the message names first: "param group 1: " for an option, "param group 1,
  // parameter 1: " for a parameter, "" for memory shared between parameters. As the
  // optimizer's defaults, an option's message starts "optimizer defaults: " instead.
  const char* where;
  std::string message;  // a regex for the rest of the message
  std::function<void(Target&)> make_bad;
  ErrorKind kind = ErrorKind::kInvalidArgument;
};

constexpr unsigned kOptionStages = kAtConstruction | kAtAddParamGroup | kAtStep;
constexpr unsigned kParamStages = kAtAddParamGroup | kAtStep;
constexpr const char* kGroup = "param group 1: ";
constexpr const char* kParam1 = "param group 1, parameter 1: ";

// What a CUDA buffer is told, in this build on this machine: no backend, no GPU, or (with
// a GPU) that the address is host memory, as the rows' buffers are; a stepped parameter
// is not asked about its memory again (Note [Checking CUDA buffers]), and its cpu state
// or cpu parameter gives the message instead.
std::string cuda_buffer_error(const std::string& name) {
  if (!cuda_built()) return "expected " + name + " on the cpu: this build of octopage has no CUDA backend, got a cuda buffer";
  if (cuda_device_count() == 0) return "expected a usable CUDA device for the cuda " + name + ", got none: ";
  return "(expected the cuda " + name + "'s data in CUDA device or managed memory, got a host address|"
         "expected a cpu parameter \\(the device its optimizer state was created on\\), got a cuda one|"
         "expected the gradient on cpu \\(the parameter's device\\), got cuda)";
}

// cpu_step without the CUDA backend is a bad option; with it, a bad placement for the
// first cpu parameter that takes it.
const char* const kCpuStepCudaError = "expected a cuda parameter for placement 'cpu_step'";
std::string cpu_step_error() {
  return cuda_built() ? kCpuStepCudaError
                      : "expected placement 'device', 'paged' or 'offload', got 'cpu_step': 'cpu_step' .* needs the "
                        "CUDA backend";
}

float* as_floats(void* data) { return static_cast<float*>(data); }

// Sets betas[k] of options that hold both betas, keeping the other.
void set_beta(GroupOptions& options, std::size_t k, double value) {
  std::vector<double> betas = options.values("betas");
  betas.at(k) = value;
  options.set("betas", std::move(betas));
}

const ErrorCase kErrorCases[] = {
    // Options.
    {"NegativeLr", kOptionStages, kGroup, "expected lr to be finite and >= 0, got -0\\.001",
     [](Target& t) { t.options.set("lr", -1e-3); }},
    {"NanLr", kOptionStages, kGroup, "expected lr to be finite and >= 0, got -?nan",
     [](Target& t) { t.options.set("lr", std::numeric_limits<double>::quiet_NaN()); }},
    {"InfiniteLr", kOptionStages, kGroup, "expected lr to be finite and >= 0, got inf",
     [](Target& t) { t.options.set("lr", std::numeric_limits<double>::infinity()); }},
    {"NegativeEps", kOptionStages, kGroup, "expected eps to be finite and >= 0, got -1e-08",
     [](Target& t) { t.options.set("eps", -1e-8); }},
    {"NegativeWeightDecay", kOptionStages, kGroup,
     "expected weight_decay to be finite and >= 0, got -0\\.01",
     [](Target& t) { t.options.set("weight_decay", -0.01); }},
    {"Beta1One", kOptionStages, kGroup, "expected 0 <= betas\\[0\\] < 1, got 1$",
     [](Target& t) { set_beta(t.options, 0, 1.0); }},
    {"Beta2Negative", kOptionStages, kGroup, "expected 0 <= betas\\[1\\] < 1, got -0\\.5",
     [](Target& t) { set_beta(t.options, 1, -0.5); }},
    {"Beta2Nan", kOptionStages, kGroup, "expected 0 <= betas\\[1\\] < 1, got -?nan",
     [](Target& t) { set_beta(t.options, 1, std::numeric_limits<double>::quiet_NaN()); }},
    {"OptimBits16", kOptionStages, kGroup, "expected optim_bits 32 or 8, got 16",
     [](Target& t) { t.options.optim_bits = 16; }},
    {"NegativeMin8bitSize", kOptionStages, kGroup, "expected min_8bit_size >= 0, got -1",
     [](Target& t) { t.options.min_8bit_size = -1; }},
    {"AmsgradWith8BitState", kOptionStages, kGroup,
     "amsgrad=True is not supported with 8-bit state \\(optim_bits=8\\)",
     [](Target& t) { t.options.set("amsgrad", 1.0); }},
    {"PlacementCpuStep", cuda_built() ? kParamStages : kOptionStages,
     cuda_built() ? "param group 1, parameter 0: " : kGroup, cpu_step_error(),
     [](Target& t) { t.options.placement = Placement::kCpuStep; }},

    // Parameters and gradients.
    {"NegativeNumel", kParamStages, kParam1, "expected parameter element count >= 0, got -1",
     [](Target& t) { t.param1.value.numel = -1; }},
    {"NegativeGradNumel", kParamStages, kParam1, "expected gradient element count >= 0, got -3",
     [](Target& t) { t.param1.grad.numel = -3; }},
    {"NullData", kParamStages, kParam1,
     "expected a non-null parameter pointer for 5000 elements, got nullptr",
     [](Target& t) { t.param1.value.data = nullptr; }},
    {"UnknownDType", kParamStages, kParam1,
     "expected parameter dtype float32, bfloat16 or float16, got dtype #7",
     [](Target& t) { t.param1.value.dtype = static_cast<DType>(7); }},
    {"UnknownGradDType", kParamStages, kParam1,
     "expected gradient dtype float32, bfloat16 or float16, got dtype #200",
     [](Target& t) { t.param1.grad.dtype = static_cast<DType>(200); }},
    {"CudaParameter", kParamStages, kParam1,
     cuda_buffer_error("parameter"),
     [](Target& t) { t.param1.value.device = Device::kCUDA; }},
    {"CudaGradient", kParamStages, kParam1, cuda_buffer_error("gradient"),
     [](Target& t) { t.param1.grad.device = Device::kCUDA; }},
    {"GradNumelMismatch", kParamStages, kParam1,
     "expected a gradient of 5000 elements \\(the parameter's\\), got 4999",
     [](Target& t) { t.param1.grad.numel = kParam1Numel - 1; }},
    {"GradDTypeMismatch", kParamStages, kParam1,
     "expected gradient dtype float32 \\(the parameter's\\), got bfloat16",
     [](Target& t) { t.param1.grad.dtype = DType::kBFloat16; }},

    // Per-parameter overrides.
    {"OverrideOptimBits4", kParamStages, kParam1, "expected optim_bits 32 or 8, got 4",
     [](Target& t) { t.param1.overrides.optim_bits = 4; }},
    {"OverrideCpuStep", kParamStages, kParam1,
     cuda_built() ? kCpuStepCudaError : "expected placement 'device', 'paged' or 'offload', got 'cpu_step'",
     [](Target& t) { t.param1.overrides.placement = Placement::kCpuStep; }},
    {"OverrideNegativeLr", kParamStages, kParam1, "expected lr to be finite and >= 0, got -1",
     [](Target& t) { t.param1.overrides.hyperparameters = {{"lr", {-1.0}}}; }},
    {"OverrideUnknownHyperparameter", kParamStages, kParam1,
     "expected hyperparameters of AdamW \\(lr, betas, eps, weight_decay, amsgrad\\), got 'momentum'",
     [](Target& t) { t.param1.overrides.hyperparameters = {{"momentum", {0.9}}}; }},
    {"OverrideSelectsAnotherVariant", kParamStages, kParam1,
     "expected overrides that keep its group's amsgrad=False, got overrides that select amsgrad=True",
     [](Target& t) {
       t.options.optim_bits = 32;
       t.param1.overrides.hyperparameters = {{"amsgrad", {1.0}}};
     }},
    {"OverrideNegativeMaxUnorm", kParamStages, kParam1, "expected max_unorm to be finite and >= 0",
     [](Target& t) { t.param1.overrides.max_unorm = -1.0; }},
    {"Override8BitWithAmsgrad", kParamStages, kParam1,
     "amsgrad=True is not supported with 8-bit state",
     [](Target& t) {
       t.options.optim_bits = 32;
       t.options.set("amsgrad", 1.0);
       t.param1.overrides.optim_bits = 8;
     }},

    // Memory shared between parameters. Equal starts sort in either order.
    {"SameParameterInTwoGroups", kParamStages, "",
     "expected every parameter in its own memory, got parameter 1 of param group [01] and "
     "parameter 1 of param group [01] sharing memory \\(a parameter may appear only once\\)",
     [](Target& t) { t.param1.value = t.resident.value; }},
    {"OverlappingBuffers", kParamStages, "",
     "expected every parameter in its own memory, got parameter 1 of param group 0 and "
     "parameter 1 of param group 1 sharing memory",
     [](Target& t) {
       // One element past the resident's start: the last 4 bytes lie in its buffer's
       // slack, so the pointer stays inside a live allocation.
       t.param1.value.data = as_floats(t.resident.value.data) + 1;
     }},
    {"SameParameterTwiceInOneGroup", kAtAddParamGroup, "",
     "expected every parameter in its own memory, got parameter [01] of param group 1 and "
     "parameter [01] of param group 1 sharing memory",
     [](Target& t) { t.param0 = t.param1; }},

    // Existing state that no longer fits (only step() knows the state).
    {"NumelChangedAfterStateCreated", kAtStep, kParam1,
     "expected 5000 elements \\(the size its optimizer state was created for\\), got 4999",
     [](Target& t) {
       t.param1.value.numel = kParam1Numel - 1;
       t.param1.grad.numel = kParam1Numel - 1;
     }},
    {"DTypeChangedAfterStateCreated", kAtStep, kParam1,
     "expected dtype float32 \\(the dtype its optimizer state was created for\\), got bfloat16",
     [](Target& t) {
       t.param1.value.dtype = DType::kBFloat16;
       t.param1.grad.dtype = DType::kBFloat16;
     }},
    {"AmsgradTurnedOnAfterStateCreated", kAtStep, kParam1,
     "expected amsgrad=False \\(its optimizer state was created so\\), got amsgrad=True",
     [](Target& t) {
       t.options.set("amsgrad", 1.0);
       t.options.optim_bits = 32;  // valid options: only the existing state objects
     }},
};

// gtest prints a failing row by its name rather than by its bytes.
void PrintTo(const ErrorCase& c, std::ostream* out) { *out << c.name; }

std::vector<ErrorCase> cases_at(Stage stage) {
  std::vector<ErrorCase> out;
  for (const ErrorCase& c : kErrorCases) {
    if (c.stages & stage) out.push_back(c);
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; }

// Runs `call`, which must throw an Error of `kind` whose message matches `pattern`.
void expect_error(const std::function<void()>& call, ErrorKind kind, const std::string& pattern) {
  std::optional<Error> caught;
  try {
    call();
  } catch (const Error& e) {
    caught = e;
  }
  ASSERT_TRUE(caught.has_value()) << "no Error thrown; expected a message matching " << pattern;
  EXPECT_EQ(caught->kind(), kind) << caught->what();
  EXPECT_TRUE(std::regex_search(caught->what(), std::regex(pattern)))
      << "message: " << caught->what() << "\nexpected to match: " << pattern;
}

std::vector<std::uint8_t> bytes_of(const std::vector<float>& v) {
  std::vector<std::uint8_t> out(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// Two snapshots are the same state, bit for bit: the same arrays, in the same order.
void expect_same_state(const StateSnapshot& expected, const StateSnapshot& actual) {
  EXPECT_EQ(actual.step, expected.step);
  EXPECT_EQ(actual.format, expected.format);
  ASSERT_EQ(actual.arrays.size(), expected.arrays.size()) << "state arrays";
  for (std::size_t k = 0; k < expected.arrays.size(); ++k) {
    const StateArray& e = expected.arrays[k];
    const StateArray& a = actual.arrays[k];
    EXPECT_EQ(a.name, e.name) << "state array " << k;
    EXPECT_EQ(bytes_of(a.values), bytes_of(e.values)) << e.name << " values";
    EXPECT_EQ(a.codes, e.codes) << e.name << " codes";
    EXPECT_EQ(bytes_of(a.absmax), bytes_of(e.absmax)) << e.name << " absmax";
  }
}

// ---- Construction: an options row as the optimizer's defaults.

class ConstructorErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConstructorErrors, RejectsBadDefaults) {
  const ErrorCase& c = GetParam();
  GroupOptions options = eight_bit_options();
  Parameter unused0, unused1;
  Target target{options, unused0, unused1, unused0};
  c.make_bad(target);
  expect_error([&] { Optimizer opt("adamw", options); }, c.kind,
               std::string("^optimizer defaults: ") + c.message);
}

INSTANTIATE_TEST_SUITE_P(Table, ConstructorErrors, ::testing::ValuesIn(cases_at(kAtConstruction)),
                         case_name);

// ---- add_param_group: a bad second group is refused and nothing is added.

class AddParamGroupErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(AddParamGroupErrors, RejectsTheGroupAndAddsNothing) {
  const ErrorCase& c = GetParam();
  TestParam small(DType::kFloat32, 300, 1), resident(DType::kFloat32, kResidentNumel, 2);
  TestParam new0(DType::kBFloat16, 4099, 3), new1(DType::kFloat32, kParam1Numel, 4);
  Optimizer opt("adamw", eight_bit_options());
  opt.add_param_group({small.parameter(), resident.parameter()});

  GroupOptions options = eight_bit_options();
  std::vector<Parameter> params = {new0.parameter(), new1.parameter()};
  const Parameter resident_param = resident.parameter();
  Target target{options, params[0], params[1], resident_param};
  c.make_bad(target);
  expect_error([&] { opt.add_param_group(params, options); }, c.kind,
               std::string("^") + c.where + c.message);
  EXPECT_EQ(opt.num_param_groups(), 1u);

  // The good group is still welcome, and the optimizer steps all of it.
  opt.add_param_group({new0.parameter(), new1.parameter()}, eight_bit_options());
  ASSERT_EQ(opt.num_param_groups(), 2u);
  for (TestParam* p : {&small, &resident, &new0, &new1}) p->set_grad(5);
  opt.step();
  EXPECT_EQ(opt.state(1, 1).step, 1);
}

INSTANTIATE_TEST_SUITE_P(Table, AddParamGroupErrors,
                         ::testing::ValuesIn(cases_at(kAtAddParamGroup)), case_name);

// ---- step(): an optimizer that has stepped once, in two 8-bit groups:
//   group 0: parameter 0, 300 fp32 (fp32 state), parameter 1, 5000 fp32 (8-bit state);
//   group 1: parameter 0, 4099 bf16, no gradient at the first step, so no state yet,
//            parameter 1, 5000 fp32 (8-bit state), the one rows break.
// Its gradients are then refreshed, so a step that ran would change every parameter.
class SteppedOptimizer {
 public:
  SteppedOptimizer() : opt_("adamw", eight_bit_options()) {
    opt_.add_param_group({params_[0].parameter(), params_[1].parameter()});
    opt_.add_param_group({params_[2].parameter(), params_[3].parameter()});
    opt_.param_group(1).set_grad(0, TensorRef{});
    set_grads(100);
    opt_.step();
    opt_.param_group(1).set_grad(0, params_[2].grad.ref());
    set_grads(200);
  }

  Optimizer& opt() { return opt_; }
  Target target() {
    ParamGroup& group = opt_.param_group(1);
    return Target{group.options, group.param(0), group.param(1), opt_.param_group(0).param(1)};
  }

  struct Bits {
    std::vector<std::vector<std::uint8_t>> values;
    std::vector<StateSnapshot> states;
  };
  Bits bits() const {
    Bits out;
    for (std::size_t k = 0; k < kCount; ++k) {
      out.values.push_back(params_[k].value.bytes());
      out.states.push_back(opt_.state(k / 2, k % 2));
    }
    return out;
  }

  static constexpr std::size_t kCount = 4;

 private:
  void set_grads(std::uint64_t seed) {
    for (std::size_t k = 0; k < kCount; ++k) params_[k].set_grad(seed + k);
  }

  TestParam params_[kCount] = {{DType::kFloat32, 300, 1},
                               {DType::kFloat32, kResidentNumel, 2},
                               {DType::kBFloat16, 4099, 3},
                               {DType::kFloat32, kParam1Numel, 4}};
  Optimizer opt_;
};

void expect_same_bits(const SteppedOptimizer::Bits& expected,
                      const SteppedOptimizer::Bits& actual) {
  for (std::size_t k = 0; k < SteppedOptimizer::kCount; ++k) {
    SCOPED_TRACE("param group " + std::to_string(k / 2) + ", parameter " + std::to_string(k % 2));
    EXPECT_EQ(actual.values[k], expected.values[k]) << "parameter bytes";
    expect_same_state(expected.states[k], actual.states[k]);
  }
}

class StepErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(StepErrors, RejectsTheStepAndModifiesNothing) {
  const ErrorCase& c = GetParam();
  SteppedOptimizer run;
  ASSERT_EQ(run.opt().state(0, 1).format, StateFormat::kQ8);
  ASSERT_EQ(run.opt().state(1, 1).format, StateFormat::kQ8);
  ASSERT_EQ(run.opt().state(1, 0).step, 0);

  const SteppedOptimizer::Bits before = run.bits();
  ParamGroup& group = run.opt().param_group(1);
  const GroupOptions good_options = group.options;
  const Parameter good0 = group.param(0), good1 = group.param(1);
  Target target = run.target();
  c.make_bad(target);
  expect_error([&] { run.opt().step(); }, c.kind, std::string("^") + c.where + c.message);
  expect_same_bits(before, run.bits());

  // Fixed, the step runs, and is exactly the step that a run which never saw the bad
  // input takes.
  group.options = good_options;
  group.param(0) = good0;
  group.param(1) = good1;
  run.opt().step();
  EXPECT_EQ(run.opt().state(0, 0).step, 2);
  EXPECT_EQ(run.opt().state(0, 1).step, 2);
  EXPECT_EQ(run.opt().state(1, 0).step, 1);
  EXPECT_EQ(run.opt().state(1, 1).step, 2);
  SteppedOptimizer never_bad;
  never_bad.opt().step();
  expect_same_bits(never_bad.bits(), run.bits());
}

INSTANTIATE_TEST_SUITE_P(Table, StepErrors, ::testing::ValuesIn(cases_at(kAtStep)), case_name);

TEST(Errors, EveryRowIsCheckedSomewhere) {
  for (const ErrorCase& c : kErrorCases) {
    EXPECT_NE(c.stages, 0u) << c.name;
    EXPECT_FALSE((c.stages & kAtConstruction) && std::string(c.where) != kGroup)
        << c.name << ": only options are checked at construction";
  }
}

}  // namespace
}  // namespace octopage
