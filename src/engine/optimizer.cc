// Optimizer: groups, lazy state, and the step: check everything, give new state its home,
// then run the offloaded records through the staging ring and one flat list of chunks
// (many small parameters and slices of big ones alike) on the thread pool, so
// per-parameter overhead stays off the critical path.
#include "octopage/optimizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <utility>

#include "octopage/error.h"
#include "src/engine/checks.h"
#include "src/engine/cuda_step.h"
#include "src/engine/offload_pipeline.h"
#include "src/engine/paged_hints.h"
#include "src/engine/param_state.h"
#include "src/engine/step.h"
#include "src/engine/thread_pool.h"
#include "src/engine/tiers.h"
#include "src/kernels/cpu/cpu_kernels.h"
#include "src/memory/cuda_memory.h"
#include "src/quant/formats.h"
#include "src/rules/registry.h"

namespace octopage {
namespace {

// Elements per task: 256 blocks of 8-bit state, 768 KiB of fp32 parameter and state
// traffic; big enough to hide the task hand-out, small enough to balance the threads.
constexpr std::int64_t kChunkElements = std::int64_t{1} << 16;
static_assert(kChunkElements % quant::kQ8BlockSize == 0, "chunks start on block boundaries");

StateFormat format_for(const GroupOptions& options, const Parameter& p) {
  const int bits = p.overrides.optim_bits.value_or(options.optim_bits);
  const std::int64_t numel = p.overrides.format_numel.value_or(p.value.numel);
  const std::int64_t min_8bit_size = p.overrides.min_8bit_size.value_or(options.min_8bit_size);
  return bits == 8 && numel >= min_8bit_size ? StateFormat::kQ8 : StateFormat::kFp32;
}

Placement placement_for(const GroupOptions& options, const ParamOverrides& overrides) {
  return overrides.placement.value_or(options.placement);
}

// "param group 0, parameters 1, 4 (partly) ..." for the failure message.
std::string list_params(const std::vector<std::pair<std::size_t, std::size_t>>& params) {
  if (params.empty()) return "none";
  std::ostringstream out;
  constexpr std::size_t kShown = 12;
  for (std::size_t i = 0; i < std::min(params.size(), kShown); ++i) {
    out << (i ? ", " : "") << "(group " << params[i].first << ", parameter " << params[i].second << ")";
  }
  if (params.size() > kShown) out << " and " << params.size() - kShown << " more";
  return out.str();
}

// Adds one state to a report's bytes and counts.
void count_state(MemoryReport& report, const engine::ParamState& state) {
  Tier tier = state.placement == Placement::kDevice ? Tier::kHost : Tier::kFile;
  // A CUDA parameter's state: device memory, or managed (paged) or host memory.
  if (state.device == Device::kCUDA) tier = state.placement == Placement::kDevice ? Tier::kDevice : Tier::kHost;
  report.state_bytes[static_cast<std::size_t>(tier)] += state.bytes();
  const bool q8 = state.format == StateFormat::kQ8;
  (q8 ? report.tensors_8bit : report.tensors_32bit) += 1;
  (q8 ? report.elements_8bit : report.elements_32bit) += state.numel;
}

// A report's staging bytes (all rings; staging_tier is the tier holding most of them)
// and its peaks: the larger of `peaks` and what each tier holds now.
void finish_report(MemoryReport& report, const std::array<std::uint64_t, kNumTiers>& staging,
                   const std::array<std::uint64_t, kNumTiers>& peaks) {
  report.staging_bytes = 0;
  report.staging_tier = Tier::kHost;
  for (std::size_t t = 0; t < kNumTiers; ++t) {
    report.staging_bytes += staging[t];
    if (staging[t] > staging[static_cast<std::size_t>(report.staging_tier)]) report.staging_tier = static_cast<Tier>(t);
    report.peak_bytes[t] = std::max(peaks[t], report.state_bytes[t] + staging[t]);
  }
}

}  // namespace

MemoryReport plan_memory(std::string_view rule, const std::vector<std::int64_t>& numels,
                         const GroupOptions& options, const TierOptions& tiers) {
  const int row = engine::check_group_options(rules::rule_entry(rule), options, nullptr, engine::kDefaults).row;
  TierOptions ring_options = tiers;
  ring_options.offload_dir.clear();  // planning writes nothing there
  engine::check_tier_options(ring_options);
  MemoryReport report;
  bool offloads = false;
  std::uint64_t offload_bytes = 0;
  for (const std::int64_t numel : numels) {
    OCTOPAGE_CHECK(numel >= 0, "expected element counts >= 0, got ", numel);
    Parameter p;
    p.value.numel = numel;
    const auto state = engine::ParamState::make(format_for(options, p), p.value.dtype, numel, row,
                                                placement_for(options, p.overrides));
    count_state(report, *state);
    if (state->placement == Placement::kOffload) {
      offloads = true;
      state->lay_out_records(tiers.chunk_bytes);
      offload_bytes += state->file_bytes();
    }
  }
  const std::uint64_t ring = offloads ? memory::StagingRing::slots_for(tiers, offload_bytes) * tiers.chunk_bytes : 0;
  finish_report(report, {ring, 0, 0}, {});
  return report;
}

// Note [Failed step]
// step() checks every input and reserves every new state's memory and file space before
// it modifies anything, so those failures leave the optimizer as it was. What can still
// fail part-way is the I/O of `offload` state. Offloaded records are updated first,
// before any state in memory, each record's parameter elements and state together, and
// a record counts as done only when its state is written home. When a read or write
// fails, the step stops handing out work, waits for the I/O in flight, and throws
// Error(kRuntime) saying which parameters were updated (parameter, state and step count
// agree), which were partly updated, and which were not touched. If nothing was updated,
// the optimizer is as it was and may step again. Otherwise it is marked failed: a
// partly updated parameter's elements and state no longer match, so every later step()
// throws rather than apply an update twice or to mismatched state; restore the model and
// the optimizer from a checkpoint. Nothing is ever lost silently.

ParamGroup::ParamGroup(std::vector<Parameter> params, GroupOptions group_options)
    : options(group_options), params_(std::move(params)), states_(params_.size()) {}
ParamGroup::~ParamGroup() = default;
ParamGroup::ParamGroup(ParamGroup&&) noexcept = default;
ParamGroup& ParamGroup::operator=(ParamGroup&&) noexcept = default;

namespace {

const rules::RuleEntry& entry_of(const RuleInfo& rule) { return rules::rule_entry(rule.name); }

// `options` with every hyperparameter of `rule` set: unset ones from `defaults` (when
// given), then the rule's.
GroupOptions completed(const rules::RuleEntry& rule, GroupOptions options, const GroupOptions* defaults) {
  for (const HyperparameterInfo& h : rule.info.hyperparameters) {
    if (options.has(h.name)) continue;
    options.set(h.name, defaults != nullptr && defaults->has(h.name) ? defaults->values(h.name) : h.defaults);
  }
  return options;
}

}  // namespace

Optimizer::Optimizer(std::string_view rule, GroupOptions defaults, TierOptions tiers)
    : rule_(&find_rule(rule)), tier_options_(std::move(tiers)) {
  const rules::RuleEntry& entry = entry_of(*rule_);
  engine::check_group_options(entry, defaults, nullptr, engine::kDefaults);
  defaults_ = completed(entry, std::move(defaults), nullptr);
  tiers_ = std::make_unique<engine::Tiers>(tier_options_);
}
Optimizer::~Optimizer() = default;
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;

ParamGroup& Optimizer::add_param_group(std::vector<Parameter> params, GroupOptions options) {
  const std::size_t g = groups_.size();
  const rules::RuleEntry& rule = entry_of(*rule_);
  const int row = engine::check_group_options(rule, options, &defaults_, g).row;
  std::vector<engine::ParamSpan> spans;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (engine::has_option_overrides(params[i].overrides)) {
      const GroupOptions own = engine::overridden(options, params[i].overrides);
      engine::check_overridden_options(rule, own, &defaults_, row, g, i);
      engine::check_parameter(params[i], own, row, g, i);
    } else {
      engine::check_parameter(params[i], options, row, g, i);
    }
    spans.push_back(engine::span_of(params[i], g, i));
  }
  for (std::size_t h = 0; h < groups_.size(); ++h) {
    for (std::size_t i = 0; i < groups_[h].size(); ++i) {
      spans.push_back(engine::span_of(groups_[h].param(i), h, i));
    }
  }
  engine::check_no_overlap(std::move(spans));
  return groups_.emplace_back(std::move(params), completed(rule, std::move(options), &defaults_));
}

