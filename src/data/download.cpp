// Downloading and installing the official CIFAR-10 archive, crash-safe.
//
// The steps, and what each leaves behind if the process dies in the middle:
//   1. download to <work>/cifar-10-binary.tar.gz.part, appending  -> a .part that the next run resumes
//   2. check its MD5                                              -> a .part that the next run re-checks
//   3. extract into <work>/.cifar-10-extract-XXXXXX, validating   -> a temp folder the next run removes
//      every entry ourselves (no links, no "..", size limits)
//   4. rename the extracted folder onto the target (same parent, so the rename is atomic)
// The target folder is therefore either absent, the old copy, or the complete new copy; never half.
#include "birdplane/data/download.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/version.h"
#include "birdplane/data/cifar10.h"
#include "common/text.h"

namespace fs = std::filesystem;

namespace birdplane::data {
namespace {

// Every failure of a download or install is a DownloadError (a front end adds its own names for the
// address, checksum and folder).
template <typename... Args>
[[noreturn]] void download_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw DownloadError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace

namespace {

constexpr const char* kPartName = "cifar-10-binary.tar.gz.part";
constexpr const char* kExtractPrefix = ".cifar-10-extract-";
constexpr const char* kOldPrefix = ".cifar-10-old-";

const std::vector<std::string>& dataset_files() {
  static const std::vector<std::string> files = {"data_batch_1.bin", "data_batch_2.bin",
                                                 "data_batch_3.bin", "data_batch_4.bin",
                                                 "data_batch_5.bin", "test_batch.bin"};
  return files;
}

// What is wrong with `dir` as an installed dataset, one phrase per problem (empty: nothing).
std::vector<std::string> dataset_problems(const fs::path& dir, bool require_full_size) {
  std::vector<std::string> problems;
  const int64_t full = kRecordsPerFile * kRecordBytes;
  for (const auto& name : dataset_files()) {
    std::error_code ec;
    const fs::path file = dir / name;
    if (!fs::is_regular_file(file, ec)) {
      problems.push_back(name + " is missing");
      continue;
    }
    const auto size = static_cast<int64_t>(fs::file_size(file, ec));
    if (ec) {
      problems.push_back(name + " cannot be read (" + ec.message() + ")");
    } else if (require_full_size && size != full) {
      problems.push_back(fmt::format("{} has {} bytes, expected {}", name, size, full));
    } else if (!require_full_size && (size <= 0 || size % kRecordBytes != 0 || size > full)) {
      problems.push_back(fmt::format("{} has {} bytes, not a whole number of {}-byte records", name,
                                     size, kRecordBytes));
    }
  }
  return problems;
}

// "data/cifar-10-batches-bin/" -> "data/cifar-10-batches-bin": rename() and parent_path() need the
// last component to be the folder itself.
fs::path without_trailing_slash(fs::path p) {
  while (p.has_relative_path() && p.filename().empty()) p = p.parent_path();
  return p;
}

// ---------------------------------------------------------------------------------------------
// Locking and leftovers

// An exclusive flock on the work folder for the lifetime of the object, so that two processes
// sharing a data folder (two ranks, two terminals) do not download into the same .part or remove
// each other's temp folders. Locking the folder itself leaves no lock file behind. Where the file
// system cannot lock (some network mounts) we go on without: the worst case is a wasted download.
class FolderLock {
 public:
  FolderLock(const fs::path& dir, const std::function<void(const std::string&)>& on_note) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) return;
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    if (errno != EWOULDBLOCK) return;
    if (on_note) on_note(fmt::format("waiting for another birdplane process that is downloading into {}", dir.string()));
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Temp folders of a run that died (we hold the lock, so no live run owns them).
void remove_leftovers(const fs::path& work) {
  std::error_code ec;
  for (fs::directory_iterator it(work, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kExtractPrefix, 0) == 0 || name.rfind(kOldPrefix, 0) == 0) {
      std::error_code ignored;
      fs::remove_all(it->path(), ignored);
    }
  }
}

// A folder made with mkdtemp and removed with everything in it when the object dies, whether
// the install succeeded (its content has been moved out by then) or threw.
class TempFolder {
 public:
  TempFolder(const fs::path& parent, const std::string& prefix) {
    std::string tmpl = (parent / (prefix + "XXXXXX")).string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
      download_fail("cannot create a temporary folder in {}: {}. Check that the folder is writable, or pick "
           "another data folder",
           parent.string(), std::strerror(errno));
    }
    path_ = buf.data();
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void fsync_path(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// ---------------------------------------------------------------------------------------------
// Downloading

void init_curl_once() {
  // curl_global_init is not thread-safe; a function-local static runs it exactly once.
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) {
    throw InternalError(fmt::format("libcurl failed to initialise: {}", curl_easy_strerror(code)));
  }
}

// Turns libcurl's transfer callbacks into DownloadProgress reports: at most every 100 ms, and once
// when the transfer ends, so a fast local transfer does not spend its time on the display.
class ProgressReporter {
 public:
  ProgressReporter(std::string file, int64_t offset, const std::function<void(const DownloadProgress&)>& report)
      : file_(std::move(file)), offset_(offset), report_(report), start_(Clock::now()) {}

