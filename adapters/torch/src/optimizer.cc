// octopage::torch::Optimizer: torch's param groups and archives on one side, the core
// octopage::Optimizer on the other. Rule-neutral: options are converted by name
// (options.cc) and states by the registry's names (state_archive.cc); the update itself
// is the core's.
#include "octopage/torch/optimizer.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "adapters/torch/src/device.h"
#include "adapters/torch/src/errors.h"
#include "adapters/torch/src/state_archive.h"

namespace octopage::torch {
namespace {

using ::torch::optim::OptimizerParamGroup;
using ::torch::serialize::InputArchive;
using ::torch::serialize::OutputArchive;

// torch::optim's archive layout version, which its loaders require.
constexpr const char* kTorchArchiveVersion = "1.5.0";

// A step uses torch's intra-op thread count, unless the user chose one for octopage.
void follow_torch_threads() { follow_num_threads(at::get_num_threads()); }

std::int64_t read_count(InputArchive& archive, const std::string& key) {
  ::torch::Tensor count;
  TORCH_CHECK_VALUE(archive.try_read(key, count) || archive.try_read(key, count, /*is_buffer=*/true),
                    "expected ", key, " in the checkpoint: it is not a torch::optim optimizer archive");
  return count.item<std::int64_t>();
}

// `current` with what a checkpoint's options set of the rule's hyperparameters,
// percentile_clipping and max_unorm; the options that say how state is kept stay.
Options with_checkpoint(const Options& current, const Options& saved, const RuleInfo& rule) {
  Options r = current;
  for (const HyperparameterInfo& h : rule.hyperparameters) {
    if (saved.is_set(h.name)) r.set(h.name, saved.values(h.name));
  }
  if (saved.is_set("percentile_clipping")) r.percentile_clipping(saved.percentile_clipping());
  if (saved.is_set("max_unorm")) r.max_unorm(saved.max_unorm());
  return r;
}

}  // namespace

Options Optimizer::class_defaults(const Options& given, const ClassInfo& info) {
  if (info.bits != 0) {
    TORCH_CHECK_VALUE(!given.is_set("optim_bits") || given.optim_bits() == info.bits, info.name, " always keeps ",
                      info.bits, "-bit state: expected optim_bits unset or ", info.bits, ", got ",
                      given.optim_bits());
  }
  if (info.paged) {
    TORCH_CHECK_VALUE(!given.is_set("placement") || given.placement() == Placement::kPaged, info.name,
                      " places its state 'paged': expected placement unset or 'paged', got '",
                      placement_name(given.placement()), "'");
  }
  const GroupOptions core = translated([&] { return default_options(info.rule); });
  Options base;
  base.set_rule(info.rule);
  for (const Hyperparameter& h : core.hyperparameters()) base.set(h.name, h.values);
  base.optim_bits(info.bits != 0 ? info.bits : core.optim_bits)
      .min_8bit_size(core.min_8bit_size)
      .placement(info.paged ? Placement::kPaged : core.placement)
      .percentile_clipping(core.percentile_clipping)
      .max_unorm(core.max_unorm);
  return given.over(base);
}

Optimizer::Optimizer(const std::vector<OptimizerParamGroup>& param_groups, const Options& defaults,
                     TierOptions tiers, const ClassInfo& info)
    : ::torch::optim::Optimizer(std::vector<OptimizerParamGroup>{},
                                info.make_options(class_defaults(defaults, info))),
      class_(info),
      core_(translated([&] {
        return octopage::Optimizer(info.rule, static_cast<const Options&>(*defaults_).group_options(),
                                   with_torch_allocator(std::move(tiers)));
      })) {
  for (const OptimizerParamGroup& group : param_groups) add_param_group(group);
}

const Options& Optimizer::options(std::size_t group) const {
  TORCH_CHECK_VALUE(group < param_groups_.size(), "expected a param group index below ", param_groups_.size(),
                    ", got ", group);
  const auto* options = dynamic_cast<const Options*>(&param_groups_[group].options());
  TORCH_CHECK_VALUE(options != nullptr, "param group ", group, ": expected octopage::torch options, got "
                    "another optimizer's options");
  return *options;
}

Options& Optimizer::options(std::size_t group) { return const_cast<Options&>(std::as_const(*this).options(group)); }

void Optimizer::add_param_group(const OptimizerParamGroup& param_group) {
  Options options = static_cast<const Options&>(*defaults_);
  if (param_group.has_options()) {
    const auto* given = dynamic_cast<const Options*>(&param_group.options());
    TORCH_CHECK_VALUE(given != nullptr, name(), ": expected a param group's options to be octopage::torch "
                      "options (Options, AdamOptions, SGDOptions, ...), got another optimizer's options");
    options = given->over(options);
  }
  // torch's checks (leaf tensors), with the defaults' options, which are then replaced:
  // torch would not merge options of a type it does not know.
  ::torch::optim::Optimizer::add_param_group(OptimizerParamGroup(param_group.params()));
  param_groups_.back().set_options(class_.make_options(options));
  register_new_groups();
}

void Optimizer::register_new_groups() {
  for (std::size_t g = core_.num_param_groups(); g < param_groups_.size(); ++g) {
    try {
      const GroupOptions group_options = options(g).group_options();
      const std::vector<::torch::Tensor>& tensors = param_groups_[g].params();
      std::vector<Parameter> params(tensors.size());
      for (std::size_t i = 0; i < tensors.size(); ++i) params[i].value = tensor_ref(tensors[i], "parameter", g, i);
      translated([&] { core_.add_param_group(std::move(params), group_options); });
    } catch (...) {
      param_groups_.erase(param_groups_.begin() + static_cast<std::ptrdiff_t>(g), param_groups_.end());
      throw;
    }
  }
}

void Optimizer::sync_core(bool with_grads) {
  register_new_groups();
  TORCH_CHECK_VALUE(param_groups_.size() == core_.num_param_groups(), name(), ": expected ",
                    core_.num_param_groups(), " param groups, got ", param_groups_.size(),
                    ": a param group cannot be removed");
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    const std::vector<::torch::Tensor>& tensors = param_groups_[g].params();
    ParamGroup& group = core_.param_group(g);
    TORCH_CHECK_VALUE(tensors.size() == group.size(), "param group ", g, ": expected ", group.size(),
                      " parameters (as when the group was added), got ", tensors.size(),
                      ": add parameters with add_param_group, not to an existing group");
    group.options = options(g).group_options();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      group.param(i).value = tensor_ref(tensors[i], "parameter", g, i);
      const ::torch::Tensor& grad = tensors[i].grad();
      group.set_grad(i, with_grads && grad.defined() ? tensor_ref(grad, "gradient", g, i) : TensorRef{});
    }
  }
}

