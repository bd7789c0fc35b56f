// The CUDA launcher of a build without the CUDA backend: never reached (the engine
// refuses CUDA buffers first), and a failure if it were.
#include "src/kernels/cuda/cuda_kernels.h"

namespace octopage::kernels::cuda {

int launch(int, StateFormat, DType, const CudaTask*, std::size_t, void*) {
  return 1;  // memory::cuda::check() turns any non-zero status into "no CUDA backend"
}

}  // namespace octopage::kernels::cuda
