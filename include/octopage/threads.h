// The CPU threads octopage's kernels run on: one pool per process, shared by every
// optimizer, so several optimizers never oversubscribe the cores.
#pragma once

namespace octopage {

// Threads a step uses, the calling thread included. Default: the CPUs this process may
// run on, or the environment variable OCTOPAGE_NUM_THREADS when it is set.
int num_threads();

// n >= 1. Takes effect at the next step. Results do not depend on it.
void set_num_threads(int n);

// For framework adapters, before each step: use the framework's n threads (so the two
// never oversubscribe the cores), unless the user chose a count with set_num_threads or
// OCTOPAGE_NUM_THREADS, which then stays.
void follow_num_threads(int n);

}  // namespace octopage
