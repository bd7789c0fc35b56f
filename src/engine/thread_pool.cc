#include "src/engine/thread_pool.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "octopage/error.h"
#include "octopage/threads.h"

namespace octopage::engine {
namespace {

thread_local bool t_inside_task = false;

int default_num_threads() {
  if (const char* env = std::getenv("OCTOPAGE_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool(default_num_threads());
  return pool;
}

ThreadPool::ThreadPool(int n) { start_workers(n); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::set_num_threads(int n) {
  OCTOPAGE_CHECK(n >= 1, "expected num_threads >= 1, got ", n);
  std::lock_guard<std::mutex> job(run_mutex_);
  if (n == num_threads()) return;
  stop_workers();
  start_workers(n);
}

void ThreadPool::start_workers(int n) {
  stopping_ = false;
  num_threads_.store(n, std::memory_order_relaxed);
  workers_.reserve(static_cast<std::size_t>(n - 1));
  for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void ThreadPool::drain() {
  const bool outer = t_inside_task;
  t_inside_task = true;
  for (std::int64_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) fn_(context_, i);
  t_inside_task = outer;
}

void ThreadPool::worker_loop() {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    drain();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_workers_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run(std::int64_t n, TaskFn fn, void* context) {
  if (n <= 0) return;
  std::unique_lock<std::mutex> job(run_mutex_, std::defer_lock);
  if (t_inside_task || n == 1 || workers_.empty() || !job.try_lock()) {
    const bool outer = t_inside_task;
    t_inside_task = true;
    for (std::int64_t i = 0; i < n; ++i) fn(context, i);
    t_inside_task = outer;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = fn;
    context_ = context;
    count_ = n;
    next_.store(0);
    busy_workers_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_.notify_all();
  drain();
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return busy_workers_ == 0; });
}

}  // namespace octopage::engine

namespace octopage {

namespace {
// Whether the user chose the thread count (follow_num_threads then leaves it).
std::atomic<bool> g_count_chosen{std::getenv("OCTOPAGE_NUM_THREADS") != nullptr};
}  // namespace

int num_threads() { return engine::ThreadPool::instance().num_threads(); }

void set_num_threads(int n) {
  engine::ThreadPool::instance().set_num_threads(n);
  g_count_chosen.store(true, std::memory_order_relaxed);
}

void follow_num_threads(int n) {
  if (g_count_chosen.load(std::memory_order_relaxed)) return;
  engine::ThreadPool::instance().set_num_threads(n < 1 ? 1 : n);
}

}  // namespace octopage