void Optimizer::check_usable() const {
  OCTOPAGE_CHECK_RUNTIME(failure_.empty(), "this optimizer cannot step again: an earlier step failed "
                         "part-way (see Note [Failed step] in the README). That step's error: ", failure_);
}

void Optimizer::step() {
  check_usable();
  engine::Step step(tier_options_.chunk_bytes);
  check_step(step);   // 1. every input; nothing is modified yet
  make_state(step);   // 2. new state and the rings, placed; nothing is modified yet
  plan_step(step);    // 3. every update as work items on its route
  reduce_step(step);  // 4. whole-tensor sums (Note [Percentile clipping]); nothing is modified yet
  run_step(step);     // 5. offloaded state first (Note [Failed step]), then the rest
  note_peaks();
}

void Optimizer::check_step(engine::Step& step) const {
  const rules::RuleEntry& rule = entry_of(*rule_);
  std::vector<engine::ParamSpan> spans;
  step.resolved.resize(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    step.resolved[g] = engine::check_group_options(rule, group.options, &defaults_, g);
    for (std::size_t i = 0; i < group.size(); ++i) {
      const Parameter& p = group.params_[i];
      const GroupOptions* options = &group.options;
      const engine::Resolved* resolved = &step.resolved[g];
      if (engine::has_option_overrides(p.overrides)) {
        options = &step.overridden_options.emplace_back(engine::overridden(group.options, p.overrides));
        resolved = &step.overridden_resolved.emplace_back(
            engine::check_overridden_options(rule, *options, &defaults_, step.resolved[g].row, g, i));
      }
      const engine::ParamState* state = group.states_[i].get();
      engine::check_parameter(p, *options, resolved->row, g, i, /*cuda_memory=*/state == nullptr);
      if (p.grad.data == nullptr) continue;
      if (state != nullptr) engine::check_state_fits(*state, p, resolved->row, g, i);
      step.updates.push_back({const_cast<ParamGroup*>(&group), g, i, options, resolved, nullptr, group.states_[i].get()});
      spans.push_back(engine::span_of(p, g, i));
    }
  }
  engine::check_no_overlap(std::move(spans));
}

