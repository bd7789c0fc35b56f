// `octopage demo`, the main job: trains the LLaMA-style model with several optimizers
// from the same seed, each in its own `octopage train` process (so each peak RSS is its
// own), and shows side by side what each costs (peak RSS, optimizer state per tier, step
// time, tokens/s) and learns (loss, relative to AdamW; tiered runs bitwise equal to the
// device run), as a table on stdout, demo.csv, demo.json and two PNG charts.
#pragma once

namespace octopage::cli {

extern const char* const kDemoUsage;
int run_demo(int argc, char** argv);  // argv: the options

}  // namespace octopage::cli
