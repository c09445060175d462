// Reading a whole file into memory for the decoders: read_file_bytes and decode_image_file. Only
// regular files are opened for reading, up to a size limit, and each failure names the path.
#include "birdplane/data/image_decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "birdplane/check.h"

namespace birdplane::data {
namespace {

std::vector<uint8_t> read_whole_file(const std::string& path, int64_t max_bytes, const char* what) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) fail("cannot read {} {}: the file does not exist", what, path);
    if (e == EACCES || e == EPERM) fail("cannot read {} {}: permission denied (check the file's permissions)", what, path);
    fail("cannot read {} {}: {}", what, path, std::strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("cannot read {} {}: {}", what, path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("cannot read {} {}: it is a folder, not a file", what, path);
  if (!S_ISREG(st.st_mode))
    fail("cannot read {} {}: it is not a regular file (a FIFO, socket or device); only regular files are read",
         what, path);
  if (st.st_size > max_bytes)
    fail("cannot read {} {}: the file is {} bytes, above the limit of {} bytes", what, path,
         static_cast<int64_t>(st.st_size), max_bytes);
  // Back to blocking reads (a regular file never blocks, but be plain about it).
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read {} {}: {}", what, path, std::strerror(errno));
    if (n == 0) break;  // the file shrank while being read
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path, int64_t max_bytes) {
  return read_whole_file(path, max_bytes, "file");
}

DecodedImage decode_image_file(const std::string& path, int64_t max_pixels) {
  const std::vector<uint8_t> bytes = read_whole_file(path, int64_t{1} << 30, "image");
  return decode_image(bytes.data(), bytes.size(), path, max_pixels);
}

}  // namespace birdplane::data
