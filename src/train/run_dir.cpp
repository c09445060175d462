#include "birdplane/train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "birdplane/check.h"
#include "common/files.h"

namespace fs = std::filesystem;

namespace birdplane::train {
namespace {

// Takes the folder's lock file (flock, released when the descriptor closes, also when the process
// dies) and records our pid in it for the message another process prints.
int lock_folder(const std::string& dir) {
  const std::string lock_path = (fs::path(dir) / "lock").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot lock run folder {}: {} (is it writable?)", dir, std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {0};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      fail("run folder {} is in use by another birdplane process{}; wait for it to finish or use another folder",
           dir, n > 0 ? std::string(" (pid ") + std::string(pid, static_cast<size_t>(n)) + ")" : "");
    }
    fail("cannot lock run folder {}: {}", dir, std::strerror(err));
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(fd, me.data(), me.size(), 0);
  }
  return fd;
}

}  // namespace

RunDir RunDir::create(const std::string& path) {
  std::error_code ec;
  BIRDPLANE_CHECK(!fs::exists(path, ec), "run folder {} already exists; pick another name, or resume it", path);
  fs::create_directories(path, ec);
  if (ec) fail("cannot create run folder {}: {}", path, ec.message());
  return RunDir(path, lock_folder(path));
}

RunDir RunDir::open(const std::string& path) {
  std::error_code ec;
  BIRDPLANE_CHECK(fs::is_directory(path, ec), "run folder {} does not exist", path);
  BIRDPLANE_CHECK(fs::exists(fs::path(path) / "config.json", ec),
                  "{} has no config.json; expected a run folder written by birdplane", path);
  return RunDir(path, lock_folder(path));
}

RunDir::RunDir(RunDir&& other) noexcept : path_(std::move(other.path_)), lock_fd_(other.lock_fd_) {
  other.lock_fd_ = -1;
}

RunDir& RunDir::operator=(RunDir&& other) noexcept {
  if (this != &other) {
    if (lock_fd_ >= 0) ::close(lock_fd_);
    path_ = std::move(other.path_);
    lock_fd_ = other.lock_fd_;
    other.lock_fd_ = -1;
  }
  return *this;
}

RunDir::~RunDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // closing releases the lock
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

bool RunDir::has_checkpoint() const {
  std::error_code ec;
  return fs::exists(checkpoint_path(), ec);
}

void RunDir::write_config(const nlohmann::json& config) const { write_json("config.json", config); }

void RunDir::write_json(const std::string& name, const nlohmann::json& j) const {
  write_file_atomically(file(name), j.dump(2) + "\n");
}

nlohmann::json RunDir::read_config() const {
  const std::string p = config_path();
  std::ifstream in(p);
  if (!in) fail("cannot read {}: {}", p, std::strerror(errno));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{} is not valid JSON ({}); it is damaged", p, e.what());
  }
}

void RunDir::require_checkpoint() const {
  if (has_checkpoint()) return;
  throw NoCheckpointError(fmt::format("{} has no checkpoint.pt yet (the run stopped before its first epoch ended); "
                                      "start it again instead",
                                      path()),
                          path());
}

}  // namespace birdplane::train