// Out of memory or file space throws here, before any update; the new state is then
// simply released.
void Optimizer::make_state(engine::Step& step) {
  std::vector<engine::ParamState*> to_place;
  bool offloads = false;
  for (engine::StepUpdate& up : step.updates) {
    const Parameter& p = up.group->params_[up.index];
    const GroupOptions& o = *up.options;
    if (up.state == nullptr) {
      up.fresh = engine::ParamState::make(format_for(o, p), p.value.dtype, p.value.numel,
                                          up.resolved->row, placement_for(o, p.overrides),
                                          p.value.device);
      up.state = up.fresh.get();
      to_place.push_back(up.state);
    }
    offloads = offloads || up.state->placement == Placement::kOffload;
  }
  tiers_->place(to_place);
  if (offloads) {
    tiers_->ring();
    tiers_->io_queue();
  }
}

// One route per (device, placement): a CUDA parameter's every placement goes to
// CudaStep, which routes it further; on the CPU, `offload` state goes record by record
// through the staging ring, and state in memory (`device`, `paged`) is cut into chunks.
void Optimizer::plan_step(engine::Step& step) {
  const kernels::KernelTable& kernels = kernels::cpu::cpu_kernels().kernels;
  const rules::RuleEntry& rule = entry_of(*rule_);
  step.scalars.resize(step.updates.size());
  for (std::size_t u = 0; u < step.updates.size(); ++u) {
    const engine::StepUpdate& up = step.updates[u];
    const engine::ParamState& state = *up.state;
    step.scalars[u] = rule.scalars(up.resolved->values.data(), state.row - rule.first_row,
                                   state.step + 1);
    const Parameter& p = up.group->params_[up.index];
    const engine::WorkItem whole{&state, &p, kernels.get(state.row, state.format, state.dtype), &step.scalars[u],
                                 0, state.numel, state.step == 0, u};
    if (state.device == Device::kCUDA) {
      step.cuda.add(state, p, whole.kernel, whole.scalars, whole.first_step);
      continue;
    }
    const bool offload = state.placement == Placement::kOffload;
    const std::int64_t piece = offload ? state.record_elements : kChunkElements;
    for (std::int64_t begin = 0; begin < state.numel; begin += piece) {
      engine::WorkItem item = whole;
      item.begin = begin;
      item.n = std::min(piece, state.numel - begin);
      if (offload) {
        step.records.push_back(item);
        continue;
      }
      if (state.placement == Placement::kPaged) {
        step.hints.add(step.tasks.size(), state, state.chunk(engine::buffers_of(p), item.begin, item.n));
      }
      step.tasks.push_back(item);
    }
  }
  step.cuda.prepare(*tiers_);  // the CUDA rings, before anything is modified
}

