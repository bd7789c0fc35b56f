// What the core takes from LibTorch besides options: a tensor's buffer as a TensorRef
// (checked: dense, contiguous, a supported dtype and device), PyTorch's CUDA caching
// allocator for device state, and PyTorch's current CUDA stream. No optimizer logic.
#pragma once

#include <cstddef>

#include <torch/types.h>

#include "octopage/octopage.h"

namespace octopage::torch {

// A parameter's or gradient's buffer as the core takes it: dense, contiguous, on the CPU
// or (in a build with the CUDA backend) a CUDA device; c10::ValueError otherwise. `what`
// ("parameter", "gradient") and the position go into the message.
TensorRef tensor_ref(const ::torch::Tensor& t, const char* what, std::size_t group, std::size_t index);

// `tiers` with PyTorch's CUDA allocator for device state, where CUDA can run.
TierOptions with_torch_allocator(TierOptions tiers);

// PyTorch's current stream on the current CUDA device, as the core's stream.
CudaStream current_torch_stream();

}  // namespace octopage::torch
