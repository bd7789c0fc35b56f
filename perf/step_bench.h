// The step benchmark as a function, so `octopage_bench` and `octopage bench` are one
// program: parses argv (argv[0] is skipped) and runs; `program` names it in usage and
// error messages. Returns the exit status; usage errors exit(2).
#pragma once

namespace octopage::perf {

int step_bench_main(int argc, char** argv, const char* program);

}  // namespace octopage::perf
