#include "train/checkpoint/zip_structure.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <caffe2/serialize/versions.h>
#include <fmt/format.h>

#include "birdplane/check.h"

namespace birdplane::train {
namespace {

// Little-endian fields at an offset already checked to lie inside the buffer.
uint64_t le(const std::vector<char>& b, uint64_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + static_cast<uint64_t>(i)]);
  return v;
}

constexpr uint32_t kEndRecord = 0x06054b50, kZip64End = 0x06064b50, kZip64Locator = 0x07064b50,
                   kCentral = 0x02014b50, kLocal = 0x04034b50;

// The zip format's CRC-32 (only ever run on a version entry, a few bytes).
uint32_t zip_crc32(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : data) {
    crc ^= static_cast<uint8_t>(c);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

}  // namespace

uint64_t format_version(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.empty() || text.size() > 3 || text.find_first_not_of("0123456789") != std::string_view::npos) return 0;
  uint64_t v = 0;
  for (char c : text) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

std::vector<ZipEntry> check_zip_structure(const std::vector<char>& b, const std::string& path,
                                          const std::string& what) {
  const uint64_t n = b.size();
  auto damaged = [&](const std::string& why) {
    fail("{} {} is damaged ({}); it cannot be read", what, path, why);
  };
  auto inside = [&](uint64_t at, uint64_t len) { return at <= n && len <= n - at; };
  if (n < 22 || le(b, 0, 4) != kLocal) {
    fail("{} {} is not a LibTorch file ({}); expected a file written by birdplane or torch.save", what, path,
         n == 0 ? "it is empty" : "it does not start like a zip archive");
  }
  // The end record sits in the last 22 + 65535 bytes (its comment may be up to 65535 bytes long).
  uint64_t end = n;
  for (uint64_t at = n - 22 + 1; at-- > 0 && n - at <= 22 + 65535;) {
    if (le(b, at, 4) == kEndRecord && at + 22 + le(b, at + 20, 2) == n) {
      end = at;
      break;
    }
  }
  if (end == n) damaged("no zip end record: the file is truncated");
  uint64_t entries = le(b, end + 10, 2), dir_size = le(b, end + 12, 4), dir_offset = le(b, end + 16, 4);
  uint64_t dir_limit = end;
  if (entries == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF ||
      (end >= 20 && le(b, end - 20, 4) == kZip64Locator)) {
    if (end < 20 || le(b, end - 20, 4) != kZip64Locator) damaged("a zip64 archive without its locator");
    const uint64_t z = le(b, end - 20 + 8, 8);
    if (!inside(z, 56) || z + 56 > end - 20 || le(b, z, 4) != kZip64End) damaged("a bad zip64 end record");
    entries = le(b, z + 32, 8);
    dir_size = le(b, z + 40, 8);
    dir_offset = le(b, z + 48, 8);
    dir_limit = z;
  }
  if (!inside(dir_offset, dir_size) || dir_offset + dir_size > dir_limit) damaged("its directory lies outside the file");
  if (entries > dir_size / 46) damaged("its directory claims more entries than it holds");
  std::vector<ZipEntry> out;
  std::set<std::string> names;
  uint64_t at = dir_offset;
  for (uint64_t i = 0; i < entries; ++i) {
    if (!inside(at, 46) || at + 46 > dir_offset + dir_size || le(b, at, 4) != kCentral) damaged("a bad directory entry");
    ZipEntry e;
    e.method = static_cast<int>(le(b, at + 10, 2));
    e.stored_size = le(b, at + 20, 4);
    e.size = le(b, at + 24, 4);
    const uint64_t name_len = le(b, at + 28, 2), extra_len = le(b, at + 30, 2), comment_len = le(b, at + 32, 2);
    uint64_t local = le(b, at + 42, 4);
    const uint64_t record = 46 + name_len + extra_len + comment_len;
    if (at + record > dir_offset + dir_size) damaged("a directory entry runs past the directory");
    e.name.assign(&b[at + 46], name_len);
    // zip64 sizes and offset, in this order, for the fields saturated above.
    for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = le(b, x, 2), len = le(b, x + 2, 2);
      if (x + 4 + len > at + 46 + name_len + extra_len) damaged("a bad extra field in " + e.name);
      if (id == 0x0001) {
        uint64_t y = x + 4;
        auto next = [&](uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (y + 8 > x + 4 + len) damaged("a short zip64 field in " + e.name);
          field = le(b, y, 8);
          y += 8;
        };
        next(e.size);
        next(e.stored_size);
        next(local);
      }
      x += 4 + len;
    }
    // LibTorch's zip reader (miniz) finds entries ignoring case, and skips reading an entry marked as
    // a folder (leaving its buffer as it was) or refuses an encrypted one.
    std::string lower = e.name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!names.insert(lower).second) damaged("the entry " + e.name + " appears twice");
    if ((!e.name.empty() && e.name.back() == '/') || (le(b, at + 38, 4) & 0x10) != 0)
      damaged("the entry " + e.name + " is marked as a folder");
    if ((le(b, at + 8, 2) & 0x61) != 0) damaged("the entry " + e.name + " is encrypted or a patch");
    e.crc = static_cast<uint32_t>(le(b, at + 16, 4));
    if (!(e.method == 0 && e.stored_size == e.size) && e.method != 8)
      damaged(fmt::format("the entry {} uses compression method {} with sizes {} and {}", e.name, e.method,
                          e.stored_size, e.size));
    if (!inside(local, 30) || le(b, local, 4) != kLocal) damaged("the entry " + e.name + " has no local header");
    e.data_offset = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
    if (!inside(e.data_offset, e.stored_size) || e.data_offset + e.stored_size > dir_offset)
      damaged(fmt::format("the entry {} runs past the end of the data ({} bytes from offset {})", e.name,
                          e.stored_size, e.data_offset));
    out.push_back(std::move(e));
    at += record;
  }
  // What LibTorch's reader (PyTorchStreamReader) requires as it opens the archive, where a failure
  // leaks the zip state it has opened: the entries lie in one folder (the first entry's), which holds
  // a version entry (.data/version before version) with a format it reads. Its CRC is checked here
  // too (LibTorch's zip reader checks none).
  auto not_libtorch = [&](const std::string& why) {
    fail("{} {} is not a LibTorch file ({}); expected a file written by birdplane or torch.save", what, path, why);
  };
  if (out.empty()) not_libtorch("an empty zip archive");
  const auto slash = out.front().name.find('/');
  if (slash == std::string::npos || slash == 0) not_libtorch("its entries are not in a folder");
  const std::string folder = out.front().name.substr(0, slash + 1);
  const ZipEntry* version = nullptr;
  for (const std::string& name : {folder + ".data/version", folder + "version"}) {
    for (const auto& e : out) {
      if (e.name.size() == name.size() &&
          std::equal(e.name.begin(), e.name.end(), name.begin(), [](char x, char y) {
            return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
          }))
        version = &e;
    }
    if (version) break;
  }
  for (const auto& e : out)
    if (e.name.compare(0, folder.size(), folder) != 0)
      damaged("the entry " + e.name + " lies outside the archive's folder " + folder);
  if (!version) not_libtorch("no version entry");
  if (version->method != 0 || version->size == 0 || version->size > 8) damaged("a bad version entry");
  const std::string_view text(b.data() + version->data_offset, version->size);
  if (zip_crc32(text) != version->crc) damaged("its version entry does not match its checksum");
  const uint64_t format = format_version(text);
  if (format == 0) damaged("its version entry is not a number");
  if (format < caffe2::serialize::kMinSupportedFileFormatVersion ||
      format > caffe2::serialize::kMaxSupportedFileFormatVersion)
    damaged(fmt::format("its format is {}, LibTorch reads formats {} to {}", format,
                        caffe2::serialize::kMinSupportedFileFormatVersion,
                        caffe2::serialize::kMaxSupportedFileFormatVersion));
  return out;
}

}  // namespace birdplane::train
