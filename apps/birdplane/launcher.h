// `birdplane train --nproc N`: starts N workers of this same program on this machine with torchrun's
// environment, serves their rendezvous store as torchrun's agent does, and stops the others when one
// fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::cli {

/// Thrown to leave main() with `code` and no further message (the workers already printed theirs).
struct ExitStatus {
  int code;
};

/// The program's own command line (main records it) so the launcher can start its workers with it.
void set_program_arguments(int argc, char** argv);
const std::vector<std::string>& program_arguments();

/// The command line without `flags` (and their values, "--flag V" or "--flag=V").
std::vector<std::string> without_flags(const std::vector<std::string>& args, const std::vector<std::string>& flags);

/// What the launcher needs to know.
struct LaunchOptions {
  int64_t nproc = 0;
  int64_t master_port = 0;                 ///< 0: a free port
  std::chrono::milliseconds timeout{60000};
  std::string run_path;                    ///< runs/<name>, for the message after a failure
};

/// Runs `args` (argv[0] first; it is replaced by this executable) as nproc workers; returns the exit code
/// for the launcher: 0 when all succeed, else the first failing worker's code (1 for a signal).
int launch_local_workers(const LaunchOptions& options, const std::vector<std::string>& args);

/// "[rank R] " inside a torchrun or --nproc worker (RANK set), else "".
std::string rank_prefix();

}  // namespace birdplane::cli
