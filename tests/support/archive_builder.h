// Test helper: small .tar.gz archives, well-formed or hostile, written with libarchive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::fixtures {

/// One entry of a test archive. The name is written as given (no cleaning), so tests can make
/// entries such as "../evil.txt" or "/etc/evil" that a safe extractor must refuse.
struct ArchiveEntry {
  enum class Type { kFile, kFolder, kSymlink, kHardlink, kFifo };
  Type type = Type::kFile;
  std::string name;
  std::string data;      ///< content of a kFile
  std::string link_to;   ///< target of a kSymlink or kHardlink
};

/// A regular file entry.
ArchiveEntry file_entry(const std::string& name, std::string data);

/// Entries for every file and folder under `folder` (sorted), named `prefix/<relative path>`,
/// e.g. entries_from_folder(".../cifar-10-batches-bin", "cifar-10-batches-bin").
std::vector<ArchiveEntry> entries_from_folder(const std::string& folder, const std::string& prefix);

/// Writes `entries` as a gzip-compressed ustar/pax archive at `path`.
void write_tar_gz(const std::string& path, const std::vector<ArchiveEntry>& entries);

}  // namespace birdplane::fixtures
