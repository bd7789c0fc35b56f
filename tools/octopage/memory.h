// `octopage memory`: what each optimizer's state costs for a named model size, planned
// by the core (octopage::plan_memory) without allocating or training, so it takes a
// moment even for sizes this machine could not hold.
#pragma once

namespace octopage::cli {

extern const char* const kMemoryUsage;
int run_memory(int argc, char** argv);  // argv: the options

}  // namespace octopage::cli
