// octopage_bench: the step benchmark (bench/step_bench.cc) as its own program.
#include "bench/step_bench.h"

int main(int argc, char** argv) { return octopage::bench::step_bench_main(argc, argv, "octopage_bench"); }
