// Multi-process data-parallel training on PyTorch's own engine, c10d: a TCPStore for the rendezvous and
// a ProcessGroupGloo (CPU) for the collectives, joined the way Python's env:// does it, from torchrun's
// environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ...).
//
//   auto env = DistEnv::from_environment();            // nullopt: a single process
//   auto dist = Distributed::join(*env, DistOptions()); // connects every rank, or throws
//   Trainer trainer(config, train, val, mean, std, nullptr, dist.get());
//
// The c10d headers stay in src/train/distributed.cpp: including this header costs no more than ATen's
// Tensor. Only rank 0 writes the run folder; the Trainer asks Distributed which rank it is.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace birdplane::train {

/// Where this process stands in a multi-process run: torchrun's variables.
struct DistEnv {
  int64_t rank = 0;              ///< RANK
  int64_t world_size = 1;        ///< WORLD_SIZE
  int64_t local_rank = 0;        ///< LOCAL_RANK (0 when unset)
  int64_t local_world_size = 1;  ///< LOCAL_WORLD_SIZE (WORLD_SIZE when unset)
  std::string master_addr;       ///< MASTER_ADDR (127.0.0.1 when unset)
  int64_t master_port = 29500;   ///< MASTER_PORT (29500 when unset, as Python's env:// has it)
  /// TORCHELASTIC_USE_AGENT_STORE=True: the launcher (torchrun's agent, or `train --nproc`) serves the
  /// store and every rank connects to it as a client; otherwise rank 0 serves it.
  bool agent_store = false;

  /// The variables from `get` (getenv by default). nullopt when WORLD_SIZE is unset: a single
  /// process. A malformed or inconsistent value is an Error naming the variable.
  static std::optional<DistEnv> from_environment(
      const std::function<const char*(const char*)>& get = nullptr);
};

/// How a process group behaves.
struct DistOptions {
  /// How long a collective, the rendezvous, or a wait for a silent rank may take before the run stops
  /// (`--dist-timeout`, default 60 s, as a user of torchrun would choose; PyTorch's own is 30 min).
  std::chrono::milliseconds timeout{60000};
  /// Where the gradients live: CPU tensors go through Gloo; CUDA ones need NCCL (see backend()).
  c10::Device device{c10::kCPU};
  /// Seconds between the heartbeats each rank leaves in the store (how a lost rank is named).
  double heartbeat_seconds = 1.0;
};

/// A multi-process run that cannot go on: a rank died, hung past the timeout, or failed with its own
/// error. what() names the rank where it can; the command line exits 1.
class DistributedError : public std::runtime_error {
 public:
  DistributedError(const std::string& what, int64_t lost_rank)
      : std::runtime_error(what), lost_rank_(lost_rank) {}
  /// The rank that stopped, or -1 when it could not be told.
  int64_t lost_rank() const { return lost_rank_; }

 private:
  int64_t lost_rank_;
};

class GradientReducer;

/// A joined process group. All collective calls must be made by every rank in the same order.
class Distributed {
 public:
  /// Connects to the store and builds the process group. An unreachable MASTER_ADDR, a port that is
  /// in use (when this rank serves the store) or a rendezvous that does not complete within the
  /// timeout is an Error (exit 2) that names the address and what to check.
  static std::unique_ptr<Distributed> join(const DistEnv& env, const DistOptions& options);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int64_t rank() const;
  int64_t world_size() const;
  /// Ranks on this machine (LOCAL_WORLD_SIZE): they share its cores.
  int64_t local_world_size() const;
  /// Rank 0: the one that logs and writes.
  bool is_main() const { return rank() == 0; }
  const DistOptions& options() const;
  /// "gloo" or "nccl".
  std::string backend() const;

  /// Makes every rank's `tensors` equal to rank `root`'s (in place).
  void broadcast(std::vector<at::Tensor>& tensors, int64_t root = 0);
  /// Sums `tensors` over the ranks, in place.
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  /// Rank 0's `text` on every rank (the others' argument is ignored).
  std::string broadcast_text(const std::string& text);
  /// Every rank waits for the others.
  void barrier();

  /// For work only rank 0 does before the others may start (downloading, building an image cache):
  /// rank 0 calls it when done; the others block until then, however long it takes, as long as rank 0
  /// keeps its heartbeat. `step` names the stage in messages.
  void main_finished(const std::string& step);
  void wait_for_main(const std::string& step);

  /// Leaves `message` in the store so that the other ranks' errors quote it (call before exiting on
  /// an error). Never throws.
  void report_failure(const std::string& message) noexcept;

  /// An error a collective threw, turned into a DistributedError that names the lost rank (from the
  /// failure messages and heartbeats in the store) and `context`.
  [[noreturn]] void fail_lost(const std::string& what, const std::string& context);

  /// Averages the gradients of `parameters` over the ranks at every step (see GradientReducer).
  std::unique_ptr<GradientReducer> make_reducer(std::vector<at::Tensor> parameters,
                                                int64_t bucket_bytes = 25 << 20,
                                                int64_t first_bucket_bytes = 1 << 20);

  struct Impl;

 private:
  explicit Distributed(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Averages gradients over the ranks as DistributedDataParallel does: parameters go into buckets in
/// reverse order (the order backward produces their gradients), the first bucket small; each bucket's
/// all-reduce starts from an autograd hook as soon as its last gradient is ready, while backward goes
/// on with the earlier layers. A few numbers ride along in the last bucket (the step's loss sum,
/// correct count, images and stop request), so one step needs no other collective.
///
///   reducer.begin_step({loss_sum, correct, images, stop});  loss.backward();
///   auto sums = reducer.finish_step();   // gradients now averaged; sums over all ranks
///
/// Each parameter must be used at most once per forward pass (true of every preset).
class GradientReducer {
 public:
  ~GradientReducer();
  /// Before backward. `extras` are this rank's values to be summed over the ranks (at most 8).
  void begin_step(const std::vector<double>& extras);
  /// After backward: starts what the hooks did not, waits, and leaves every parameter's grad the mean
  /// over the ranks (a parameter without a gradient on this rank counts as zero). Returns the summed
  /// extras.
  std::vector<double> finish_step();
  /// Number of buckets and their sizes in bytes, launch order (for logs and the bench).
  std::vector<int64_t> bucket_bytes() const;
  /// Seconds finish_step() spent waiting for all-reduces to complete, since construction.
  double wait_seconds() const;

  struct Impl;
  explicit GradientReducer(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

/// The environment `train --nproc N` gives worker `rank` of N on this machine with the store at
/// 127.0.0.1:`port` (torchrun's variables; OMP_NUM_THREADS as torchrun sets it when unset).
std::vector<std::pair<std::string, std::string>> local_worker_environment(int64_t rank, int64_t nproc,
                                                                          int64_t port);

/// Serves the rendezvous store for local workers as torchrun's agent does. `port` 0 picks a free
/// one. A port in use is an Error naming it.
class StoreServer {
 public:
  StoreServer(int64_t port, std::chrono::milliseconds timeout);
  ~StoreServer();
  int64_t port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace birdplane::train
