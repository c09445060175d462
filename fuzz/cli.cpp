// libFuzzer target: the command line. The input is split at NUL bytes into arguments after
// "birdplane"; every subcommand is set up as main.cpp does, and parsing stops before any command
// runs, so only CLI11's parsing and the flags' own checks run. Parsing must end normally
// or with CLI::ParseError (main prints those as "error: ...", exit 2); anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "commands.h"

namespace {

struct ParsedOnly {};

// The program's flags as main.cpp declares them (kept in step by hand: a flag missing here is only
// left unfuzzed).
void setup_app(CLI::App& app) {
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", "birdplane fuzz");
  app.add_option_function<int>(
         "--threads", [](const int&) {}, "threads (not applied here)")
      ->check(CLI::Range(1, 1024));
  birdplane::cli::setup_commands(app);
  // Parse only: the main app's parse-complete callback runs after every flag has been read and
  // checked and before any subcommand's callback (CLI11 2.1's App::run_callback); it stops there.
  // (Replacing the subcommands' callbacks instead would free the options structs they own.)
  app.parse_complete_callback([] { throw ParsedOnly(); });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"birdplane"};
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
      if (args.size() > 64) return 0;
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty()) args.push_back(current);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  CLI::App app{"birdplane"};
  setup_app(app);
  try {
    app.parse(static_cast<int>(args.size()), argv.data());
  } catch (const CLI::ParseError&) {
  } catch (const ParsedOnly&) {
  }
  return 0;
}
