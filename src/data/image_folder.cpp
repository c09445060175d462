#include "birdplane/data/image_folder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <regex>
#include <set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "birdplane/check.h"
#include "common/files.h"
#include "common/huge_buffers.h"
#include "common/text.h"
#include "data/folder_cache.h"
#include "data/image_fit.h"

namespace fs = std::filesystem;

namespace birdplane::data {
namespace {

using Clock = std::chrono::steady_clock;
using folder_cache::align64;
using folder_cache::payload_checksum;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------------
// Listing

struct FolderId {
  dev_t dev;
  ino_t ino;
  bool operator==(const FolderId& o) const { return dev == o.dev && ino == o.ino; }
};

// One folder's image files, as os.walk yields it: (folder path, its file names), with each file's stamp.
struct WalkedFolder {
  std::string path;
  std::vector<std::string> files;
  std::vector<FileStamp> stamps;
};

// has_extension without a lower-cased copy of the name (this runs once per listed file).
bool ends_with_extension(std::string_view name, const std::vector<std::string>& extensions) {
  for (const auto& ext : extensions) {
    if (name.size() <= ext.size()) continue;
    const std::string_view tail = name.substr(name.size() - ext.size());
    bool same = true;
    for (size_t k = 0; k < ext.size() && same; ++k)
      same = std::tolower(static_cast<unsigned char>(tail[k])) == static_cast<unsigned char>(ext[k]);
    if (same) return true;
  }
  return false;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

// os.walk(top, followlinks=True), recursively; a folder that is its own ancestor (through a symbolic
// link) is a loop, which Python would follow until the path grew too long. The folder is read with
// readdir, each entry's type taken from the listing itself (only symbolic links and file systems that
// give no type cost a stat), and each image file is stamped through the open folder (fstatat with the
// bare name: no walk of the whole path per file).
void walk(const std::string& dir, std::vector<FolderId>& ancestors, std::vector<WalkedFolder>& out) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  BIRDPLANE_CHECK(fd >= 0, "cannot read folder {}: {}", dir, std::strerror(errno));
  std::unique_ptr<DIR, DirCloser> d(::fdopendir(fd));
  if (!d) {
    const int err = errno;
    ::close(fd);
    fail("cannot read folder {}: {}", dir, std::strerror(err));
  }
  struct stat st {};
  BIRDPLANE_CHECK(::fstat(fd, &st) == 0, "cannot read folder {}: {}", dir, std::strerror(errno));
  const FolderId id{st.st_dev, st.st_ino};
  for (const auto& a : ancestors)
    BIRDPLANE_CHECK(!(a == id), "image folder: {} is a symbolic link loop (it leads back to a folder it is inside); "
                    "remove the link", dir);
  WalkedFolder here{dir, {}, {}};
  std::vector<std::string> subfolders;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d.get());
    if (e == nullptr) {
      BIRDPLANE_CHECK(errno == 0, "cannot read folder {}: {}", dir, std::strerror(errno));
      break;
    }
    const std::string_view name(e->d_name);
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) {
      struct stat target {};  // followed, as os.walk(followlinks=True) does; a broken link is a file
      is_dir = ::fstatat(fd, e->d_name, &target, 0) == 0 && S_ISDIR(target.st_mode);
    }
    if (is_dir) {
      subfolders.push_back(dir + "/" + e->d_name);
    } else if (ends_with_extension(name, image_folder_extensions())) {
      here.files.emplace_back(name);
    }
  }
  std::sort(here.files.begin(), here.files.end());
  here.stamps.resize(here.files.size());
  for (size_t i = 0; i < here.files.size(); ++i) {
    struct stat f {};
    if (::fstatat(fd, here.files[i].c_str(), &f, 0) == 0) {
      here.stamps[i] = {static_cast<int64_t>(f.st_size), static_cast<int64_t>(f.st_mtim.tv_sec),
                        static_cast<int64_t>(f.st_mtim.tv_nsec), static_cast<int64_t>(f.st_ino)};
    }
  }
  d.reset();
  out.push_back(std::move(here));
  ancestors.push_back(id);
  for (const auto& s : subfolders) walk(s, ancestors, out);
  ancestors.pop_back();
}

