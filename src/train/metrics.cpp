#include "birdplane/train/metrics.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"

namespace birdplane::train {

ConfusionMatrix::ConfusionMatrix(int64_t num_classes)
    : k_(num_classes), counts_(static_cast<size_t>(num_classes * num_classes), 0) {
  BIRDPLANE_CHECK(num_classes >= 1, "a confusion matrix needs at least one class");
}

void ConfusionMatrix::add(const at::Tensor& predicted, const at::Tensor& target) {
  auto flat = (target.to(torch::kCPU, torch::kInt64) * k_ + predicted.to(torch::kCPU, torch::kInt64));
  auto counts = torch::bincount(flat, {}, k_ * k_);
  auto* c = counts.data_ptr<int64_t>();
  for (int64_t i = 0; i < k_ * k_; ++i) counts_[i] += c[i];
}

void ConfusionMatrix::add_counts(const std::vector<int64_t>& counts) {
  BIRDPLANE_CHECK(counts.size() == counts_.size(), "add_counts: {} counts for {} classes", counts.size(), k_);
  for (size_t i = 0; i < counts.size(); ++i) counts_[i] += counts[i];
}

int64_t ConfusionMatrix::total() const {
  int64_t t = 0;
  for (auto v : counts_) t += v;
  return t;
}

int64_t ConfusionMatrix::correct() const {
  int64_t t = 0;
  for (int64_t i = 0; i < k_; ++i) t += at(i, i);
  return t;
}

double ConfusionMatrix::accuracy() const {
  const auto t = total();
  return t ? static_cast<double>(correct()) / t : 0.0;
}

double ConfusionMatrix::precision(int64_t c) const {
  int64_t col = 0;
  for (int64_t i = 0; i < k_; ++i) col += at(i, c);
  return col ? static_cast<double>(at(c, c)) / col : 0.0;
}

double ConfusionMatrix::recall(int64_t c) const {
  int64_t row = 0;
  for (int64_t j = 0; j < k_; ++j) row += at(c, j);
  return row ? static_cast<double>(at(c, c)) / row : 0.0;
}

std::string ConfusionMatrix::format(const std::vector<std::string>& names) const {
  size_t w = 10;
  for (const auto& n : names) w = std::max(w, n.size() + 1);
  std::string s = fmt::format("{:<{}} {:>9} {:>9}\n", "class", w, "precision", "recall");
  for (int64_t c = 0; c < k_; ++c)
    s += fmt::format("{:<{}} {:>9.4f} {:>9.4f}\n", names[c], w, precision(c), recall(c));
  s += "\nconfusion matrix (rows: true class, columns: predicted)\n";
  s += fmt::format("{:<{}}", "", w);
  for (int64_t c = 0; c < k_; ++c) s += fmt::format(" {:>{}}", names[c].substr(0, 8), 8);
  s += "\n";
  for (int64_t i = 0; i < k_; ++i) {
    s += fmt::format("{:<{}}", names[i], w);
    for (int64_t j = 0; j < k_; ++j) s += fmt::format(" {:>8}", at(i, j));
    s += "\n";
  }
  return s;
}

nlohmann::json ConfusionMatrix::to_json(const std::vector<std::string>& names) const {
  nlohmann::json j;
  j["classes"] = names;
  j["accuracy"] = accuracy();
  j["total"] = total();
  std::vector<std::vector<int64_t>> m(k_, std::vector<int64_t>(k_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t c = 0; c < k_; ++c) m[i][c] = at(i, c);
  j["confusion_matrix"] = m;
  for (int64_t c = 0; c < k_; ++c) {
    j["per_class"][names[c]] = {{"precision", precision(c)}, {"recall", recall(c)}};
  }
  return j;
}

}  // namespace birdplane::train
