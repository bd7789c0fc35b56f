#include "tools/octopage/train.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numbers>
#include <stdexcept>
#include <vector>

#include <torch/torch.h>

#include "octopage/torch/optim.h"
#include "tools/octopage/args.h"
#include "tools/octopage/model.h"
#include "tools/octopage/optimizers.h"
#include "tools/octopage/recipes.h"
#include "tools/octopage/text.h"

namespace octopage::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kTrainTextBytes = 1 << 20;
constexpr std::size_t kEvalTextBytes = 1 << 16;
constexpr std::uint64_t kEvalSeed = 0x5EED5EED;  // held-out text and its batches
constexpr const char* kCheckpointFormat = "octopage-train-checkpoint";

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// A progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise.
class Progress {
 public:
  Progress(std::string label, std::int64_t first, std::int64_t last, bool enabled)
      : label_(std::move(label)), first_(first), last_(last), enabled_(enabled), tty_(isatty(2) != 0) {}

  void update(std::int64_t step, double loss, double tokens_per_s) {  // step: done, 1-based
    if (!enabled_) return;
    const double done = static_cast<double>(step - first_) / static_cast<double>(last_ - first_);
    const int tenth = static_cast<int>(done * 10);
    if (!tty_ && tenth == last_tenth_ && step != last_) return;
    last_tenth_ = tenth;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(done * kWidth);
    std::fprintf(stderr, "%s%-20s [%s%s] %5lld/%lld  loss %.4f  %6.0f tokens/s%s", tty_ ? "\r" : "",
                 label_.c_str(), std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(kWidth - filled), '.').c_str(),
                 static_cast<long long>(step), static_cast<long long>(last_), loss, tokens_per_s,
                 tty_ ? "" : "\n");
    if (tty_ && step == last_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  std::int64_t first_, last_;
  bool enabled_, tty_;
  int last_tenth_ = -1;
};

double learning_rate(const TrainOptions& o, std::int64_t step) {
  const std::int64_t warmup = o.warmup >= 0 ? o.warmup : o.steps / 10;
  if (step < warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<std::int64_t>(1, o.steps - warmup));
  const double floor = 0.1 * o.lr;
  return floor + (o.lr - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

TierOptions tier_options(const TrainOptions& o) {
  TierOptions tiers;
  tiers.offload_dir = o.offload_dir;
  if (o.ring_bytes > 0) tiers.ring_bytes = o.ring_bytes;
  if (o.chunk_bytes > 0) tiers.chunk_bytes = o.chunk_bytes;
  return tiers;
}

// The choice's class (octopage::torch's, by name, or torch::optim::AdamW) with the
// rule's training options (recipes.h), `lr` and `weight_decay` resolved.
std::unique_ptr<::torch::optim::Optimizer> make_optimizer(const OptimizerChoice& c, const std::vector<::torch::Tensor>& params,
                                                          const TrainOptions& o) {
  const GroupOptions hyper = training_options(c.rule, o.lr, o.weight_decay);
  if (c.torch_reference) {
    const std::vector<double>& betas = hyper.values("betas");
    return std::make_unique<::torch::optim::AdamW>(params, ::torch::optim::AdamWOptions(hyper.get("lr"))
                                                               .betas({betas.at(0), betas.at(1)})
                                                               .eps(hyper.get("eps"))
                                                               .weight_decay(hyper.get("weight_decay")));
  }
  octopage::torch::Options options;
  for (const Hyperparameter& h : hyper.hyperparameters()) options.set(h.name, h.values);
  options.placement(c.placement);
  return octopage::torch::make_optimizer(c.class_name(), params, options, tier_options(o));
}

// `o` with the rule's recipe where it leaves lr and weight_decay to it.
TrainOptions resolved(TrainOptions o, const OptimizerChoice& c) {
  const GroupOptions hyper = training_options(c.rule, o.lr, o.weight_decay);
  o.lr = hyper.get("lr");
  o.weight_decay = hyper.has("weight_decay") ? hyper.get("weight_decay") : 0.0;
  return o;
}

// The rule's hyperparameters as trained but lr and weight_decay (run_options has those),
// by name: a run resumes only under the same.
json hyperparameters(const OptimizerChoice& c, const TrainOptions& o) {
  json out = json::object();
  const GroupOptions options = training_options(c.rule, o.lr, o.weight_decay);
  for (const Hyperparameter& h : options.hyperparameters()) {
    if (h.name == "lr" || h.name == "weight_decay") continue;
    out[h.name] = h.values.size() == 1 ? json(h.values[0]) : json(h.values);
  }
  return out;
}

// Optimizer state bytes per tier, and the staging ring: the core's report for octopage,
// the state tensors' bytes for torch's AdamW (all in RAM).
json state_memory(::torch::optim::Optimizer& opt) {
  if (const auto* o = dynamic_cast<const octopage::torch::Optimizer*>(&opt)) {
    const MemoryReport r = o->memory_report();
    return {{"host", r.state_bytes_in(Tier::kHost)}, {"file", r.state_bytes_in(Tier::kFile)},
            {"staging", r.staging_bytes}, {"tensors_8bit", r.tensors_8bit}, {"tensors_32bit", r.tensors_32bit}};
  }
  std::uint64_t bytes = 0;
  std::int64_t tensors = 0;
  for (const auto& entry : opt.state()) {
    const auto& s = static_cast<const ::torch::optim::AdamWParamState&>(*entry.second);
    bytes += s.exp_avg().nbytes() + s.exp_avg_sq().nbytes() + (s.max_exp_avg_sq().defined() ? s.max_exp_avg_sq().nbytes() : 0);
    ++tensors;
  }
  return {{"host", bytes}, {"file", 0}, {"staging", 0}, {"tensors_8bit", 0}, {"tensors_32bit", tensors}};
}

// FNV-1a over every parameter's bytes: equal hashes, bitwise equal parameters (in practice).
std::string parameter_hash(const std::vector<::torch::Tensor>& params) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const ::torch::Tensor& p : params) {
    const ::torch::Tensor c = p.detach().contiguous();
    const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
    for (std::size_t i = 0; i < c.nbytes(); ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

std::uint64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
}

// Windows of the text as a (batch, sequence + 1) token tensor.
::torch::Tensor batch_tokens(const ::torch::Tensor& text, std::uint64_t seed, std::int64_t step, const TrainOptions& o) {
  std::vector<::torch::Tensor> rows;
  for (const std::int64_t start : window_starts(seed, step, o.batch, text.size(0), o.sequence + 1)) {
    rows.push_back(text.narrow(0, start, o.sequence + 1));
  }
  return ::torch::stack(rows);
}

::torch::Tensor text_tensor(std::uint64_t seed, std::size_t bytes) {
  const std::string text = generate_text(seed, bytes);
  return ::torch::from_blob(const_cast<char*>(text.data()), {static_cast<std::int64_t>(text.size())}, ::torch::kUInt8)
      .to(::torch::kInt64);
}

// The options that define a run: a checkpoint resumes only under the same ones.
json run_options(const TrainOptions& o, const OptimizerChoice& c) {
  return {{"model", o.model}, {"tie_embeddings", o.tie_embeddings}, {"steps", o.steps}, {"batch", o.batch}, {"sequence", o.sequence},
          {"lr", o.lr}, {"warmup", o.warmup}, {"weight_decay", o.weight_decay}, {"clip", o.clip}, {"seed", o.seed},
          {"rule", c.rule}, {"hyperparameters", hyperparameters(c, o)}};
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path.string() + "'");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error("'" + path.string() + "' is not valid JSON: " + e.what());
  }
}

void write_json(const fs::path& path, const json& value) {
  std::ofstream out(path);
  out << value.dump(1) << "\n";
  out.close();
  if (!out) throw std::runtime_error("cannot write '" + path.string() + "'");
}

// Writes the checkpoint next to `dir` and then puts it in place, so a failed save
// leaves an earlier checkpoint in `dir` whole.
void save_checkpoint(const fs::path& dir, Llama& model, ::torch::optim::Optimizer& opt, const json& meta) {
  const fs::path partial = dir.string() + ".partial", old = dir.string() + ".old";
  fs::remove_all(partial);
  fs::create_directories(partial);
  ::torch::save(model, (partial / "model.pt").string());
  ::torch::save(opt, (partial / "optimizer.pt").string());
  write_json(partial / "checkpoint.json", meta);
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(partial, dir);
  fs::remove_all(old);
}

// The checkpoint's step and losses, after loading its model and optimizer; throws when it
// was trained under other run options.
json load_checkpoint(const fs::path& dir, const TrainOptions& o, const OptimizerChoice& c, Llama& model,
                     ::torch::optim::Optimizer& opt) {
  const json meta = read_json(dir / "checkpoint.json");
  if (meta.value("format", "") != kCheckpointFormat) {
    throw std::runtime_error("'" + dir.string() + "' is not an octopage train checkpoint");
  }
  const json expected = run_options(o, c);
  std::vector<std::string> keys = {"rule"};  // the rule first: its hyperparameters differ too
  for (const auto& [key, value] : expected.items()) {
    if (key != "rule") keys.push_back(key);
  }
  for (const std::string& key : keys) {
    const json& value = expected[key];
    if (meta["options"][key] != value) {
      throw std::runtime_error("the checkpoint in '" + dir.string() + "' was trained with " + key + " = " +
                               meta["options"][key].dump() + ", this run has " + value.dump() +
                               ": resume with the options it was saved with");
    }
  }
  ::torch::load(model, (dir / "model.pt").string());
  ::torch::load(opt, (dir / "optimizer.pt").string());
  return meta;
}

}  // namespace

