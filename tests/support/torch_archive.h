// Test helpers: LibTorch archives (model.pt, checkpoint.pt, state_dicts) taken apart and put back
// together, so a test can damage one entry (a pickle, a class definition) and keep the zip whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caffe2/serialize/inline_container.h>

#include "support/fixtures.h"

namespace birdplane::fixtures {

/// The entries of a LibTorch archive, named inside its folder ("data.pkl", "code/__torch__.py", ...),
/// with their (inflated) bytes, in the archive's order.
inline std::vector<std::pair<std::string, std::string>> read_records(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& name : reader.getAllRecords()) {
    auto [data, size] = reader.getRecord(name);
    out.emplace_back(name, std::string(static_cast<const char*>(data.get()), size));
  }
  return out;
}

/// Writes `records` as a LibTorch archive at `path` (folder "archive", entries stored, a version entry
/// "3" written by LibTorch's writer; any version entry in `records` is left out for it).
inline void write_records(const std::string& path, const std::vector<std::pair<std::string, std::string>>& records) {
  std::string bytes;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&bytes](const void* data, size_t size) {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
    for (const auto& [name, data] : records)
      if (name != "version" && name != ".data/version") writer.writeRecord(name, data.data(), data.size());
    writer.writeEndOfFile();
  }
  write_text(path, bytes);
}

/// A string of the bytes of a literal, NULs included: bytes("\x80\x02}.").
template <size_t N>
std::string bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

}  // namespace birdplane::fixtures
