// octopage_bench: the step benchmark (perf/step_bench.cc) as its own program.
#include "perf/step_bench.h"

int main(int argc, char** argv) { return octopage::perf::step_bench_main(argc, argv, "octopage_bench"); }
