#include "birdplane/transforms/spec.h"

#include <cctype>
#include <map>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/geometry.h"

namespace birdplane::transforms {
namespace {

using Step = std::function<at::Tensor(const at::Tensor&, at::Generator&)>;

// A call like Name(1, key=2.5): positional and keyword numbers.
struct Call {
  std::string name;
  size_t column = 0;
  std::vector<double> args;
  std::map<std::string, double> kwargs;
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  std::vector<Call> parse() {
    std::vector<Call> calls;
    skip_space();
    if (pos_ == s_.size()) return calls;
    while (true) {
      calls.push_back(call());
      skip_space();
      if (pos_ == s_.size()) break;
      expect(',', "',' between transforms");
    }
    return calls;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("--augment: at column {} of \"{}\": {}. Known transforms: RandomCrop(size, padding=0, fill=0), "
         "RandomHorizontalFlip(p=0.5), and the aliases crop (RandomCrop(32, padding=4)) and flip",
         pos_ + 1, s_, what);
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c, const std::string& what) {
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != c) error("expected " + what);
    ++pos_;
  }
  std::string identifier() {
    skip_space();
    size_t start = pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
    if (start == pos_) error("expected a transform name");
    return s_.substr(start, pos_ - start);
  }
  double number() {
    skip_space();
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s_.substr(pos_), &used);
    } catch (const std::exception&) {
      error("expected a number");
    }
    pos_ += used;
    return v;
  }
  Call call() {
    skip_space();
    Call c;
    c.column = pos_ + 1;
    c.name = identifier();
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == '(') {
      ++pos_;
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ')') {
        ++pos_;
        return c;
      }
      while (true) {
        skip_space();
        size_t save = pos_;
        if (pos_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[pos_]))) {
          auto key = identifier();
          expect('=', "'=' after " + key);
          c.kwargs[key] = number();
        } else {
          pos_ = save;
          if (!c.kwargs.empty()) error("a positional value after a keyword one");
          c.args.push_back(number());
        }
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ')') {
          ++pos_;
          break;
        }
        expect(',', "',' or ')'");
      }
    }
    return c;
  }

  const std::string& s_;
  size_t pos_ = 0;
};

double take(Call& c, size_t index, const std::string& key, double fallback) {
  if (auto it = c.kwargs.find(key); it != c.kwargs.end()) {
    double v = it->second;
    c.kwargs.erase(it);
    return v;
  }
  return index < c.args.size() ? c.args[index] : fallback;
}

bool is_whole(double v) { return v == static_cast<double>(static_cast<int64_t>(v)); }

Step make_step(Call c, const std::string& spec) {
  auto where = [&] { return fmt::format("--augment: {} (column {} of \"{}\")", c.name, c.column, spec); };
  if (c.name == "crop" || c.name == "RandomCrop") {
    const bool alias = c.name == "crop";
    const double size = take(c, 0, "size", alias ? 32 : -1);
    const double padding = take(c, 1, "padding", alias ? 4 : 0);
    const double fill = take(c, 2, "fill", 0);
    BIRDPLANE_CHECK(size >= 1 && is_whole(size), "{}: size must be a whole number of pixels, 1 or more; got {}",
                    where(), size);
    BIRDPLANE_CHECK(padding >= 0 && is_whole(padding), "{}: padding must be a whole number, 0 or more; got {}",
                    where(), padding);
    BIRDPLANE_CHECK(fill >= 0 && fill <= 255, "{}: fill must be a byte value 0 to 255; got {}", where(), fill);
    BIRDPLANE_CHECK(c.kwargs.empty() && c.args.size() <= 3, "{}: unexpected argument{}", where(),
                    c.kwargs.empty() ? "" : " '" + c.kwargs.begin()->first + "'");
    auto crop = std::make_shared<RandomCrop>(static_cast<int64_t>(size), static_cast<int64_t>(padding), fill);
    return [crop](const at::Tensor& x, at::Generator& gen) { return crop->forward(x, gen); };
  }
  if (c.name == "flip" || c.name == "RandomHorizontalFlip") {
    const double prob = take(c, 0, "p", 0.5);
    BIRDPLANE_CHECK(prob >= 0 && prob <= 1, "{}: p is {}; a probability is between 0 and 1", where(), prob);
    BIRDPLANE_CHECK(c.kwargs.empty() && c.args.size() <= 1, "{}: unexpected argument{}", where(),
                    c.kwargs.empty() ? "" : " '" + c.kwargs.begin()->first + "'");
    auto flip = std::make_shared<RandomHorizontalFlip>(prob);
    return [flip](const at::Tensor& x, at::Generator& gen) { return flip->forward(x, gen); };
  }
  fail("--augment: unknown transform '{}' at column {} of \"{}\"; known: RandomCrop, RandomHorizontalFlip, crop, "
       "flip",
       c.name, c.column, spec);
}

}  // namespace

data::BatchTransform parse_augment(const std::string& spec) {
  std::vector<Step> steps;
  for (auto& c : Parser(spec).parse()) steps.push_back(make_step(c, spec));
  return [steps](const at::Tensor& x, at::Generator& gen) {
    at::Tensor y = x;
    for (const auto& s : steps) y = s(y, gen);
    return y;
  };
}

data::BatchTransform augment_then_normalize(const std::string& spec, std::vector<double> mean,
                                            std::vector<double> std) {
  auto augment = parse_augment(spec);
  return [augment, mean = std::move(mean), std = std::move(std)](const at::Tensor& x, at::Generator& gen) {
    return functional::to_normalized(augment(x, gen), mean, std);
  };
}

}  // namespace birdplane::transforms