// Note [Percentile clipping]
// bitsandbytes' percentile_clipping (as it was up to 0.49, which dropped it), per
// parameter, when a group sets P < 100: at the parameter's step t, n2 = sum of its
// gradient's squares (Note [Deterministic sums], stored as fp32) goes into slot t % 100
// of its history gnorm_vec, or into all 100 slots at its first clipping step (t = 1 in
// bitsandbytes, where the history is made with the state). With current =
// sqrt(gnorm_vec[t % 100]) and clip = sqrt(the P-th smallest of the 100), in fp32, the
// gradient is scaled by clip / current when current > clip: every kernel multiplies it
// by RuleScalars::grad_scale before the rule sees it, for every state format and
// placement. The history is saved with the state (bitsandbytes' key gnorm_vec) and
// changes only when the step completes.
namespace {

// Note [Percentile clipping]: each clipping update's gradient scale and new history.
void clip_percentiles(engine::Step& step) {
  struct Piece {
    std::size_t update;
    std::int64_t begin, n;
  };
  std::vector<Piece> pieces;
  std::vector<std::int64_t> first_block(step.updates.size() + 1, 0);  // each update's block sums
  for (std::size_t u = 0; u < step.updates.size(); ++u) {
    const engine::StepUpdate& up = step.updates[u];
    const bool clips = up.options->percentile_clipping != 100;
    first_block[u + 1] = first_block[u] + (clips ? kernels::reduce_blocks(up.state->numel) : 0);
    if (!clips) continue;
    for (std::int64_t begin = 0; begin < up.state->numel; begin += kChunkElements) {
      pieces.push_back({u, begin, std::min(kChunkElements, up.state->numel - begin)});
    }
  }
  step.gnorm.resize(step.updates.size());
  if (pieces.empty()) return;
  std::vector<double> block_sums(static_cast<std::size_t>(first_block.back()));
  const kernels::cpu::CpuKernels& cpu = kernels::cpu::cpu_kernels();
  engine::ThreadPool::instance().parallel_for(static_cast<std::int64_t>(pieces.size()), [&](std::int64_t i) {
    const Piece& piece = pieces[static_cast<std::size_t>(i)];
    const engine::StepUpdate& up = step.updates[piece.update];
    const Parameter& p = up.group->param(up.index);
    const auto* grad = static_cast<const char*>(p.grad.data) + piece.begin * dtype_size(p.grad.dtype);
    double* out = block_sums.data() + first_block[piece.update] + piece.begin / kernels::kReduceBlock;
    cpu.sum_squares[static_cast<int>(p.grad.dtype)](grad, piece.n, out);
  });
  for (std::size_t u = 0; u < step.updates.size(); ++u) {
    const engine::StepUpdate& up = step.updates[u];
    const int percentile = up.options->percentile_clipping;
    if (percentile == 100) continue;
    const double n2 = kernels::fold_blocks(block_sums.data() + first_block[u], first_block[u + 1] - first_block[u]);
    const std::int64_t t = up.state->step + 1;
    const std::size_t slot = static_cast<std::size_t>(t) % engine::kGnormHistory;
    std::vector<float> history = up.state->gnorm_vec;
    if (history.empty()) {
      history.assign(engine::kGnormHistory, static_cast<float>(n2));
    } else {
      history[slot] = static_cast<float>(n2);
    }
    std::vector<float> sorted = history;
    std::sort(sorted.begin(), sorted.end());
    const float current = std::sqrt(history[slot]);
    const float clip = std::sqrt(sorted[static_cast<std::size_t>(percentile)]);
    if (current > clip) step.scalars[u].grad_scale = clip / current;
    step.gnorm[u] = std::move(history);
  }
}

// max_unorm (RULES.md 1.8), after the gradient scales: ||p|| and ||u|| of each clipping
// update, then its step scaled. u needs the state before the step: in RAM it is read
// where it is (new state zero-filled first), offloaded state in one more streamed,
// read-only pass through the ring (the norm needs this step's gradient, so no earlier
// pass can take it).
void clip_update_norms(engine::Step& step, const rules::RuleEntry& rule, engine::Tiers& tiers) {
  const kernels::cpu::CpuKernels& cpu = kernels::cpu::cpu_kernels();
  std::vector<std::int64_t> first_block(step.updates.size() + 1, 0);
  bool any = false;
  for (std::size_t u = 0; u < step.updates.size(); ++u) {
    const engine::StepUpdate& up = step.updates[u];
    const bool clips = up.options->max_unorm > 0.0;
    any = any || clips;
    first_block[u + 1] = first_block[u] + (clips ? kernels::reduce_blocks(up.state->numel) : 0);
  }
  step.unorm.resize(step.updates.size());
  if (!any) return;
  std::vector<double> p_sums(static_cast<std::size_t>(first_block.back()));
  std::vector<double> u_sums(p_sums.size());
  std::vector<engine::WorkItem> in_memory, offloaded;
  for (const engine::WorkItem& item : step.tasks) {
    if (step.updates[item.owner].options->max_unorm > 0.0) in_memory.push_back(item);
  }
  for (const engine::WorkItem& item : step.records) {
    if (step.updates[item.owner].options->max_unorm > 0.0) offloaded.push_back(item);
  }
  const auto sums_at = [&](std::vector<double>& sums, const engine::WorkItem& item, std::int64_t begin) {
    return sums.data() + first_block[item.owner] + begin / kernels::kReduceBlock;
  };
  const auto direction_norm = [&](const engine::WorkItem& item, const kernels::Chunk& c, std::int64_t begin) {
    cpu.direction_norms.get(item.state->row, item.state->format, item.state->dtype)(c, *item.scalars, sums_at(u_sums, item, begin));
  };
  const auto param_norm = [&](const engine::WorkItem& item, std::int64_t begin, std::int64_t n) {
    const Parameter& p = *item.param;
    const auto* values = static_cast<const char*>(p.value.data) + begin * dtype_size(p.value.dtype);
    cpu.sum_squares[static_cast<int>(p.value.dtype)](values, n, sums_at(p_sums, item, begin));
  };
  engine::ThreadPool::instance().parallel_for(static_cast<std::int64_t>(in_memory.size()), [&](std::int64_t t) {
    const engine::WorkItem& item = in_memory[static_cast<std::size_t>(t)];
    const kernels::Chunk c = item.state->chunk(engine::buffers_of(*item.param), item.begin, item.n);
    if (item.first_step) item.state->zero_fill(c);
    direction_norm(item, c, item.begin);
    param_norm(item, item.begin, item.n);
  });
  const std::string error = engine::read_offload_state(
      offloaded, tiers, kChunkElements, [&](const engine::WorkItem& item, const kernels::Chunk& c, std::int64_t begin) {
        direction_norm(item, c, begin);
        param_norm(item, begin, c.n);
      });
  OCTOPAGE_CHECK_RUNTIME(error.empty(), error, " (reading state for max_unorm's norm). Nothing was updated: "
                         "the optimizer is as it was before this step.");
  for (std::size_t u = 0; u < step.updates.size(); ++u) {
    const engine::StepUpdate& up = step.updates[u];
    const double max_unorm = up.options->max_unorm;
    if (max_unorm == 0.0) continue;
    const std::int64_t blocks = first_block[u + 1] - first_block[u];
    const double p_norm = std::sqrt(kernels::fold_blocks(p_sums.data() + first_block[u], blocks));
    const double u_norm2 = rule.step_norm2(up.resolved->values.data(), up.state->row - rule.first_row,
                                           up.state->step + 1, kernels::fold_blocks(u_sums.data() + first_block[u], blocks));
    const double u_norm = std::sqrt(u_norm2);
    step.unorm[u] = {static_cast<float>(u_norm2)};
    if (u_norm > max_unorm * p_norm) rule.scale_step(step.scalars[u], static_cast<float>(max_unorm * p_norm / u_norm));
  }
}

}  // namespace

