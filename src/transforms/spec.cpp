#include "birdplane/transforms/spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/functional.h"
#include "common/text.h"
#include "spec_registry.h"

namespace birdplane::transforms {
namespace spec {
namespace {

// Recursive-descent parser for: list := call (',' call)*; call := Name ['(' args ')'];
// args := (value | key '=' value) (',' ...)*; value := number | word | 'text' | "text" | [values] |
// (values) | call.
class Parser {
 public:
  Parser(const std::string& s, const std::string& origin) : s_(s), origin_(origin) {}

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
    fail("{}: at column {} of \"{}\": {}. Write transforms as Name(arg, key=value), separated by commas "
         "(known_transforms() lists the names)",
         origin_, pos_ + 1, s_, what);
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c, const std::string& what) {
    if (!peek(c)) error("expected " + what);
    ++pos_;
  }
  static bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }
  std::string identifier() {
    skip_space();
    size_t start = pos_;
    if (pos_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      while (pos_ < s_.size() && word_char(s_[pos_])) ++pos_;
    if (start == pos_) error("expected a transform name");
    return s_.substr(start, pos_ - start);
  }
  Value number() {
    Value v;
    v.column = pos_ + 1;
    size_t used = 0;
    try {
      v.number = std::stod(s_.substr(pos_), &used);
    } catch (const std::exception&) {
      error("expected a value (a number, a word, a list or a transform)");
    }
    pos_ += used;
    return v;
  }
  Value value() {
    skip_space();
    if (pos_ >= s_.size()) error("expected a value");
    const char c = s_[pos_];
    Value v;
    v.column = pos_ + 1;
    if (c == '[' || c == '(') {
      const char close = c == '[' ? ']' : ')';
      ++pos_;
      v.kind = Value::Kind::kList;
      if (peek(close)) {
        ++pos_;
        return v;
      }
      while (true) {
        v.items.push_back(value());
        if (peek(close)) {
          ++pos_;
          return v;
        }
        expect(',', fmt::format("',' or '{}'", close));
        if (peek(close)) {  // trailing comma, as in Python's (1,)
          ++pos_;
          return v;
        }
      }
    }
    if (c == '\'' || c == '"') {
      const size_t end = s_.find(c, pos_ + 1);
      if (end == std::string::npos) error("a quoted text that is not closed");
      v.kind = Value::Kind::kText;
      v.text = s_.substr(pos_ + 1, end - pos_ - 1);
      pos_ = end + 1;
      return v;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t save = pos_;
      auto word = identifier();
      if (peek('(')) {
        pos_ = save;
        v.kind = Value::Kind::kCall;
        v.call = std::make_shared<Call>(call());
        return v;
      }
      v.kind = Value::Kind::kText;
      v.text = word;
      return v;
    }
    return number();
  }
  Call call() {
    skip_space();
    Call c;
    c.column = pos_ + 1;
    c.name = identifier();
    if (!peek('(')) return c;
    ++pos_;
    if (peek(')')) {
      ++pos_;
      return c;
    }
    while (true) {
      skip_space();
      const size_t save = pos_;
      bool keyword = false;
      if (pos_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) {
        auto key = identifier();
        if (peek('=')) {
          ++pos_;
          keyword = true;
          for (const auto& [k, _] : c.kwargs)
            if (k == key) error("'" + key + "' is given twice");
          c.kwargs.emplace_back(key, value());
        } else {
          pos_ = save;
        }
      }
      if (!keyword) {
        if (!c.kwargs.empty()) error("a positional value after a keyword one");
        c.args.push_back(value());
      }
      if (peek(')')) {
        ++pos_;
        break;
      }
      expect(',', "',' or ')'");
    }
    return c;
  }

  const std::string& s_;
  const std::string& origin_;
  size_t pos_ = 0;
};

const Registry& registry() {
  static const Registry r = [] {
    Registry out;
    add_geometry_specs(out);
    add_color_specs(out);
    add_auto_specs(out);
    return out;
  }();
  return r;
}

std::string names_list() {
  std::string s;
  for (const auto& e : registry()) s += (s.empty() ? "" : ", ") + e.name;
  return s;
}

TransformPtr build(const Call& c, const std::string& spec, const std::string& origin) {
  for (const auto& e : registry()) {
    if (e.name != c.name) continue;
    Args args(c, spec, origin, [&](const Call& inner) { return build(inner, spec, origin); });
    auto t = e.make(args);
    args.done();
    return t;
  }
  fail("{}: unknown transform '{}' at column {} of \"{}\"; known: {}", origin, c.name, c.column, spec, names_list());
}

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::kNumber: return "a number";
    case Value::Kind::kText: return "a word";
    case Value::Kind::kList: return "a list";
    case Value::Kind::kCall: return "a transform";
  }
  return "a value";
}

}  // namespace

