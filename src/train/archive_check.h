// Checks on LibTorch archives before and after LibTorch reads them (private). LibTorch 1.13's readers
// trust the sizes inside a file: a data entry shorter than its tensor gives garbage weights or a crash,
// and its zip reader misbehaves on arbitrary bytes. These checks run first and name the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

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

/// Walks the archive's pickle (<prefix>/data.pkl, read from `bytes` without LibTorch) and checks every
/// tensor storage it declares against the zip entry holding its bytes: the entry exists and holds at
/// least numel * itemsize bytes (LibTorch 1.13 sizes a storage from the pickle and reads past a short
/// entry). Unknown pickle opcodes, a broken pickle and storage types other than torch's are errors.
/// With `plain_only` (state_dicts), the only callables the pickle may name are the ones a dict of
/// tensors needs (torch._utils._rebuild_tensor_v2, _rebuild_parameter, collections.OrderedDict, and
/// torch.jit._pickle.restore_type_tag, which LibTorch writes for a typed dict).
void check_pickled_storages(const std::vector<char>& bytes, const std::vector<ZipEntry>& entries,
                            const std::string& path, const std::string& what, bool plain_only);

/// The bytes LibTorch's module loader (torch::serialize::InputArchive) is given instead of the file's:
/// a fresh zip of the checked archive holding only what that loader reads, each entry checked first.
/// data.pkl and the tensor data (after check_pickled_storages), constants.pkl (empty, as a module
/// without methods has it), version (format 3 or later; older ones go to LibTorch's legacy readers),
/// and the class definitions under code/, which must be exactly the lines LibTorch writes for an
/// OutputArchive (LibTorch 1.13 compiles them and crashes on malformed source), each class they name
/// present, no class containing itself. Source-range pickles (*.debug_pkl) and other entries are left
/// out. Throws birdplane::Error "<what> <path> is damaged (...)" otherwise.
std::string module_archive(const std::vector<char>& bytes, const std::vector<ZipEntry>& entries,
                           const std::string& path, const std::string& what);

/// Throws birdplane::Error naming `path` and `key` when the tensor's strides or offset reach past its
/// storage (a data entry shorter than the shape, dtype and offset need), or a stride is negative.
void check_tensor_storage(const at::Tensor& t, const std::string& path, const std::string& key);

/// A 64-bit checksum of named tensors: names, dtypes, shapes and bytes, in the order given.
uint64_t tensors_checksum(const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace birdplane::train
