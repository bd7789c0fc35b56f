// Portability macros shared by host code and (later) CUDA code.
#pragma once

#if defined(__CUDACC__)
#define OCTOPAGE_HOST_DEVICE __host__ __device__
#else
#define OCTOPAGE_HOST_DEVICE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define OCTOPAGE_INLINE inline __attribute__((always_inline))
#else
#define OCTOPAGE_INLINE inline
#endif
