// `octopage`: the command line. Subcommands: demo (the default: train a small LLaMA-style
// model with each optimizer and show what each costs and learns), train (one optimizer,
// with checkpoints), bench (the optimizer step benchmark) and memory (the memory table of
// a model size, without training). Usage errors exit 2, failures 1.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "perf/step_bench.h"
#include "tools/octopage/args.h"
#include "tools/octopage/demo.h"
#include "tools/octopage/memory.h"
#include "tools/octopage/optimizers.h"
#include "tools/octopage/recipes.h"
#include "tools/octopage/train.h"

namespace octopage::cli {
namespace {

constexpr const char* kUsage = R"(usage: octopage [COMMAND] [options]

commands:
  demo     train a small LLaMA-style model with AdamW, AdamW8bit, PagedAdamW8bit and
           offloaded AdamW8bit from the same seed; print and save what each costs in
           memory and time and what it learns (the default command)
  train    train with one optimizer; save and resume checkpoints
  bench    the optimizer step benchmark (throughput next to memory bandwidth)
  memory   the memory table of a model size, without training (e.g. llama-1b)

'octopage COMMAND --help' describes a command's options.
)";

constexpr const char* kTrainUsage = R"(usage: octopage train [options]

Trains the LLaMA-style model on generated text with one optimizer and prints the result
as JSON (losses, evaluation loss, optimizer state per tier, peak RSS, step times).

options (--flag value or --flag=value):
  --optimizer K    RULE or RULE8bit (32-bit or 8-bit state), in RAM, or with a paged- or
                   offload- prefix (e.g. adamw8bit, the default, paged-lion8bit,
                   offload-sgd8bit), for a RULE among those listed below; or torch-adamw
                   (LibTorch's AdamW)
  --model NAME     tiny, small (default), llama-220m or llama-1b
  --tie-embeddings the output head shares the embedding's weight (default: untied)
  --steps N        the run's length, which the learning-rate schedule spans (default 200)
  --stop-at N      stop after step N (default: --steps), e.g. to save and resume later
  --batch N        sequences per step (default 16)
  --sequence N     tokens per sequence (default 128)
  --lr X           peak learning rate (default: the rule's, below), after a warmup of
                   --warmup steps (default: a tenth of --steps), cosine down to a tenth
  --weight-decay X the rule's weight decay (default: the rule's, below)
  --clip X         gradient norm clipping (default 1; 0: none)
  --seed N         weights, text and batches (default 1)
  --threads N      CPU threads (default: every core)
  --device D       cpu (default); cuda where octopage was built with CUDA
  --offload-dir D  where paged and offloaded state goes (default: a temporary directory)
  --ring-kib N     the offload staging ring (default: octopage's, 32768)
  --chunk-kib N    a ring slot, a multiple of 4 (default: octopage's, 4096)
  --save DIR       write a checkpoint (model, optimizer, progress) at the end
  --resume DIR     start from a checkpoint; the run's options must be the saved ones
  --json PATH      also write the result there
  --quiet          no progress bar

rules, with the learning rate and weight decay each trains with by default:
)";

// kTrainUsage with each registered rule's key and training recipe.
std::string train_usage() {
  std::string usage = kTrainUsage;
  for (const OptimizerChoice& c : optimizer_choices()) {
    if (c.torch_reference || c.bits != 32 || c.placement != Placement::kDevice) continue;
    const Recipe r = recipe(c.rule);
    char line[160];
    std::snprintf(line, sizeof line, "  %-10s lr %-7g weight decay %g\n", c.key.c_str(), r.lr, r.weight_decay);
    usage += line;
  }
  return usage;
}

int run_train(int argc, char** argv) {  // argv: the options
  TrainOptions o;
  bool print_json = true;
  parse_flags(argc, argv, 0, {
      {"--optimizer", [&](std::string_view v) { o.optimizer = v; }},
      {"--model", [&](std::string_view v) { o.model = v; }},
      {"--tie-embeddings", [&](std::string_view) { o.tie_embeddings = true; }, false},
      {"--steps", [&](std::string_view v) { o.steps = parse_integer("--steps", v, 1); }},
      {"--stop-at", [&](std::string_view v) { o.stop_at = parse_integer("--stop-at", v, 1); }},
      {"--batch", [&](std::string_view v) { o.batch = parse_integer("--batch", v, 1); }},
      {"--sequence", [&](std::string_view v) { o.sequence = parse_integer("--sequence", v, 2); }},
      {"--lr", [&](std::string_view v) { o.lr = parse_positive("--lr", v); }},
      {"--warmup", [&](std::string_view v) { o.warmup = parse_integer("--warmup", v, 0); }},
      {"--weight-decay", [&](std::string_view v) { o.weight_decay = parse_positive("--weight-decay", v, true); }},
      {"--clip", [&](std::string_view v) { o.clip = parse_positive("--clip", v, true); }},
      {"--seed", [&](std::string_view v) { o.seed = static_cast<std::uint64_t>(parse_integer("--seed", v, 0)); }},
      {"--threads", [&](std::string_view v) { o.threads = static_cast<int>(parse_integer("--threads", v, 1, 4096)); }},
      {"--device", [&](std::string_view v) { check_device(v); }},
      {"--offload-dir", [&](std::string_view v) { o.offload_dir = v; }},
      {"--ring-kib", [&](std::string_view v) { o.ring_bytes = static_cast<std::uint64_t>(parse_integer("--ring-kib", v, 1)) << 10; }},
      {"--chunk-kib", [&](std::string_view v) { o.chunk_bytes = static_cast<std::uint64_t>(parse_integer("--chunk-kib", v, 1)) << 10; }},
      {"--save", [&](std::string_view v) { o.save = v; }},
      {"--resume", [&](std::string_view v) { o.resume = v; }},
      {"--json", [&](std::string_view v) { o.json = v; }},
      {"--quiet", [&](std::string_view) { o.progress = false; }, false},
      {"--no-print", [&](std::string_view) { print_json = false; }, false},  // demo's child runs
  });
  const nlohmann::json result = train(o);  // checks the options first
  if (print_json) std::cout << result.dump(1) << "\n";
  return 0;
}

// A subcommand: run(argc, argv) gets its options only.
struct Command {
  const char* name;
  std::string (*usage)();  // nullptr: the command prints its own
  int (*run)(int argc, char** argv);
};

// step_bench_main skips argv[0], which is the command's name here.
int run_bench(int argc, char** argv) { return perf::step_bench_main(argc + 1, argv - 1, "octopage bench"); }

const Command kCommands[] = {
    {"demo", [] { return std::string(kDemoUsage); }, run_demo},
    {"train", train_usage, run_train},
    {"bench", nullptr, run_bench},  // its own usage and errors
    {"memory", [] { return std::string(kMemoryUsage); }, run_memory},
};

bool asks_for_help(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

int main(int argc, char** argv) {
  const std::string_view first = argc > 1 ? argv[1] : "";
  if (first == "--help" || first == "-h" || first == "help") {
    std::cout << kUsage;
    return 0;
  }
  const Command* command = &kCommands[0];  // no command, or options only: the demo
  int options = argc > 1 && first.starts_with("--") ? 1 : 2;
  if (argc > 1 && !first.starts_with("--")) {
    command = nullptr;
    for (const Command& c : kCommands) {
      if (first == c.name) command = &c;
    }
    if (command == nullptr) {
      std::cerr << "octopage: unknown command '" << first << "'\n\n" << kUsage;
      return 2;
    }
  }
  options = std::min(options, argc);
  const int count = argc - options;
  char** rest = argv + options;
  if (command->usage != nullptr && asks_for_help(count, rest)) {
    std::cout << command->usage();
    return 0;
  }
  try {
    return command->run(count, rest);
  } catch (const UsageError& e) {
    std::cerr << "octopage " << command->name << ": " << e.what() << "\n\n"
              << (command->usage != nullptr ? command->usage() : std::string());
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "octopage " << command->name << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace
}  // namespace octopage::cli

int main(int argc, char** argv) { return octopage::cli::main(argc, argv); }