void Optimizer::follow_torch_stream() {
  for (const OptimizerParamGroup& group : param_groups_) {
    for (const ::torch::Tensor& p : group.params()) {
      if (p.is_cuda() && cuda_built()) {
        core_.set_cuda_stream(current_torch_stream());
        return;
      }
    }
  }
}

::torch::Tensor Optimizer::step(LossClosure closure) {
  ::torch::Tensor loss;
  if (closure != nullptr) {
    c10::AutoGradMode enable_grad(true);
    loss = closure();
  }
  sync_core(/*with_grads=*/true);
  follow_torch_threads();
  follow_torch_stream();
  translated([&] { core_.step(); });
  // The parameters changed in place, as torch's optimizers change them: autograd must see
  // it (a graph that saved a parameter before the step refuses to run backward).
  for (const OptimizerParamGroup& group : param_groups_) {
    for (const ::torch::Tensor& p : group.params()) {
      if (p.grad().defined() && !p.is_inference()) p.unsafeGetTensorImpl()->bump_version();
    }
  }
  return loss;
}

StateSnapshot Optimizer::core_state(std::size_t group, std::size_t index) const {
  TORCH_CHECK_VALUE(group < core_.num_param_groups(), "expected a param group index below ",
                    core_.num_param_groups(), ", got ", group);
  return translated([&] { return core_.state(group, index); });
}

MemoryReport Optimizer::memory_report() const { return core_.memory_report(); }

std::vector<std::string> Optimizer::state_files() const { return core_.state_files(); }

void Optimizer::page_out() {
  follow_torch_stream();
  translated([&] { core_.page_out(); });
}

// Note [Optimizer archive]
// torch::optim's layout (torch/optim/serialize.h): pytorch_version; state/<key> holding
// each parameter's state; param_groups/size and param_groups/<g> holding params/size,
// params/<i> (the key of parameter i's state) and options (Options::serialize: every
// hyperparameter of the rule, so torch::optim's option loaders, which require each of
// theirs, find them). torch keys state by a TensorImpl address; here the key is the
// parameter's position across all groups. Loading maps the checkpoint's parameters to
// this optimizer's by position, as torch does. A parameter's state keys are Note
// [Archive state keys].