// ---------------------------------------------------------------------------------------------------
// The cache file: a small JSON header (what was read, and the key it was read under), then the labels
// (int64) and the pixels (uint8 [N,3,H,W]) at 64-byte aligned offsets, then a checksum of both. It is
// written to a temporary name and renamed, so a killed writer leaves no file under the real name.

constexpr char kCacheMagic[8] = {'B', 'P', 'I', 'M', 'G', 'C', '0', '1'};
constexpr uint64_t kMaxCacheHeader = 256ull << 20;

uint64_t fnv1a(std::string_view text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Fletcher-style sums over 32-bit words in eight independent lanes (the compiler vectorizes it), so
// checking a 100 MB cache costs a few tens of milliseconds; it catches damage, not forgery.
uint64_t checksum_block(const uint8_t* data, size_t size) {
  constexpr int kLanes = 8;
  uint64_t a[kLanes] = {}, b[kLanes] = {};
  const size_t words = size / 4;
  size_t i = 0;
  for (; i + kLanes <= words; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      uint32_t w;
      std::memcpy(&w, data + 4 * (i + l), 4);
      a[l] += w;
      b[l] += a[l];
    }
  }
  uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
  for (int l = 0; l < kLanes; ++l) h = (h ^ a[l]) * 0x100000001b3ull ^ b[l] * 0xff51afd7ed558ccdull;
  for (size_t j = 4 * i; j < size; ++j) h = (h ^ data[j]) * 0x100000001b3ull;
  return h;
}

// checksum_block over fixed 4 MiB chunks on all threads, combined in order: the value does not
// depend on the number of threads.
uint64_t checksum(const uint8_t* data, size_t size) {
  constexpr size_t kChunk = size_t{4} << 20;
  const auto chunks = static_cast<int64_t>((size + kChunk - 1) / kChunk);
  std::vector<uint64_t> parts(static_cast<size_t>(std::max<int64_t>(chunks, 1)), 0);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const size_t start = static_cast<size_t>(c) * kChunk;
      parts[static_cast<size_t>(c)] = checksum_block(data + start, std::min(kChunk, size - start));
    }
  });
  uint64_t h = 0xcbf29ce484222325ull ^ size;
  for (uint64_t p : parts) h = (h ^ p) * 0x100000001b3ull;
  return h;
}

}  // namespace

uint64_t folder_cache::payload_checksum(const uint8_t* labels, size_t label_bytes, const uint8_t* pixels,
                                        size_t pixel_bytes) {
  return checksum(labels, label_bytes) ^ (checksum(pixels, pixel_bytes) * 31);
}

