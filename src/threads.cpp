#include "birdplane/threads.h"

#include <cstdlib>
#include <string>

#include "birdplane/check.h"

// From libgomp, which LibTorch's CPU library is linked against (its intra-op threads are OpenMP's);
// declared here rather than through <omp.h>, as in data/batch_loader.cpp.
extern "C" void omp_set_num_threads(int);

namespace birdplane {

void set_threads(int n) {
  BIRDPLANE_CHECK(n >= 1, "set_threads: the number of threads must be at least 1, got {}", n);
  ::setenv("OMP_NUM_THREADS", std::to_string(n).c_str(), 1);
  omp_set_num_threads(n);
}

}  // namespace birdplane
