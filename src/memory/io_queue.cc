#include "src/memory/io_queue.h"

#include <liburing.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "octopage/error.h"

namespace octopage::memory {
namespace {

std::atomic<int> g_fail_kind{0};
std::atomic<int> g_fail_countdown{0};

// Does what is left of `r` after `done` bytes; returns bytes moved or -errno.
long transfer_some(int fd, const IoRequest& r, std::uint64_t done) {
  char* buffer = static_cast<char*>(r.buffer) + done;
  const auto offset = static_cast<off_t>(r.offset + done);
  const std::uint64_t left = r.bytes - done;
  const long n = r.kind == IoKind::kRead ? ::pread(fd, buffer, left, offset) : ::pwrite(fd, buffer, left, offset);
  return n < 0 ? -errno : n;
}

// Step of a whole transfer: 1 when more is left, 0 when done, else the error.
int account(const IoRequest& r, long result, std::uint64_t& done) {
  if (result == -EINTR || result == -EAGAIN) return 1;
  if (result < 0) return static_cast<int>(-result);
  if (result == 0) return r.kind == IoKind::kRead ? kEndOfFile : EIO;
  done += static_cast<std::uint64_t>(result);
  return done < r.bytes ? 1 : 0;
}

class ThreadQueue final : public IoQueue {
 public:
  // One thread per direction, so a write-back never waits behind a read-ahead.
  explicit ThreadQueue(int fd) : fd_(fd) {
    for (int k = 0; k < 2; ++k) threads_.emplace_back([this, k] { serve(static_cast<IoKind>(k)); });
  }
  ~ThreadQueue() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    work_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  const char* name() const override { return "threads"; }

 protected:
  void start(const IoRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_[static_cast<int>(request.kind)].push_back(request);
    }
    work_.notify_all();
  }
  IoCompletion next() override {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return !completed_.empty(); });
    const IoCompletion c = completed_.front();
    completed_.pop_front();
    return c;
  }

 private:
  void serve(IoKind kind) {
    auto& queue = pending_[static_cast<int>(kind)];
    for (;;) {
      IoRequest r;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_.wait(lock, [&] { return stopping_ || !queue.empty(); });
        if (queue.empty()) return;
        r = queue.front();
        queue.pop_front();
      }
      const int status = transfer(fd_, r);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        completed_.push_back({r.tag, r.kind, status});
      }
      done_.notify_all();
    }
  }

  int fd_;
  std::mutex mutex_;
  std::condition_variable work_, done_;
  std::deque<IoRequest> pending_[2];
  std::deque<IoCompletion> completed_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

class UringQueue final : public IoQueue {
 public:
  UringQueue(int fd, unsigned depth, int& error) : fd_(fd), slots_(depth) {
    error = -io_uring_queue_init(depth, &ring_, 0);
    initialized_ = error == 0;
    for (unsigned i = 0; i < depth; ++i) free_.push_back(i);
  }
  ~UringQueue() override {
    if (initialized_) io_uring_queue_exit(&ring_);
  }
  const char* name() const override { return "io_uring"; }

 protected:
  void start(const IoRequest& request) override {
    OCTOPAGE_CHECK_RUNTIME(!free_.empty(), "internal error: more than ", slots_.size(),
                           " I/O requests in flight");
    const unsigned slot = free_.back();
    free_.pop_back();
    slots_[slot] = {request, 0};
    queue(slot);
  }
  IoCompletion next() override {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      int e = io_uring_wait_cqe(&ring_, &cqe);
      if (e == -EINTR) continue;
      OCTOPAGE_CHECK_RUNTIME(e == 0, "io_uring wait failed: ", std::strerror(-e));
      const auto slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
      const long result = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      Slot& s = slots_[slot];
      const int status = account(s.request, result, s.done);
      if (status == 1) {
        queue(slot);  // short transfer: continue with the rest
        continue;
      }
      free_.push_back(slot);
      return {s.request.tag, s.request.kind, status};
    }
  }

 private:
  struct Slot {
    IoRequest request;
    std::uint64_t done = 0;
  };

  void queue(unsigned slot) {
    const Slot& s = slots_[slot];
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    char* buffer = static_cast<char*>(s.request.buffer) + s.done;
    const auto left = static_cast<unsigned>(s.request.bytes - s.done);
    const std::uint64_t offset = s.request.offset + s.done;
    if (s.request.kind == IoKind::kRead) {
      io_uring_prep_read(sqe, fd_, buffer, left, offset);
    } else {
      io_uring_prep_write(sqe, fd_, buffer, left, offset);
    }
    io_uring_sqe_set_data64(sqe, slot);
    const int e = io_uring_submit(&ring_);
    OCTOPAGE_CHECK_RUNTIME(e >= 0, "io_uring submit failed: ", std::strerror(-e));
  }

  int fd_;
  io_uring ring_{};
  bool initialized_ = false;
  std::vector<Slot> slots_;
  std::vector<unsigned> free_;
};

}  // namespace

int transfer(int fd, const IoRequest& request) {
  std::uint64_t done = 0;
  int status = 1;
  while (status == 1) status = account(request, transfer_some(fd, request, done), done);
  return status;
}

std::string io_error_text(int error) {
  return error == kEndOfFile ? "unexpected end of file (was the state file truncated?)" : std::strerror(error);
}

void IoQueue::submit(const IoRequest& request) {
  if (g_fail_kind.load() == static_cast<int>(request.kind) + 1 && g_fail_countdown.load() > 0 &&
      g_fail_countdown.fetch_sub(1) == 1) {
    ++injected_failures_;
    injected_tag_ = request.tag;
    injected_kind_ = request.kind;
    return;
  }
  start(request);
}

IoCompletion IoQueue::wait() {
  if (injected_failures_ > 0) {
    --injected_failures_;
    return {injected_tag_, injected_kind_, EIO};
  }
  return next();
}

std::unique_ptr<IoQueue> make_io_queue(IoBackend backend, int fd, unsigned depth) {
  if (backend != IoBackend::kThreads) {
    int error = 0;
    auto uring = std::make_unique<UringQueue>(fd, depth, error);
    if (error == 0) return uring;
    OCTOPAGE_CHECK_RUNTIME(backend == IoBackend::kAuto, "io_uring is not available here: ",
                           std::strerror(error), "; use io_backend 'threads' (or 'auto')");
  }
  return std::make_unique<ThreadQueue>(fd);
}

void fail_io_request_for_testing(IoKind kind, int n) {
  g_fail_countdown.store(n);
  g_fail_kind.store(n > 0 ? static_cast<int>(kind) + 1 : 0);
}

}  // namespace octopage::memory