namespace {

struct CacheLayout {
  size_t labels_offset = 0, pixels_offset = 0, checksum_offset = 0, total = 0;
};

// Offsets for n images of c x h x w after a header of header_bytes; false when the sizes overflow.
bool cache_layout(uint64_t header_bytes, int64_t n, int64_t c, int64_t h, int64_t w, CacheLayout& out) {
  if (n < 0 || c < 1 || h < 1 || w < 1 || c > 4 || h > (1 << 20) || w > (1 << 20) || n > (int64_t{1} << 40))
    return false;
  const unsigned __int128 pixels = static_cast<unsigned __int128>(n) * c * h * w;
  if (pixels > (static_cast<unsigned __int128>(1) << 50) || header_bytes > kMaxCacheHeader) return false;
  out.labels_offset = align64(16 + header_bytes);
  out.pixels_offset = align64(out.labels_offset + 8 * static_cast<size_t>(n));
  out.checksum_offset = out.pixels_offset + static_cast<size_t>(pixels);
  out.total = out.checksum_offset + 8;
  return true;
}

struct CacheHeader {
  std::string key;
  std::vector<std::string> class_names;
  int64_t n = 0, c = 0, h = 0, w = 0;
  std::vector<SkippedImage> skipped;
  std::string source;
};

nlohmann::json header_json(const CacheHeader& hd) {
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& s : hd.skipped) skipped.push_back({{"file", s.file}, {"reason", s.reason}});
  return {{"key", hd.key},   {"class_names", hd.class_names}, {"n", hd.n},
          {"shape", {hd.c, hd.h, hd.w}}, {"skipped", skipped}, {"source", hd.source}};
}

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 26));
    if (n < 0 && errno == EINTR) continue;
    BIRDPLANE_CHECK(n > 0, "cannot write {}: {}", path, n < 0 ? std::strerror(errno) : "short write (disk full?)");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void write_cache(const std::string& path, const CacheHeader& hd, const at::Tensor& labels, const at::Tensor& images) {
  const std::string header = header_json(hd).dump();
  CacheLayout layout;
  BIRDPLANE_CHECK(cache_layout(header.size(), hd.n, hd.c, hd.h, hd.w, layout), "cannot write cache {}: too large",
                  path);
  const at::Tensor labels_c = labels.contiguous();
  const at::Tensor images_c = images.contiguous();
  const auto* label_bytes = reinterpret_cast<const uint8_t*>(labels_c.data_ptr<int64_t>());
  const auto* pixel_bytes = images_c.data_ptr<uint8_t>();
  const size_t label_size = 8 * static_cast<size_t>(hd.n);
  const size_t pixel_size = layout.checksum_offset - layout.pixels_offset;
  const uint64_t sum = payload_checksum(label_bytes, label_size, pixel_bytes, pixel_size);

  write_atomically(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    BIRDPLANE_CHECK(fd >= 0, "cannot write {}: {}", tmp, std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    std::string head(layout.labels_offset, '\0');
    std::memcpy(head.data(), kCacheMagic, 8);
    const uint64_t header_len = header.size();
    std::memcpy(head.data() + 8, &header_len, 8);
    std::memcpy(head.data() + 16, header.data(), header.size());
    write_all(fd, head.data(), head.size(), tmp);
    write_all(fd, label_bytes, label_size, tmp);
    const std::string pad(layout.pixels_offset - layout.labels_offset - label_size, '\0');
    write_all(fd, pad.data(), pad.size(), tmp);
    write_all(fd, pixel_bytes, pixel_size, tmp);
    write_all(fd, &sum, 8, tmp);
  });
}

