// Private to the library: how each family of transforms makes itself known to the spec parser
// (spec.cpp). Every family file (spec_geometry.cpp, spec_color.cpp, spec_auto.cpp) adds one Entry per
// transform name; the parser hands each entry an Args that reads and checks the call's arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "birdplane/check.h"
#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms::spec {

struct Call;

/// One argument value as written: a number, a word or quoted string, a list, or a nested call.
struct Value {
  enum class Kind { kNumber, kText, kList, kCall };
  Kind kind = Kind::kNumber;
  double number = 0;
  std::string text;
  std::vector<Value> items;
  std::shared_ptr<Call> call;
  size_t column = 0;  ///< 1-based column in the spec
};

/// Name(positional..., key=value...), as parsed.
struct Call {
  std::string name;
  size_t column = 0;
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

class Args;
/// Builds a transform from its checked arguments.
using Factory = std::function<TransformPtr(Args&)>;

/// One transform name the parser knows.
struct Entry {
  std::string name;
  std::string usage;  ///< e.g. "RandomCrop(size, padding=0, pad_if_needed=False, fill=0, padding_mode=constant)"
  Factory make;
};
using Registry = std::vector<Entry>;

/// The arguments of one call, read by position or keyword (torchvision's names). Each getter
/// consumes the argument; done() rejects any left over. Errors say "<origin>: Name (column N of
/// "<spec>"): ...".
class Args {
 public:
  using Builder = std::function<TransformPtr(const Call&)>;
  Args(const Call& call, const std::string& spec, const std::string& origin, Builder build);

  const std::string& name() const { return call_.name; }
  /// True when the argument is given (by position or keyword).
  bool has(size_t index, const std::string& key) const;
  /// A number; `fallback` when absent (absent without fallback is an error).
  double number(size_t index, const std::string& key, std::optional<double> fallback = std::nullopt);
  /// A whole number >= `min`.
  int64_t whole(size_t index, const std::string& key, std::optional<int64_t> fallback = std::nullopt,
                int64_t min = 0);
  /// A number in [0, 1].
  double probability(size_t index, const std::string& key, std::optional<double> fallback = std::nullopt);
  /// One number or a list of numbers (a single number gives a list of one).
  std::vector<double> numbers(size_t index, const std::string& key,
                              std::optional<std::vector<double>> fallback = std::nullopt);
  /// A word or quoted string (InterpolationMode.BILINEAR and bilinear both give "bilinear"-style
  /// text as written; callers compare case-insensitively with choice()).
  std::string text(size_t index, const std::string& key, std::optional<std::string> fallback = std::nullopt);
  /// A word that must be one of `allowed` (case-insensitive, an "InterpolationMode." style prefix is
  /// ignored); returns the allowed spelling.
  std::string choice(size_t index, const std::string& key, const std::vector<std::string>& allowed,
                     std::optional<std::string> fallback = std::nullopt);
  /// True/False (or 1/0).
  bool flag(size_t index, const std::string& key, bool fallback);
  /// A nested transform: Name(...) or a bare Name.
  TransformPtr transform(size_t index, const std::string& key);
  /// A list of nested transforms.
  std::vector<TransformPtr> transforms(size_t index, const std::string& key);
  /// Errors on any argument not read, and on more positional arguments than read.
  void done();
  /// Throws Error "<origin>: Name (column N of "<spec>"): <what>".
  [[noreturn]] void error(const std::string& what) const;

 private:
  const Value* find(size_t index, const std::string& key);
  const Value& need(size_t index, const std::string& key);
  std::string where() const;

  const Call& call_;
  const std::string& spec_;
  const std::string& origin_;
  Builder build_;
  std::vector<bool> used_args_, used_kwargs_;
};

/// Runs `make` (a constructor call); an Error from the class's own checks (which name the transform
/// and parameter) is reported at the spec's position, as Args::error does.
template <typename Make>
TransformPtr make_checked(Args& a, Make make) {
  try {
    return make();
  } catch (const Error& e) {
    a.error(e.what());
  }
}

/// Each family's entries. spec.cpp calls all of them once.
void add_geometry_specs(Registry& registry);
void add_color_specs(Registry& registry);
void add_auto_specs(Registry& registry);

}  // namespace birdplane::transforms::spec
