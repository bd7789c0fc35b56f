// octopage::torch optimizers: torch's param groups and archives on one side, the core
// octopage::Optimizer on the other. Every tensor check and every conversion between
// torch and the core is here; the update itself is the core's.
#include "octopage/torch/optim.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <c10/core/Allocator.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

namespace octopage::torch {
namespace {

using ::torch::optim::OptimizerParamGroup;
using ::torch::serialize::InputArchive;
using ::torch::serialize::OutputArchive;

// torch::optim's archive layout version, which its loaders require.
constexpr const char* kTorchArchiveVersion = "1.5.0";

[[noreturn]] void throw_as_c10(const Error& e) {
  if (e.kind() == ErrorKind::kInvalidArgument) C10_THROW_ERROR(ValueError, e.what());
  C10_THROW_ERROR(Error, e.what());
}

// f(), with the core's octopage::Error thrown again as the c10 error of its kind.
template <class F>
auto translated(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw_as_c10(e);
  }
}

Placement placement_from(const std::string& name) {
  for (Placement p : {Placement::kDevice, Placement::kPaged, Placement::kOffload, Placement::kCpuStep}) {
    if (name == placement_name(p)) return p;
  }
  TORCH_CHECK_VALUE(false, "expected placement 'device', 'paged', 'offload' or 'cpu_step', got '", name, "'");
}

// A parameter's or gradient's buffer as the core takes it: dense, contiguous, on the CPU
// or (in a build with the CUDA backend) a CUDA device.
TensorRef tensor_ref(const ::torch::Tensor& t, const char* what, std::size_t group, std::size_t index) {
  TORCH_CHECK_VALUE(t.defined(), "param group ", group, ", parameter ", index, ": expected a defined ", what,
                    ", got an undefined tensor");
  TORCH_CHECK_VALUE(t.layout() == ::torch::kStrided, "param group ", group, ", parameter ", index,
                    ": expected a dense ", what, ", got a ", t.layout(), " tensor");
  const bool on_cuda = t.device().is_cuda() && cuda_built();
  TORCH_CHECK_VALUE(t.device().is_cpu() || on_cuda, "param group ", group, ", parameter ", index, ": expected the ",
                    what, " on the CPU, got a tensor on ", t.device(),
                    cuda_built() ? "" : ": this build of octopage has no CUDA backend");
  DType dtype = DType::kFloat32;
  switch (t.scalar_type()) {
    case ::torch::kFloat: dtype = DType::kFloat32; break;
    case ::torch::kBFloat16: dtype = DType::kBFloat16; break;
    case ::torch::kHalf: dtype = DType::kFloat16; break;
    default:
      TORCH_CHECK_VALUE(false, "param group ", group, ", parameter ", index, ": expected a ", what,
                        " of dtype float32, bfloat16 or float16, got ", t.scalar_type());
  }
  TORCH_CHECK_VALUE(t.is_contiguous(), "param group ", group, ", parameter ", index, ": expected a contiguous ",
                    what, " (octopage updates memory in place), got a strided view of sizes ", t.sizes(),
                    " and strides ", t.strides(), "; make the parameter itself contiguous, not a view of it");
  return TensorRef{t.numel() == 0 ? empty_tensor_data() : t.data_ptr(), t.numel(), dtype,
                   on_cuda ? Device::kCUDA : Device::kCPU};
}

// PyTorch's CUDA caching allocator as the core's allocator of CUDA state, so that
// torch's CUDA memory statistics count it. It keeps each allocation's DataPtr, which
// owns the memory, until the core gives the address back.
class TorchCudaAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    try {
      c10::DataPtr data = c10::GetAllocator(c10::DeviceType::CUDA)->allocate(bytes);
      void* p = data.get();
      const std::lock_guard<std::mutex> lock(mutex_);
      live_.emplace(p, std::move(data));
      return p;
    } catch (const c10::Error&) {
      return nullptr;  // out of memory: the core says so
    }
  }
  void deallocate(void* p, std::size_t) noexcept override {
    const std::lock_guard<std::mutex> lock(mutex_);
    live_.erase(p);
  }
  Tier tier() const override { return Tier::kDevice; }

 private:
  std::mutex mutex_;
  std::unordered_map<void*, c10::DataPtr> live_;
};

