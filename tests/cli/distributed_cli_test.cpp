// Multi-process training (issue 14) through the built program: equivalence with one process, torchrun
// against --nproc, four ranks on two cores, resume (also with another world size), a rank killed or
// hung, Ctrl-C, and the rendezvous errors. Every run here uses fake CIFAR files and --threads 1.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/train/checkpoint.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::read_file;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {

// The largest difference between two model files' parameters and buffers.
double max_difference(const std::string& a_path, const std::string& b_path) {
  const auto a = birdplane::train::load_checkpoint(a_path), b = birdplane::train::load_checkpoint(b_path);
  auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  for (const auto& x : a.model->named_buffers()) pa.insert(x.key(), x.value());
  for (const auto& x : b.model->named_buffers()) pb.insert(x.key(), x.value());
  double worst = 0;
  for (const auto& p : pa) {
    EXPECT_TRUE(pb.contains(p.key())) << p.key();
    if (!pb.contains(p.key())) continue;
    worst = std::max(worst, (p.value() - pb[p.key()]).abs().max().item<double>());
  }
  return worst;
}

// A port nothing listens on (bound, then closed again).
int free_port() {
  const auto r = run_shell("/usr/bin/python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); "
                           "print(s.getsockname()[1])\"");
  return std::stoi(r.out);
}

// Runs `command` (a `train --nproc` launcher) in the background with stderr into `err`, waits until
// `checkpoint` exists, runs `action` in the same shell ($launcher is the launcher's pid), then waits for
// the launcher. The shell prints rc=<launcher's exit code> and ms=<milliseconds from action to exit>.
// `shell_prefix` goes before the shell (setsid, for a process group of its own).
birdplane::fixtures::RunResult start_then(const std::string& command, const std::string& err,
                                          const std::string& checkpoint, const std::string& action,
                                          const std::string& shell_prefix = "") {
  return run_shell(shell_prefix + "bash -c 'trap \"\" INT; " + command + " >/dev/null 2>" + err +
                   " & launcher=$!; for i in $(seq 600); do [ -f " + checkpoint +
                   " ] && break; sleep 0.05; done; " + action +
                   "; start=$(date +%s%N); wait $launcher; echo rc=$?; "
                   "echo ms=$(( ($(date +%s%N) - start) / 1000000 ))' </dev/null");
}

// Shell text that sends `signal` to the launcher's worker whose RANK is `rank`.
std::string signal_rank(int rank, const std::string& signal) {
  return "for p in $(pgrep -P $launcher); do tr \"\\0\" \"\\n\" </proc/$p/environ | grep -qx RANK=" +
         std::to_string(rank) + " && kill -" + signal + " $p; done";
}

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override {
    // 256 per file: 1,280 training images of all ten classes, 256 test images.
    data_ = birdplane::fixtures::write_fake_cifar(t_.path(), 256);
    common_ = " --data-dir " + t_.path() + " --no-download --threads 1 --runs-dir " + (t_ / "runs");
  }
  std::string run(const std::string& name) const { return t_ / ("runs/" + name); }

  TempDir t_;
  std::string data_, common_;
};

}  // namespace

// 1,280 images in 20 steps: 2 ranks x 32 must end where 1 process x 64 ends (the issue asks 1e-5).
TEST_F(Distributed, TwoRanksOfBatch32EndWhereOneProcessOfBatch64Ends) {
  for (const std::string model : {"book-small", "net"}) {
    const std::string args = "train" + common_ + " --model " + model + " --epochs 1 --step autograd";
    const auto one = run_birdplane(args + " --batch-size 64 --name one-" + model);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const auto two = run_birdplane(args + " --batch-size 32 --nproc 2 --name two-" + model);
    ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
    EXPECT_TRUE(contains(two.out, "x 2 ranks (gloo, batch 32 per rank)")) << two.out;
    const std::string two_model = run("two-" + model) + "/model.pt";
    const double diff = max_difference(run("one-" + model) + "/model.pt", two_model);
    EXPECT_LE(diff, 1e-5) << model;
    const auto config = nlohmann::json::parse(read_file(run("two-" + model) + "/config.json"));
    EXPECT_EQ(config["world_size"], 2);
    EXPECT_EQ(config["distributed"]["backend"], "gloo");

    // And the run really moved, far further from its starting weights than the 1e-5 above (measured: 1.3e-3
    // for book-small, 3.6e-3 for net). Those are the seed's (rank 0's, broadcast); an epoch at a learning
    // rate of 1e-9 keeps them, in one process.
    const auto still = run_birdplane(args + " --batch-size 64 --lr 1e-9 --name still-" + model);
    ASSERT_EQ(still.exit_code, 0) << still.err;
    EXPECT_GE(max_difference(run("still-" + model) + "/model.pt", two_model), 1e-4) << model;

    // The ranks agree at the end: results.json's figures were summed from each rank evaluating its half of
    // each split with its own weights, and must equal one process evaluating rank 0's model.pt. (The
    // batches differ, 128 or 640 images per rank against 256 or 1,000 + 280, so the logits may differ in
    // their last bits: the loss to 1e-5, the accuracy to one image.)
    const auto results = nlohmann::json::parse(read_file(run("two-" + model) + "/results.json"));
    for (const std::string split : {"test", "train"}) {
      const auto e = run_birdplane("eval --json --split " + split + " --checkpoint " + two_model + " --data-dir " +
                                   t_.path() + " --no-download --threads 1");
      ASSERT_EQ(e.exit_code, 0) << e.err;
      const auto ours = nlohmann::json::parse(e.out);
      const std::string part = split == "test" ? "val" : "train";  // CIFAR's test split validates
      EXPECT_NEAR(ours["loss"].get<double>(), results[part + "_loss"].get<double>(), 1e-5) << model << " " << split;
      EXPECT_NEAR(ours["accuracy"].get<double>(), results[part + "_accuracy"].get<double>(),
                  1.0 / ours["total"].get<double>() + 1e-12)
          << model << " " << split;
    }
  }
}

