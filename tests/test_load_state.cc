// Optimizer::load_state (Note [Loading state]): state saved under one placement loads
// under every other and training goes on bitwise as if uninterrupted; a state of the other
// format is converted with the reference quantizer; bad states are refused with nothing
// changed.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "octopage/octopage.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/formats.h"
#include "src/quant/q8_reference.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

using testing::TrainingRun;
using testing::adamw_options;
using testing::small_ring;

// Several records of the small ring, odd tails, a tensor below min_8bit_size.
const std::vector<std::int64_t> kSizes = {40001, 4096, 300, 5000};

struct SavedRun : TrainingRun {
  SavedRun(int bits, Placement placement, bool amsgrad = false, DType dtype = DType::kBFloat16)
      : TrainingRun("adamw", adamw_options(bits, placement, amsgrad), dtype, kSizes, small_ring()) {}
  // Steps [from, to) with gradients that depend on the step only.
  void steps(int from, int to) {
    for (int s = from; s < to; ++s) {
      for (std::size_t k = 0; k < params.size(); ++k) params[k].set_grad(1000 * s + k);
      opt.step();
    }
  }
  std::vector<StateLoad> saved() const {
    std::vector<StateLoad> out;
    for (std::size_t k = 0; k < params.size(); ++k) out.push_back({0, k, opt.state(0, k)});
    return out;
  }
  void take_params_of(const SavedRun& other) {
    for (std::size_t k = 0; k < params.size(); ++k) params[k].value.set(other.params[k].value.values());
  }
};

const Placement kPlacements[] = {Placement::kDevice, Placement::kPaged, Placement::kOffload};

struct Format {
  int bits;
  bool amsgrad;
};

class LoadState : public ::testing::TestWithParam<Format> {};

TEST_P(LoadState, ContinuesBitwiseUnderEveryPlacement) {
  const Format f = GetParam();
  for (Placement from : kPlacements) {
    SavedRun saver(f.bits, from, f.amsgrad);
    saver.steps(0, 4);
    const std::vector<StateLoad> checkpoint = saver.saved();
    for (Placement to : kPlacements) {
      SCOPED_TRACE(std::string(placement_name(from)) + " -> " + placement_name(to));
      SavedRun loader(f.bits, to, f.amsgrad);
      loader.take_params_of(saver);
      loader.opt.load_state(checkpoint);
      EXPECT_EQ(loader.bits(), saver.bits());
      EXPECT_EQ(loader.opt.state(0, 0).placement, to);  // the loader's placement, not the saver's
      SavedRun uninterrupted(f.bits, from, f.amsgrad);
      uninterrupted.steps(0, 7);
      loader.steps(4, 7);
      EXPECT_EQ(loader.bits(), uninterrupted.bits());
    }
  }
}

TEST_P(LoadState, OverwritesExistingStateInPlace) {
  const Format f = GetParam();
  for (Placement placement : kPlacements) {
    SCOPED_TRACE(placement_name(placement));
    SavedRun saver(f.bits, placement, f.amsgrad);
    saver.steps(0, 3);
    SavedRun loader(f.bits, placement, f.amsgrad);
    loader.steps(10, 12);  // its own state, of the same layout
    const std::vector<std::string> files = loader.opt.state_files();
    const MemoryReport before = loader.opt.memory_report();
    loader.take_params_of(saver);
    loader.opt.load_state(saver.saved());
    EXPECT_EQ(loader.bits(), saver.bits());
    // Written where it was: no new memory or file space.
    const MemoryReport after = loader.opt.memory_report();
    for (std::size_t t = 0; t < kNumTiers; ++t) EXPECT_EQ(after.state_bytes[t], before.state_bytes[t]);
    EXPECT_EQ(loader.opt.state_files(), files);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, LoadState,
                         ::testing::Values(Format{32, false}, Format{8, false}, Format{32, true}),
                         [](const ::testing::TestParamInfo<Format>& info) {
                           return std::to_string(info.param.bits) + "bit" + (info.param.amsgrad ? "Amsgrad" : "");
                         });

TEST(LoadState, QuantizesA32BitStateWithTheReferenceEncoder) {
  SavedRun saver(32, Placement::kDevice);
  saver.steps(0, 3);
  SavedRun loader(8, Placement::kOffload);
  loader.opt.load_state(saver.saved());
  for (std::size_t k = 0; k < kSizes.size(); ++k) {
    SCOPED_TRACE(k);
    const StateSnapshot s32 = saver.opt.state(0, k);
    const StateSnapshot s8 = loader.opt.state(0, k);
    EXPECT_EQ(s8.step, 3);
    if (kSizes[k] < 4096) {  // below min_8bit_size: stays 32-bit, bitwise
      EXPECT_EQ(s8.format, StateFormat::kFp32);
      EXPECT_EQ(s8.at("exp_avg").values, s32.at("exp_avg").values);
      continue;
    }
    ASSERT_EQ(s8.format, StateFormat::kQ8);
    const std::int64_t n = kSizes[k];
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(n));
    std::vector<float> absmax(static_cast<std::size_t>(quant::q8_num_blocks(n)));
    quant::quantize_reference(quant::signed_code(), s32.at("exp_avg").values.data(), n, codes.data(),
                              absmax.data());
    EXPECT_EQ(s8.at("exp_avg").codes, codes);
    EXPECT_EQ(s8.at("exp_avg").absmax, absmax);
    quant::quantize_reference(quant::unsigned_code(), s32.at("exp_avg_sq").values.data(), n, codes.data(),
                              absmax.data());
    EXPECT_EQ(s8.at("exp_avg_sq").codes, codes);
    EXPECT_EQ(s8.at("exp_avg_sq").absmax, absmax);
  }
}

