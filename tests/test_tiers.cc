// The `paged` and `offload` placements against `device`: bitwise the same parameters and
// state over many steps for every dtype and state format, state files that are reserved,
// reported and removed, and the errors of bad tier options, a full disk and failed I/O
// (Note [Failed step]).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "octopage/octopage.h"
#include "src/memory/io_queue.h"
#include "tests/test_util.h"

namespace octopage {
namespace {

namespace fs = std::filesystem;
using testing::TestParam;
using testing::adamw_options;
using testing::small_ring;

// Sizes: several records and chunks, odd tails, a 1-element, an empty and many small tensors.
const std::vector<std::int64_t> kSizes = {150001, 4096, 4099, 255, 1, 0, 70000, 8192, 300};

// TrainingRun with a schedule: at step s every parameter gets a gradient except
// parameter s % size (from step 2 on), and lr changes, so skipped parameters and
// changing options are covered.
struct TieredRun : testing::TrainingRun {
  TieredRun(GroupOptions options, DType dtype, TierOptions tiers = {},
            const std::vector<std::int64_t>& sizes = kSizes, std::string_view rule = "adamw")
      : TrainingRun(rule, options, dtype, sizes, std::move(tiers)) {}
  void step(int s) {
    ParamGroup& group = opt.param_group(0);
    for (std::size_t k = 0; k < params.size(); ++k) {
      const bool skip = s >= 2 && k == static_cast<std::size_t>(s) % params.size();
      params[k].set_grad(1000 * s + k);
      group.set_grad(k, skip ? TensorRef{} : params[k].grad.ref());
    }
    group.options.set("lr", 1e-2 / (1 + s));
    opt.step();
  }
  void steps(int from, int to) {
    for (int s = from; s < to; ++s) step(s);
  }
};

struct Case {
  int bits;
  bool amsgrad;
  Placement placement;
  IoBackend backend;
};

class EveryPlacement : public ::testing::TestWithParam<Case> {};

TEST_P(EveryPlacement, GivesBitwiseTheParametersAndStateOfDevice) {
  const Case c = GetParam();
  for (DType dtype : testing::kAllDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    TieredRun device(adamw_options(c.bits, Placement::kDevice, c.amsgrad), dtype);
    TieredRun tiered(adamw_options(c.bits, c.placement, c.amsgrad), dtype, small_ring(c.backend));
    for (int s = 0; s < 7; ++s) {
      device.step(s);
      tiered.step(s);
      ASSERT_EQ(tiered.bits(), device.bits()) << "after step " << s;  // state read back from its home
    }
    EXPECT_EQ(tiered.opt.state(0, 0).placement, c.placement);
    const MemoryReport r = tiered.opt.memory_report();
    EXPECT_EQ(r.state_bytes_in(Tier::kFile), device.opt.memory_report().state_bytes_in(Tier::kHost));
    EXPECT_EQ(r.state_bytes_in(Tier::kHost), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiers, EveryPlacement,
    ::testing::Values(Case{32, false, Placement::kPaged, IoBackend::kAuto},
                      Case{8, false, Placement::kPaged, IoBackend::kAuto},
                      Case{32, true, Placement::kPaged, IoBackend::kAuto},
                      Case{32, false, Placement::kOffload, IoBackend::kIoUring},
                      Case{8, false, Placement::kOffload, IoBackend::kIoUring},
                      Case{32, true, Placement::kOffload, IoBackend::kIoUring},
                      Case{8, false, Placement::kOffload, IoBackend::kThreads},
                      Case{32, false, Placement::kOffload, IoBackend::kThreads}),
    [](const ::testing::TestParamInfo<Case>& info) {
      const Case& c = info.param;
      return std::string(placement_name(c.placement)) + std::to_string(c.bits) + "bit" +
             (c.amsgrad ? "Amsgrad" : "") +
             (c.placement == Placement::kOffload ? c.backend == IoBackend::kThreads ? "Threads" : "IoUring" : "");
    });

// Every variant of every registered rule, in each state format it has, on `paged` and
// `offload`: bitwise the parameters and state of `device`, with the variant's states.
// The table comes from the registry, so a new rule is covered without new test code.
TEST(Tiers, EveryRuleVariantGivesBitwiseTheStateOfDevice) {
  for (const RuleInfo& rule : registered_rules()) {
    for (const testing::VariantExample& example : testing::variant_examples(rule.name)) {
      const VariantInfo& variant = rule.variants[static_cast<std::size_t>(example.variant)];
      for (int bits : {32, 8}) {
        if (bits == 8 && !variant.quantizable) continue;
        for (Placement placement : {Placement::kPaged, Placement::kOffload}) {
          SCOPED_TRACE(rule.name + " " + variant.name + " " + std::to_string(bits) + "-bit " + placement_name(placement));
          GroupOptions options = example.options;
          options.optim_bits = bits;
          TieredRun device(options, DType::kBFloat16, {}, kSizes, rule.name);
          options.placement = placement;
          TieredRun tiered(options, DType::kBFloat16, small_ring(), kSizes, rule.name);
          for (int s = 0; s < 4; ++s) {
            device.step(s);
            tiered.step(s);
            ASSERT_EQ(tiered.bits(), device.bits()) << "after step " << s;
          }
          const StateSnapshot state = tiered.opt.state(0, 0);
          ASSERT_EQ(state.arrays.size(), variant.states.size());
          for (std::size_t k = 0; k < variant.states.size(); ++k) EXPECT_EQ(state.arrays[k].name, variant.states[k].name);
          EXPECT_EQ(state.format, bits == 8 ? StateFormat::kQ8 : StateFormat::kFp32);
        }
      }
    }
  }
}

// percentile_clipping=0 clips every step whose gradient norm is above the smallest so
// far, and max_unorm (32-bit) caps the steps: the scaled updates and the history are
// bitwise those of `device` everywhere (offload reads its state for the norm first).
TEST(Tiers, ClippingGivesBitwiseTheStateOfDevice) {
  for (int bits : {32, 8}) {
    for (Placement placement : {Placement::kPaged, Placement::kOffload}) {
      SCOPED_TRACE(std::to_string(bits) + "-bit " + placement_name(placement));
      GroupOptions options = adamw_options(bits, Placement::kDevice);
      options.percentile_clipping = 0;
      if (bits == 32) options.max_unorm = 0.05;  // and max_unorm, whose norm reads the state first
      TieredRun device(options, DType::kBFloat16);
      options.placement = placement;
      TieredRun tiered(options, DType::kBFloat16, small_ring());
      for (int s = 0; s < 5; ++s) {
        device.step(s);
        tiered.step(s);
        ASSERT_EQ(tiered.bits(), device.bits()) << "after step " << s;
        for (std::size_t k = 0; k < kSizes.size(); ++k) {
          ASSERT_EQ(tiered.opt.state(0, k).gnorm_vec, device.opt.state(0, k).gnorm_vec);
        }
      }
      EXPECT_EQ(device.opt.state(0, 0).gnorm_vec.size(), 100u);
    }
  }
}

// plan_memory, which allocates nothing, says what the optimizer's memory_report says
// once every parameter has stepped.
TEST(Tiers, PlannedMemoryIsWhatAStepMakes) {
  for (Placement placement : {Placement::kDevice, Placement::kPaged, Placement::kOffload}) {
    for (int bits : {32, 8}) {
      SCOPED_TRACE(std::string(placement_name(placement)) + " " + std::to_string(bits) + "-bit");
      const GroupOptions o = adamw_options(bits, placement, bits == 32);
      TieredRun run(o, DType::kBFloat16, small_ring());
      run.step(0);
      const MemoryReport got = run.opt.memory_report();
      const MemoryReport planned = plan_memory("adamw", kSizes, o, small_ring());
      EXPECT_EQ(planned.state_bytes, got.state_bytes);
      EXPECT_EQ(planned.staging_bytes, got.staging_bytes);
      EXPECT_EQ(planned.peak_bytes, got.peak_bytes);
      EXPECT_EQ(planned.tensors_8bit, got.tensors_8bit);
      EXPECT_EQ(planned.tensors_32bit, got.tensors_32bit);
      EXPECT_EQ(planned.elements_8bit, got.elements_8bit);
      EXPECT_EQ(planned.elements_32bit, got.elements_32bit);
      EXPECT_GT(planned.total_state_bytes(), 0u);
      EXPECT_EQ(planned.tensors_8bit > 0, bits == 8);
    }
  }
  EXPECT_THROW(plan_memory("adamw", {-1}, default_options("adamw")), Error);
}

// A little offloaded state gets a little ring: as many chunks as hold it, at least 3.
TEST(Tiers, TheRingIsNoLargerThanTheOffloadedStateNeeds) {
  TierOptions tiers = small_ring();
  tiers.ring_bytes = 16 * tiers.chunk_bytes;
  // 32-bit state in 16 KiB chunks: records of 2048 elements, each in a 16 KiB slot, the
  // last one in 4 KiB pages: 5000 and 7000 elements take 40 and 56 KiB, 6 slots.
  for (const auto& [sizes, slots] : std::vector<std::pair<std::vector<std::int64_t>, std::uint64_t>>{
           {{300}, 3}, {{5000, 7000}, 6}, {{150001}, 16}}) {
    TieredRun run(adamw_options(32, Placement::kOffload), DType::kFloat32, tiers, sizes);
    run.steps(0, 3);
    const MemoryReport r = run.opt.memory_report();
    EXPECT_EQ(r.staging_bytes, slots * tiers.chunk_bytes) << sizes[0];
    EXPECT_GE(r.staging_bytes, std::min<std::uint64_t>(r.state_bytes_in(Tier::kFile), 16 * tiers.chunk_bytes));
    EXPECT_EQ(plan_memory("adamw", sizes, adamw_options(32, Placement::kOffload), tiers).staging_bytes, r.staging_bytes);
  }
}

TEST(Tiers, DefaultRingAndChunkMatchDeviceToo) {
  TieredRun device(adamw_options(8, Placement::kDevice), DType::kBFloat16);
  TieredRun offload(adamw_options(8, Placement::kOffload), DType::kBFloat16);
  device.steps(0, 3);
  offload.steps(0, 3);
  EXPECT_EQ(offload.bits(), device.bits());
}

// page_out() writes paged state back and out of RAM; the next steps bring it back and
// the run goes on bitwise as if it had stayed.
TEST(Tiers, PagedStatePagesOutOnRequestAndComesBack) {
  const std::vector<std::int64_t> sizes = {1 << 20, 5000};
  TieredRun device(adamw_options(8, Placement::kDevice), DType::kFloat32, small_ring(), sizes);
  TieredRun paged(adamw_options(8, Placement::kPaged), DType::kFloat32, small_ring(), sizes);
  device.steps(0, 3);
  paged.steps(0, 3);
  const std::uint64_t before = paged.opt.memory_report().paged_resident_bytes;
  EXPECT_GT(before, (1u << 21) - 4096u);  // the 1M-element parameter's 2 MiB of codes at least
  paged.opt.page_out();
  EXPECT_LT(paged.opt.memory_report().paged_resident_bytes, before / 4);
  device.steps(3, 5);
  paged.steps(3, 5);
  EXPECT_EQ(paged.bits(), device.bits());
}

TEST(Tiers, PerParameterOverridesPickPlacementAndBits) {
  TestParam a(DType::kFloat32, 5000, 1), b(DType::kFloat32, 5000, 2), c(DType::kFloat32, 5000, 3);
  Optimizer opt("adamw", adamw_options(8, Placement::kPaged), small_ring());
  Parameter pb = b.parameter(), pc = c.parameter();
  pb.overrides.placement = Placement::kOffload;
  pc.overrides.placement = Placement::kDevice;
  pc.overrides.optim_bits = 32;
  opt.add_param_group({a.parameter(), pb, pc});
  for (TestParam* p : {&a, &b, &c}) p->set_grad(9);
  opt.step();
  EXPECT_EQ(opt.state(0, 0).placement, Placement::kPaged);
  EXPECT_EQ(opt.state(0, 0).format, StateFormat::kQ8);
  EXPECT_EQ(opt.state(0, 1).placement, Placement::kOffload);
  EXPECT_EQ(opt.state(0, 2).placement, Placement::kDevice);
  EXPECT_EQ(opt.state(0, 2).format, StateFormat::kFp32);
  const MemoryReport r = opt.memory_report();
  EXPECT_EQ(r.state_bytes_in(Tier::kHost), 8u * 5000);
  EXPECT_EQ(r.state_bytes_in(Tier::kFile), 2u * 2u * (5000 + 20 * 4));  // paged and offloaded
  EXPECT_EQ(r.staging_bytes, 3u * (16 << 10));  // the least ring: b's state is one chunk
  EXPECT_EQ(r.peak_bytes_in(Tier::kHost), r.state_bytes_in(Tier::kHost) + r.staging_bytes);
  EXPECT_GT(r.paged_resident_bytes, 0u);  // just written: in the page cache
  EXPECT_EQ(opt.state_files().size(), 2u);
}

TEST(Tiers, FilesAreRemovedWithTheOptimizerUnlessKept) {
  const fs::path dir = fs::temp_directory_path() / ("octopage-test-" + std::to_string(::getpid()));
  fs::create_directory(dir);
  for (bool keep : {false, true}) {
    std::vector<std::string> files;
    {
      TierOptions t = small_ring();
      t.offload_dir = dir.string();
      t.keep_files = keep;
      TieredRun run(adamw_options(8, Placement::kOffload), DType::kFloat32, t, {5000});
      run.opt.param_group(0).param(0).overrides.placement = Placement::kPaged;
      EXPECT_TRUE(run.opt.state_files().empty());  // made with the first such state
      run.steps(0, 1);
      files = run.opt.state_files();
      ASSERT_EQ(files.size(), 1u);
      EXPECT_EQ(fs::path(files[0]).parent_path(), dir);
      EXPECT_TRUE(fs::exists(files[0]));
      EXPECT_GE(fs::file_size(files[0]), 2u * 5000);  // reserved
    }
    EXPECT_EQ(fs::exists(files[0]), keep);
  }
  fs::remove_all(dir);
}

TEST(Tiers, ADefaultDirectoryIsTemporary) {
  std::string file;
  {
    TieredRun run(adamw_options(8, Placement::kOffload), DType::kFloat32, small_ring(), {5000});
    run.steps(0, 1);
    file = run.opt.state_files().at(0);
    EXPECT_TRUE(fs::exists(file));
  }
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(fs::exists(fs::path(file).parent_path()));
}

void expect_error(const std::function<void()>& f, ErrorKind kind, const std::string& regex) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one matching " << regex;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_TRUE(std::regex_search(e.what(), std::regex(regex))) << e.what() << "\n  expected: " << regex;
  }
}

TEST(Tiers, BadTierOptionsAreRefusedBeforeAnyState) {
  const auto with = [](auto change) {
    TierOptions t;
    change(t);
    return [t] { Optimizer opt("adamw", default_options("adamw"), t); };
  };
  expect_error(with([](TierOptions& t) { t.offload_dir = "/no/such/octopage/dir"; }), ErrorKind::kInvalidArgument,
               "expected offload_dir to be an existing directory, got '/no/such/octopage/dir': no such directory");
  expect_error(with([](TierOptions& t) { t.offload_dir = "/etc/hostname"; }), ErrorKind::kInvalidArgument,
               "expected offload_dir .*: not a directory");
  expect_error(with([](TierOptions& t) { t.offload_dir = "/proc"; }), ErrorKind::kInvalidArgument,
               "expected offload_dir '/proc' to be writable, got: ");
  expect_error(with([](TierOptions& t) { t.chunk_bytes = 1000; }), ErrorKind::kInvalidArgument,
               "expected chunk_bytes to be a positive multiple of 4096 \\(one aligned chunk holds at "
               "least one block of 256 values.*got 1000");
  expect_error(with([](TierOptions& t) { t.chunk_bytes = 0; }), ErrorKind::kInvalidArgument,
               "expected chunk_bytes to be a positive multiple of 4096");
  expect_error(with([](TierOptions& t) { t.ring_bytes = 2 * t.chunk_bytes; }), ErrorKind::kInvalidArgument,
               "expected ring_bytes >= 3 \\* chunk_bytes = 12582912 \\(one chunk read ahead, one "
               "updated, one written back\\), got 8388608");
}

// A full disk, made with the file size limit (the same error path as ENOSPC): the step
// that would create state fails before any update, and works once there is space.
TEST(Tiers, NoSpaceForNewStateIsAnErrorBeforeAnyUpdate) {
  for (Placement placement : {Placement::kPaged, Placement::kOffload}) {
    SCOPED_TRACE(placement_name(placement));
    TieredRun run(adamw_options(32, placement), DType::kFloat32, small_ring(), {100000, 5000});
    TieredRun device(adamw_options(32, Placement::kDevice), DType::kFloat32, {}, {100000, 5000});
    const auto before = run.bits();
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 64 << 10;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    run.params[0].set_grad(0);
    run.params[1].set_grad(1);
    expect_error([&] { run.opt.step(); }, ErrorKind::kRuntime,
                 "could not reserve [0-9]+ bytes for optimizer state in '.*': File too large");
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
    EXPECT_EQ(run.bits(), before);
    EXPECT_EQ(run.opt.memory_report().total_state_bytes(), 0u);
    run.steps(0, 3);
    device.steps(0, 3);
    EXPECT_EQ(run.bits(), device.bits());
  }
}

// Fails the n-th request of `kind` of the next step.
struct FailIo {
  FailIo(memory::IoKind kind, int n) { memory::fail_io_request_for_testing(kind, n); }
  ~FailIo() { memory::fail_io_request_for_testing(memory::IoKind::kRead, 0); }
};

TEST(Tiers, AFailedFirstReadChangesNothingAndTheOptimizerStepsOn) {
  TieredRun device(adamw_options(8, Placement::kDevice), DType::kBFloat16);
  TieredRun offload(adamw_options(8, Placement::kOffload), DType::kBFloat16, small_ring());
  device.steps(0, 2);
  offload.steps(0, 2);
  const auto before = offload.bits();
  {
    FailIo fail(memory::IoKind::kRead, 1);
    expect_error([&] { offload.step(2); }, ErrorKind::kRuntime,
                 "I/O error reading offloaded optimizer state from '.*offload.state' \\([0-9]+ bytes "
                 "at offset 0, io backend io_uring\\): Input/output error\\. Nothing was updated: the "
                 "optimizer is as it was before this step\\.");
  }
  EXPECT_FALSE(offload.opt.failed());
  EXPECT_EQ(offload.bits(), before);
  device.steps(2, 4);
  offload.steps(2, 4);
  EXPECT_EQ(offload.bits(), device.bits());
}

TEST(Tiers, AnIoErrorPartWayFailsTheOptimizerAndSaysWhatWasUpdated) {
  for (memory::IoKind kind : {memory::IoKind::kRead, memory::IoKind::kWrite}) {
    const bool read = kind == memory::IoKind::kRead;
    SCOPED_TRACE(read ? "read" : "write");
    // One big parameter (many records) behind one small one, one parameter in RAM, and
    // parameter 2, which has no gradient in step 2.
    TieredRun offload(adamw_options(8, Placement::kOffload), DType::kFloat32, small_ring(),
                      {5000, 400000, 6000, 7000});
    offload.opt.param_group(0).param(3).overrides.placement = Placement::kDevice;
    offload.steps(0, 2);
    const auto before = offload.bits();
    {
      FailIo fail(kind, 10);
      expect_error([&] { offload.step(2); }, ErrorKind::kRuntime,
                   std::string("I/O error ") + (read ? "reading" : "writing") +
                       " offloaded optimizer state .*: Input/output error\\. The step stopped part-way\\. "
                       "Updated: \\(group 0, parameter 0\\)\\. Partly updated \\(parameter and state no "
                       "longer match\\): \\(group 0, parameter 1\\)\\. Not updated: \\(group 0, parameter 3\\)\\. "
                       "Restore the model and the optimizer from a checkpoint\\.");
    }
    EXPECT_TRUE(offload.opt.failed());
    const auto after = offload.bits();
    EXPECT_NE(after[0], before[0]);  // parameter 0 updated
    EXPECT_EQ(offload.opt.state(0, 0).step, 3);
    EXPECT_EQ(offload.opt.state(0, 1).step, 2);
    EXPECT_EQ(offload.opt.state(0, 2).step, 2);
    EXPECT_EQ(offload.opt.state(0, 3).step, 2);
    constexpr std::size_t kPerParam = TieredRun::kBitsPerParam;
    EXPECT_NE(after[1 * kPerParam], before[1 * kPerParam]);  // parameter 1: some elements
    EXPECT_EQ(after[3 * kPerParam], before[3 * kPerParam]);  // parameter 3: untouched
    expect_error([&] { offload.step(3); }, ErrorKind::kRuntime,
                 "this optimizer cannot step again: an earlier step failed part-way.*I/O error");
  }
}

TEST(Tiers, ATruncatedStateFileIsAClearError) {
  TieredRun offload(adamw_options(8, Placement::kOffload), DType::kFloat32, small_ring(IoBackend::kThreads), {5000});
  offload.steps(0, 1);
  fs::resize_file(offload.opt.state_files().at(0), 0);
  expect_error([&] { offload.step(1); }, ErrorKind::kRuntime,
               "I/O error reading .*io backend threads\\): unexpected end of file \\(was the state file "
               "truncated\\?\\)\\. Nothing was updated");
  expect_error([&] { (void)offload.opt.state(0, 0); }, ErrorKind::kRuntime,
               "could not read offloaded optimizer state from '.*': unexpected end of file");
}

}  // namespace
}  // namespace octopage