TEST_F(Distributed, TheFusedStepStepsAsideWithTheReason) {
  const auto r = run_birdplane("train" + common_ + " --epochs 1 --nproc 2 --name fused");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "the fused step stepped aside: a distributed run averages each gradient")) << r.err;
  // book-small's gradients (ten classes) in DDP's buckets, last layers first: the first bucket (1 MiB at
  // most) holds 2.bias, 2.weight and 0.bias (10 + 5,120 + 512 floats), the second 0.weight (512 x 3,072).
  const auto config = nlohmann::json::parse(read_file(run("fused") + "/config.json"));
  EXPECT_EQ(config["distributed"]["gradient_buckets_bytes"], nlohmann::json({22568, 6291456}));
  EXPECT_EQ(config["step_used"], "autograd");
  const auto results = nlohmann::json::parse(read_file(run("fused") + "/results.json"));
  EXPECT_GE(results["gradient_wait_seconds"].get<double>(), 0.0);
  EXPECT_EQ(results["world_size"], 2);
  const auto explicit_fused = run_birdplane("train" + common_ + " --epochs 1 --nproc 2 --step fused --name fused2");
  EXPECT_NE(explicit_fused.exit_code, 0);
  EXPECT_TRUE(contains(explicit_fused.err, "--step: fused: this run cannot use the fused step: a distributed run"))
      << explicit_fused.err;
}

TEST_F(Distributed, FourRanksOnTwoCoresRunToTheEnd) {
  const auto r = run_birdplane("train" + common_ + " --model net --epochs 2 --batch-size 16 --nproc 4 --name four");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(fs::exists(run("four") + "/model.pt"));
  const auto config = nlohmann::json::parse(read_file(run("four") + "/config.json"));
  EXPECT_EQ(config["world_size"], 4);
  // Only rank 0 writes and prints: one line per epoch.
  size_t epochs = 0;
  for (size_t pos = 0; (pos = r.out.find("epoch ", pos)) != std::string::npos; ++pos) ++epochs;
  EXPECT_EQ(epochs, 2u) << r.out;
}

TEST_F(Distributed, TorchrunAndNprocRunsAgree) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3 (Debian's PyTorch) for torchrun";
  const std::string args = "train" + common_ + " --model net --epochs 1 --batch-size 32";
  const auto ours = run_birdplane(args + " --nproc 2 --name ours");
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  // Debian's torchrun on Python 3.11 needs --redirects 2 --tee 2 (docs/distributed.md says why).
  const auto theirs = run_shell("/usr/bin/python3 -m torch.distributed.run --nproc_per_node 2 --redirects 2 --tee 2 "
                                "--master_port " +
                                std::to_string(free_port()) + " --no_python " + BIRDPLANE_BINARY + " " + args +
                                " --name theirs");
  ASSERT_EQ(theirs.exit_code, 0) << theirs.out << theirs.err;
  EXPECT_LE(max_difference(run("ours") + "/model.pt", run("theirs") + "/model.pt"), 1e-7);
}