Args::Args(const Call& call, const std::string& spec, const std::string& origin, Builder build)
    : call_(call), spec_(spec), origin_(origin), build_(std::move(build)),
      used_args_(call.args.size(), false), used_kwargs_(call.kwargs.size(), false) {}

std::string Args::where() const {
  return fmt::format("{}: {} (column {} of \"{}\")", origin_, call_.name, call_.column, spec_);
}

void Args::error(const std::string& what) const { fail("{}: {}", where(), what); }

bool Args::has(size_t index, const std::string& key) const {
  for (const auto& kv : call_.kwargs)
    if (kv.first == key) return true;
  return index < call_.args.size();
}

const Value* Args::find(size_t index, const std::string& key) {
  for (size_t i = 0; i < call_.kwargs.size(); ++i)
    if (call_.kwargs[i].first == key) {
      if (index < call_.args.size()) error(fmt::format("'{}' is given by position and by keyword", key));
      used_kwargs_[i] = true;
      return &call_.kwargs[i].second;
    }
  if (index < call_.args.size()) {
    used_args_[index] = true;
    return &call_.args[index];
  }
  return nullptr;
}

const Value& Args::need(size_t index, const std::string& key) {
  const Value* v = find(index, key);
  if (!v) error(fmt::format("'{}' is required", key));
  return *v;
}

double Args::number(size_t index, const std::string& key, std::optional<double> fallback) {
  const Value* v = find(index, key);
  if (!v) {
    if (fallback) return *fallback;
    error(fmt::format("'{}' is required", key));
  }
  if (v->kind != Value::Kind::kNumber) error(fmt::format("{} must be a number, got {}", key, kind_name(v->kind)));
  if (!std::isfinite(v->number)) error(fmt::format("{} must be finite", key));
  return v->number;
}

int64_t Args::whole(size_t index, const std::string& key, std::optional<int64_t> fallback, int64_t min) {
  const double v = number(index, key, fallback ? std::optional<double>(static_cast<double>(*fallback)) : std::nullopt);
  if (v != std::floor(v) || v < static_cast<double>(min) || v > 1e9)
    error(fmt::format("{} must be a whole number, {} or more; got {}", key, min, v));
  return static_cast<int64_t>(v);
}

double Args::probability(size_t index, const std::string& key, std::optional<double> fallback) {
  const double p = number(index, key, fallback);
  if (p < 0 || p > 1) error(fmt::format("{} is {}; a probability is between 0 and 1", key, p));
  return p;
}

std::vector<double> Args::numbers(size_t index, const std::string& key, std::optional<std::vector<double>> fallback) {
  const Value* v = find(index, key);
  if (!v) {
    if (fallback) return *fallback;
    error(fmt::format("'{}' is required", key));
  }
  if (v->kind == Value::Kind::kNumber) return {v->number};
  if (v->kind != Value::Kind::kList) error(fmt::format("{} must be a number or a list of numbers", key));
  std::vector<double> out;
  for (const auto& item : v->items) {
    if (item.kind != Value::Kind::kNumber) error(fmt::format("{} must be a list of numbers", key));
    out.push_back(item.number);
  }
  return out;
}

std::string Args::text(size_t index, const std::string& key, std::optional<std::string> fallback) {
  const Value* v = find(index, key);
  if (!v) {
    if (fallback) return *fallback;
    error(fmt::format("'{}' is required", key));
  }
  if (v->kind != Value::Kind::kText) error(fmt::format("{} must be a word, got {}", key, kind_name(v->kind)));
  return v->text;
}