void check_train_options(const TrainOptions& o) {
  if (perf::find_llama_config(o.model) == nullptr) {
    throw UsageError("expected --model " + perf::llama_config_names() + ", got '" + o.model + "'");
  }
  if (find_optimizer(o.optimizer) == nullptr) {
    throw UsageError("expected --optimizer " + optimizer_keys() + ", got '" + o.optimizer + "'");
  }
  if (o.stop_at > o.steps) {
    throw UsageError("expected --stop-at <= --steps (" + std::to_string(o.steps) + "), got " + std::to_string(o.stop_at));
  }
  if (o.warmup > o.steps) throw UsageError("expected --warmup <= --steps, got " + std::to_string(o.warmup));
  if (o.sequence + 1 > static_cast<std::int64_t>(kEvalTextBytes)) {
    throw UsageError("expected --sequence below " + std::to_string(kEvalTextBytes) + ", got " + std::to_string(o.sequence));
  }
  try {  // the offload directory and the ring, as the optimizer will check them
    octopage::Optimizer check("adamw", default_options("adamw"), tier_options(o));
  } catch (const octopage::Error& e) {
    throw UsageError(e.what());
  }
  if (!o.resume.empty() && !fs::exists(fs::path(o.resume) / "checkpoint.json")) {
    throw UsageError("expected --resume to be a checkpoint directory (with checkpoint.json), got '" + o.resume + "'");
  }
}