void Optimizer::reduce_step(engine::Step& step) const {
  clip_percentiles(step);
  clip_update_norms(step, entry_of(*rule_), *tiers_);
}

void Optimizer::run_step(engine::Step& step) {
  // Offloaded state first (Note [Failed step]), then state in memory. Kernels neither
  // fail nor throw.
  const engine::OffloadOutcome outcome = engine::run_offload_step(step.records, *tiers_, kChunkElements);
  if (!outcome.error.empty()) fail_offload_step(step, outcome);
  if (!step.cuda.empty()) {
    try {
      step.cuda.run(cuda_stream_);
    } catch (const Error& e) {
      failure_ = std::string(e.what()) + ". The step stopped part-way: its CUDA parameters may be partly "
                 "updated. Restore the model and the optimizer from a checkpoint.";
      detail::throw_error(ErrorKind::kRuntime, failure_);
    }
  }
  step.hints.start();
  engine::ThreadPool::instance().parallel_for(static_cast<std::int64_t>(step.tasks.size()), [&](std::int64_t t) {
    const engine::WorkItem& task = step.tasks[static_cast<std::size_t>(t)];
    step.hints.on_task(static_cast<std::size_t>(t));
    const kernels::Chunk chunk = task.state->chunk(engine::buffers_of(*task.param), task.begin, task.n);
    if (task.first_step) task.state->zero_fill(chunk);
    task.kernel(chunk, *task.scalars);
  });
  for (std::size_t u = 0; u < step.updates.size(); ++u) {
    engine::StepUpdate& up = step.updates[u];
    if (up.fresh != nullptr) up.group->states_[up.index] = std::move(up.fresh);
    engine::ParamState& state = *up.group->states_[up.index];
    ++state.step;
    if (!step.gnorm[u].empty()) state.gnorm_vec = std::move(step.gnorm[u]);
    if (!step.unorm[u].empty()) state.unorm_vec = std::move(step.unorm[u]);
  }
}