std::string Args::choice(size_t index, const std::string& key, const std::vector<std::string>& allowed,
                         std::optional<std::string> fallback) {
  const bool given = has(index, key);
  std::string t = text(index, key, fallback);
  if (!given) return t;
  if (auto dot = t.rfind('.'); dot != std::string::npos) t = t.substr(dot + 1);
  for (const auto& a : allowed)
    if (to_lower(a) == to_lower(t)) return a;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  error(fmt::format("{} is '{}'; allowed: {}", key, t, list));
}

bool Args::flag(size_t index, const std::string& key, bool fallback) {
  const Value* v = find(index, key);
  if (!v) return fallback;
  if (v->kind == Value::Kind::kNumber && (v->number == 0 || v->number == 1)) return v->number == 1;
  if (v->kind == Value::Kind::kText) {
    const auto t = to_lower(v->text);
    if (t == "true") return true;
    if (t == "false") return false;
  }
  error(fmt::format("{} must be True or False", key));
}

TransformPtr Args::transform(size_t index, const std::string& key) {
  const Value& v = need(index, key);
  if (v.kind == Value::Kind::kCall) return build_(*v.call);
  if (v.kind == Value::Kind::kText) {
    Call c;
    c.name = v.text;
    c.column = v.column;
    return build_(c);
  }
  error(fmt::format("{} must be a transform, got {}", key, kind_name(v.kind)));
}

std::vector<TransformPtr> Args::transforms(size_t index, const std::string& key) {
  const Value& v = need(index, key);
  if (v.kind != Value::Kind::kList) error(fmt::format("{} must be a list of transforms, [A(...), B(...)]", key));
  std::vector<TransformPtr> out;
  for (const auto& item : v.items) {
    if (item.kind == Value::Kind::kCall) {
      out.push_back(build_(*item.call));
    } else if (item.kind == Value::Kind::kText) {
      Call c;
      c.name = item.text;
      c.column = item.column;
      out.push_back(build_(c));
    } else {
      error(fmt::format("{} must be a list of transforms, got {} in it", key, kind_name(item.kind)));
    }
  }
  return out;
}

void Args::done() {
  for (size_t i = 0; i < call_.kwargs.size(); ++i)
    if (!used_kwargs_[i]) error(fmt::format("unexpected argument '{}'", call_.kwargs[i].first));
  for (size_t i = 0; i < call_.args.size(); ++i)
    if (!used_args_[i]) error(fmt::format("unexpected argument {} (takes at most {} positional)", i + 1, i));
}

}  // namespace spec

TransformPtr parse_transforms(const std::string& spec, const std::string& origin) {
  auto compose = std::make_shared<Compose>();
  for (const auto& c : spec::Parser(spec, origin).parse()) compose->add(spec::build(c, spec, origin));
  return compose;
}

std::vector<std::string> known_transforms() {
  std::vector<std::string> out;
  for (const auto& e : spec::registry()) out.push_back(e.usage);
  return out;
}

BatchTransform parse_augment(const std::string& spec) {
  // Errors name the setting "augment" (the command line's --augment).
  const std::string origin = "augment";
  TransformPtr pipeline;
  try {
    pipeline = parse_transforms(spec, origin);
  } catch (const SettingError&) {
    throw;
  } catch (const Error& e) {
    const std::string what = e.what();
    const bool prefixed = what.rfind(origin + ": ", 0) == 0;
    throw SettingError(origin, prefixed ? what.substr(origin.size() + 2) : what);
  }
  return [pipeline, spec](const at::Tensor& x, at::Generator& gen) {
    auto y = pipeline->forward(x, gen);
    BIRDPLANE_CHECK_SETTING(y.scalar_type() == x.scalar_type() && y.sizes() == x.sizes(), "augment",
                    "\"{}\" turns a {} batch {} into a {} batch {}; training augmentations must keep "
                    "uint8 images of the same size (the trainer converts and normalizes them afterwards)",
                    spec, c10::toString(x.scalar_type()), fmt::join(x.sizes(), "x"), c10::toString(y.scalar_type()),
                    fmt::join(y.sizes(), "x"));
    return y;
  };
}

BatchTransform augment_then_normalize(const std::string& spec, std::vector<double> mean,
                                            std::vector<double> std) {
  auto augment = parse_augment(spec);
  return [augment, mean = std::move(mean), std = std::move(std)](const at::Tensor& x, at::Generator& gen) {
    return functional::to_normalized(augment(x, gen), mean, std);
  };
}

}  // namespace birdplane::transforms