  // CURLOPT_XFERINFOFUNCTION.
  static int callback(void* self, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
    static_cast<ProgressReporter*>(self)->update(dltotal, dlnow, false);
    return 0;  // non-zero would abort the transfer
  }

  // The last report, once the transfer has ended (successfully or not).
  void finish() {
    if (reported_ && !finished_) update(last_total_, last_now_, true);
  }

 private:
  using Clock = std::chrono::steady_clock;

  void update(int64_t dltotal, int64_t dlnow, bool force_final) {
    const auto now = Clock::now();
    last_total_ = dltotal;
    last_now_ = dlnow;
    const bool finished = force_final || (dltotal > 0 && dlnow >= dltotal);
    if (dlnow == 0 && !finished) return;
    if (reported_ && !finished && now - last_ < std::chrono::milliseconds(100)) return;
    if (finished && finished_) return;
    last_ = now;
    finished_ = finished;
    reported_ = true;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    DownloadProgress p;
    p.file = file_;
    p.bytes = offset_ + dlnow;
    p.total = dltotal > 0 ? offset_ + dltotal : -1;
    p.bytes_per_second = seconds > 0 ? static_cast<double>(dlnow) / seconds : 0.0;
    p.finished = finished;
    report_(p);
  }

  std::string file_;
  int64_t offset_;
  const std::function<void(const DownloadProgress&)>& report_;
  Clock::time_point start_;
  Clock::time_point last_{};
  int64_t last_total_ = 0, last_now_ = 0;
  bool reported_ = false;
  bool finished_ = false;
};

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
struct CurlCleanup {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

// Where the bytes go: appended to the .part file. A failed write (disk full) is remembered so the
// error can say so instead of libcurl's generic "failed writing received data".
struct Sink {
  std::FILE* file = nullptr;
  int write_errno = 0;

  static size_t callback(char* data, size_t size, size_t count, void* self) {
    auto* sink = static_cast<Sink*>(self);
    const size_t bytes = size * count;
    if (std::fwrite(data, 1, bytes, sink->file) != bytes) {
      sink->write_errno = errno ? errno : EIO;
      return 0;  // anything short of `bytes` makes libcurl stop with CURLE_WRITE_ERROR
    }
    return bytes;
  }
};

enum class Outcome {
  kDone,          // the .part now holds the whole file (as far as the server said)
  kRangeRefused,  // we asked to resume, the server sent the whole file instead (or a wrong range)
  kRangeAtEnd,    // we asked to resume at or past the end: the .part may already be complete
};

// One libcurl transfer of `url` into `part`, appending from `offset` (0: start afresh). Throws
// birdplane::Error for failures the caller cannot fix by changing how it asks.
Outcome transfer(const std::string& url, const fs::path& part, int64_t offset,
                 const std::function<void(const DownloadProgress&)>& on_progress) {
  init_curl_once();
  std::unique_ptr<CURL, CurlCleanup> curl(curl_easy_init());
  if (!curl) throw InternalError("curl_easy_init failed (out of memory?)");

  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(part.c_str(), offset > 0 ? "ab" : "wb"));
  if (!file) {
    download_fail("cannot write the download to {}: {}. Check that the folder is writable, or pick another "
         "data folder",
         part.string(), std::strerror(errno));
  }
  Sink sink{file.get()};
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Sink::callback);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);    // 404 and friends are errors, not bodies to save
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);  // mirrors and the official site may redirect
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for DNS timeouts: LibTorch has threads
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled connection (under 1 kB/s for a minute) fails instead of hanging forever; the .part
  // is kept, so running again resumes.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "birdplane/" BIRDPLANE_VERSION_STRING);
#if LIBCURL_VERSION_NUM >= 0x075500  // 7.85: the string forms of the protocol lists
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  if (offset > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(offset));

