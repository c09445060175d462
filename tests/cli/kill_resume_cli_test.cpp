// kill -9 at random moments of training, then --resume, until the run ends: the final weights must be
// bit for bit those of an uninterrupted run. Also: a run folder in use refuses a second process, and
// the lock of a killed process does not block the resume.
#include <chrono>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/train/checkpoint.h"
#include "support/fixtures.h"
#include "support/sanitizer.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {


// Starts `args` in the background, kills it with SIGKILL after `ms` milliseconds; true when it had
// already finished (exit 0) by then.
bool run_and_kill(const std::string& args, int ms) {
  const auto r = run_shell("bash -c '" + std::string(BIRDPLANE_BINARY) + " " + args +
                           " >/dev/null 2>&1 & pid=$!; sleep " + std::to_string(ms / 1000.0) +
                           "; kill -9 $pid 2>/dev/null; wait $pid; echo rc=$?'");
  return contains(r.out, "rc=0");
}

// Trains `flags` (after the data flags) uninterrupted, then again with kill -9 at random moments and
// --resume after each, until `enough_kills` kills have landed and at least half as many starts were
// resumes (on a loaded machine more kills land before the first checkpoint, so it takes more starts);
// the killed run must end bit-identical.
void kill_until_done(const std::string& flags, int enough_kills) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 500);  // cifar2: 1,000 training images
  const std::string common = " --data-dir " + t.path() + " --no-download --threads 1 --classes airplane,bird " + flags;
  const auto start = std::chrono::steady_clock::now();
  auto ref = run_birdplane("train --runs-dir " + (t / "runs") + " --name ref" + common);
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  // Each start is killed within a fifth of a whole run's time (start-up, epochs, checkpoint writes), so
  // most starts end killed and each resume gets a little further.
  const int run_ms = static_cast<int>(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());

  std::mt19937 rng(2026);
  int kills = 0, starts = 0, resumes = 0, finished = 0;
  const int base = std::max(run_ms / 5, 100);
  int window = base;
  const std::string run = t / "runs/k";
  const auto ref_model = birdplane::train::load_checkpoint(t / "runs/ref/model.pt");
  auto expect_same_as_ref = [&] {
    ASSERT_TRUE(fs::exists(run + "/model.pt"));
    const auto b = birdplane::train::load_checkpoint(run + "/model.pt");
    auto pa = ref_model.model->named_parameters(), pb = b.model->named_parameters();
    for (const auto& p : pa)
      EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key() << " after " << kills << " kills";
    ++finished;
    fs::remove_all(run);  // the next kills go to a fresh run
  };
  while (starts < 200) {
    ++starts;
    const bool resumable = fs::exists(run + "/checkpoint.pt");
    if (!resumable) fs::remove_all(run);  // killed before its first checkpoint: start again
    resumes += resumable ? 1 : 0;
    const std::string args = resumable ? "train --resume " + run + common
                                       : "train --runs-dir " + (t / "runs") + " --name k" + common;
    if (kills >= enough_kills && resumes >= enough_kills / 2) {  // enough: the last start runs to the end
      const auto last = run_birdplane(args);
      ASSERT_EQ(last.exit_code, 0) << last.err;
      expect_same_as_ref();
      break;
    }
    const int ms = 100 + static_cast<int>(rng() % static_cast<unsigned>(window));
    if (run_and_kill(args, ms)) {
      expect_same_as_ref();  // it finished inside the window: check it, then start another run
      continue;
    }
    ++kills;
    // On a loaded machine start-up takes longer: widen the window while kills land before the first
    // checkpoint, and narrow it again once there is one, so kills keep landing mid-run.
    window = fs::exists(run + "/checkpoint.pt") ? base : std::min(window * 2, std::max(run_ms, 200));
  }
  ASSERT_GE(kills, enough_kills) << "too few kills";
  EXPECT_GE(resumes, enough_kills / 2) << "most kills must land after the first checkpoint";
  EXPECT_GE(finished, 1);
  std::cout << "[ info ] " << kills << " kills over " << starts << " starts, " << resumes << " of them resumes, "
            << finished << " runs finished, each bit-identical to the uninterrupted one\n";
}

}  // namespace

