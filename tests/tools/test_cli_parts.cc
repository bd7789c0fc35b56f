// The parts of the `octopage` command line on their own: every registered rule has its
// optimizer choices, a LibTorch class and a training recipe; the LLaMA model has the
// parameters perf/llama_config.h lists and is causal; the generated text is
// deterministic and its arithmetic is right; batches stay inside the text; tables quote
// CSV; charts are PNGs of the stated size and bad chart input is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "octopage/octopage.h"
#include "octopage/torch/optim.h"
#include "perf/llama_config.h"
#include "tools/octopage/args.h"
#include "tools/octopage/model.h"
#include "tools/octopage/optimizers.h"
#include "tools/octopage/plot.h"
#include "tools/octopage/recipes.h"
#include "tools/octopage/table.h"
#include "tools/octopage/text.h"
#include "tools/octopage/train.h"

namespace octopage::cli {
namespace {

// --- Optimizer choices ---------------------------------------------------------------

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

TEST(Optimizers, EveryRegisteredRuleHasItsChoicesClassAndRecipe) {
  struct Tier {
    const char* key_prefix;
    const char* name_prefix;
    Placement placement;
  };
  const Tier tiers[] = {{"", "", Placement::kDevice},
                        {"paged-", "Paged", Placement::kPaged},
                        {"offload-", "offloaded ", Placement::kOffload}};
  std::size_t expected = 1;  // torch-adamw
  for (const RuleInfo& rule : registered_rules()) {
    SCOPED_TRACE(rule.name);
    for (const Tier& tier : tiers) {
      for (int bits : {32, 8}) {
        const std::string suffix = bits == 8 ? "8bit" : "";
        const OptimizerChoice* c = find_optimizer(tier.key_prefix + lower(rule.display_name) + suffix);
        ASSERT_NE(c, nullptr) << tier.key_prefix << lower(rule.display_name) << suffix;
        ++expected;
        EXPECT_EQ(c->name, tier.name_prefix + rule.display_name + suffix);
        EXPECT_EQ(c->rule, rule.name);
        EXPECT_EQ(c->bits, bits);
        EXPECT_EQ(c->placement, tier.placement);
        EXPECT_FALSE(c->torch_reference);
        // train.cc builds this class, placed by its options.
        const torch::OptimizerClass* cls = torch::find_optimizer_class(c->class_name());
        ASSERT_NE(cls, nullptr) << c->class_name();
        EXPECT_EQ(cls->info->rule, rule.name);
        EXPECT_EQ(cls->info->bits, bits);
        // A tiered run's twin keeps the same state in RAM.
        const OptimizerChoice* twin = device_twin(*c);
        if (tier.placement == Placement::kDevice) {
          EXPECT_EQ(twin, nullptr);
        } else {
          ASSERT_NE(twin, nullptr);
          EXPECT_EQ(twin->rule, rule.name);
          EXPECT_EQ(twin->bits, bits);
          EXPECT_EQ(twin->placement, Placement::kDevice);
        }
      }
    }
    // Its recipe was chosen for the demo's model, and its options keep 8-bit state.
    EXPECT_EQ(std::count_if(recipes().begin(), recipes().end(), [&](const Recipe& r) { return r.rule == rule.name; }),
              1);
    GroupOptions options = training_options(rule.name);
    EXPECT_DOUBLE_EQ(options.get("lr"), recipe(rule.name).lr);
    options.optim_bits = 8;
    EXPECT_NO_THROW(octopage::Optimizer(rule.name, options)) << "the recipe of " << rule.name;
  }
  EXPECT_EQ(optimizer_choices().size(), expected);
  // The keys the demo, the tests and the README use keep their meaning.
  const OptimizerChoice& paged = *find_optimizer("paged-adamw8bit");
  EXPECT_EQ(paged.name, "PagedAdamW8bit");
  EXPECT_EQ(paged.rule, "adamw");
  EXPECT_EQ(device_twin(paged)->key, "adamw8bit");
  EXPECT_EQ(find_optimizer("offload-adamw")->name, "offloaded AdamW");
  const OptimizerChoice& reference = *find_optimizer("torch-adamw");
  EXPECT_TRUE(reference.torch_reference);
  EXPECT_EQ(device_twin(reference), nullptr);
  EXPECT_EQ(find_optimizer("adamw4bit"), nullptr);
  EXPECT_EQ(training_options("adamw", 0.5).get("lr"), 0.5);
  EXPECT_EQ(training_options("sgd", -1, 0.25).get("weight_decay"), 0.25);
}

TEST(Optimizers, AnUnknownKeyIsRefusedWithEveryKey) {
  TrainOptions o;
  o.optimizer = "lion4bit";
  try {
    check_train_options(o);
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("got 'lion4bit'"), std::string::npos) << message;
    for (const OptimizerChoice& c : optimizer_choices()) {
      EXPECT_NE(message.find(c.key + (c.key == "torch-adamw" ? "" : ",")), std::string::npos) << c.key;
    }
  }
}

// --- The model and its text -------------------------------------------------------------

perf::LlamaConfig variant(std::string name, std::int64_t kv_heads, bool tied) {
  perf::LlamaConfig c = *perf::find_llama_config("tiny");
  c.name = std::move(name);
  c.kv_heads = kv_heads;
  c.tied = tied;
  return c;
}

TEST(Model, HasTheParametersTheConfigLists) {
  for (const perf::LlamaConfig& c : {*perf::find_llama_config("tiny"), *perf::find_llama_config("small"),
                                     variant("gqa", 2, false), variant("tied", 4, true)}) {
    SCOPED_TRACE(c.name);
    Llama model(c, 16);
    const std::vector<::torch::Tensor> params = model->parameters();
    const auto shapes = perf::parameter_shapes(c);
    ASSERT_EQ(params.size(), shapes.size());
    for (std::size_t i = 0; i < params.size(); ++i) EXPECT_EQ(params[i].sizes().vec(), shapes[i]) << i;
  }
  std::int64_t total = 0;
  for (const ::torch::Tensor& p : Llama(*perf::find_llama_config("tiny"), 16)->parameters()) total += p.numel();
  EXPECT_EQ(total, perf::parameter_count(*perf::find_llama_config("tiny")));
}

TEST(Model, IsCausalAndDeterministic) {
  const perf::LlamaConfig c = variant("gqa", 2, false);
  ::torch::manual_seed(3);
  Llama model(c, 16);
  ::torch::Tensor tokens = ::torch::randint(0, 256, {2, 12}, ::torch::kInt64);
  const ::torch::Tensor logits = model->forward(tokens);
  EXPECT_EQ(logits.sizes().vec(), (std::vector<std::int64_t>{2, 12, c.vocab}));
  ::torch::Tensor changed = tokens.clone();
  changed.index_put_({::torch::indexing::Slice(), 8}, (tokens.index({::torch::indexing::Slice(), 8}) + 1) % 256);
  const ::torch::Tensor after = model->forward(changed);
  const auto before_8 = ::torch::indexing::Slice(0, 8);
  EXPECT_TRUE(::torch::equal(logits.index({::torch::indexing::Slice(), before_8}),
                             after.index({::torch::indexing::Slice(), before_8})));
  EXPECT_FALSE(::torch::equal(logits.index({::torch::indexing::Slice(), 8}), after.index({::torch::indexing::Slice(), 8})));
  ::torch::manual_seed(3);
  EXPECT_TRUE(::torch::equal(Llama(c, 16)->forward(tokens), logits));
  EXPECT_THROW(model->forward(::torch::zeros({1, 17}, ::torch::kInt64)), c10::Error);
}

TEST(Text, IsDeterministicAndItsArithmeticIsRight) {
  const std::string text = generate_text(7, 20000);
  EXPECT_EQ(text.size(), 20000u);
  EXPECT_EQ(text, generate_text(7, 20000));
  EXPECT_NE(text, generate_text(8, 20000));
  const std::regex sum(R"((\d+) \+ (\d+) = (\d+)\.)"), product(R"((\d+) times (\d+) is (\d+)\.)");
  int checked = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), sum); it != std::sregex_iterator(); ++it, ++checked) {
    EXPECT_EQ(std::stoi((*it)[1]) + std::stoi((*it)[2]), std::stoi((*it)[3])) << it->str();
  }
  for (auto it = std::sregex_iterator(text.begin(), text.end(), product); it != std::sregex_iterator(); ++it, ++checked) {
    EXPECT_EQ(std::stoi((*it)[1]) * std::stoi((*it)[2]), std::stoi((*it)[3])) << it->str();
  }
  EXPECT_GT(checked, 100);
  for (unsigned char ch : text) EXPECT_TRUE(ch == '\n' || (ch >= 32 && ch < 127));
}

