// The archive LibTorch's module loader is given instead of the checkpoint file (private): a fresh zip
// of the checked entries it reads, and nothing else.
#pragma once

#include <string>
#include <vector>

#include "train/checkpoint/zip_structure.h"

namespace birdplane::train {

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

}  // namespace birdplane::train