TEST(KillResume, RandomKillsThenResumeEndBitIdentical) {
  kill_until_done("--model book-small --epochs 40", birdplane::fixtures::repeats(20, 6));
}

// Every recipe setting at once (AdamW over parameter groups, reduce-on-plateau, whose state is in the
// checkpoint, label smoothing, class weights, clipping): the same check through the autograd step.
TEST(KillResume, ARunWithTheRecipeResumesBitIdenticalToo) {
  kill_until_done("--model mlp --hidden 64 --epochs 20 --optimizer adamw --lr 0.002 --weight-decay 0.05 "
                  "--no-decay-bias-norm --head-lr-multiplier 2 --schedule plateau --plateau-patience 0 "
                  "--plateau-threshold 0.5 --label-smoothing 0.1 --class-weights auto --clip-grad-norm 1 "
                  "--clip-grad-value 0.5",
                  birdplane::fixtures::repeats(10, 4));
}

TEST(KillResume, ARunInUseIsRefusedAndAKilledRunsLockIsNot) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 500);
  const std::string common = " --data-dir " + t.path() +
                             " --no-download --threads 1 --classes airplane,bird --model book-small";
  ASSERT_EQ(run_birdplane("train --epochs 1 --runs-dir " + (t / "runs") + " --name r" + common).exit_code, 0);
  const std::string run = t / "runs/r";
  // A long resume in the background holds the lock from before it prints its "resuming" line (waited
  // for, whatever the machine's load; probing the lock itself with flock(1) would hold it for a moment
  // and could refuse the first process); a second resume is refused at once.
  const std::string first_out = t / "first.txt";
  const auto r = run_shell("bash -c '" + std::string(BIRDPLANE_BINARY) + " train --resume " + run + " --epochs 400" +
                           common + " >" + first_out + " 2>&1 & pid=$!; for i in $(seq 600); do grep -q resuming " +
                           first_out + " && break; sleep 0.2; done; " + std::string(BIRDPLANE_BINARY) +
                           " train --resume " + run + " --epochs 400" + common +
                           "; echo second=$?; kill -9 $pid; wait $pid; echo first=$?'");
  EXPECT_TRUE(contains(r.out, "second=2")) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "in use by another birdplane process")) << r.err;
  EXPECT_TRUE(contains(r.out, "first=137")) << r.out;
  // The killed process's lock is gone with it.
  auto again = run_birdplane("train --resume " + run + " --epochs 2" + common);
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

// A checkpoint one epoch ahead of metrics.csv (a run killed between the two writes when the checkpoint
// went first) resumes with a row without figures for the missing epoch, not a gap in the numbering.
TEST(KillResume, ACheckpointAheadOfMetricsKeepsTheRowsNumbered) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 20);
  const std::string common = " --data-dir " + t.path() +
                             " --no-download --threads 1 --classes airplane,bird --model book-small";
  ASSERT_EQ(run_birdplane("train --epochs 2 --runs-dir " + (t / "runs") + " --name m" + common).exit_code, 0);
  const std::string metrics = t / "runs/m/metrics.csv";
  const std::string all = birdplane::fixtures::read_file(metrics);
  const size_t second_row = all.find('\n', all.find('\n') + 1) + 1;
  birdplane::fixtures::write_text(metrics, all.substr(0, second_row));  // header and epoch 1 only
  auto r = run_birdplane("train --resume " + (t / "runs/m") + " --epochs 3" + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string after = birdplane::fixtures::read_file(metrics);
  EXPECT_TRUE(contains(after, "\n2,nan,nan,")) << after;
  EXPECT_TRUE(contains(after, "\n3,")) << after;
}