  std::unique_ptr<ProgressReporter> reporter;
  if (on_progress) {
    reporter = std::make_unique<ProgressReporter>(fs::path(url).filename().string(), offset, on_progress);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &ProgressReporter::callback);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, reporter.get());
  }

  const CURLcode code = curl_easy_perform(c);
  if (reporter) reporter->finish();  // the display ends its line before any message
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t received = 0;
  curl_off_t expected = -1;
  curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &received);
  curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected);
  const bool flushed = std::fflush(file.get()) == 0;
  const int flush_errno = errno;
  file.reset();

  const std::string detail = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OK:
      // With FAILONERROR libcurl still returns OK for 416 (Range Not Satisfiable) while resuming,
      // writing nothing: we asked for bytes past the end, so the .part may already be complete.
      if (status == 416 && offset > 0) return Outcome::kRangeAtEnd;
      if (!flushed) {
        download_fail("cannot write the download to {}: {}. Free some disk space and run again",
             part.string(), std::strerror(flush_errno));
      }
      return Outcome::kDone;
    case CURLE_RANGE_ERROR:  // "server does not seem to support byte ranges" / wrong Content-Range
      if (offset > 0) return Outcome::kRangeRefused;
      break;
    case CURLE_BAD_DOWNLOAD_RESUME:  // file:// and FTP: resume offset past the end of the file
      if (offset > 0) return Outcome::kRangeAtEnd;
      break;
    case CURLE_HTTP_RETURNED_ERROR:
      if (status == 416 && offset > 0) return Outcome::kRangeAtEnd;  // Range Not Satisfiable
      download_fail("could not download {}: the server answered HTTP {}. Check the address, or copy "
           "cifar-10-batches-bin/ yourself and point the data folder at it",
           url, status);
    case CURLE_WRITE_ERROR:
      if (sink.write_errno != 0) {
        download_fail("could not download {}: writing {} failed: {}. Free some disk space and run again; the "
             "download resumes where it stopped",
             url, part.string(), std::strerror(sink.write_errno));
      }
      break;
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      download_fail("could not download {}: the transfer stopped after {} of {} bytes ({}). Run the same "
           "command again to resume from {}",
           url, offset + received, expected >= 0 ? fmt::format("{}", offset + expected) : "?",
           detail, part.string());
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      download_fail("could not download {}: {}. Check your network, or copy cifar-10-batches-bin/ yourself "
           "and point the data folder at it",
           url, detail);
    default:
      break;
  }
  download_fail("could not download {}: {} (libcurl error {}). Check the address and your network, "
       "or copy cifar-10-batches-bin/ yourself and point the data folder at it",
       url, detail, static_cast<int>(code));
}

