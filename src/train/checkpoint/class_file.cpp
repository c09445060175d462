#include "train/checkpoint/class_file.h"

#include <cctype>
#include <set>

namespace birdplane::train {
namespace {

// "__torch__.Module" -> "code/__torch__.py", "__torch__.___torch_mangle_7.Module" ->
// "code/__torch__/___torch_mangle_7.py"; "" for anything else.
std::string class_path(std::string_view name) {
  constexpr std::string_view kTop = "__torch__.Module", kMangled = "__torch__.___torch_mangle_", kEnd = ".Module";
  if (name == kTop) return "code/__torch__.py";
  if (name.size() <= kMangled.size() + kEnd.size() || name.substr(0, kMangled.size()) != kMangled ||
      name.substr(name.size() - kEnd.size()) != kEnd)
    return "";
  const std::string_view digits = name.substr(kMangled.size(), name.size() - kMangled.size() - kEnd.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string_view::npos) return "";
  return "code/__torch__/___torch_mangle_" + std::string(digits) + ".py";
}

// Reads one type at s[i...]: Tensor, int, float, bool, str, a class reference, or Tuple[...], List[T],
// Optional[T], Dict[K, V] of them, at most 8 deep. False when it is none of these.
bool read_type(std::string_view s, size_t& i, int depth, ClassFile& file) {
  if (depth > 8) return false;
  const size_t start = i;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '.')) ++i;
  const std::string_view word = s.substr(start, i - start);
  if (i < s.size() && s[i] == '[') {
    int arity = 0;
    if (word == "List" || word == "Optional") arity = 1;
    else if (word == "Dict") arity = 2;
    else if (word != "Tuple") return false;
    ++i;
    int count = 0;
    for (;;) {
      if (!read_type(s, i, depth + 1, file)) return false;
      ++count;
      if (s.substr(i, 2) == ", ") {
        i += 2;
      } else if (i < s.size() && s[i] == ']') {
        ++i;
        break;
      } else {
        return false;
      }
    }
    return arity == 0 || count == arity;
  }
  if (word == "Tensor" || word == "int" || word == "float" || word == "bool" || word == "str") return true;
  std::string path = class_path(word);
  if (path.empty()) return false;
  file.refs.push_back(std::move(path));
  return true;
}

bool read_whole_type(std::string_view s, ClassFile& file) {
  size_t i = 0;
  return read_type(s, i, 0, file) && i == s.size();
}

bool is_identifier(std::string_view s) {
  static const std::set<std::string_view> kKeywords = {
      "False", "None",   "True",  "and",    "as",   "assert", "async",  "await",    "break",
      "class", "continue", "def", "del",    "elif", "else",   "except", "finally",  "for",
      "from",  "global", "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
      "or",    "pass",   "raise", "return", "try",  "while",  "with",   "yield",    "print"};
  if (s.empty() || s.size() > 256 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  if (s.size() >= 4 && s.substr(0, 2) == "__" && s.substr(s.size() - 2) == "__") return false;
  return kKeywords.count(s) == 0;
}

// A quoted key: "weight", "params/size", "0x6100000ffd40".
bool is_key(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '/' && c != '-') return false;
  return true;
}

// `["a", "b", ]` or `[]`.
bool is_key_list(std::string_view s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  while (!s.empty()) {
    if (s.front() != '"') return false;
    const size_t close = s.find('"', 1);
    if (close == std::string_view::npos || !is_key(s.substr(1, close - 1)) || s.substr(close + 1, 2) != ", ")
      return false;
    s = s.substr(close + 3);
  }
  return true;
}

}  // namespace

bool read_class_file(std::string_view text, ClassFile& file) {
  constexpr std::string_view kHead = "class Module(Module):\n";
  if (text.substr(0, kHead.size()) != kHead || text.back() != '\n') return false;
  std::set<std::string> names;
  size_t at = kHead.size();
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, 2) != "  ") return false;
    const std::string_view body = line.substr(2);
    constexpr std::string_view kParams = "__parameters__ = ", kBuffers = "__buffers__ = ",
                               kAnnotations = "__annotations__ = []", kAnnotation = "__annotations__[\"";
    if (body.substr(0, kParams.size()) == kParams) {
      if (!is_key_list(body.substr(kParams.size()))) return false;
    } else if (body.substr(0, kBuffers.size()) == kBuffers) {
      if (!is_key_list(body.substr(kBuffers.size()))) return false;
    } else if (body == kAnnotations) {
    } else if (body.substr(0, kAnnotation.size()) == kAnnotation) {
      const size_t close = body.find("\"] = ", kAnnotation.size());
      if (close == std::string_view::npos) return false;
      const std::string_view key = body.substr(kAnnotation.size(), close - kAnnotation.size());
      if (!is_key(key) || !names.insert(std::string(key)).second) return false;
      if (!read_whole_type(body.substr(close + 5), file)) return false;
    } else {
      const size_t colon = body.find(" : ");
      if (colon == std::string_view::npos) return false;
      const std::string_view name = body.substr(0, colon);
      if (!is_identifier(name) || !names.insert(std::string(name)).second) return false;
      if (!read_whole_type(body.substr(colon + 3), file)) return false;
    }
  }
  return true;
}

bool class_path_is_known(const std::string& file) {
  if (file == "code/__torch__.py") return true;
  constexpr std::string_view kStart = "code/__torch__/___torch_mangle_", kEnd = ".py";
  const std::string_view f = file;
  if (f.size() <= kStart.size() + kEnd.size() || f.substr(0, kStart.size()) != kStart ||
      f.substr(f.size() - kEnd.size()) != kEnd)
    return false;
  const std::string_view digits = f.substr(kStart.size(), f.size() - kStart.size() - kEnd.size());
  return digits.size() <= 9 && digits.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace birdplane::train
