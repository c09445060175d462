// Large host buffers backed by transparent huge pages. On this kind of VM a 4 KiB page fault costs
// tens of microseconds, so touching a fresh 150 MB buffer page by page takes over a second; with
// 2 MiB pages the same buffer is ready several times faster.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

namespace birdplane::data {

/// An uninitialized CPU tensor whose storage is 2 MiB-aligned and advised for huge pages
/// (madvise MADV_HUGEPAGE) from 2 MiB up, 64-byte aligned below. Freed storage of up to 16 MiB is kept
/// (64 MiB in all) and handed to the next request of the same rounded size, so a stream of same-sized
/// batches stops paying for page faults.
at::Tensor empty_huge(at::IntArrayRef sizes, c10::ScalarType dtype);

/// `images` [N,C,H,W] itself when each image's C*H*W bytes are contiguous (images may sit at any
/// stride, like the dataset's records 3073 bytes apart), else a contiguous copy.
at::Tensor packed_images(const at::Tensor& images);

}  // namespace birdplane::data
