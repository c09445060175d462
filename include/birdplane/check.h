// Errors that say what to do. The library throws; only the command line's main() catches.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace birdplane {

/// An error caused by the user's input (a flag, a file, a value). The command line prints
/// "error: <what>" and exits with code 2. Messages name the file, flag or value, say what was
/// expected, and where possible the command that fixes it.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// An Error about one setting of the library (a field of RunSpec's parts, OptimizerConfig, ...), named
/// as the library names it ("batch_size", "lr"). what() is "<setting>: <problem>"; a front end that
/// knows the setting by another name (the command line's --batch-size) prints problem() under that.
class SettingError : public Error {
 public:
  SettingError(std::string setting, std::string problem)
      : Error(setting + ": " + problem), setting_(std::move(setting)), problem_(std::move(problem)) {}
  const std::string& setting() const { return setting_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string setting_;
  std::string problem_;
};

/// An error in birdplane itself (a broken invariant): exit code 1.
class InternalError : public std::runtime_error {
 public:
  explicit InternalError(const std::string& what) : std::runtime_error(what) {}
};

/// Throws birdplane::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

/// Throws birdplane::SettingError for `setting` with a fmt-formatted problem.
template <typename... Args>
[[noreturn]] void fail_setting(const std::string& setting, fmt::format_string<Args...> format, Args&&... args) {
  throw SettingError(setting, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace birdplane

/// BIRDPLANE_CHECK(cond, "fmt {}", args...): throws birdplane::Error when cond is false.
#define BIRDPLANE_CHECK(cond, ...)         \
  do {                                     \
    if (!(cond)) ::birdplane::fail(__VA_ARGS__); \
  } while (0)

/// BIRDPLANE_CHECK_SETTING(cond, "batch_size", "fmt {}", args...): throws birdplane::SettingError.
#define BIRDPLANE_CHECK_SETTING(cond, setting, ...)             \
  do {                                                          \
    if (!(cond)) ::birdplane::fail_setting(setting, __VA_ARGS__); \
  } while (0)
