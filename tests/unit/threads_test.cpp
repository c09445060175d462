#include <cstdlib>
#include <string>
#include <thread>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "birdplane/check.h"
#include "birdplane/threads.h"

using namespace birdplane;

// ctest runs each test in its own process, so at::set_num_threads has not been called here (it would
// take over from set_threads in new threads, as the header says).
TEST(SetThreads, ThisThreadAndNewThreadsRunLibTorchOnThatMany) {
  for (int n : {2, 1, 3}) {
    set_threads(n);
    EXPECT_EQ(at::get_num_threads(), n);
    EXPECT_EQ(std::string(std::getenv("OMP_NUM_THREADS")), std::to_string(n));
    int in_new_thread = 0;
    std::thread([&] { in_new_thread = at::get_num_threads(); }).join();
    EXPECT_EQ(in_new_thread, n);
  }
  EXPECT_THROW(set_threads(0), Error);
}
