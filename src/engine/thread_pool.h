// The process-wide CPU thread pool behind octopage::num_threads(): persistent workers
// plus the calling thread pull task indices from a shared counter. Tasks must not throw.
// A parallel_for called from inside a task, or while another is running, runs inline.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace octopage::engine {

class ThreadPool {
 public:
  static ThreadPool& instance();

  int num_threads() const { return num_threads_.load(std::memory_order_relaxed); }
  void set_num_threads(int n);

  // Runs task(i) for every i in [0, n); returns when all have finished.
  template <class Task>
  void parallel_for(std::int64_t n, Task&& task) {
    using T = std::remove_reference_t<Task>;
    run(n, [](void* context, std::int64_t i) { (*static_cast<T*>(context))(i); },
        const_cast<void*>(static_cast<const void*>(&task)));
  }

  ~ThreadPool();

 private:
  using TaskFn = void (*)(void* context, std::int64_t index);

  explicit ThreadPool(int n);
  void run(std::int64_t n, TaskFn fn, void* context);
  void start_workers(int n);
  void stop_workers();
  void worker_loop();
  void drain();  // runs tasks of the current job until none are left

  std::atomic<int> num_threads_{1};
  std::mutex run_mutex_;  // one job at a time

  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  int busy_workers_ = 0;

  TaskFn fn_ = nullptr;
  void* context_ = nullptr;
  std::int64_t count_ = 0;
  std::atomic<std::int64_t> next_{0};
};

}  // namespace octopage::engine