// An I/O error of offloaded state (Note [Failed step]): what was updated is kept and
// said, and the optimizer is failed unless nothing was.
void Optimizer::fail_offload_step(engine::Step& step, const engine::OffloadOutcome& outcome) {
  const std::size_t count = step.updates.size();
  std::vector<std::int64_t> total(count), updated(count), home(count);
  for (std::size_t r = 0; r < step.records.size(); ++r) {
    const std::size_t u = step.records[r].owner;
    ++total[u];
    updated[u] += outcome.updated[r];
    home[u] += outcome.home[r];
  }
  std::vector<std::pair<std::size_t, std::size_t>> done, partly, untouched;
  for (std::size_t u = 0; u < count; ++u) {
    engine::StepUpdate& up = step.updates[u];
    const bool complete = total[u] > 0 && home[u] == total[u];
    if (complete || updated[u] > 0) {  // its state now exists and is (partly) written
      if (up.fresh != nullptr) up.group->states_[up.index] = std::move(up.fresh);
      engine::ParamState& state = *up.group->states_[up.index];
      if (complete) ++state.step;
      if (complete && !step.gnorm[u].empty()) state.gnorm_vec = std::move(step.gnorm[u]);
      if (complete && !step.unorm[u].empty()) state.unorm_vec = std::move(step.unorm[u]);
    }
    (complete ? done : updated[u] > 0 ? partly : untouched).emplace_back(up.group_index, up.index);
  }
  note_peaks();
  if (done.empty() && partly.empty()) {
    detail::throw_error(ErrorKind::kRuntime, outcome.error,
                        ". Nothing was updated: the optimizer is as it was before this step.");
  }
  failure_ = outcome.error + ". The step stopped part-way. Updated: " + list_params(done) +
             ". Partly updated (parameter and state no longer match): " + list_params(partly) +
             ". Not updated: " + list_params(untouched) + ". Restore the model and the optimizer from a checkpoint.";
  detail::throw_error(ErrorKind::kRuntime, failure_);
}