// The tiers with PyTorch's CUDA allocator for device state, where CUDA can run.
TierOptions with_torch_allocator(TierOptions tiers) {
  if (cuda_built() && !tiers.device_allocator && cuda_device_count() > 0) {
    tiers.device_allocator = std::make_shared<TorchCudaAllocator>();
  }
  return tiers;
}

// PyTorch's current stream on the current CUDA device, as the core's stream.
CudaStream current_torch_stream() {
  const c10::impl::DeviceGuardImplInterface* cuda = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
  return cuda->getStream(c10::Device(c10::DeviceType::CUDA, cuda->getDevice().index())).native_handle();
}

// A step uses torch's intra-op thread count, unless the user chose one for octopage.
void follow_torch_threads() { follow_num_threads(at::get_num_threads()); }

// The defaults of a named class: the options `given` sets, over its class's.
AdamOptions class_defaults(const AdamOptions& given, const Variant& variant) {
  using Field = AdamOptions::Field;
  if (variant.bits != 0) {
    TORCH_CHECK_VALUE(!given.is_set(Field::kOptimBits) || given.optim_bits() == variant.bits, variant.name,
                      " always keeps ", variant.bits, "-bit state: expected optim_bits unset or ", variant.bits,
                      ", got ", given.optim_bits());
  }
  if (variant.paged) {
    TORCH_CHECK_VALUE(!given.is_set(Field::kPlacement) || given.placement() == Placement::kPaged, variant.name,
                      " places its state 'paged': expected placement unset or 'paged', got '",
                      placement_name(given.placement()), "'");
  }
  const GroupOptions core = translated([&] { return default_options(variant.rule); });
  const std::vector<double>& betas = core.values("betas");
  AdamOptions base;
  base.lr(core.get("lr"))
      .betas({betas.at(0), betas.at(1)})
      .eps(core.get("eps"))
      .weight_decay(core.get("weight_decay"))
      .amsgrad(core.get("amsgrad") != 0.0)
      .optim_bits(variant.bits != 0 ? variant.bits : core.optim_bits)
      .min_8bit_size(core.min_8bit_size)
      .placement(variant.paged ? Placement::kPaged : core.placement);
  return given.over(base);
}

octopage::Optimizer make_core(const char* rule, const ::torch::optim::OptimizerOptions& defaults,
                              TierOptions tiers) {
  const auto& options = static_cast<const AdamOptions&>(defaults);
  return translated([&] { return octopage::Optimizer(rule, options.group_options(), std::move(tiers)); });
}

// A tensor that owns `values` without copying them.
template <class T>
::torch::Tensor tensor_of(std::vector<T> values, ::torch::ScalarType type) {
  auto* owner = new std::vector<T>(std::move(values));
  return ::torch::from_blob(
      owner->data(), {static_cast<std::int64_t>(owner->size())},
      [owner](void*) { delete owner; }, ::torch::TensorOptions().dtype(type));
}

template <class T>
std::vector<T> values_of(const ::torch::Tensor& t) {
  const ::torch::Tensor dense = t.contiguous();
  const T* begin = dense.const_data_ptr<T>();
  return std::vector<T>(begin, begin + dense.numel());
}

// The states of every variant of `rule`, each once, in registry order: what a checkpoint
// of the rule may hold.
std::vector<StateInfo> rule_states(const RuleInfo& rule) {
  std::vector<StateInfo> states;
  for (const VariantInfo& variant : rule.variants) {
    for (const StateInfo& state : variant.states) {
      const auto same = [&](const StateInfo& known) { return known.name == state.name; };
      if (std::none_of(states.begin(), states.end(), same)) states.push_back(state);
    }
  }
  return states;
}

const StateInfo& state_info(const std::vector<StateInfo>& states, const std::string& name) {
  for (const StateInfo& state : states) {
    if (state.name == name) return state;
  }
  TORCH_CHECK(false, "expected a state of the optimizer's rule, got the core's state array '", name, "'");
}