// Maps a cache file and checks it whole: magic, header, key, sizes against the file's real size,
// checksum, labels in range. Returns nothing (with the reason in `why`) for anything else, including a
// cache written under another key; the caller then decodes again and replaces it.
// The header is outside the checksum: what it says must also match what the folder gives (the class
// names, one entry per listed file, RGB, the size asked for), or damage there would pass unseen (a
// changed class name was accepted; found by fuzz/image_folder_cache.cpp).
std::optional<ImageSet> read_cache(const std::string& path, const std::string& key,
                                   const std::vector<std::string>& class_names, int64_t files,
                                   const std::vector<int64_t>& image_size, std::vector<SkippedImage>& skipped,
                                   std::string& why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = errno == ENOENT ? "" : fmt::format("cannot open {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 64) {
    ::close(fd);
    why = fmt::format("{} is not a cache file", path);
    return std::nullopt;
  }
  const auto size = static_cast<size_t>(st.st_size);
  // Private and writable: pages are copied on write, so nothing done to the tensor reaches the file.
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    why = fmt::format("cannot map {}: {}", path, std::strerror(errno));
    return std::nullopt;
  }
  struct Unmap {
    void* p;
    size_t n;
    bool keep = false;
    ~Unmap() {
      if (!keep) ::munmap(p, n);
    }
  } guard{map, size};
  const auto* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes + 8, 8);
  if (std::memcmp(bytes, kCacheMagic, 8) != 0 || header_len > size - 16 || header_len > kMaxCacheHeader) {
    why = fmt::format("{} is damaged (bad header)", path);
    return std::nullopt;
  }
  CacheHeader hd;
  try {
    const auto j = nlohmann::json::parse(std::string_view(reinterpret_cast<const char*>(bytes + 16), header_len));
    hd.key = j.at("key").get<std::string>();
    if (hd.key != key) {
      why = "the folder or the preprocessing changed since the cache was written";
      return std::nullopt;
    }
    hd.class_names = j.at("class_names").get<std::vector<std::string>>();
    hd.n = j.at("n").get<int64_t>();
    const auto shape = j.at("shape").get<std::vector<int64_t>>();
    if (shape.size() != 3) throw std::runtime_error("shape");
    hd.c = shape[0], hd.h = shape[1], hd.w = shape[2];
    for (const auto& s : j.at("skipped")) hd.skipped.push_back({s.at("file").get<std::string>(), s.at("reason").get<std::string>()});
    hd.source = j.at("source").get<std::string>();
  } catch (const std::exception& e) {
    why = fmt::format("{} is damaged (unreadable header: {})", path, e.what());
    return std::nullopt;
  }
  const bool size_matches = image_size.empty() || (image_size.size() == 2 && hd.h == image_size[0] && hd.w == image_size[1]);
  if (hd.class_names != class_names || hd.c != 3 || !size_matches || hd.n < 0 ||
      hd.n + static_cast<int64_t>(hd.skipped.size()) != files) {
    why = fmt::format("{} is damaged (its header does not match the folder)", path);
    return std::nullopt;
  }
  CacheLayout layout;
  if (hd.class_names.empty() || !cache_layout(header_len, hd.n, hd.c, hd.h, hd.w, layout) || layout.total != size) {
    why = fmt::format("{} is damaged (its size does not match its header)", path);
    return std::nullopt;
  }
  const size_t label_size = 8 * static_cast<size_t>(hd.n);
  uint64_t stored = 0;
  std::memcpy(&stored, bytes + layout.checksum_offset, 8);
  const uint64_t sum = payload_checksum(bytes + layout.labels_offset, label_size, bytes + layout.pixels_offset,
                                        layout.checksum_offset - layout.pixels_offset);
  if (sum != stored) {
    why = fmt::format("{} is damaged (checksum mismatch)", path);
    return std::nullopt;
  }
  at::Tensor labels = at::empty({hd.n}, at::kLong);
  std::memcpy(labels.data_ptr<int64_t>(), bytes + layout.labels_offset, label_size);
  const int64_t classes = static_cast<int64_t>(hd.class_names.size());
  if (hd.n > 0 && (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= classes)) {
    why = fmt::format("{} is damaged (a label out of range)", path);
    return std::nullopt;
  }
  void* base = map;
  auto* pixels = static_cast<uint8_t*>(map) + layout.pixels_offset;
  at::Tensor images = at::from_blob(
      pixels, {hd.n, hd.c, hd.h, hd.w}, [base, size](void*) { ::munmap(base, size); }, at::kByte);
  guard.keep = true;
  skipped = hd.skipped;
  return ImageSet(images, labels, hd.class_names, hd.source);
}

// ---------------------------------------------------------------------------------------------------
// Decoding

// What one decoding pass needs to know and share between threads.
struct DecodeJob {
  const std::vector<std::string>* files = nullptr;
  int64_t height = 0, width = 0;  // 0: take the first image's size
  CropMode crop = CropMode::kNone;
  int64_t max_pixels = 0;
  bool skip_bad = false;
  at::Tensor images;  // uint8 [N,3,H,W], written row by row
  std::vector<std::string> errors;  // per file; empty: decoded
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<bool> abort{false};
  std::mutex mutex;
  std::exception_ptr internal;  // anything that is not a bad image
  std::string fatal;            // the first bad image or size mismatch that stops the pass
  std::string fatal_file;       // the bad image's file
  bool size_mismatch = false;   // fatal is a SizeMismatch
  bool exact = false;           // sizes must equal height x width (no size was given)
  std::string first_file;       // the file that set the size, for the message
};

// An image whose size differs from the first one's when no size was given: not a bad image, a choice
// the user must make.
struct SizeMismatch {
  std::string message;
};

