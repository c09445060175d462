// Reused CPU memory for LibTorch's tensors. glibc serves every allocation above 32 MiB with a fresh
// mmap and unmaps it on free, so a training step that makes the same large activations each time pays
// for every page of them again: on the VMs birdplane is measured on a 4 KiB page fault costs tens of
// microseconds, over a second a step for the speedrun network at batch 1024 (about what LD_PRELOADing
// tcmalloc saves PyTorch). While a ReusedCpuMemory lives, blocks of 1 MiB and more come from a cache
// (2 MiB-aligned, advised for huge pages) and go back to it when freed, for the next tensor of the
// same rounded size.
#pragma once

namespace birdplane {

class ReusedCpuMemory {
 public:
  ReusedCpuMemory();
  /// Puts the previous allocator back and frees the cached blocks (blocks still in use are freed
  /// when their tensors go).
  ~ReusedCpuMemory();
  ReusedCpuMemory(const ReusedCpuMemory&) = delete;
  ReusedCpuMemory& operator=(const ReusedCpuMemory&) = delete;
};

}  // namespace birdplane