bool is_md5_hex(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
           return std::isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

int64_t size_or_zero(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

// Brings `part` to the complete, verified archive: resumes what is there, starts over when the
// server cannot resume, checks the MD5. On a checksum mismatch the .part is deleted (resuming a
// wrong file would only stay wrong).
void download_verified(const DownloadOptions& options, const std::string& md5, const fs::path& part) {
  int64_t offset = size_or_zero(part);
  // Three attempts at most: resume; start over once when resuming is refused; nothing loops.
  for (int attempt = 0; attempt < 3; ++attempt) {
    Outcome outcome;
    try {
      outcome = transfer(options.url, part, offset, options.on_progress);
    } catch (...) {
      // An empty .part helps nobody; a non-empty one is the head start of the next run.
      if (size_or_zero(part) == 0) {
        std::error_code ec;
        fs::remove(part, ec);
      }
      throw;
    }
    if (outcome == Outcome::kDone) break;
    if (outcome == Outcome::kRangeAtEnd && md5_file(part.string()) == md5) return;
    // Refused range, or a .part at/over the end that is not the archive: begin again from byte 0.
    offset = 0;
  }
  const std::string actual = md5_file(part.string());
  if (actual != md5) {
    std::error_code ec;
    fs::remove(part, ec);
    download_fail("the download of {} is damaged or not the expected archive: its MD5 is {}, expected {}. "
         "The partial file was deleted; run the command again, and if you use a mirror, "
         "check that it serves the official cifar-10-binary.tar.gz (or give its checksum)",
         options.url, actual, md5);
  }
}

// ---------------------------------------------------------------------------------------------
// Extracting

struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// The entry's path made relative and clean ("./a//b" -> "a/b"), or a reason to refuse it.
// Refusing instead of sanitising: an archive that tries this is not the CIFAR-10 release.
fs::path safe_relative_path(const char* raw, std::string& refusal) {
  if (raw == nullptr || *raw == '\0') {
    refusal = "it has no name";
    return {};
  }
  const std::string name(raw);
  if (name.front() == '/') {
    refusal = "its path is absolute";
    return {};
  }
  fs::path clean;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    if (part == "..") {
      refusal = "its path climbs out of the extraction folder with '..'";
      return {};
    }
    if (!part.empty() && part != ".") clean /= part;
    start = end + 1;
  }
  return clean;  // may be empty: "./", the archive's own root, which we skip
}

// Writes the current entry's data to `dest`, counting actual bytes (headers can lie, and gzip can
// inflate a few kB into gigabytes).
void write_entry_data(archive* a, const fs::path& dest, const std::string& archive_name,
                      const std::string& entry_name, const DownloadOptions& options,
                      int64_t& total) {
  // O_EXCL: the folder is fresh and holds no links, so the file cannot exist unless the archive
  // names it twice, which the real archive never does.
  const int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) {
      download_fail("archive {}: entry '{}' appears twice; refusing to extract it. Nothing was installed",
           archive_name, entry_name);
    }
    download_fail("cannot create {} while extracting {}: {}", dest.string(), archive_name, std::strerror(errno));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  std::vector<char> buffer(1 << 16);
  int64_t written = 0;
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buffer.data(), buffer.size());
    if (n == 0) break;
    if (n < 0) {
      download_fail("the file downloaded from {} is damaged at entry '{}' ({}); it was deleted and nothing "
           "was installed. Run the command again, or check the address",
           archive_name, entry_name, archive_error_string(a) ? archive_error_string(a) : "read error");
    }
    written += n;
    total += n;
    if (written > options.max_entry_bytes) {
      download_fail("archive {}: entry '{}' unpacks to more than {} bytes, the limit for one file; refusing "
           "to extract it (a decompression bomb?). Nothing was installed",
           archive_name, entry_name, options.max_entry_bytes);
    }
    if (total > options.max_extract_bytes) {
      download_fail("archive {} unpacks to more than {} bytes in all, the limit; refusing to extract it "
           "further (stopped at entry '{}'; a decompression bomb?). Nothing was installed",
           archive_name, options.max_extract_bytes, entry_name);
    }
    for (la_ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, buffer.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        download_fail("cannot write {} while extracting {}: {}. Free some disk space and run again",
             dest.string(), archive_name, std::strerror(errno));
      }
      done += w;
    }
  }
  // Data on disk before the rename publishes it: after a power cut the target is either the old
  // state or complete files, not the right names over empty blocks.
  ::fsync(fd);
}