// Decodes file i into images[i]; a bad file returns its message.
std::string decode_one(DecodeJob& job, int64_t i) {
  const std::string& path = (*job.files)[static_cast<size_t>(i)];
  try {
    const auto bytes = read_file_bytes(path);
    const auto d = decode_image(bytes.data(), bytes.size(), path, job.max_pixels);
    if (job.exact && (d.height != job.height || d.width != job.width)) {
      throw SizeMismatch{fmt::format(
          "the images differ in size: {} is {}x{} (height x width) but {} is {}x{}; give one size (and a "
          "center crop to keep each image's aspect ratio)",
          path, d.height, d.width, job.first_file, job.height, job.width)};
    }
    // Straight from the decoder's HWC pixels into row i (resized and cropped as asked).
    uint8_t* row = job.images.data_ptr<uint8_t>() + i * 3 * job.height * job.width;
    fit_rgb(d.pixels.data(), d.height, d.width, job.height, job.width, job.crop, row);
    return {};
  } catch (const Error& e) {
    return e.what();
  }
}

void decode_all(DecodeJob& job, const std::function<void(const FolderProgress&)>& on_progress) {
  const auto n = static_cast<int64_t>(job.files->size());
  const auto start = Clock::now();
  auto last_report = start;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  // One task per thread; each takes the next file from a shared counter, so a few large images do not
  // leave the other threads idle. ATen ops inside (resize) run on the thread that calls them.
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t /*end*/) {
    const bool reporter = begin == 0;  // the calling thread
    while (!job.abort.load(std::memory_order_relaxed)) {
      const int64_t i = job.next.fetch_add(1);
      if (i >= n) break;
      try {
        std::string error = decode_one(job, i);
        if (!error.empty()) {
          job.errors[static_cast<size_t>(i)] = error;
          if (!job.skip_bad) {
            std::lock_guard<std::mutex> lock(job.mutex);
            if (job.fatal.empty()) {
              job.fatal = error;
              job.fatal_file = (*job.files)[static_cast<size_t>(i)];
            }
            job.abort = true;
          }
        }
      } catch (const SizeMismatch& m) {
        std::lock_guard<std::mutex> lock(job.mutex);
        if (job.fatal.empty()) job.fatal = m.message;
        job.size_mismatch = true;
        job.abort = true;
      } catch (...) {
        std::lock_guard<std::mutex> lock(job.mutex);
        if (!job.internal) job.internal = std::current_exception();
        job.abort = true;
      }
      const int64_t done = job.done.fetch_add(1) + 1;
      if (reporter && on_progress && std::chrono::duration<double>(Clock::now() - last_report).count() >= 0.1) {
        last_report = Clock::now();
        on_progress({done, n, seconds_since(start)});
      }
    }
  });
  if (job.internal) std::rethrow_exception(job.internal);
  if (on_progress) on_progress({job.done.load(), n, seconds_since(start)});
}

// The key of a folder's cache: every listed file with its size and modification time, the classes and
// the preprocessing. Any change gives another key.
std::string cache_key(const FolderListing& listing, const std::vector<std::string>& class_names,
                      const ImageFolderOptions& o) {
  const std::string head = fmt::format("v2|{}|{}|{}|{}|{}|", fmt::join(class_names, "/"),
                                       fmt::join(o.image_size, "x"), to_string(o.crop), o.max_pixels,
                                       o.skip_bad_images);
  // Each file's path, label, size, modification time and inode (stamped when it was listed) hashed on
  // its own, on all threads, then combined in listing order.
  const auto n = static_cast<int64_t>(listing.files.size());
  std::vector<uint64_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const std::string& f = listing.files[static_cast<size_t>(i)];
      const FileStamp& st = listing.stamps[static_cast<size_t>(i)];
      const int64_t fields[5] = {listing.labels[static_cast<size_t>(i)], st.size, st.mtime_seconds,
                                 st.mtime_nanoseconds, st.inode};
      const std::string_view raw(reinterpret_cast<const char*>(fields), sizeof fields);
      a[static_cast<size_t>(i)] = fnv1a(raw, fnv1a(f));
      b[static_cast<size_t>(i)] = fnv1a(raw, fnv1a(f, 0x84222325cbf29ce4ull));
    }
  });
  uint64_t ha = fnv1a(head), hb = fnv1a(head, 0x84222325cbf29ce4ull);
  for (int64_t i = 0; i < n; ++i) {
    ha = (ha ^ a[static_cast<size_t>(i)]) * 0x100000001b3ull;
    hb = (hb ^ b[static_cast<size_t>(i)]) * 0xff51afd7ed558ccdull;
  }
  return fmt::format("{:016x}{:016x}{:08x}", ha, hb, static_cast<uint32_t>(n));
}

