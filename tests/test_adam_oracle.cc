// The fp64 oracle against values worked out by hand from the algorithm torch documents
// for torch.optim.Adam and AdamW (and cross-checked once against torch.optim in fp64).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "src/rules/adam_oracle.h"

namespace octopage::rules {
namespace {

struct Expected {
  double p, m, v, v_max;
};

struct OracleCase {
  const char* name;
  AdamOracleConfig config;
  double p0;
  std::vector<double> grads;
  std::vector<Expected> after_each_step;
};

// Step 1 of the first case, by hand: AdamW decays first, p = 1 * (1 - 0.1*0.1) = 0.99;
// m = 0.1*0.5 = 0.05; v = 0.001*0.25 = 0.00025; bias corrections 1 - 0.9 = 0.1 and
// 1 - 0.999 = 0.001; denominator sqrt(0.00025)/sqrt(0.001) + 1e-8 = 0.5 + 1e-8;
// p = 0.99 - (0.1/0.1) * 0.05 / (0.5 + 1e-8) = 0.890000002. The other steps and cases
// follow the same formulas (computed in Python doubles).
const OracleCase kCases[] = {
    {"adamw",
     {0.1, 0.9, 0.999, 1e-8, 0.1, true, false},
     1.0,
     {0.5, -0.25, 0.125},
     {{0.89000000199999996, 0.049999999999999989, 0.00025000000000000022, 0.00025000000000000022},
      {0.85446629868784629, 0.019999999999999997, 0.0003122500000000003, 0.0003122500000000003},
      {0.81187872190977561, 0.030499999999999996, 0.0003275627500000003, 0.0003275627500000003}}},
    // Adam adds wd*p to the gradient: step 1 sees g = 0.5 + 0.1*1 = 0.6.
    {"adam_l2",
     {0.1, 0.9, 0.999, 1e-8, 0.1, false, false},
     1.0,
     {0.5, -0.25, 0.125},
     {{0.9000000016666666, 0.059999999999999984, 0.00036000000000000029, 0.00036000000000000029},
      {0.85444136746176247, 0.038000000016666653, 0.00038523999994666703, 0.00038523999994666703},
      {0.8005694720858495, 0.055244413689617605, 0.00042914149463756373, 0.00042914149463756373}}},
    // amsgrad divides by sqrt(max v so far); here v grows, so v_max == v.
    {"adamw_amsgrad",
     {0.01, 0.8, 0.99, 1e-3, 0.0, true, true},
     -2.0,
     {3.0, -1.0, 0.5},
     {{-2.0099966677774077, 0.59999999999999987, 0.09000000000000008, 0.09000000000000008},
      {-2.0134804473728023, 0.27999999999999997, 0.099100000000000091, 0.099100000000000091},
      {-2.0170858718672475, 0.32399999999999995, 0.10060900000000009, 0.10060900000000009}}},
    // A large eps dominates the denominator: eps stays outside the square root.
    {"adam_large_eps",
     {1e-3, 0.5, 0.75, 0.5, 0.0, false, false},
     0.25,
     {1e-4, 2e-4, -3e-4},
     {{0.249999800039992, 5.0000000000000002e-05, 2.5000000000000001e-09, 2.5000000000000001e-09},
      {0.24999946681645643, 0.000125, 1.1875e-08, 1.1875e-08},
      {0.24999966672326956, -8.7499999999999986e-05, 3.1406249999999997e-08, 3.1406249999999997e-08}}},
};

void expect_close(double actual, double expected, const char* what) {
  EXPECT_NEAR(actual, expected, 1e-14 * std::fabs(expected) + 1e-300) << what;
}

TEST(AdamOracle, MatchesHandComputedSteps) {
  for (const OracleCase& c : kCases) {
    SCOPED_TRACE(c.name);
    AdamOracleElement e{c.p0, 0.0, 0.0, 0.0};
    for (std::size_t t = 0; t < c.grads.size(); ++t) {
      SCOPED_TRACE("step " + std::to_string(t + 1));
      adam_oracle_step(c.config, static_cast<std::int64_t>(t + 1), c.grads[t], e);
      const Expected& x = c.after_each_step[t];
      expect_close(e.p, x.p, "p");
      expect_close(e.m, x.m, "exp_avg");
      expect_close(e.v, x.v, "exp_avg_sq");
      if (c.config.amsgrad) expect_close(e.v_max, x.v_max, "max_exp_avg_sq");
    }
  }
}

TEST(AdamOracle, ZeroLearningRateLeavesParameterButUpdatesMoments) {
  AdamOracleConfig config;
  config.lr = 0.0;
  config.weight_decay = 0.5;
  config.decoupled = true;
  AdamOracleElement e{3.0, 0.0, 0.0, 0.0};
  adam_oracle_step(config, 1, 2.0, e);
  EXPECT_EQ(e.p, 3.0);
  EXPECT_DOUBLE_EQ(e.m, 0.2);
  EXPECT_DOUBLE_EQ(e.v, 0.004);
}

TEST(AdamOracle, NonFiniteGradientSkipsTheElement) {
  AdamOracleConfig config;
  for (double g : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity(), 2e19}) {
    AdamOracleElement e{1.5, 0.25, 0.125, 0.0};
    adam_oracle_step(config, 4, g, e);
    EXPECT_EQ(e.p, 1.5) << g;
    EXPECT_EQ(e.m, 0.25) << g;
    EXPECT_EQ(e.v, 0.125) << g;
  }
}

}  // namespace
}  // namespace octopage::rules
