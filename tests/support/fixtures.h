// Test helpers: temporary folders, tiny CIFAR-10 files in the official layout, running the program.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::fixtures {

/// The built program and the source tree. Only fixtures.cpp is compiled with their paths, so every
/// other test file compiles to the same thing in any checkout or build folder (ccache can share it).
const char* binary_path();
const char* source_dir();


/// A fresh folder under the system temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// The deterministic pixel value of record `i`, channel c, row y, column x in fake files.
uint8_t fake_pixel(int64_t record, int c, int y, int x);

/// Writes one batch file of `labels.size()` records whose pixels follow fake_pixel(base + i, ...).
void write_fake_batch(const std::string& path, const std::vector<uint8_t>& labels, int64_t base = 0);

/// Writes a whole fake cifar-10-batches-bin folder: `per_file` records per train file (5 files)
/// and in test_batch.bin, labels cycling 0..9, plus batches.meta.txt. Returns the folder path.
std::string write_fake_cifar(const std::string& root, int64_t per_file);

/// The real data folder from $BIRDPLANE_DATA (empty when unset or incomplete).
std::string real_data_dir();

/// Result of running a command through the shell.
struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

/// Runs `birdplane <args>` (the built binary) with stdout and stderr captured.
RunResult run_birdplane(const std::string& args, const std::string& env = "");

/// Runs any shell command with stdout and stderr captured.
RunResult run_shell(const std::string& command);

/// Whether `text` holds `part` (for checking messages and output).
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// Whole file as bytes.
std::string read_file(const std::string& path);

/// Writes `text` as the whole file (replacing it).
void write_text(const std::string& path, const std::string& text);

}  // namespace birdplane::fixtures

// The spellings the tests use, as expressions of type const char*.
#define BIRDPLANE_BINARY (::birdplane::fixtures::binary_path())
#define BIRDPLANE_SOURCE_DIR (::birdplane::fixtures::source_dir())