std::string cache_path_for(const std::string& root, const std::vector<std::string>& class_names,
                           const ImageFolderOptions& o, std::string& note) {
  std::error_code ec;
  const fs::path abs_root = fs::weakly_canonical(fs::absolute(root, ec), ec);
  fs::path dir;
  if (!o.cache_dir.empty()) {
    dir = o.cache_dir;
  } else {
    dir = abs_root.parent_path() / ".birdplane-cache";
  }
  // One file per folder and preprocessing; a changed folder rewrites it in place.
  const std::string what = fmt::format("{}|{}|{}|{}|{}|{}", abs_root.string(), fmt::join(class_names, "/"),
                                       fmt::join(o.image_size, "x"), to_string(o.crop), o.max_pixels,
                                       o.skip_bad_images);
  std::string name = abs_root.filename().string();
  if (name.empty()) name = "root";
  const std::string file = fmt::format("{}-{:016x}.bpcache", name, fnv1a(what));
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) {
    note = fmt::format("no cache: cannot create {} ({})", dir.string(), ec ? ec.message() : "not a folder");
    return {};
  }
  return (dir / file).string();
}

}  // namespace

const std::vector<std::string>& image_folder_extensions() {
  static const std::vector<std::string> kExtensions = {".jpg", ".jpeg", ".png", ".ppm", ".bmp",
                                                       ".pgm", ".tif",  ".tiff", ".webp"};
  return kExtensions;
}

bool has_extension(const std::string& name, const std::vector<std::string>& extensions) {
  return ends_with_extension(name, extensions);
}

FolderListing list_image_folder(const std::string& root) {
  std::error_code ec;
  BIRDPLANE_CHECK(fs::exists(root, ec), "image folder {} does not exist", root);
  BIRDPLANE_CHECK(fs::is_directory(root, ec), "image folder {} is not a folder (expected one subfolder per class)",
                  root);
  FolderListing out;
  out.root = root;
  fs::directory_iterator it(root, ec);
  BIRDPLANE_CHECK(!ec, "cannot read image folder {}: {}", root, ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    BIRDPLANE_CHECK(!ec, "cannot read image folder {}: {}", root, ec.message());
    std::error_code type_ec;
    if (it->is_directory(type_ec)) out.class_names.push_back(it->path().filename().string());
  }
  BIRDPLANE_CHECK(!ec, "cannot read image folder {}: {}", root, ec.message());
  std::sort(out.class_names.begin(), out.class_names.end());
  BIRDPLANE_CHECK(!out.class_names.empty(),
                  "image folder {} has no class folders: put each class's images in a subfolder named after "
                  "the class (e.g. {}/bird/1.jpg, {}/airplane/2.jpg)",
                  root, root, root);
  // The class folders are walked on all threads, each into its own list, then joined in class order.
  const auto classes = static_cast<int64_t>(out.class_names.size());
  std::vector<std::vector<WalkedFolder>> walked(static_cast<size_t>(classes));
  at::parallel_for(0, classes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t label = begin; label < end; ++label) {
      std::vector<FolderId> ancestors;
      auto& mine = walked[static_cast<size_t>(label)];
      walk((fs::path(root) / out.class_names[static_cast<size_t>(label)]).string(), ancestors, mine);
      // sorted(os.walk(...)): folders in path order, files sorted within each.
      std::sort(mine.begin(), mine.end(), [](const WalkedFolder& a, const WalkedFolder& b) { return a.path < b.path; });
    }
  });
  std::vector<std::string> empty;
  for (int64_t label = 0; label < classes; ++label) {
    size_t count = 0;
    for (const auto& w : walked[static_cast<size_t>(label)]) {
      for (size_t i = 0; i < w.files.size(); ++i) {
        out.files.push_back(w.path + "/" + w.files[i]);
        out.stamps.push_back(w.stamps[i]);
        out.labels.push_back(label);
        ++count;
      }
    }
    if (count == 0) empty.push_back(out.class_names[static_cast<size_t>(label)]);
  }
  BIRDPLANE_CHECK(empty.empty(),
                  "image folder {}: no image files in the class folder{} {} (looked for {}, in any case)", root,
                  empty.size() > 1 ? "s" : "", join(empty, ", "), join(image_folder_extensions(), " "));
  return out;
}