TEST_F(Distributed, ResumeIsBitIdenticalAndAcceptsAnotherWorldSize) {
  const std::string args = "train" + common_ + " --model net --batch-size 32 --nproc 2";
  const auto whole = run_birdplane(args + " --epochs 3 --name whole");
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const auto first = run_birdplane(args + " --epochs 2 --name parts");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto rest = run_birdplane("train --resume " + run("parts") + " --epochs 3 --nproc 2 --threads 1 --data-dir " +
                                  t_.path() + " --no-download");
  ASSERT_EQ(rest.exit_code, 0) << rest.err;
  EXPECT_EQ(max_difference(run("whole") + "/model.pt", run("parts") + "/model.pt"), 0.0);
  // Another world size: the epoch's permutation is shared out among the new number of ranks.
  const auto three = run_birdplane("train --resume " + run("parts") + " --epochs 4 --nproc 3 --threads 1 --data-dir " +
                                   t_.path() + " --no-download");
  ASSERT_EQ(three.exit_code, 0) << three.err;
  const auto single = run_birdplane("train --resume " + run("parts") + " --epochs 5 --threads 1 --data-dir " +
                                    t_.path() + " --no-download");
  ASSERT_EQ(single.exit_code, 0) << single.err;
  std::ifstream metrics(run("parts") + "/metrics.csv");
  std::string line;
  int rows = -1;
  while (std::getline(metrics, line)) rows += line.empty() ? 0 : 1;
  EXPECT_EQ(rows, 5);
}

// kill -9 one rank: the launcher names it, rank 0 names it too, within the timeout; then --resume ends.
TEST_F(Distributed, AKilledRankStopsTheOthersNamingItThenResumeFinishes) {
  const std::string name = run("killed");
  const auto r = start_then(std::string(BIRDPLANE_BINARY) + " train" + common_ +
                                " --model net --epochs 200 --batch-size 32 --nproc 2 --dist-timeout 10 --name killed",
                            t_ / "err.txt", name + "/checkpoint.pt", signal_rank(1, "9"));
  const std::string err = read_file(t_ / "err.txt");
  EXPECT_TRUE(contains(r.out, "rc=1")) << r.out << err;
  EXPECT_TRUE(contains(err, "error: rank 1 (pid ")) << err;
  EXPECT_TRUE(contains(err, "was killed by signal 9")) << err;
  EXPECT_TRUE(contains(err, "[rank 0] error: lost rank 1")) << err;
  EXPECT_TRUE(contains(err, "the last checkpoint is " + name + "/checkpoint.pt (epoch ")) << err;
  EXPECT_TRUE(contains(err, "; continue with `birdplane train --resume " + name + "`")) << err;  // the CLI's hint
  const int ms = std::stoi(r.out.substr(r.out.find("ms=") + 3));
  EXPECT_LT(ms, 10000 + 5000) << "the survivors took longer than --dist-timeout to stop";
  const auto resumed = run_birdplane("train --resume " + name + " --epochs 3 --nproc 2 --threads 1 --data-dir " +
                                     t_.path() + " --no-download");
  // The killed run may have gone past epoch 3 already; then there is nothing left, which also ends 0.
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
}

// A rank that hangs (SIGSTOP) is noticed by the timeout, not waited for forever.
TEST_F(Distributed, AHungRankIsNamedAfterTheTimeout) {
  const std::string name = run("hung");
  const auto r = start_then(std::string(BIRDPLANE_BINARY) + " train" + common_ +
                                " --model net --epochs 200 --batch-size 32 --nproc 2 --dist-timeout 4 --name hung",
                            t_ / "err.txt", name + "/checkpoint.pt", signal_rank(1, "STOP"));
  const std::string err = read_file(t_ / "err.txt");
  EXPECT_TRUE(contains(r.out, "rc=1")) << r.out << err;
  // Where the STOP lands decides what rank 0 can learn: mostly rank 1's heartbeat stops and rank 1 is
  // named; if it lands half-way through rank 1's request to the store, the store stops answering
  // everyone (c10d's server serves one request at a time), and rank 0 says that instead of hanging.
  EXPECT_TRUE(contains(err, "[rank 0] error: lost rank 1 (it stopped responding") ||
              (contains(err, "[rank 0] error: lost contact with the other ranks (") &&
               contains(err, "has not answered for 4 s: some rank (or another client of the store) stopped")))
      << err;
  EXPECT_TRUE(contains(err, "error: rank 0 (pid ")) << err;  // the launcher: rank 0 gave up first
}

