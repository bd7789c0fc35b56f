// Asynchronous reads and writes of one file, for `offload`: io_uring where the kernel
// allows it, else IO threads over pread/pwrite. A request is whole: short transfers are
// continued inside, so a completion is either every byte or an error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "octopage/options.h"

namespace octopage::memory {

enum class IoKind : std::uint8_t { kRead, kWrite };

struct IoRequest {
  IoKind kind = IoKind::kRead;
  void* buffer = nullptr;  // stays valid until the request's completion is taken
  std::uint64_t bytes = 0;
  std::uint64_t offset = 0;
  std::uint64_t tag = 0;  // the caller's name for the request
};

// error: 0, an errno value, or kEndOfFile (a read past the end of the file).
struct IoCompletion {
  std::uint64_t tag = 0;
  IoKind kind = IoKind::kRead;
  int error = 0;
};
inline constexpr int kEndOfFile = -1;
std::string io_error_text(int error);

// Does the whole request synchronously (pread/pwrite, continuing short transfers);
// returns 0, an errno value or kEndOfFile.
int transfer(int fd, const IoRequest& request);

class IoQueue {
 public:
  virtual ~IoQueue() = default;
  virtual const char* name() const = 0;
  // Starts a request. At most `depth` (given at creation) may be in flight.
  void submit(const IoRequest& request);
  // Blocks until a submitted request finishes and returns it.
  IoCompletion wait();

 protected:
  virtual void start(const IoRequest& request) = 0;
  virtual IoCompletion next() = 0;

 private:
  int injected_failures_ = 0;  // requests failed by the test hook, not yet waited for
  std::uint64_t injected_tag_ = 0;
  IoKind injected_kind_ = IoKind::kRead;
};

// A queue over `fd` for up to `depth` requests in flight; throws Error(kRuntime) when
// the backend asked for cannot be had (kAuto falls back to threads).
std::unique_ptr<IoQueue> make_io_queue(IoBackend backend, int fd, unsigned depth);

// Test hook: the n-th request of `kind` submitted from now on (n >= 1) fails with EIO
// instead of running; n = 0 turns it off.
void fail_io_request_for_testing(IoKind kind, int n);

}  // namespace octopage::memory