// Note [Archive state keys]
// A parameter's state in the archive, by the registry's names for the rule's states
// (octopage::StateInfo), so a rule's states need no code here: 32-bit state, each state's
// values under torch's name (exp_avg, ...); 8-bit state, its codes under bitsandbytes'
// name (state1, ...) and its absmax under bitsandbytes' absmax name: absmax1 for state1
// ("absmax" and what follows "state"), <name>_absmax for a name not of that form.
std::string absmax_key(const StateInfo& state) {
  constexpr std::string_view kCodesPrefix = "state";
  const std::string& codes = state.bnb_name;
  if (codes.size() > kCodesPrefix.size() && codes.compare(0, kCodesPrefix.size(), kCodesPrefix) == 0) {
    return "absmax" + codes.substr(kCodesPrefix.size());
  }
  return codes + "_absmax";
}

// See Note [Archive state keys].
void write_state(OutputArchive& archive, StateSnapshot s, const ::torch::Tensor& param,
                 const std::vector<StateInfo>& states) {
  archive.write("step", c10::IValue(s.step));
  const auto write = [&](const std::string& key, ::torch::Tensor t, bool shaped) {
    if (shaped && t.numel() == param.numel()) t = t.view(param.sizes());
    archive.write(key, c10::IValue(t));
  };
  for (StateArray& array : s.arrays) {
    const StateInfo& state = state_info(states, array.name);
    if (s.format == StateFormat::kFp32) {
      write(state.name, tensor_of(std::move(array.values), ::torch::kFloat), true);
    } else {
      write(state.bnb_name, tensor_of(std::move(array.codes), ::torch::kByte), true);
      write(absmax_key(state), tensor_of(std::move(array.absmax), ::torch::kFloat), false);
    }
  }
}

// The tensor under `key`, or an undefined tensor when the archive has none.
::torch::Tensor read_tensor(InputArchive& archive, const std::string& key, ::torch::ScalarType type,
                            std::size_t group, std::size_t index) {
  c10::IValue value;
  if (!archive.try_read(key, value)) return {};
  TORCH_CHECK_VALUE(value.isTensor(), "param group ", group, ", parameter ", index, ": expected ", key,
                    " in the checkpoint to be a tensor, got ", value.tagKind());
  ::torch::Tensor t = value.toTensor().to(::torch::kCPU);
  if (type == ::torch::kFloat) {
    TORCH_CHECK_VALUE(t.is_floating_point(), "param group ", group, ", parameter ", index, ": expected ", key,
                      " in the checkpoint to be floating point, got ", t.scalar_type());
    return t.to(::torch::kFloat);  // exact from bf16 and fp16 (torch keeps state in the parameter's dtype)
  }
  TORCH_CHECK_VALUE(t.scalar_type() == type, "param group ", group, ", parameter ", index, ": expected ", key,
                    " in the checkpoint of dtype ", type, ", got ", t.scalar_type());
  return t;
}

// Whether the archive holds `state`'s 8-bit codes: under a key only 8-bit state uses, or
// as bytes under a key it shares with 32-bit state.
bool has_codes(InputArchive& archive, const StateInfo& state) {
  c10::IValue value;
  if (!archive.try_read(state.bnb_name, value)) return false;
  return state.bnb_name != state.name || (value.isTensor() && value.toTensor().scalar_type() == ::torch::kByte);
}

// See Note [Archive state keys]. Takes every state of the rule the archive has; the core
// checks that the parameter's variant finds its states there (Note [Loading state]).
StateSnapshot read_state(InputArchive& archive, const std::vector<StateInfo>& states, std::size_t group,
                         std::size_t index) {
  StateSnapshot s;
  c10::IValue step;
  TORCH_CHECK_VALUE(archive.try_read("step", step), "param group ", group, ", parameter ", index,
                    ": expected a step in the checkpoint's state");
  s.step = step.isTensor() ? step.toTensor().item<std::int64_t>() : step.toInt();
  const auto require = [&](const ::torch::Tensor& t, const std::string& key) {
    TORCH_CHECK_VALUE(t.defined(), "param group ", group, ", parameter ", index, ": expected ", key,
                      " in the checkpoint's state, which has step ", s.step);
    return t;
  };
  const auto coded = [&](const StateInfo& state) { return has_codes(archive, state); };
  if (std::any_of(states.begin(), states.end(), coded)) {
    s.format = StateFormat::kQ8;
    for (const StateInfo& state : states) {
      if (!coded(state)) continue;
      StateArray& array = s.arrays.emplace_back();
      array.name = state.name;
      array.codes = values_of<std::uint8_t>(read_tensor(archive, state.bnb_name, ::torch::kByte, group, index));
      const std::string absmax = absmax_key(state);
      array.absmax = values_of<float>(require(read_tensor(archive, absmax, ::torch::kFloat, group, index), absmax));
    }
  } else if (s.step > 0) {
    s.format = StateFormat::kFp32;
    for (const StateInfo& state : states) {
      ::torch::Tensor values = read_tensor(archive, state.name, ::torch::kFloat, group, index);
      if (!values.defined()) continue;
      StateArray& array = s.arrays.emplace_back();
      array.name = state.name;
      array.values = values_of<float>(values);
    }
  }
  return s;
}

