#include "launcher.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/train/distributed.h"

namespace birdplane::cli {
namespace {

std::vector<std::string> g_arguments;

volatile std::sig_atomic_t g_forward_signal = 0;
void remember_signal(int sig) { g_forward_signal = sig; }

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return fmt::format("was killed by signal {} ({})", sig, strsignal(sig));
  }
  return fmt::format("exited with code {}", WEXITSTATUS(status));
}

}  // namespace

void set_program_arguments(int argc, char** argv) { g_arguments.assign(argv, argv + argc); }
const std::vector<std::string>& program_arguments() { return g_arguments; }

std::vector<std::string> without_flags(const std::vector<std::string>& args, const std::vector<std::string>& flags) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    bool drop = false;
    for (const auto& f : flags) {
      if (args[i] == f) {
        ++i;  // and its value
        drop = true;
        break;
      }
      if (args[i].rfind(f + "=", 0) == 0) {
        drop = true;
        break;
      }
    }
    if (!drop && i < args.size()) out.push_back(args[i]);
  }
  return out;
}

std::string rank_prefix() {
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  return rank && world && *rank ? fmt::format("[rank {}] ", rank) : "";
}

int launch_local_workers(const LaunchOptions& o, const std::vector<std::string>& args) {
  BIRDPLANE_CHECK(o.nproc >= 1 && o.nproc <= 256, "--nproc {} is not allowed; expected 1 to 256 workers", o.nproc);
  train::StoreServer store(o.master_port, o.timeout);
  const int64_t port = store.port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::cout << fmt::format("launching {} workers on this machine (rendezvous store at 127.0.0.1:{}, Gloo; {} "
                           "thread{} each unless --threads says otherwise)\n",
                           o.nproc, port, std::max<unsigned>(1, cores / o.nproc), cores / o.nproc > 1 ? "s" : "")
            << std::flush;

  // Ctrl-C reaches every worker from the terminal; the launcher waits for them to stop after the same
  // step. A SIGTERM or SIGHUP sent to the launcher alone is passed on.
  struct sigaction ignore {}, forward {}, old_int {}, old_term {}, old_hup {};
  ignore.sa_handler = SIG_IGN;
  forward.sa_handler = remember_signal;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGTERM, &forward, &old_term);
  sigaction(SIGHUP, &forward, &old_hup);
  const auto restore_signals = [&] {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    sigaction(SIGHUP, &old_hup, nullptr);
  };

  // Each worker is started with posix_spawn and an environment built here, not fork + setenv: the store
  // server's thread may hold the allocator's lock at the moment of a fork, and a child that allocates
  // before exec would then wait for it forever (seen as a rank that never joined, under ASan).
  std::vector<std::string> inherited;
  for (char** e = environ; e && *e; ++e) inherited.emplace_back(*e);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setsigdefault(&attributes, &defaults);  // the launcher ignores SIGINT; its workers must not
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);

  std::map<pid_t, int64_t> ranks;
  for (int64_t rank = 0; rank < o.nproc; ++rank) {
    const auto worker = train::local_worker_environment(rank, o.nproc, port);
    std::vector<std::string> environment;
    for (const auto& entry : inherited) {
      const std::string name = entry.substr(0, entry.find('='));
      if (std::none_of(worker.begin(), worker.end(), [&](const auto& w) { return w.first == name; }))
        environment.push_back(entry);
    }
    for (const auto& [name, value] : worker) environment.push_back(name + "=" + value);
    std::vector<char*> envp;
    for (auto& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int error = posix_spawn(&pid, "/proc/self/exe", nullptr, &attributes, argv.data(), envp.data());
    if (error != 0) {
      // The workers already started would wait for this one until the timeout: stop them now, and give
      // the launcher its own signal handling back before the error leaves.
      for (const auto& [p, r] : ranks) kill(p, SIGTERM);
      for (const auto& [p, r] : ranks) waitpid(p, nullptr, 0);
      posix_spawnattr_destroy(&attributes);
      restore_signals();
      fail("could not start worker {}: {}", rank, std::strerror(error));
    }
    ranks[pid] = rank;
  }
  posix_spawnattr_destroy(&attributes);

  int exit_code = 0;
  bool failed = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  bool terminated = false, killed = false;
  while (!ranks.empty()) {
    if (g_forward_signal != 0) {
      for (const auto& [pid, rank] : ranks) kill(pid, g_forward_signal);
      g_forward_signal = 0;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0 && ranks.count(pid)) {
      const int64_t rank = ranks[pid];
      ranks.erase(pid);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !failed) {
        failed = true;
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (WIFSIGNALED(status) || exit_code != 130) {
          // One write: the other workers may be printing their own errors now.
          std::string message = fmt::format("error: rank {} (pid {}) {}", rank, pid, describe(status));
          const std::filesystem::path run(o.run_path);
          if (!o.run_path.empty() && std::filesystem::exists(run / "checkpoint.pt")) {
            message += fmt::format("; {} holds the last finished epoch; continue with `birdplane train --resume {} "
                                   "--nproc {}`",
                                   (run / "checkpoint.pt").string(), o.run_path, o.nproc);
          }
          message += "\n";
          std::cerr.write(message.data(), static_cast<std::streamsize>(message.size())).flush();
        }
        // The others notice the loss in their next collective; they get the timeout and a few seconds more
        // to stop on their own before they are stopped.
        deadline = std::chrono::steady_clock::now() + o.timeout + std::chrono::seconds(5);
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    const auto now = std::chrono::steady_clock::now();
    if (failed && !terminated && now > deadline) {
      for (const auto& [p, r] : ranks) kill(p, SIGTERM);
      terminated = true;
      deadline = now + std::chrono::seconds(3);
    } else if (terminated && !killed && now > deadline) {
      for (const auto& [p, r] : ranks) kill(p, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  restore_signals();
  return exit_code;
}

}  // namespace birdplane::cli
