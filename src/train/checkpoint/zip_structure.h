// The zip container of a LibTorch archive, checked before LibTorch reads it (private). LibTorch 1.13's
// readers trust the sizes inside a file: a data entry shorter than its tensor gives garbage weights or a
// crash, and its zip reader misbehaves on arbitrary bytes. These checks run first and name the file.
// The other checks on model files: pickle_storages.h, class_file.h, module_archive.h, tensor_checks.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace birdplane::train {

/// One entry of a zip archive, after its place in the file was checked.
struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;   ///< where its (stored or compressed) bytes start
  uint64_t stored_size = 0;   ///< bytes in the file
  uint64_t size = 0;          ///< bytes once extracted
  int method = 0;             ///< 0 stored, 8 deflate
  uint32_t crc = 0;           ///< CRC-32 of the extracted bytes, from the directory
};

/// Reads the zip structure of `bytes` (the end record, zip64 records, the central directory and every
/// local header) and checks that each entry lies inside the file, before the directory, without
/// overlapping names, stored (sizes equal) or deflated, none marked as a folder or encrypted, no two
/// names equal ignoring case (LibTorch's reader ignores it), all in one folder holding a version entry
/// LibTorch reads (whole: its CRC matches; a format from 1 to 10). Throws birdplane::Error "<what> <path> is
/// damaged (...)" or "... is not a LibTorch file" otherwise. Never reads outside `bytes`.
std::vector<ZipEntry> check_zip_structure(const std::vector<char>& bytes, const std::string& path,
                                          const std::string& what);

// A version entry's number: up to three digits and an optional line end ("3\n" as LibTorch and
// torch.save write it); 0 for anything else.
uint64_t format_version(std::string_view text);

}  // namespace birdplane::train