// Note [Loading state]
// load_state() puts saved state (a checkpoint, another optimizer's) into parameters.
// A loaded state takes this optimizer's choices for the parameter, not the saver's:
//  - its format (optim_bits, min_8bit_size and overrides decide, as for a new state). A
//    state of the other format is converted: 32-bit values are quantized with the
//    reference encoder (Note [Q8 encoding]), 8-bit codes decoded to fp32. So a 32-bit
//    checkpoint (torch.optim's) loads into an 8-bit optimizer; the same format loads
//    bitwise.
//  - its placement: state saved under `device` loads under `offload`, and so on.
//  - its variant (the rule's states that the group's hyperparameters select): every
//    state the variant keeps must be saved (a group with amsgrad=True needs the saved
//    max_exp_avg_sq); a saved state of another variant of the rule is dropped (with
//    amsgrad=False, max_exp_avg_sq, as torch ignores it). Arrays are matched by name.
// A state with step 0 is "no state": the parameter starts afresh at its next step.
// Parameters not listed keep their state.

void Optimizer::load_state(std::vector<StateLoad> loads) {
  check_usable();
  // 1. Check every entry and convert it to its parameter's format; nothing changes yet.
  const rules::RuleEntry& rule = entry_of(*rule_);
  std::vector<std::pair<std::size_t, std::size_t>> seen;
  std::vector<int> rows;  // each load's kernel row
  for (StateLoad& load : loads) {
    find_state(load.group, load.index);  // checks the indices
    ParamGroup& group = groups_[load.group];
    seen.emplace_back(load.group, load.index);
    const int row = engine::check_group_options(rule, group.options, &defaults_, load.group).row;
    const Parameter& p = group.params_[load.index];
    engine::check_loaded_state(load.state, p.value.numel, rule, row, load.group, load.index);
    load.state = engine::converted(std::move(load.state), format_for(group.options, p), row);
    rows.push_back(row);
  }
  std::sort(seen.begin(), seen.end());
  const auto twice = std::adjacent_find(seen.begin(), seen.end());
  OCTOPAGE_CHECK(twice == seen.end(), "expected each parameter's state at most once, got parameter ",
                 twice->second, " of param group ", twice->first, " twice");

  // 2. A parameter whose state has the layout it needs is overwritten where it is; the
  //    others get new state, placed (all memory and file space) before anything is written.
  std::vector<std::unique_ptr<engine::ParamState>> fresh(loads.size());
  std::vector<engine::ParamState*> to_place;
  for (std::size_t l = 0; l < loads.size(); ++l) {
    const StateLoad& load = loads[l];
    if (load.state.step == 0) continue;
    const ParamGroup& group = groups_[load.group];
    const Parameter& p = group.params_[load.index];
    const engine::ParamState* old = group.states_[load.index].get();
    const Placement placement = placement_for(group.options, p.overrides);
    if (old != nullptr && old->format == load.state.format && old->placement == placement &&
        old->device == p.value.device && old->numel == p.value.numel && old->dtype == p.value.dtype &&
        old->row == rows[l]) {
      continue;
    }
    fresh[l] = engine::ParamState::make(load.state.format, p.value.dtype, p.value.numel, rows[l], placement,
                                        p.value.device);
    to_place.push_back(fresh[l].get());
  }
  tiers_->place(to_place);

  // 3. Write: new state first (an I/O error leaves the old state untouched), then the
  //    state overwritten in place.
  for (std::size_t l = 0; l < loads.size(); ++l) {
    if (fresh[l] != nullptr) fresh[l]->restore(loads[l].state, tiers_->offload_file(), cuda_stream_);
  }
  std::size_t l = 0;
  try {
    for (; l < loads.size(); ++l) {
      const StateLoad& load = loads[l];
      if (fresh[l] != nullptr || load.state.step == 0) continue;
      groups_[load.group].states_[load.index]->restore(load.state, tiers_->offload_file(), cuda_stream_);
    }
  } catch (const Error& e) {
    failure_ = std::string(e.what()) + ". Loading state stopped part-way: the state of parameter " +
               std::to_string(loads[l].index) + " of param group " + std::to_string(loads[l].group) +
               " is partly written. Load the checkpoint into a new optimizer.";
    detail::throw_error(ErrorKind::kRuntime, failure_);
  }

  // 4. The new state replaces the old (which is released), and step 0 drops a state.
  for (std::size_t k = 0; k < loads.size(); ++k) {
    auto& slot = groups_[loads[k].group].states_[loads[k].index];
    if (loads[k].state.step == 0) {
      slot.reset();
    } else if (fresh[k] != nullptr) {
      slot = std::move(fresh[k]);
    }
  }
  note_peaks();
}