void Optimizer::save(OutputArchive& archive) const {
  archive.write("pytorch_version", c10::IValue(kTorchArchiveVersion));
  archive.write("octopage_version", c10::IValue(OCTOPAGE_VERSION_STRING));
  OutputArchive state(archive.compilation_unit());
  OutputArchive groups(archive.compilation_unit());
  groups.write("param_groups/size", ::torch::tensor(static_cast<std::int64_t>(param_groups_.size())));
  const std::vector<StateInfo> states = rule_states(core_.rule());
  std::int64_t key = 0;
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    const std::vector<::torch::Tensor>& params = param_groups_[g].params();
    OutputArchive group(archive.compilation_unit());
    group.write("params/size", ::torch::tensor(static_cast<std::int64_t>(params.size())));
    for (std::size_t i = 0; i < params.size(); ++i, ++key) {
      group.write("params/" + std::to_string(i), c10::IValue(std::to_string(key)));
      if (g >= core_.num_param_groups()) continue;  // added through torch's add_param_group: no state yet
      StateSnapshot snapshot = core_state(g, i);
      if (snapshot.step == 0) continue;
      OutputArchive param_state(archive.compilation_unit());
      write_state(param_state, std::move(snapshot), params[i], states);
      state.write(std::to_string(key), param_state);
    }
    OutputArchive options_archive(archive.compilation_unit());
    options(g).serialize(options_archive);
    group.write("options", options_archive);
    groups.write("param_groups/" + std::to_string(g), group);
  }
  archive.write("state", state);
  archive.write("param_groups", groups);
}

void Optimizer::load(InputArchive& archive) {
  sync_core(/*with_grads=*/false);  // the state's format and placement follow the current options
  c10::IValue version;
  TORCH_CHECK_VALUE(archive.try_read("pytorch_version", version) && version.isString() &&
                        version.toStringRef() == kTorchArchiveVersion,
                    name(), ": expected a torch::optim optimizer archive (pytorch_version ", kTorchArchiveVersion,
                    "), got ", version.isString() ? version.toStringRef() : "none");
  InputArchive groups, state;
  TORCH_CHECK_VALUE(archive.try_read("param_groups", groups) && archive.try_read("state", state), name(),
                    ": expected param_groups and state in the checkpoint");
  const std::int64_t num_groups = read_count(groups, "param_groups/size");
  TORCH_CHECK_VALUE(num_groups == static_cast<std::int64_t>(param_groups_.size()), name(),
                    ": expected a checkpoint of ", param_groups_.size(), " param groups (this optimizer's), got ",
                    num_groups);

  // Read everything first: nothing changes unless the whole checkpoint fits.
  const std::vector<StateInfo> states = rule_states(core_.rule());
  std::vector<StateLoad> loads;
  std::vector<std::unique_ptr<Options>> loaded(param_groups_.size());
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    InputArchive group;
    groups.read("param_groups/" + std::to_string(g), group);
    const std::size_t size = param_groups_[g].params().size();
    const std::int64_t saved_size = read_count(group, "params/size");
    TORCH_CHECK_VALUE(saved_size == static_cast<std::int64_t>(size), "param group ", g, ": expected ", size,
                      " parameters (this optimizer's), got ", saved_size, " in the checkpoint");
    Options saved;
    InputArchive options_archive;
    if (group.try_read("options", options_archive)) saved.serialize(options_archive);
    loaded[g] = class_.make_options(with_checkpoint(options(g), saved, rule()));
    for (std::size_t i = 0; i < size; ++i) {
      c10::IValue key;
      group.read("params/" + std::to_string(i), key);
      TORCH_CHECK_VALUE(key.isString(), "param group ", g, ", parameter ", i,
                        ": expected a string key in the checkpoint, got ", key.tagKind());
      StateLoad load;
      load.group = g;
      load.index = i;
      InputArchive param_state;
      if (state.try_read(key.toStringRef(), param_state)) load.state = read_state(param_state, states, g, i);
      loads.push_back(std::move(load));
    }
  }

  // The core loads under the checkpoint's hyperparameters (they choose each state's
  // variant, as amsgrad does); when it refuses, the groups keep their options.
  std::vector<GroupOptions> before;
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    before.push_back(core_.param_group(g).options);
    core_.param_group(g).options = loaded[g]->group_options();
  }
  try {
    follow_torch_stream();
    translated([&] { core_.load_state(std::move(loads)); });
  } catch (...) {
    for (std::size_t g = 0; g < param_groups_.size(); ++g) core_.param_group(g).options = std::move(before[g]);
    throw;
  }
  for (std::size_t g = 0; g < param_groups_.size(); ++g) param_groups_[g].set_options(std::move(loaded[g]));
}

}  // namespace octopage::torch
