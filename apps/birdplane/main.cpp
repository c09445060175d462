// birdplane: training, checking and using image classifiers from C++ on LibTorch.
// The one catch site: the library throws, main prints "error: ..." and picks the exit code.
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "birdplane/check.h"
#include "birdplane/threads.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/download.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/run.h"
#include "birdplane/train/trainer.h"
#include "birdplane/version.h"
#include "birdplane/train/distributed.h"
#include "commands.h"
#include "flags.h"
#include "progress.h"
#include "launcher.h"

namespace {

// LibTorch errors carry a C++ backtrace; users need the first line and what it means.
std::string first_line(const std::string& s) {
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

// A message to stderr in one write. The ranks of a multi-process run share a terminal or a pipe, and a
// message written piece by piece (std::cerr is unbuffered) interleaves with another rank's.
class Message {
 public:
  Message() = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message() {
    const std::string text = text_.str();
    std::cerr.write(text.data(), static_cast<std::streamsize>(text.size())).flush();
  }
  template <typename T>
  Message& operator<<(const T& value) {
    text_ << value;
    return *this;
  }

 private:
  std::ostringstream text_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"birdplane: train, check and use image classifiers from C++ (LibTorch), on CIFAR-10 or "
               "your own image folders; it began as chapter 7 of Deep Learning with PyTorch (birds vs airplanes)"};
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
    Message() << error << e.what() << "\n" << "Run with --help for the flags.\n";
    return 2;
  } catch (const birdplane::cli::ExitStatus& e) {
    return e.code;  // the workers of train --nproc have said why
  } catch (const birdplane::train::Interrupted& e) {
    Message() << "\n" << e.what() << "\n";
    return 130;
  } catch (const birdplane::data::MissingDataError& e) {
    Message() << error << e.what() << "; run `birdplane download --data-dir " << e.path()
              << "` or point --data-dir (or $BIRDPLANE_DATA) at the folder holding cifar-10-batches-bin/\n";
    return 2;
#ifdef BIRDPLANE_WITH_DOWNLOAD
  } catch (const birdplane::data::DownloadError& e) {
    // The library speaks of the address, the checksum and the data folder; here they are flags.
    std::string what = e.what();
    for (const auto& [words, flag] : {std::pair<std::string, std::string>{"the address", "--url"},
                                      {"its checksum", "--md5"},
                                      {"the data folder", "--data-dir"}}) {
      const auto at = what.find(words);
      if (at != std::string::npos) what.insert(at + words.size(), " (" + flag + ")");
    }
    Message() << error << what << "\n";
    return 2;
#endif
  } catch (const birdplane::data::BadImageError& e) {
    Message() << error << e.reason() << "\n(leave such files out with --skip-bad-images)\n";
    return 2;
  } catch (const birdplane::train::StateDictNotCheckpointError& e) {
    Message() << error << e.what() << "; a state_dict (from `birdplane export` or torch.save) starts a run with "
              << "`birdplane train --init-from " << e.path() << "`\n";
    return 2;
  } catch (const birdplane::train::RunExistsError& e) {
    Message() << error << "run folder " << e.path() << " already exists; pick another --name, or continue it with "
              << "--resume " << e.path() << "\n";
    return 2;
  } catch (const birdplane::train::NoCheckpointError& e) {
    Message() << error << "--resume: " << e.path()
              << " has no checkpoint.pt yet (the run stopped before its first epoch ended); start it again instead\n";
    return 2;
  } catch (const birdplane::SettingError& e) {
    // The library names its settings ("batch_size"); here they are flags ("--batch-size").
    Message() << error << birdplane::cli::flag_for_setting(e.setting()) << ": " << e.problem() << "\n";
    return 2;
  } catch (const birdplane::Error& e) {
    Message() << error << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    Message() << error << "LibTorch rejected an operation: " << first_line(e.what_without_backtrace())
              << "\nThis usually means a tensor of the wrong shape or type reached it; please report it "
                 "with the command line you ran.\n";
    return 1;
  } catch (const birdplane::InternalError& e) {
    Message() << "internal error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    Message() << error << e.what() << "\n";
    return 1;
  }
  return 0;
}
