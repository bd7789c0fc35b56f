// The CPU threads octopage's kernels run on: one pool per process, shared by every
// optimizer, so several optimizers never oversubscribe the cores.
#pragma once

namespace octopage {

// Threads a step uses, the calling thread included. Default: the CPUs this process may
// run on, or the environment variable OCTOPAGE_NUM_THREADS when it is set.
int num_threads();

// n >= 1. Takes effect at the next step. Results do not depend on it.
void set_num_threads(int n);

}  // namespace octopage