void Optimizer::note_peaks() {
  const MemoryReport report = report_bytes();
  for (std::size_t t = 0; t < kNumTiers; ++t) peak_bytes_[t] = report.peak_bytes[t];
}

const engine::ParamState* Optimizer::find_state(std::size_t group, std::size_t index) const {
  OCTOPAGE_CHECK(group < groups_.size(), "expected a param group index below ", groups_.size(), ", got ", group);
  const ParamGroup& g = groups_[group];
  OCTOPAGE_CHECK(index < g.size(), "expected a parameter index below ", g.size(),
                 " in param group ", group, ", got ", index);
  return g.states_[index].get();
}

StateSnapshot Optimizer::state(std::size_t group, std::size_t index) const {
  const engine::ParamState* state = find_state(group, index);
  return state != nullptr ? state->snapshot(tiers_->offload_file(), cuda_stream_) : StateSnapshot{};
}

std::int64_t Optimizer::state_step(std::size_t group, std::size_t index) const {
  const engine::ParamState* state = find_state(group, index);
  return state != nullptr ? state->step : 0;
}

std::vector<std::string> Optimizer::state_files() const { return tiers_->files(); }

void Optimizer::page_out() {
  check_usable();
  for (const ParamGroup& group : groups_) {
    for (const auto& state : group.states_) {
      if (state == nullptr || state->placement != Placement::kPaged || state->device != Device::kCUDA) continue;
      for (int k = 0; k < state->num_states; ++k) {
        memory::cuda::prefetch_to_host(state->values[k], state->array_bytes(k, state->numel), cuda_stream_);
      }
      for (int k = 0; k < state->num_absmax(); ++k) {
        memory::cuda::prefetch_to_host(state->absmax[k], state->absmax_bytes(state->numel), cuda_stream_);
      }
    }
  }
  tiers_->page_out();
}

MemoryReport Optimizer::memory_report() const {
  MemoryReport report = report_bytes();
  report.paged_resident_bytes = tiers_->paged_resident_bytes();  // asks the system: not per step
  return report;
}

MemoryReport Optimizer::report_bytes() const {
  MemoryReport report;
  for (const ParamGroup& group : groups_) {
    for (const auto& state : group.states_) {
      if (state != nullptr) count_state(report, *state);
    }
  }
  finish_report(report, tiers_->staging_bytes_by_tier(), peak_bytes_);
  return report;
}

}  // namespace octopage
