// The training text of `octopage train` and `demo`: English-like sentences and small
// arithmetic facts generated deterministically from a seed (nothing is downloaded, the
// same seed gives the same bytes everywhere), and the windows of it that make each
// step's batch, chosen by step number alone, so a run resumed at step k sees the batches
// an uninterrupted run would. Bytes are the tokens (vocabulary 256). No tensors here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace octopage::cli {

// `bytes` bytes of text (whole sentences, the last one cut) from `seed`.
std::string generate_text(std::uint64_t seed, std::size_t bytes);

// The start of each of `batch` windows of `window` bytes of a text of `text_bytes` bytes
// for step `step` of stream `seed` (window <= text_bytes).
std::vector<std::int64_t> window_starts(std::uint64_t seed, std::int64_t step, std::int64_t batch,
                                        std::int64_t text_bytes, std::int64_t window);

}  // namespace octopage::cli
