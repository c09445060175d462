#include "support/fixtures.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "birdplane/data/cifar10.h"

namespace fs = std::filesystem;

namespace birdplane::fixtures {

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "birdplane-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

uint8_t fake_pixel(int64_t record, int c, int y, int x) {
  return static_cast<uint8_t>((record * 131 + c * 71 + y * 17 + x * 5 + (x * y) % 7) & 0xFF);
}

void write_fake_batch(const std::string& path, const std::vector<uint8_t>& labels, int64_t base) {
  std::ofstream out(path, std::ios::binary);
  for (size_t i = 0; i < labels.size(); ++i) {
    out.put(static_cast<char>(labels[i]));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          out.put(static_cast<char>(fake_pixel(base + static_cast<int64_t>(i), c, y, x)));
  }
}

std::string write_fake_cifar(const std::string& root, int64_t per_file) {
  fs::path dir = fs::path(root) / data::kFolderName;
  fs::create_directories(dir);
  int64_t base = 0;
  auto labels_for = [&](int64_t start) {
    std::vector<uint8_t> labels;
    for (int64_t i = 0; i < per_file; ++i) labels.push_back(static_cast<uint8_t>((start + i) % 10));
    return labels;
  };
  for (int k = 1; k <= 5; ++k) {
    write_fake_batch((dir / ("data_batch_" + std::to_string(k) + ".bin")).string(), labels_for(base), base);
    base += per_file;
  }
  write_fake_batch((dir / "test_batch.bin").string(), labels_for(1000), 1000);
  std::ofstream meta(dir / "batches.meta.txt");
  for (const auto& name : data::default_class_names()) meta << name << "\n";
  meta << "\n";
  return dir.string();
}

std::string real_data_dir() {
  const char* env = std::getenv("BIRDPLANE_DATA");
  if (!env || !*env) return "";
  std::string dir = data::batches_dir(env);
  return data::is_complete(dir) ? dir : "";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RunResult run_shell(const std::string& command) {
  TempDir tmp;
  std::string full = "(" + command + ") >" + tmp.path() + "/out 2>" + tmp.path() + "/err </dev/null";
  int status = std::system(full.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(tmp.path() + "/out");
  r.err = read_file(tmp.path() + "/err");
  return r;
}

RunResult run_birdplane(const std::string& args, const std::string& env) {
  return run_shell(env + (env.empty() ? "" : " ") + std::string(binary_path()) + " " + args);
}

const char* binary_path() { return BIRDPLANE_BINARY_PATH; }
const char* source_dir() { return BIRDPLANE_SOURCE_PATH; }

}  // namespace birdplane::fixtures
