// Meters kept out of the training loop: running means, accuracy, a confusion matrix, a timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace birdplane::train {

/// Weighted running mean (e.g. a loss averaged over images).
class MeanMeter {
 public:
  void add(double value, int64_t count = 1) { sum_ += value * count; count_ += count; }
  double mean() const { return count_ ? sum_ / count_ : 0.0; }
  int64_t count() const { return count_; }
  void reset() { sum_ = 0; count_ = 0; }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

/// Counts predictions against targets per class pair. Rows are true classes, columns predicted.
class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t num_classes);
  /// predicted and target: int64 [B].
  void add(const at::Tensor& predicted, const at::Tensor& target);
  int64_t total() const;
  int64_t correct() const;
  double accuracy() const;
  /// Of the images predicted as class c, the share that are c (0 when none was predicted).
  double precision(int64_t c) const;
  /// Of the images of class c, the share predicted as c.
  double recall(int64_t c) const;
  int64_t at(int64_t truth, int64_t predicted) const { return counts_[truth * k_ + predicted]; }
  int64_t num_classes() const { return k_; }
  /// A text table with class names, precision and recall.
  std::string format(const std::vector<std::string>& class_names) const;
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
  /// The counts, row-major [truth][predicted] (for summing over ranks).
  const std::vector<int64_t>& counts() const { return counts_; }
  /// Adds counts in that layout (k*k of them).
  void add_counts(const std::vector<int64_t>& counts);

 private:
  int64_t k_;
  std::vector<int64_t> counts_;
};

/// Wall-clock seconds since construction or the last reset().
class Timer {
 public:
  Timer() { reset(); }
  void reset() { start_ = std::chrono::steady_clock::now(); }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace birdplane::train