std::int64_t read_count(InputArchive& archive, const std::string& key) {
  ::torch::Tensor count;
  TORCH_CHECK_VALUE(archive.try_read(key, count) || archive.try_read(key, count, /*is_buffer=*/true),
                    "expected ", key, " in the checkpoint: it is not a torch::optim optimizer archive");
  return count.item<std::int64_t>();
}

}  // namespace

// --- AdamOptions ---------------------------------------------------------------------

AdamOptions::AdamOptions(double value) { lr(value); }

AdamOptions& AdamOptions::lr(double value) { lr_ = value; mark(Field::kLr); return *this; }
AdamOptions& AdamOptions::betas(const betas_t& value) { betas_ = value; mark(Field::kBetas); return *this; }
AdamOptions& AdamOptions::eps(double value) { eps_ = value; mark(Field::kEps); return *this; }
AdamOptions& AdamOptions::weight_decay(double value) { weight_decay_ = value; mark(Field::kWeightDecay); return *this; }
AdamOptions& AdamOptions::amsgrad(bool value) { amsgrad_ = value; mark(Field::kAmsgrad); return *this; }
AdamOptions& AdamOptions::optim_bits(int value) { optim_bits_ = value; mark(Field::kOptimBits); return *this; }
AdamOptions& AdamOptions::min_8bit_size(std::int64_t value) { min_8bit_size_ = value; mark(Field::kMin8bitSize); return *this; }
AdamOptions& AdamOptions::placement(Placement value) { placement_ = value; mark(Field::kPlacement); return *this; }

AdamOptions AdamOptions::over(const AdamOptions& base) const {
  AdamOptions r = base;
  if (is_set(Field::kLr)) r.lr(lr_);
  if (is_set(Field::kBetas)) r.betas(betas_);
  if (is_set(Field::kEps)) r.eps(eps_);
  if (is_set(Field::kWeightDecay)) r.weight_decay(weight_decay_);
  if (is_set(Field::kAmsgrad)) r.amsgrad(amsgrad_);
  if (is_set(Field::kOptimBits)) r.optim_bits(optim_bits_);
  if (is_set(Field::kMin8bitSize)) r.min_8bit_size(min_8bit_size_);
  if (is_set(Field::kPlacement)) r.placement(placement_);
  return r;
}

GroupOptions AdamOptions::group_options() const {
  GroupOptions g;
  g.optim_bits = optim_bits_;
  g.min_8bit_size = min_8bit_size_;
  g.placement = placement_;
  g.set("lr", lr_);
  g.set("betas", {std::get<0>(betas_), std::get<1>(betas_)});
  g.set("eps", eps_);
  g.set("weight_decay", weight_decay_);
  g.set("amsgrad", amsgrad_ ? 1.0 : 0.0);
  return g;
}

void AdamOptions::serialize(OutputArchive& archive) const {
  archive.write("lr", c10::IValue(lr_));
  archive.write("betas", c10::IValue(betas_));
  archive.write("eps", c10::IValue(eps_));
  archive.write("weight_decay", c10::IValue(weight_decay_));
  archive.write("amsgrad", c10::IValue(amsgrad_));
  archive.write("optim_bits", c10::IValue(static_cast<std::int64_t>(optim_bits_)));
  archive.write("min_8bit_size", c10::IValue(min_8bit_size_));
  archive.write("placement", c10::IValue(std::string(placement_name(placement_))));
}