// Ctrl-C reaches every worker from the terminal; all stop after the same step, exit 130. (The shell
// ignores SIGINT itself, its children reset it, so that it waits for the launcher.)
TEST_F(Distributed, CtrlCStopsEveryRankAfterTheSameStep) {
  const std::string name = run("ctrlc");
  const auto r = start_then(std::string(BIRDPLANE_BINARY) + " train" + common_ +
                                " --model net --epochs 200 --batch-size 32 --nproc 2 --name ctrlc",
                            t_ / "err.txt", name + "/checkpoint.pt", "kill -INT -- -$$", "setsid ");
  const std::string err = read_file(t_ / "err.txt");
  EXPECT_TRUE(contains(err, "interrupted during epoch")) << r.out << err;
  EXPECT_TRUE(contains(r.out, "rc=130")) << r.out << err;
  EXPECT_FALSE(contains(err, "lost rank")) << err;
  EXPECT_TRUE(fs::exists(name + "/checkpoint.pt"));
}

TEST_F(Distributed, RendezvousErrorsAreClearWithExitCode2) {
  // A port in use, with --nproc (the launcher serves the store) and as rank 0 of torchrun's env://.
  const auto holder = run_shell("/usr/bin/python3 -c \"import socket,time,sys; s=socket.socket(); "
                                "s.bind(('0.0.0.0',0)); s.listen(); print(s.getsockname()[1]); sys.stdout.flush(); "
                                "time.sleep(30)\" > " +
                                (t_ / "port.txt") + " & sleep 1; cat " + (t_ / "port.txt"));
  const std::string port = std::to_string(std::stoi(holder.out));
  const auto busy = run_birdplane("train" + common_ + " --epochs 1 --nproc 2 --master-port " + port + " --name busy");
  EXPECT_EQ(busy.exit_code, 2) << busy.err;
  EXPECT_TRUE(contains(busy.err, "could not serve the rendezvous store on 127.0.0.1 port " + port)) << busy.err;
  const auto busy_env = run_birdplane("train" + common_ + " --epochs 1 --name busy2",
                                      "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port);
  EXPECT_EQ(busy_env.exit_code, 2) << busy_env.err;
  EXPECT_TRUE(contains(busy_env.err, "rank 0 could not serve the rendezvous store on port " + port)) << busy_env.err;
  EXPECT_FALSE(fs::exists(run("busy")));
  EXPECT_FALSE(fs::exists(run("busy2")));

  // Nobody at MASTER_ADDR:MASTER_PORT: a client gives up after --dist-timeout.
  const std::string nobody = std::to_string(free_port());
  const auto unreachable = run_birdplane("train" + common_ + " --epochs 1 --dist-timeout 2 --name lonely",
                                         "RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + nobody);
  EXPECT_EQ(unreachable.exit_code, 2) << unreachable.err;
  EXPECT_TRUE(contains(unreachable.err, "[rank 1] error: could not reach the rendezvous store at 127.0.0.1:" + nobody))
      << unreachable.err;

  // torchrun's variables that do not fit.
  const auto bad_rank = run_birdplane("train" + common_ + " --epochs 1", "RANK=5 WORLD_SIZE=2");
  EXPECT_EQ(bad_rank.exit_code, 2);
  EXPECT_TRUE(contains(bad_rank.err, "RANK=5 is out of range for WORLD_SIZE=2")) << bad_rank.err;
  const auto bad_world = run_birdplane("train" + common_ + " --epochs 1", "RANK=0 WORLD_SIZE=two");
  EXPECT_EQ(bad_world.exit_code, 2);
  EXPECT_TRUE(contains(bad_world.err, "environment variable WORLD_SIZE='two' is not a whole number")) << bad_world.err;
  const auto nested = run_birdplane("train" + common_ + " --epochs 1 --nproc 2", "RANK=0 WORLD_SIZE=1");
  EXPECT_EQ(nested.exit_code, 2);
  EXPECT_TRUE(contains(nested.err, "--nproc starts workers itself")) << nested.err;
  const auto bad_timeout = run_birdplane("train" + common_ + " --epochs 1 --nproc 2 --dist-timeout 0");
  EXPECT_EQ(bad_timeout.exit_code, 2);
  EXPECT_TRUE(contains(bad_timeout.err, "--dist-timeout 0 is not allowed")) << bad_timeout.err;
}

// A rank that fails with its own error (here: rank 0 finds the run folder taken) is quoted by the others.
TEST_F(Distributed, AnotherRanksErrorIsQuoted) {
  fs::create_directories(run("taken"));
  const auto port = std::to_string(free_port());
  const auto r = run_shell("for rank in 0 1; do RANK=$rank WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port +
                           " " + BIRDPLANE_BINARY + " train" + common_ +
                           " --epochs 1 --name taken --dist-timeout 20 2>&1 & done; wait");
  EXPECT_TRUE(contains(r.out, "[rank 0] error: run folder")) << r.out;
  EXPECT_TRUE(contains(r.out, "[rank 1] error: rank 0 failed: run folder")) << r.out;
}