TEST(Text, WindowsDependOnTheStepAloneAndStayInside) {
  for (std::int64_t step : {0, 1, 999}) {
    const auto starts = window_starts(1, step, 64, 1000, 129);
    EXPECT_EQ(starts, window_starts(1, step, 64, 1000, 129));
    ASSERT_EQ(starts.size(), 64u);
    for (std::int64_t s : starts) EXPECT_TRUE(s >= 0 && s + 129 <= 1000) << s;
  }
  EXPECT_NE(window_starts(1, 0, 64, 1000, 129), window_starts(1, 1, 64, 1000, 129));
  EXPECT_EQ(window_starts(1, 0, 3, 129, 129), (std::vector<std::int64_t>{0, 0, 0}));
}

TEST(Table, QuotesCsvCellsThatNeedIt) {
  Table t{{"", "a,b"}, {{"say \"hi\"", "1.5"}}};
  EXPECT_EQ(t.csv(), ",\"a,b\"\n\"say \"\"hi\"\"\",1.5\n");
  EXPECT_EQ(percent(0.746), "74.6%");
  EXPECT_EQ(percent(0.003, true), "+0.3%");
  EXPECT_EQ(mib(3 << 20), "3.0");
}

// Width and height from a PNG's IHDR chunk.
std::pair<std::uint32_t, std::uint32_t> png_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> head(24);
  in.read(reinterpret_cast<char*>(head.data()), 24);
  EXPECT_EQ(std::string(head.begin() + 1, head.begin() + 4), "PNG");
  const auto be32 = [&](int at) {
    return std::uint32_t{head[at]} << 24 | std::uint32_t{head[at + 1]} << 16 | std::uint32_t{head[at + 2]} << 8 | head[at + 3];
  };
  return {be32(16), be32(20)};
}