json train(const TrainOptions& options) {
  check_train_options(options);
  const OptimizerChoice& choice = *find_optimizer(options.optimizer);
  const TrainOptions o = resolved(options, choice);
  perf::LlamaConfig config = *perf::find_llama_config(o.model);
  config.tied = config.tied || o.tie_embeddings;
  if (o.threads > 0) ::torch::set_num_threads(o.threads);

  ::torch::manual_seed(o.seed);
  Llama model(config, o.sequence);
  const std::vector<::torch::Tensor> params = model->parameters();
  std::unique_ptr<::torch::optim::Optimizer> opt = make_optimizer(choice, params, o);
  const ::torch::Tensor train_text = text_tensor(o.seed, kTrainTextBytes);
  const ::torch::Tensor eval_text = text_tensor(o.seed ^ kEvalSeed, kEvalTextBytes);

  std::int64_t first = 0;
  std::vector<double> losses;
  if (!o.resume.empty()) {
    const json meta = load_checkpoint(o.resume, o, choice, model, *opt);
    first = meta["step"].get<std::int64_t>();
    losses = meta["losses"].get<std::vector<double>>();
  }
  const std::int64_t last = o.stop_at > 0 ? o.stop_at : o.steps;
  if (first >= last) {
    throw std::runtime_error("nothing to train: the checkpoint is at step " + std::to_string(first) +
                             " and this run stops at step " + std::to_string(last));
  }

  Progress progress(choice.name, first, last, o.progress);
  std::vector<double> step_seconds, optimizer_seconds;
  const Clock::time_point start = Clock::now();
  Clock::time_point timed_start = start;
  for (std::int64_t step = first; step < last; ++step) {
    for (auto& group : opt->param_groups()) group.options().set_lr(learning_rate(o, step));
    const Clock::time_point t0 = Clock::now();
    opt->zero_grad();
    const ::torch::Tensor loss = model->loss(batch_tokens(train_text, o.seed, step, o));
    loss.backward();
    if (o.clip > 0) ::torch::nn::utils::clip_grad_norm_(params, o.clip);
    const Clock::time_point t1 = Clock::now();
    opt->step();
    const Clock::time_point t2 = Clock::now();
    losses.push_back(loss.item<double>());
    if (step == first) {
      timed_start = t2;  // the first step creates the state: not timed
    } else {
      step_seconds.push_back(seconds(t2 - t0));
      optimizer_seconds.push_back(seconds(t2 - t1));
    }
    const double timed = seconds(Clock::now() - timed_start);
    const double tokens_per_s = timed > 0 ? static_cast<double>((step - first) * o.batch * o.sequence) / timed : 0.0;
    progress.update(step + 1, losses.back(), tokens_per_s);
  }
  const double train_seconds = seconds(Clock::now() - timed_start);

  double eval_loss = 0;
  {
    ::torch::NoGradGuard no_grad;
    for (std::int64_t b = 0; b < o.eval_batches; ++b) {
      eval_loss += model->loss(batch_tokens(eval_text, o.seed ^ kEvalSeed, b, o)).item<double>();
    }
    eval_loss /= static_cast<double>(std::max<std::int64_t>(1, o.eval_batches));
  }

  const std::size_t tail = std::max<std::size_t>(1, losses.size() / 10);
  double final_train_loss = 0;
  for (std::size_t i = losses.size() - tail; i < losses.size(); ++i) final_train_loss += losses[i] / static_cast<double>(tail);
  std::uint64_t param_bytes = 0;
  for (const ::torch::Tensor& p : params) param_bytes += p.nbytes();

  json result = {
      {"kind", "train"}, {"optimizer", choice.key}, {"optimizer_name", choice.name},
      {"options", run_options(o, choice)}, {"threads", ::torch::get_num_threads()},
      {"parameters", perf::parameter_count(config)}, {"first_step", first}, {"last_step", last},
      {"losses", losses}, {"final_train_loss", final_train_loss}, {"eval_loss", eval_loss},
      {"step_ms", 1e3 * median(step_seconds)}, {"optimizer_step_ms", 1e3 * median(optimizer_seconds)},
      {"tokens_per_s", train_seconds > 0 ? static_cast<double>((last - first - 1) * o.batch * o.sequence) / train_seconds : 0.0},
      {"state_bytes", state_memory(*opt)}, {"param_bytes", param_bytes}, {"grad_bytes", param_bytes},
      {"peak_rss_bytes", peak_rss_bytes()}, {"param_hash", parameter_hash(params)}};
  if (!o.save.empty()) {
    save_checkpoint(o.save, model, *opt,
                    {{"format", kCheckpointFormat}, {"options", run_options(o, choice)}, {"optimizer", choice.key},
                     {"step", last}, {"losses", losses}});
  }
  if (!o.json.empty()) write_json(o.json, result);
  return result;
}

}  // namespace octopage::cli
