#include "birdplane/train/metrics_csv.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "common/files.h"

namespace birdplane::train {

void write_metrics(const std::string& path, const std::vector<EpochMetrics>& rows) {
  std::string out = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second,lr\n";
  for (const auto& m : rows) {
    out += fmt::format("{},{:.6f},{:.6f},{},{},{:.4f},{:.1f},{}\n", m.epoch, m.train_loss, m.train_accuracy,
                       m.val_loss < 0 ? "" : fmt::format("{:.6f}", m.val_loss),
                       m.val_accuracy < 0 ? "" : fmt::format("{:.6f}", m.val_accuracy), m.seconds,
                       m.images_per_second, m.lr < 0 ? "" : fmt::format("{:.9g}", m.lr));
  }
  write_file_atomically(path, out);
}

std::vector<EpochMetrics> read_metrics(const std::string& path) {
  std::vector<EpochMetrics> rows;
  std::ifstream in(path);
  if (!in) return rows;  // a run resumed before its first metrics row
  std::string line;
  std::getline(in, line);  // header
  int64_t line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    while (f.size() < 8) f.push_back("");  // files from before the lr column have 7
    auto num = [&](const std::string& text) {
      if (text.empty()) return -1.0;
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      BIRDPLANE_CHECK(used == text.size() && used > 0, "{} line {}: '{}' is not a number; the file is damaged",
                      path, line_number, text);
      return v;
    };
    EpochMetrics m;
    // Compared as a double before any conversion: casting a value beyond int64 (1e30) or NaN to an
    // integer is undefined behaviour (found by fuzz/config_resume.cpp).
    const double epoch = num(f[0]);
    BIRDPLANE_CHECK(epoch == static_cast<double>(rows.size() + 1),
                    "{} line {}: epoch {} where {} was expected; the file is damaged", path, line_number, f[0],
                    rows.size() + 1);
    m.epoch = static_cast<int64_t>(rows.size()) + 1;
    m.train_loss = num(f[1]);
    m.train_accuracy = num(f[2]);
    m.val_loss = num(f[3]);
    m.val_accuracy = num(f[4]);
    m.seconds = num(f[5]);
    m.images_per_second = num(f[6]);
    m.lr = num(f[7]);
    rows.push_back(m);
  }
  return rows;
}

}  // namespace birdplane::train