TEST(Plot, WritesPngsAndRefusesBadInput) {
  const std::string dir = ::testing::TempDir();
  write_line_chart(dir + "/loss.png", {"loss", "step", "loss", {{"a", {1, 2, 3}, {3.0, 2.0, 1.5}}}});
  write_bar_chart(dir + "/memory.png", {"memory", "MiB", {"A", "B"}, {"x", "y"}, {{1, 2}, {3, 0}}});
  EXPECT_EQ(png_size(dir + "/loss.png"), std::make_pair(960u, 600u));
  EXPECT_EQ(png_size(dir + "/memory.png"), std::make_pair(960u, 600u));
  EXPECT_THROW(write_line_chart(dir + "/bad.png", {"", "", "", {{"a", {1, 2}, {1.0}}}}), std::invalid_argument);
  EXPECT_THROW(write_bar_chart(dir + "/bad.png", {"", "", {"A"}, {"x", "y"}, {{1}}}), std::invalid_argument);
  EXPECT_THROW(write_bar_chart(dir + "/bad.png", {"", "", {"A"}, {"x"}, {{-1}}}), std::invalid_argument);
  EXPECT_THROW(write_line_chart("/no/such/dir/loss.png", {"", "", "", {}}), std::runtime_error);
}

}  // namespace
}  // namespace octopage::cli
