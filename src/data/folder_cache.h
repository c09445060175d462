// The image-folder cache file's layout and checksum (private): shared by the reader and writer in
// image_folder.cpp and by the fuzz target that forges valid checksums (fuzz/image_folder_cache.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace birdplane::data::folder_cache {

/// Offsets are rounded up to 64 bytes: 8 bytes of magic, 8 of header length, the JSON header, then the
/// int64 labels, then the uint8 pixels, then the 8-byte checksum.
inline size_t align64(size_t n) { return (n + 63) / 64 * 64; }

/// The checksum stored at the end of a cache file, over its labels and its pixels: Fletcher-style
/// sums in fixed 4 MiB chunks on all threads, so the value does not depend on the thread count. It
/// catches damage, not forgery.
uint64_t payload_checksum(const uint8_t* labels, size_t label_bytes, const uint8_t* pixels, size_t pixel_bytes);

}  // namespace birdplane::data::folder_cache
