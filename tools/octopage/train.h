// One training run of the LLaMA-style model (model.h) on the generated text (text.h)
// with one optimizer: the loop with its learning-rate schedule and gradient clipping,
// what it costs (optimizer state per tier, peak RSS, step times) and learns (losses),
// and checkpoints to save and resume bitwise. `octopage train` is this; `octopage demo`
// runs it once per optimizer, each in its own process.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace octopage::cli {

struct TrainOptions {
  std::string model = "small";
  bool tie_embeddings = false;  // the output head shares the embedding's weight
  std::string optimizer = "adamw8bit";
  std::int64_t steps = 200;     // the schedule's length
  std::int64_t stop_at = 0;     // stop after this step (0: steps), e.g. to save and resume
  std::int64_t batch = 16;
  std::int64_t sequence = 128;  // tokens a model sees at once
  double lr = -1;               // peak, after a linear warmup; cosine down to lr / 10; -1: the rule's recipe
  std::int64_t warmup = -1;     // steps; -1: steps / 10
  double weight_decay = -1;     // -1: the rule's recipe (recipes.h)
  double clip = 1.0;            // gradient norm clipping (0: none)
  std::uint64_t seed = 1;       // weights, text and batches
  std::int64_t eval_batches = 8;
  int threads = 0;              // 0: torch's default (every core)
  std::string offload_dir;      // paged and offloaded state (default: a temporary directory)
  std::uint64_t ring_bytes = 0;   // the offload staging ring (0: octopage's default)
  std::uint64_t chunk_bytes = 0;  // a ring slot (0: octopage's default)
  std::string save;             // checkpoint directory written at the end
  std::string resume;           // checkpoint directory to start from
  std::string json;             // where the result goes (also returned)
  bool progress = true;         // a progress bar on stderr
};

// The options' problems a user must fix, as a UsageError (args.h), before anything runs.
void check_train_options(const TrainOptions& options);

// Trains and returns the result: options, model size, per-step losses, the evaluation
// loss on held-out text, optimizer state bytes per tier, peak RSS, step times, tokens/s
// and a hash of the final parameters. Throws std::runtime_error on failure.
nlohmann::json train(const TrainOptions& options);

}  // namespace octopage::cli