// Extracts `archive_path` into `dest` (an empty folder), accepting only regular files and folders
// with clean relative paths, within the size limits. `archive_name` (the URL) names it in errors.
void extract_safely(const fs::path& archive_path, const fs::path& dest, const std::string& archive_name,
                    const DownloadOptions& options) {
  std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
  if (!a) throw InternalError("archive_read_new failed (out of memory?)");
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    download_fail("the file downloaded from {} is damaged or not a .tar.gz archive ({}); it was deleted and "
         "nothing was installed. Run the command again, or check the address: it should be "
         "cifar-10-binary.tar.gz",
         archive_name, archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable");
  }
  int64_t total = 0;
  for (;;) {
    archive_entry* entry = nullptr;
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      download_fail("the file downloaded from {} is damaged or not a .tar.gz archive ({}); it was deleted and "
           "nothing was installed. Run the command again, or check the address",
           archive_name, archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable header");
    }
    const char* raw = archive_entry_pathname(entry);
    const std::string entry_name = raw ? raw : "";
    std::string refusal;
    const fs::path rel = safe_relative_path(raw, refusal);

    // Links first: a hard link is stored as a "regular file" whose hardlink field is set.
    const auto type = archive_entry_filetype(entry);
    if (refusal.empty() && (type == AE_IFLNK || archive_entry_symlink(entry) != nullptr)) {
      refusal = fmt::format("it is a symbolic link (to '{}')",
                            archive_entry_symlink(entry) ? archive_entry_symlink(entry) : "?");
    } else if (refusal.empty() && archive_entry_hardlink(entry) != nullptr) {
      refusal = fmt::format("it is a hard link (to '{}')", archive_entry_hardlink(entry));
    } else if (refusal.empty() && type != AE_IFREG && type != AE_IFDIR) {
      refusal = "it is not a regular file or folder (a device, fifo or socket)";
    } else if (refusal.empty() && type == AE_IFREG && archive_entry_size_is_set(entry) &&
               archive_entry_size(entry) > options.max_entry_bytes) {
      refusal = fmt::format("it declares {} bytes, over the limit of {} for one file (a "
                            "decompression bomb?)",
                            archive_entry_size(entry), options.max_entry_bytes);
    }
    if (!refusal.empty()) {
      download_fail("archive {} holds an unsafe entry '{}': {}. Refusing to extract it; nothing was "
           "installed. The official CIFAR-10 archive has no such entries: check the address",
           archive_name, entry_name, refusal);
    }
    if (rel.empty()) continue;  // "./": the folder we extract into

    const fs::path out = dest / rel;
    std::error_code ec;
    if (type == AE_IFDIR) {
      fs::create_directories(out, ec);
      if (ec) download_fail("cannot create folder {} while extracting {}: {}", out.string(), archive_name, ec.message());
      continue;
    }
    fs::create_directories(out.parent_path(), ec);
    if (ec) {
      download_fail("cannot create folder {} while extracting {}: {}", out.parent_path().string(),
           archive_name, ec.message());
    }
    write_entry_data(a.get(), out, archive_name, entry_name, options, total);
  }
}

// The extracted cifar-10-batches-bin folder: at the top of the archive in the official release,
// searched for deeper in case a mirror wrapped it in another folder.
fs::path find_batches_folder(const fs::path& root) {
  std::error_code ec;
  if (fs::is_directory(root / kFolderName, ec)) return root / kFolderName;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec) && it->path().filename() == kFolderName) return it->path();
  }
  return {};
}

// A name in `work` that does not exist yet, for moving the old copy aside.
fs::path unused_name(const fs::path& work, const std::string& prefix) {
  for (int i = 0;; ++i) {
    fs::path p = work / fmt::format("{}{}-{}", prefix, ::getpid(), i);
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(p, ec))) return p;
  }
}

