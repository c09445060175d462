// birdplane: chapter 7 of "Deep Learning with PyTorch" (birds vs airplanes) on LibTorch.
// The one catch site: the library throws, main prints "error: ..." and picks the exit code.
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "birdplane/check.h"
#include "birdplane/threads.h"
#include "birdplane/train/trainer.h"
#include "birdplane/version.h"
#include "birdplane/train/distributed.h"
#include "commands.h"
#include "common.h"
#include "launcher.h"

namespace {

// LibTorch errors carry a C++ backtrace; users need the first line and what it means.
std::string first_line(const std::string& s) {
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"birdplane: train image classifiers on CIFAR-10 from C++ (LibTorch), after chapter 7 "
               "of Deep Learning with PyTorch"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags such as --threads may follow the subcommand
  app.set_version_flag("--version", "birdplane " + birdplane::version());
  // All cores by default (LibTorch's own default on this machine is 1); --threads overrides. The
  // option callback runs during parsing, before any subcommand runs.
  // A worker of a multi-process run (torchrun, or train --nproc) shares the cores with the others on
  // its machine: cores / LOCAL_WORLD_SIZE each.
  int processes_here = 1;
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE")) processes_here = std::max(1, std::atoi(local));
  birdplane::set_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / processes_here)));
  birdplane::cli::set_program_arguments(argc, argv);
  const std::string error = birdplane::cli::rank_prefix() + "error: ";
  app.add_option_function<int>(
         "--threads", [](const int& n) { birdplane::set_threads(n); },
         "LibTorch intra-op threads (default: all cores; LibTorch's own default here is 1)")
      ->check(CLI::Range(1, 1024));
  birdplane::cli::setup_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a user error: exit 2.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << error << e.what() << "\n" << "Run with --help for the flags.\n";
    return 2;
  } catch (const birdplane::cli::ExitStatus& e) {
    return e.code;  // the workers of train --nproc have said why
  } catch (const birdplane::train::Interrupted& e) {
    std::cerr << "\n" << e.what() << "\n";
    return 130;
  } catch (const birdplane::SettingError& e) {
    // The library names its settings ("batch_size"); here they are flags ("--batch-size").
    std::cerr << error << birdplane::cli::flag_for_setting(e.setting()) << ": " << e.problem() << "\n";
    return 2;
  } catch (const birdplane::Error& e) {
    std::cerr << error << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << error << "LibTorch rejected an operation: " << first_line(e.what_without_backtrace())
              << "\nThis usually means a tensor of the wrong shape or type reached it; please report it "
                 "with the command line you ran.\n";
    return 1;
  } catch (const birdplane::InternalError& e) {
    std::cerr << "internal error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << error << e.what() << "\n";
    return 1;
  }
  return 0;
}