ImageSet read_image_folder(const std::string& root, const ImageFolderOptions& options, ImageFolderReport* report) {
  const auto start = Clock::now();
  ImageFolderReport local;
  ImageFolderReport& r = report ? *report : local;
  r = ImageFolderReport{};
  BIRDPLANE_CHECK_SETTING(options.image_size.empty() ||
                              (options.image_size.size() == 2 && options.image_size[0] >= 1 &&
                               options.image_size[1] >= 1 && options.image_size[0] <= 16384 &&
                               options.image_size[1] <= 16384),
                          "image_size", "expected a height and width from 1 to 16384, got {}",
                          fmt::join(options.image_size, ","));
  BIRDPLANE_CHECK_SETTING(options.max_pixels >= 1, "max_pixels", "must be at least 1, got {}", options.max_pixels);

  FolderListing listing = list_image_folder(root);
  std::vector<std::string> class_names = listing.class_names;
  if (!options.classes.empty()) {
    const auto map = class_label_map(options.classes, listing.class_names);
    FolderListing kept;
    kept.root = listing.root;
    for (size_t i = 0; i < listing.files.size(); ++i) {
      const int64_t label = map[static_cast<size_t>(listing.labels[i])];
      if (label < 0) continue;
      kept.files.push_back(listing.files[i]);
      kept.stamps.push_back(listing.stamps[i]);
      kept.labels.push_back(label);
    }
    class_names = options.classes;
    kept.class_names = class_names;
    listing = std::move(kept);
  }
  r.files = static_cast<int64_t>(listing.files.size());
  const std::string source = fmt::format("image folder {}", root);

  std::string key, cache_file;
  if (options.use_cache) {
    key = cache_key(listing, class_names, options);
    cache_file = cache_path_for(root, class_names, options, r.cache_note);
    if (!cache_file.empty()) {
      std::string why;
      if (auto cached = read_cache(cache_file, key, class_names, r.files, options.image_size, r.skipped, why)) {
        r.from_cache = true;
        r.cache_file = cache_file;
        r.seconds = seconds_since(start);
        return std::move(*cached);
      }
      r.cache_note = why;
    }
  }

  const auto n = static_cast<int64_t>(listing.files.size());
  DecodeJob job;
  job.files = &listing.files;
  job.crop = options.crop;
  job.max_pixels = options.max_pixels;
  job.skip_bad = options.skip_bad_images;
  job.errors.assign(listing.files.size(), "");
  int64_t first = 0;
  if (options.image_size.empty()) {
    // The first image that decodes sets the size; every other must match it.
    for (; first < n; ++first) {
      const std::string& path = listing.files[static_cast<size_t>(first)];
      try {
        const auto bytes = read_file_bytes(path);
        const auto header = read_image_header(bytes.data(), bytes.size(), path, options.max_pixels);
        job.height = header.height;
        job.width = header.width;
        break;
      } catch (const Error& e) {
        if (!options.skip_bad_images) throw BadImageError(path, e.what());
        job.errors[static_cast<size_t>(first)] = e.what();
      }
    }
    BIRDPLANE_CHECK(first < n, "image folder {}: none of its {} image files could be read", root, n);
  } else {
    job.height = options.image_size[0];
    job.width = options.image_size[1];
  }
  job.images = empty_huge({n, 3, job.height, job.width}, at::kByte);
  job.next = first;
  job.done = first;
  // With no size given, every image must have the first one's size: one of another size stops the pass
  // with an error asking for --image-size.
  job.exact = options.image_size.empty();
  job.first_file = listing.files[static_cast<size_t>(first)];
  decode_all(job, options.on_progress);
  if (job.size_mismatch) fail_setting("image_size", "image folder {}: {}", root, job.fatal);
  if (!job.fatal.empty()) throw BadImageError(job.fatal_file, job.fatal);

  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    const std::string& e = job.errors[static_cast<size_t>(i)];
    if (e.empty()) {
      keep.push_back(i);
    } else {
      r.skipped.push_back({listing.files[static_cast<size_t>(i)], e});
    }
  }
  BIRDPLANE_CHECK(!keep.empty(), "image folder {}: none of its {} image files could be read", root, n);
  at::Tensor labels = at::tensor(listing.labels, at::kLong);
  at::Tensor images = job.images;
  if (static_cast<int64_t>(keep.size()) != n) {
    const at::Tensor index = at::tensor(keep, at::kLong);
    images = images.index_select(0, index);
    labels = labels.index_select(0, index);
  }
  ImageSet set(images, labels, class_names, source);

  if (!cache_file.empty()) {
    CacheHeader hd{key, class_names, images.size(0), 3, job.height, job.width, r.skipped, source};
    try {
      write_cache(cache_file, hd, labels, images);
      r.cache_file = cache_file;
    } catch (const Error& e) {
      r.cache_note = fmt::format("the cache was not written: {}", e.what());
    }
  }
  r.seconds = seconds_since(start);
  return set;
}