TEST(LoadState, DecodesAn8BitStateForA32BitOptimizer) {
  SavedRun saver(8, Placement::kPaged);
  saver.steps(0, 3);
  SavedRun loader(32, Placement::kDevice);
  loader.opt.load_state(saver.saved());
  const StateSnapshot s8 = saver.opt.state(0, 0);
  const StateSnapshot s32 = loader.opt.state(0, 0);
  ASSERT_EQ(s8.format, StateFormat::kQ8);
  ASSERT_EQ(s32.format, StateFormat::kFp32);
  const StateArray &m8 = s8.at("exp_avg"), &v8 = s8.at("exp_avg_sq");
  const StateArray &m32 = s32.at("exp_avg"), &v32 = s32.at("exp_avg_sq");
  for (std::size_t i = 0; i < m32.values.size(); i += 97) {
    const std::size_t block = i / quant::kQ8BlockSize;
    EXPECT_EQ(m32.values[i], quant::signed_code().values[m8.codes[i]] * m8.absmax[block]) << i;
    EXPECT_EQ(v32.values[i], quant::unsigned_code().values[v8.codes[i]] * v8.absmax[block]) << i;
  }
}

TEST(LoadState, StepZeroDropsTheStateAndTheParameterStartsAfresh) {
  SavedRun trained(32, Placement::kOffload);
  trained.steps(0, 3);
  SavedRun fresh(32, Placement::kOffload);
  fresh.take_params_of(trained);
  std::vector<StateLoad> none;
  for (std::size_t k = 0; k < kSizes.size(); ++k) none.push_back({0, k, StateSnapshot{}});
  trained.opt.load_state(none);
  EXPECT_EQ(trained.opt.state(0, 0).step, 0);
  EXPECT_EQ(trained.opt.memory_report().state_bytes_in(Tier::kFile), 0u);
  trained.steps(5, 6);
  fresh.steps(5, 6);
  EXPECT_EQ(trained.bits(), fresh.bits());
}

TEST(LoadState, AmsgradOffDropsTheSavedMax) {
  SavedRun saver(32, Placement::kDevice, /*amsgrad=*/true);
  saver.steps(0, 2);
  SavedRun loader(32, Placement::kDevice, /*amsgrad=*/false);
  loader.opt.load_state(saver.saved());
  const StateArray* max_exp_avg_sq = loader.opt.state(0, 0).find("max_exp_avg_sq");
  EXPECT_TRUE(max_exp_avg_sq == nullptr || max_exp_avg_sq->values.empty());
  EXPECT_EQ(loader.opt.state(0, 0).at("exp_avg_sq").values, saver.opt.state(0, 0).at("exp_avg_sq").values);
}

// The array called `name` of a state, to edit; Error when there is none.
StateArray& array_to_edit(StateSnapshot& s, std::string_view name) {
  (void)s.at(name);
  return *s.find(name);
}

// Each bad checkpoint is refused with its message, and the loader's state is unchanged.
TEST(LoadState, BadStatesAreRefusedAndChangeNothing) {
  SavedRun saver(32, Placement::kDevice);
  saver.steps(0, 2);
  const std::vector<StateLoad> good = saver.saved();
  struct Bad {
    const char* name;
    std::vector<StateLoad> loads;
    const char* message;
  };
  std::vector<Bad> cases;
  {
    auto loads = good;
    array_to_edit(loads[1].state, "exp_avg_sq").values.pop_back();
    cases.push_back({"short state2", loads, "param group 0, parameter 1: expected state2 (exp_avg_sq) of 4096 values"});
  }
  {
    auto loads = good;
    loads[3].index = 4;
    cases.push_back({"bad index", loads, "expected a parameter index below 4 in param group 0, got 4"});
  }
  {
    auto loads = good;
    loads[2].group = 1;
    cases.push_back({"bad group", loads, "expected a param group index below 1, got 1"});
  }
  {
    auto loads = good;
    loads.push_back(loads[2]);
    cases.push_back({"twice", loads, "expected each parameter's state at most once, got parameter 2 of param group 0 twice"});
  }
  {
    auto loads = good;
    loads[0].state.step = -1;
    cases.push_back({"negative step", loads, "expected a state's step >= 0, got -1"});
  }
  {
    auto loads = good;
    array_to_edit(loads[0].state, "exp_avg").codes.assign(40001, 0);
    cases.push_back({"mixed formats", loads, "expected a 32-bit state without 8-bit codes or absmax"});
  }
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.name);
    SavedRun loader(32, Placement::kOffload);
    loader.steps(10, 11);
    const auto before = loader.bits();
    try {
      loader.opt.load_state(bad.loads);
      ADD_FAILURE() << "expected an Error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(bad.message), std::string::npos) << e.what();
    }
    EXPECT_EQ(loader.bits(), before);
    EXPECT_FALSE(loader.opt.failed());
  }
  SavedRun amsgrad(32, Placement::kPaged, /*amsgrad=*/true);
  try {
    amsgrad.opt.load_state(good);
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("amsgrad=True but the state has no max_exp_avg_sq"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(amsgrad.opt.state(0, 0).step, 0);
}

}  // namespace
}  // namespace octopage
