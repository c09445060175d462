// How many threads LibTorch's CPU operations use, set without at::set_num_threads.
#pragma once

namespace birdplane {

/// Makes LibTorch's intra-op parallelism use `n` threads (n >= 1) in this thread and in every thread
/// that later starts running LibTorch operations (birdplane's loader threads, OpenMP's workers).
///
/// Why not at::set_num_threads: in LibTorch 1.13 (Debian's), once that has been called, every new
/// thread's first parallel operation calls it again, and each call re-creates LibTorch's pthreadpool,
/// whose fresh worker thread spins for about 30 ms of CPU before it sleeps (measured on the 2-core VM:
/// 10 new threads touching ATen cost 302 ms of CPU that way, 4.5 ms this way). That cost fell on every
/// short run: a cached image-folder epoch in a fresh process took 40-44 ms instead of 27-30. This sets
/// OMP_NUM_THREADS, which each thread's first LibTorch operation reads when at::set_num_threads was
/// never called, and the calling thread's OpenMP setting; the pthreadpool (used only by mobile
/// kernels) is never created. Call it early, before other threads start (it changes the process
/// environment); calling at::set_num_threads anywhere brings the old behaviour back.
void set_threads(int n);

}  // namespace birdplane