TrainValSplit split_stratified(const ImageSet& set, double val_fraction, uint64_t seed) {
  BIRDPLANE_CHECK_SETTING(val_fraction > 0 && val_fraction < 1, "val_fraction",
                          "must be above 0 and below 1, got {}", val_fraction);
  const at::Tensor labels = set.labels().contiguous();
  const auto* l = labels.data_ptr<int64_t>();
  const int64_t n = labels.numel();
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(set.num_classes()));
  for (int64_t i = 0; i < n; ++i) by_class[static_cast<size_t>(l[i])].push_back(i);
  std::vector<char> to_val(static_cast<size_t>(n), 0);
  std::mt19937_64 rng(seed);
  for (auto& members : by_class) {
    const auto count = static_cast<int64_t>(members.size());
    if (count < 2) continue;
    int64_t take = std::llround(static_cast<double>(count) * val_fraction);
    take = std::clamp<int64_t>(take, 1, count - 1);
    // Fisher-Yates with our own draws, so the split is the same with every standard library.
    for (int64_t i = count - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
      std::swap(members[static_cast<size_t>(i)], members[static_cast<size_t>(j)]);
    }
    for (int64_t k = 0; k < take; ++k) to_val[static_cast<size_t>(members[static_cast<size_t>(k)])] = 1;
  }
  std::vector<int64_t> train_index, val_index;
  for (int64_t i = 0; i < n; ++i) (to_val[static_cast<size_t>(i)] ? val_index : train_index).push_back(i);
  auto part = [&](const std::vector<int64_t>& index, const char* what) {
    const at::Tensor idx = at::tensor(index, at::kLong);
    return ImageSet(set.images().index_select(0, idx), set.labels().index_select(0, idx), set.class_names(),
                    fmt::format("{} ({} part of a split with val_fraction {})", set.source(), what, val_fraction));
  };
  return {part(train_index, "training"), part(val_index, "validation")};
}

std::vector<int64_t> parse_image_size(const std::string& text) {
  static const std::regex kPattern(R"(\s*(\d{1,5})\s*(?:[,xX]\s*(\d{1,5})\s*)?)");
  std::smatch m;
  BIRDPLANE_CHECK_SETTING(std::regex_match(text, m, kPattern), "image_size",
                          "expected H or H,W in pixels (e.g. 32 or 48,64), got '{}'", text);
  const int64_t h = std::stoll(m[1]);
  const int64_t w = m[2].matched ? std::stoll(m[2]) : h;
  BIRDPLANE_CHECK_SETTING(h >= 1 && w >= 1 && h <= 16384 && w <= 16384, "image_size",
                          "height and width must be 1 to 16384, got '{}'", text);
  return {h, w};
}

}  // namespace birdplane::data