void AdamOptions::serialize(InputArchive& archive) {
  c10::IValue v;
  if (archive.try_read("lr", v)) lr(v.toDouble());
  if (archive.try_read("betas", v)) betas(v.to<betas_t>());
  if (archive.try_read("eps", v)) eps(v.toDouble());
  if (archive.try_read("weight_decay", v)) weight_decay(v.toDouble());
  if (archive.try_read("amsgrad", v)) amsgrad(v.toBool());
  if (archive.try_read("optim_bits", v)) optim_bits(static_cast<int>(v.toInt()));
  if (archive.try_read("min_8bit_size", v)) min_8bit_size(v.toInt());
  if (archive.try_read("placement", v)) placement(placement_from(v.toStringRef()));
}

// --- Optimizer -----------------------------------------------------------------------

Optimizer::Optimizer(const std::vector<OptimizerParamGroup>& param_groups, const AdamOptions& defaults,
                     TierOptions tiers, const Variant& variant)
    : ::torch::optim::Optimizer(std::vector<OptimizerParamGroup>{},
                                std::make_unique<AdamOptions>(class_defaults(defaults, variant))),
      variant_(variant),
      core_(make_core(variant.rule, *defaults_, with_torch_allocator(std::move(tiers)))) {
  for (const OptimizerParamGroup& group : param_groups) add_param_group(group);
}

const AdamOptions& Optimizer::options(std::size_t group) const {
  TORCH_CHECK_VALUE(group < param_groups_.size(), "expected a param group index below ", param_groups_.size(),
                    ", got ", group);
  const auto* options = dynamic_cast<const AdamOptions*>(&param_groups_[group].options());
  TORCH_CHECK_VALUE(options != nullptr, "param group ", group, ": expected octopage::torch::AdamOptions, got "
                    "another optimizer's options");
  return *options;
}

AdamOptions& Optimizer::options(std::size_t group) {
  return const_cast<AdamOptions&>(std::as_const(*this).options(group));
}

void Optimizer::add_param_group(const OptimizerParamGroup& param_group) {
  AdamOptions options = static_cast<const AdamOptions&>(*defaults_);
  if (param_group.has_options()) {
    const auto* given = dynamic_cast<const AdamOptions*>(&param_group.options());
    TORCH_CHECK_VALUE(given != nullptr, name(), ": expected a param group's options to be "
                      "octopage::torch::AdamOptions, got another optimizer's options");
    options = given->over(options);
  }
  // torch's checks (leaf tensors), with the defaults' options, which are then replaced:
  // torch would not merge options of a type it does not know.
  ::torch::optim::Optimizer::add_param_group(OptimizerParamGroup(param_group.params()));
  param_groups_.back().set_options(std::make_unique<AdamOptions>(options));
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
// torch::optim::Adam's layout (torch/optim/serialize.h): pytorch_version; state/<key>
// holding each parameter's state; param_groups/size and param_groups/<g> holding
// params/size, params/<i> (the key of parameter i's state) and options. torch keys state
// by a TensorImpl address; here the key is the parameter's position across all groups.
// Loading maps the checkpoint's parameters to this optimizer's by position, as torch does.
// A parameter's state keys are Note [Archive state keys].

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
  std::vector<AdamOptions> saved(param_groups_.size());
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    InputArchive group;
    groups.read("param_groups/" + std::to_string(g), group);
    const std::size_t size = param_groups_[g].params().size();
    const std::int64_t saved_size = read_count(group, "params/size");
    TORCH_CHECK_VALUE(saved_size == static_cast<std::int64_t>(size), "param group ", g, ": expected ", size,
                      " parameters (this optimizer's), got ", saved_size, " in the checkpoint");
    InputArchive options_archive;
    if (group.try_read("options", options_archive)) saved[g].serialize(options_archive);
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
  follow_torch_stream();
  translated([&] { core_.load_state(std::move(loads)); });

  using Field = AdamOptions::Field;
  for (std::size_t g = 0; g < param_groups_.size(); ++g) {
    AdamOptions& options = this->options(g);
    if (saved[g].is_set(Field::kLr)) options.lr(saved[g].lr());
    if (saved[g].is_set(Field::kBetas)) options.betas(saved[g].betas());
    if (saved[g].is_set(Field::kEps)) options.eps(saved[g].eps());
    if (saved[g].is_set(Field::kWeightDecay)) options.weight_decay(saved[g].weight_decay());
  }
}

}  // namespace octopage::torch
