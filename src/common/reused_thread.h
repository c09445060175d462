// A thread for one job that is kept afterwards for the next job. LibTorch 1.13 sets up every new
// thread that first touches ATen by calling at::set_num_threads, which re-creates its global
// pthreadpool; the pool's new threads spin for about 30 ms of CPU each before they sleep (measured on
// the 2-core VM: 10 new threads touching ATen cost 302 ms of CPU, 10 plain threads 2 ms). A batch
// loader made per epoch or per evaluation paid that every time, on cores that should be loading.
#pragma once

#include <functional>

namespace birdplane {

/// Runs `job` on an idle kept thread, or on a new one when none is idle. Destroying (or joining) waits
/// for the job to return, as std::thread::join would; the thread then waits for another job (up to
/// eight idle threads are kept, for the life of the process). Thread-local state, such as OpenMP's
/// thread count, carries over from one job to the next. `job` must not throw (as with std::thread).
class ReusedThread {
 public:
  explicit ReusedThread(std::function<void()> job);
  ~ReusedThread();
  ReusedThread(const ReusedThread&) = delete;
  ReusedThread& operator=(const ReusedThread&) = delete;

  /// Waits for the job to return; later calls return at once.
  void join();

  struct Slot;

 private:
  Slot* slot_ = nullptr;
};

}  // namespace birdplane
