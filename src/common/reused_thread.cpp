#include "common/reused_thread.h"

#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace birdplane {

struct ReusedThread::Slot {
  std::mutex mutex;
  std::condition_variable cv;
  std::function<void()> job;
  bool has_job = false;
  bool finished = false;
  bool quit = false;
};

namespace {

constexpr size_t kMaxIdle = 8;

struct Keeper {
  std::mutex mutex;
  std::vector<ReusedThread::Slot*> idle;
};

// Never destroyed, like the idle threads it lists: they may still be waiting when the process exits.
Keeper& keeper() {
  static auto* k = new Keeper;
  return *k;
}

void thread_main(ReusedThread::Slot* slot) {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(slot->mutex);
      slot->cv.wait(lock, [&] { return slot->has_job; });
      if (slot->quit) break;
      job = std::move(slot->job);
      slot->has_job = false;
    }
    job();
    job = nullptr;  // what the job captured is released before the owner hears it finished
    {
      std::lock_guard<std::mutex> lock(slot->mutex);
      slot->finished = true;
    }
    slot->cv.notify_all();
  }
  delete slot;
}

}  // namespace

ReusedThread::ReusedThread(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(keeper().mutex);
    if (!keeper().idle.empty()) {
      slot_ = keeper().idle.back();
      keeper().idle.pop_back();
    }
  }
  const bool fresh = slot_ == nullptr;
  if (fresh) slot_ = new Slot;
  {
    std::lock_guard<std::mutex> lock(slot_->mutex);
    slot_->job = std::move(job);
    slot_->has_job = true;
    slot_->finished = false;
  }
  if (fresh) {
    std::thread(thread_main, slot_).detach();
  } else {
    slot_->cv.notify_all();
  }
}

ReusedThread::~ReusedThread() { join(); }

void ReusedThread::join() {
  if (slot_ == nullptr) return;
  Slot* slot = std::exchange(slot_, nullptr);
  {
    std::unique_lock<std::mutex> lock(slot->mutex);
    slot->cv.wait(lock, [&] { return slot->finished; });
  }
  {
    std::lock_guard<std::mutex> lock(keeper().mutex);
    if (keeper().idle.size() < kMaxIdle) {
      keeper().idle.push_back(slot);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(slot->mutex);
    slot->quit = true;
    slot->has_job = true;
  }
  slot->cv.notify_all();
}

}  // namespace birdplane
