#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "common/reused_thread.h"

using namespace birdplane;

TEST(ReusedThread, JoinWaitsForTheJobAndTheNextJobRunsOnTheSameThread) {
  std::thread::id first, second;
  std::atomic<bool> done{false};
  {
    ReusedThread t([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      first = std::this_thread::get_id();
      done = true;
    });
    t.join();
    EXPECT_TRUE(done.load());  // join returned only after the job did
    t.join();                   // a second join returns at once
  }
  {
    ReusedThread t([&] { second = std::this_thread::get_id(); });
  }  // the destructor joins
  EXPECT_NE(first, std::thread::id());
  EXPECT_NE(first, std::this_thread::get_id());
  EXPECT_EQ(first, second);  // the idle thread took the second job
}

TEST(ReusedThread, JobsAliveTogetherRunOnDifferentThreads) {
  std::atomic<int> waiting{0};
  std::thread::id a, b;
  // Each job waits until both have started, so they must run at the same time.
  auto job = [&](std::thread::id& id) {
    return [&] {
      id = std::this_thread::get_id();
      ++waiting;
      while (waiting.load() < 2) std::this_thread::yield();
    };
  };
  {
    ReusedThread one(job(a));
    ReusedThread two(job(b));
  }
  EXPECT_NE(a, b);
}