// Puts `fresh` at `target` (both in `work`). An existing target (an incomplete old copy) is first
// renamed aside, then deleted once the new one is in place; were the second rename to fail, the
// old copy is put back.
void move_into_place(const fs::path& fresh, const fs::path& target, const fs::path& work) {
  std::error_code ec;
  fs::path old;
  if (fs::exists(fs::symlink_status(target, ec))) {
    old = unused_name(work, kOldPrefix);
    fs::rename(target, old, ec);
    if (ec) {
      download_fail("cannot move the incomplete CIFAR-10 folder {} aside to replace it: {}. Delete it "
           "yourself and run again",
           target.string(), ec.message());
    }
  }
  fs::rename(fresh, target, ec);
  if (ec) {
    std::error_code ignored;
    if (!old.empty()) fs::rename(old, target, ignored);
    download_fail("cannot move the extracted CIFAR-10 folder into {}: {}", target.string(), ec.message());
  }
  fsync_path(work, O_RDONLY | O_DIRECTORY);  // make the rename itself durable
  if (!old.empty()) fs::remove_all(old, ec);  // leftovers are removed by the next run otherwise
}

void install(const fs::path& part, const fs::path& target, const fs::path& work,
             const DownloadOptions& options) {
  TempFolder temp(work, kExtractPrefix);
  try {
    extract_safely(part, temp.path(), options.url, options);
  } catch (const Error&) {
    // The archive passed its checksum yet is unusable: keeping it would fail the same way again.
    std::error_code ec;
    fs::remove(part, ec);
    throw;
  }
  const fs::path extracted = find_batches_folder(temp.path());
  const auto problems = extracted.empty()
                            ? std::vector<std::string>{std::string("there is no ") + kFolderName + "/ folder"}
                            : dataset_problems(extracted, options.require_full_size);
  if (!problems.empty()) {
    std::error_code ec;
    fs::remove(part, ec);
    download_fail("archive {} does not hold the expected CIFAR-10 files ({}); nothing was installed. Check "
         "the address: it should be the binary version, cifar-10-binary.tar.gz",
         options.url, join(problems, "; "));
  }
  move_into_place(extracted, target, work);
}

}  // namespace

bool is_installed(const std::string& dir, const DownloadOptions& options) {
  if (options.require_full_size) return is_complete(dir);
  return dataset_problems(dir, false).empty();
}

std::string md5_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) download_fail("cannot open {} to compute its MD5: {}", path, std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) {
    throw InternalError("OpenSSL could not start an MD5 digest");
  }
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = in.gcount();
    if (n > 0 && EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n)) != 1) {
      throw InternalError("OpenSSL failed while computing an MD5 digest");
    }
  }
  if (in.bad()) download_fail("could not read all of {} to compute its MD5", path);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    throw InternalError("OpenSSL could not finish an MD5 digest");
  }
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string ensure_cifar10(const std::string& root, const DownloadOptions& options) {
  const fs::path target = without_trailing_slash(batches_dir(root));
  if (is_installed(target.string(), options)) return target.string();

  // Checked before any network traffic: a typo in the checksum should not cost a 170 MB download.
  const std::string md5 = to_lower(options.md5);
  if (!is_md5_hex(md5)) {
    fail_setting("md5", "'{}' is not an MD5 checksum; expected 32 hexadecimal digits such as {}", options.md5,
         kCifar10Md5);
  }
  if (options.url.empty()) fail_setting("url", "the download address is empty");

  // Everything happens beside the target, in its parent folder (normally `root`), so that the
  // final rename stays within one file system and is atomic.
  fs::path work = target.parent_path();
  if (work.empty()) work = ".";
  std::error_code ec;
  fs::create_directories(work, ec);
  if (ec || !fs::is_directory(work, ec)) {
    download_fail("cannot create the data folder {}: {}. Pick a writable data folder",
         work.string(), ec ? ec.message() : "a file has that name");
  }

  FolderLock lock(work, options.on_note);
  // Another process may have installed it while we waited for the lock.
  if (is_installed(target.string(), options)) return target.string();
  remove_leftovers(work);

  const fs::path part = work / kPartName;
  download_verified(options, md5, part);
  install(part, target, work, options);
  fs::remove(part, ec);
  return target.string();
}

}  // namespace birdplane::data
