// What this build and this machine offer of octopage's CUDA backend. A build without it
// still answers: no, and why.
#pragma once

#include <string>

namespace octopage {

// A CUDA stream (cudaStream_t) as the core takes it, without CUDA headers; nullptr is
// the legacy default stream.
using CudaStream = void*;

// Whether this build has the CUDA backend (CMake option OCTOPAGE_CUDA).
bool cuda_built();
// CUDA devices the runtime sees now: 0 in a build without CUDA, without a driver or
// without a GPU.
int cuda_device_count();
// Empty when CUDA buffers can be stepped here, else why not (for error messages and for
// tests that skip without a GPU).
std::string cuda_unavailable_reason();

}  // namespace octopage
