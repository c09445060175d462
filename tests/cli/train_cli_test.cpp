// End-to-end: train, eval, predict, export and model through the built program.
#include <filesystem>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "birdplane/doctor.h"
#include "birdplane/version.h"
#include "train/linear_kernels.h"
#include "support/fixtures.h"
#include "support/sanitizer.h"
#include "support/state_dict_checks.h"

namespace fs = std::filesystem;
using birdplane::fixtures::contains;
using birdplane::fixtures::run_birdplane;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;

namespace {


// One small trained run shared by the tests of this file (training costs a few seconds).
class CliTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    birdplane::fixtures::write_fake_cifar(tmp_->path(), 20);
    auto r = run_birdplane("train --data-dir " + tmp_->path() + " --classes airplane,bird --epochs 2 " +
                           "--runs-dir " + (*tmp_ / "runs") + " --name r1 --no-download --threads 1");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    train_out_ = r.out;
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  static std::string data() { return tmp_->path(); }
  static std::string run_dir() { return *tmp_ / "runs/r1"; }
  static TempDir* tmp_;
  static std::string train_out_;
};
TempDir* CliTrain::tmp_ = nullptr;
std::string CliTrain::train_out_;

}  // namespace

TEST_F(CliTrain, WritesTheRunFolder) {
  EXPECT_TRUE(contains(train_out_, "epoch 2/2")) << train_out_;
  EXPECT_TRUE(contains(train_out_, "done: train accuracy")) << train_out_;
  for (const char* f : {"config.json", "metrics.csv", "checkpoint.pt", "model.pt", "results.json"})
    EXPECT_TRUE(fs::exists(run_dir() + "/" + f)) << f;
  auto config = nlohmann::json::parse(birdplane::fixtures::read_file(run_dir() + "/config.json"));
  EXPECT_EQ(config["run"]["training"]["seed"], 123);
  EXPECT_EQ(config["parameters"], 1574402);
  EXPECT_EQ(config["model"]["classes"], (std::vector<std::string>{"airplane", "bird"}));
  EXPECT_TRUE(config["versions"].contains("libtorch"));
  EXPECT_EQ(config["step_used"], "fused");  // book-small with plain SGD: the default takes the fused step
  EXPECT_TRUE(contains(train_out_, "fused step in fp32")) << train_out_;
  // The BLAS that ran the products, and OpenBLAS's kernels (whatever OPENBLAS_CORETYPE chose here).
  EXPECT_TRUE(contains(config["blas"]["path"].get<std::string>(), "openblas")) << config.dump();
  EXPECT_EQ(config["blas"]["core"], birdplane::inspect_environment().blas_core);
  EXPECT_EQ(config["input_layer_kernels"], birdplane::train::kernels::available() ? "birdplane-avx512" : "aten");
}

TEST_F(CliTrain, RefusesToOverwriteAnExistingRun) {
  const auto before = birdplane::fixtures::read_file(run_dir() + "/metrics.csv");
  auto r = run_birdplane("train --data-dir " + data() + " --runs-dir " + (*tmp_ / "runs") +
                         " --name r1 --epochs 1 --no-download");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "already exists")) << r.err;
  EXPECT_EQ(birdplane::fixtures::read_file(run_dir() + "/metrics.csv"), before);
}

TEST_F(CliTrain, TrainsWithAugmentationAndRecordsTheSpec) {
  auto r = run_birdplane("train --data-dir " + data() + " --classes airplane,bird --epochs 1 --runs-dir " +
                         (*tmp_ / "runs") + " --name aug --augment 'crop, flip' --no-download");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto config = nlohmann::json::parse(birdplane::fixtures::read_file(*tmp_ / "runs/aug/config.json"));
  EXPECT_EQ(config["run"]["training"]["augment"], "crop, flip");
}

TEST_F(CliTrain, ResumeExtendsARun) {
  const std::string copy = *tmp_ / "runs/r1copy";
  fs::copy(run_dir(), copy);
  auto r = run_birdplane("train --resume " + copy + " --epochs 3 --data-dir " + data());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "epoch 3/3")) << r.out;
  EXPECT_FALSE(contains(r.out, "epoch 1/3")) << r.out;
}

TEST_F(CliTrain, ResumeNamesTheConfigFileWhenAValueInItIsBad) {
  const std::string copy = *tmp_ / "runs/r1bad";
  fs::copy(run_dir(), copy);
  auto config = nlohmann::json::parse(birdplane::fixtures::read_file(copy + "/config.json"));
  config["run"]["training"]["precision"] = "fp16";
  std::ofstream(copy + "/config.json") << config.dump(2);
  auto r = run_birdplane("train --resume " + copy + " --data-dir " + data());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, copy + "/config.json")) << r.err;
  EXPECT_TRUE(contains(r.err, "fp16")) << r.err;
  EXPECT_FALSE(contains(r.err, "error: --precision")) << r.err;  // not a flag the user gave
}

TEST_F(CliTrain, BadFlagsExitTwoWithAMessage) {
  struct Case { std::string args, expect; };
  const std::vector<Case> cases = {
      {"--lr 0", "--lr"},           {"--lr -1", "--lr"},          {"--batch-size 0", "--batch-size"},
      {"--epochs 0", "--epochs"},   {"--model vgg", "--model"},   {"--loss hinge", "--loss"},
      {"--optimizer rmsprop", "--optimizer"}, {"--classes airplane,zebra", "zebra"},
      {"--model book-large --loss nll", "cross-entropy"},     {"--device tpu", "--device"},
      {"--hidden 10,x", "--hidden"}, {"--epochs abc", "--epochs"},
      {"--augment 'RandomCrop(32, padding=-4)'", "--augment"}, {"--augment blur", "unknown transform"},
      {"--step sometimes", "--step"}, {"--step fused --momentum 0.9", "--step: fused"},
      {"--precision fp16", "--precision"}};
  for (size_t i = 0; i < cases.size(); ++i) {
    if (!birdplane::fixtures::run_case(i)) continue;
    const auto& c = cases[i];
    auto r = run_birdplane("train --data-dir " + data() + " --runs-dir " + (*tmp_ / "bad") + " --no-download " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "error: ")) << c.args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, c.expect)) << c.args << "\n" << r.err;
    EXPECT_FALSE(contains(r.err, "frame #")) << r.err;  // no LibTorch backtrace
  }
  EXPECT_FALSE(fs::exists(*tmp_ / "bad")) << "a refused run left a folder behind";
}

TEST_F(CliTrain, EvalPrintsAccuracyPrecisionRecallAndConfusion) {
  auto r = run_birdplane("eval --checkpoint " + run_dir() + "/model.pt --data-dir " + data() + " --no-download");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "accuracy")) << r.out;
  EXPECT_TRUE(contains(r.out, "precision")) << r.out;
  EXPECT_TRUE(contains(r.out, "confusion matrix")) << r.out;
  auto j = run_birdplane("eval --json --split train --checkpoint " + run_dir() + "/model.pt --data-dir " + data());
  ASSERT_EQ(j.exit_code, 0) << j.err;
  auto parsed = nlohmann::json::parse(j.out);
  EXPECT_EQ(parsed["total"], 20);  // 2 classes x 2 images per train file x 5 files
  int64_t sum = 0;
  for (const auto& row : parsed["confusion_matrix"])
    for (const auto& v : row) sum += v.get<int64_t>();
  EXPECT_EQ(sum, 20);
}

TEST_F(CliTrain, BadCheckpointsExitTwo) {
  TempDir t;
  std::ofstream(t / "junk.pt") << "not a checkpoint";
  for (const std::string& f : {t / "junk.pt", t / "missing.pt"}) {
    auto r = run_birdplane("eval --checkpoint " + f + " --data-dir " + data());
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(contains(r.err, f)) << r.err;
  }
  auto r = run_birdplane("predict --checkpoint " + run_dir() + "/model.pt " + (t / "nothing.png"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "nothing.png")) << r.err;
}

TEST_F(CliTrain, PredictClassifiesImageFiles) {
  TempDir t;
  auto img = torch::randint(0, 256, {3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  birdplane::data::write_png(t / "a.png", img);
  birdplane::data::write_png(t / "big.png", torch::randint(0, 256, {3, 64, 48}, torch::kInt64).to(torch::kUInt8));
  auto r = run_birdplane("predict --checkpoint " + run_dir() + "/model.pt " + (t / "a.png") + " " + (t / "big.png"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "a.png: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "resized from 48x64")) << r.out;
  auto j = run_birdplane("predict --json --checkpoint " + run_dir() + "/model.pt " + (t / "a.png"));
  auto parsed = nlohmann::json::parse(j.out);
  const double p = parsed[0]["probabilities"]["airplane"].get<double>() + parsed[0]["probabilities"]["bird"].get<double>();
  EXPECT_NEAR(p, 1.0, 1e-5);
}

TEST_F(CliTrain, ExportLoadsInPythonWithTheBooksSequentialAndGivesTheSameOutputs) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  TempDir t;
  auto r = run_birdplane("export --checkpoint " + run_dir() + "/model.pt --out " + (t / "sd.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Python runs the book's nn.Sequential on the exported weights and saves its outputs.
  auto x = torch::linspace(-1, 1, 4 * 3072).view({4, 3072});
  const std::string script = R"PY(
import sys, torch, torch.nn as nn
sd = torch.load(sys.argv[1])
assert list(sd.keys()) == ['0.weight', '0.bias', '2.weight', '2.bias'], list(sd.keys())
model = nn.Sequential(nn.Linear(3072, 512), nn.Tanh(), nn.Linear(512, 2), nn.LogSoftmax(dim=1))
model.load_state_dict(sd)
x = torch.linspace(-1, 1, 4 * 3072).view(4, 3072)
with torch.no_grad():
    out = model(x)
# Two keys: LibTorch 1.13's unpickler lacks SETITEM, which pickle uses for one-item dicts.
torch.save({'out': out, 'x': x}, sys.argv[2])
)PY";
  std::ofstream(t / "check.py") << script;
  auto py = run_shell("/usr/bin/python3 " + (t / "check.py") + " " + (t / "sd.pt") + " " + (t / "out.pt"));
  ASSERT_EQ(py.exit_code, 0) << py.err;
  const auto bytes = birdplane::fixtures::read_file(t / "out.pt");
  auto py_out = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict().at("out").toTensor();
  // The same weights in C++.
  auto model = torch::nn::Sequential(torch::nn::Linear(3072, 512), torch::nn::Tanh(), torch::nn::Linear(512, 2),
                                     torch::nn::LogSoftmax(1));
  const auto sd_bytes = birdplane::fixtures::read_file(t / "sd.pt");
  auto sd = torch::pickle_load(std::vector<char>(sd_bytes.begin(), sd_bytes.end())).toGenericDict();
  torch::NoGradGuard ng;
  for (auto& p : model->named_parameters()) p.value().copy_(sd.at(p.key()).toTensor());
  auto cpp_out = model->forward(x);
  EXPECT_LE((cpp_out - py_out).abs().max().item<double>(), 1e-5);
  // And --init-from reads the exported file back. Training needs an epoch, so the run takes one at a
  // learning rate of 1e-9: its weights stay where they started, which must be the file's.
  auto r2 = run_birdplane("train --data-dir " + data() + " --classes airplane,bird --epochs 1 --lr 1e-9 --runs-dir " +
                          (t / "runs") + " --name init --init-from " + (t / "sd.pt") + " --no-download --threads 1");
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_LE(birdplane::fixtures::max_parameter_difference(t / "runs/init/model.pt", t / "sd.pt"), 1e-6);
}

TEST(CliModel, SummaryPrintsTheBooksParameterCounts) {
  auto r = run_birdplane("model --summary --model book-large");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "total parameters: 3737474")) << r.out;
  auto s = run_birdplane("model --summary --classes \"\"");
  EXPECT_TRUE(contains(s.out, "for 10 classes")) << s.out;
}

TEST(CliDoctor, ReportsOpenBlasAndThreads) {
  auto r = run_birdplane("--threads 2 doctor");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "openblas")) << "the test build must run on OpenBLAS:\n" << r.out;
  EXPECT_FALSE(contains(r.out, "warning: LibTorch is using the reference BLAS")) << r.out;
  EXPECT_TRUE(contains(r.out, "threads          2 of")) << r.out;
  auto one = run_birdplane("doctor --threads 1");
  EXPECT_TRUE(contains(one.out, "threads          1 of")) << one.out;
}

TEST(CliDoctor, NamesOpenBlasKernelsAndTheCoreTypeThatChoseThem) {
  // OpenBLAS reads OPENBLAS_CORETYPE when it loads: the report names the kernels it then runs.
  auto r = run_birdplane("doctor", "OPENBLAS_CORETYPE=Haswell");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "blas kernels     Haswell (OPENBLAS_CORETYPE=Haswell)")) << r.out;
  // The note appears exactly when this CPU could run the AVX-512 kernels instead.
  EXPECT_EQ(contains(r.out, "OPENBLAS_CORETYPE=SKYLAKEX"), birdplane::inspect_environment().avx512f) << r.out;
}

TEST(CliDoctor, AdvisesAvx512KernelsOnlyWhereTheyWouldRunFaster) {
  birdplane::Environment env;
  env.avx512f = true;
  env.blas_core = "Haswell";
  env.blas_core_env = "Haswell";
  const auto note = birdplane::blas_core_advice(env);
  EXPECT_TRUE(contains(note, "OpenBLAS runs its Haswell")) << note;
  EXPECT_TRUE(contains(note, "(OPENBLAS_CORETYPE=Haswell)")) << note;
  EXPECT_TRUE(contains(note, "OPENBLAS_CORETYPE=SKYLAKEX")) << note;
  env.blas_core = "Zen";  // Zen 1-3 kernels are AVX2 ones too
  EXPECT_FALSE(birdplane::blas_core_advice(env).empty());
  env.blas_core = "SkylakeX";
  EXPECT_EQ(birdplane::blas_core_advice(env), "");
  env.blas_core = "Cooperlake";
  EXPECT_EQ(birdplane::blas_core_advice(env), "");
  env.blas_core = "Haswell";
  env.avx512f = false;  // an AVX2 CPU: Haswell is the best there is
  EXPECT_EQ(birdplane::blas_core_advice(env), "");
  env.avx512f = true;
  env.blas_core = "";  // not OpenBLAS
  EXPECT_EQ(birdplane::blas_core_advice(env), "");
}

int train_metrics_rows(const std::string& path) {
  const auto text = birdplane::fixtures::read_file(path);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n')) - 1;  // less the header
}

TEST(CliInterrupt, CtrlCStopsCleanlyAndTheRunResumes) {
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 40);
  const std::string runs = t / "runs";
  // Start a long run in the background, wait for its first checkpoint, then send SIGINT.
  const std::string cmd = std::string(BIRDPLANE_BINARY) + " train --data-dir " + t.path() +
                          " --epochs 100000 --batch-size 4 --no-download --threads 1 --runs-dir " + runs +
                          " --name stop > " + (t / "out.txt") + " 2> " + (t / "err.txt") + " & echo $! > " +
                          (t / "pid") + "; wait $!; echo $? > " + (t / "rc");
  auto launcher = std::async(std::launch::async, [&] { return run_shell(cmd); });
  const std::string ckpt = runs + "/stop/checkpoint.pt";
  for (int i = 0; i < 600 && !fs::exists(ckpt); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(ckpt)) << "no checkpoint after 30 s";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  run_shell("kill -INT $(cat " + (t / "pid") + ")");
  launcher.wait();
  EXPECT_EQ(birdplane::fixtures::read_file(t / "rc"), "130\n");
  const auto err = birdplane::fixtures::read_file(t / "err.txt");
  EXPECT_TRUE(contains(err, "interrupted")) << err;
  EXPECT_TRUE(contains(err, "--resume")) << err;
  // The checkpoint left behind is whole and the run continues from it.
  auto r = run_birdplane("train --resume " + runs + "/stop --epochs 1 --data-dir " + t.path() + " --threads 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "resuming stop")) << r.out;
}

TEST(CliInitFrom, PythonStateDictsLoadAsPlainDictsAndAsOrderedDicts) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "Debian's /usr/bin/python3 is not installed";
  TempDir t;
  birdplane::fixtures::write_fake_cifar(t.path(), 4);
  const std::string script = R"PY(
import sys, torch, torch.nn as nn
torch.manual_seed(0)
m = nn.Sequential(nn.Linear(3072, 512), nn.Tanh(), nn.Linear(512, 2), nn.LogSoftmax(dim=1))
torch.save(dict(m.state_dict()), sys.argv[1])
torch.save(m.state_dict(), sys.argv[2])
)PY";
  std::ofstream(t / "make.py") << script;
  auto py = run_shell("/usr/bin/python3 " + (t / "make.py") + " " + (t / "plain.pt") + " " + (t / "ordered.pt"));
  ASSERT_EQ(py.exit_code, 0) << py.err;
  // One epoch at a learning rate of 1e-9 (training needs an epoch): the weights stay where they started,
  // which must be Python's (both files hold the same ones).
  const std::string base = "train --data-dir " + t.path() +
                           " --classes airplane,bird --epochs 1 --lr 1e-9 --no-download --threads 1 --runs-dir " +
                           (t / "runs");
  auto ok = run_birdplane(base + " --name a --init-from " + (t / "plain.pt"));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_LE(birdplane::fixtures::max_parameter_difference(t / "runs/a/model.pt", t / "plain.pt"), 1e-6);
  // torch.save(model.state_dict()) writes an OrderedDict with _metadata (as torchvision's weight files are).
  auto ordered = run_birdplane(base + " --name b --init-from " + (t / "ordered.pt"));
  ASSERT_EQ(ordered.exit_code, 0) << ordered.err;
  EXPECT_LE(birdplane::fixtures::max_parameter_difference(t / "runs/b/model.pt", t / "plain.pt"), 1e-6);
  auto bad = run_birdplane(base + " --name c --model book-large --init-from " + (t / "ordered.pt"));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_TRUE(contains(bad.err, "'0.weight' has shape [512, 3072], the model needs [1024, 3072]")) << bad.err;
  EXPECT_FALSE(fs::exists(t / "runs/c")) << "a refused run left a folder";
}

TEST(CliExperiment, SoftmaxAndLossesWriteTablesAndPlots) {
  TempDir tmp;
  auto r = run_birdplane("experiment softmax --runs-dir " + tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "order of logits kept"));
  EXPECT_TRUE(fs::exists(tmp / "experiment-softmax/softmax.svg"));
  EXPECT_TRUE(fs::exists(tmp / "experiment-softmax/table.json"));
  r = run_birdplane("experiment losses --out " + (tmp / "l"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "l/gradients.svg"));
  r = run_birdplane("experiment nonsense");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "softmax, losses, translation, models or speedrun")) << r.err;
}

TEST(CliExperiment, TranslationTrainsBothArmsAndReportsAccuracyByShift) {
  TempDir tmp;
  birdplane::fixtures::write_fake_cifar(tmp.path(), 20);
  const std::string common = "experiment translation --data-dir " + tmp.path() +
                             " --epochs 1 --max-shift 3 --no-download --threads 1 --out " + (tmp / "t");
  auto r = run_birdplane(common);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(birdplane::fixtures::read_file(tmp / "t/table.json"));
  EXPECT_EQ(j.at("summary").at("plain_accuracy_by_shift_right").size(), 4u);
  EXPECT_GT(j.at("summary").at("augmented_seconds").get<double>(), 0);
  EXPECT_TRUE(fs::exists(tmp / "t/translation.svg"));
  EXPECT_TRUE(fs::exists(tmp / "t/plain/model.pt"));
  EXPECT_TRUE(fs::exists(tmp / "t/augmented/metrics.csv"));
  // A second run must not touch the first one's folders.
  const auto before = birdplane::fixtures::read_file(tmp / "t/table.json");
  r = run_birdplane(common);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "already exists")) << r.err;
  EXPECT_EQ(birdplane::fixtures::read_file(tmp / "t/table.json"), before);
  // A bad augmentation is refused before anything is trained or written.
  r = run_birdplane("experiment translation --data-dir " + tmp.path() + " --no-download --augment 'Blur(3)' --out " +
                    (tmp / "u"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown transform 'Blur'")) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "u"));
}

TEST(CliExperiment, TranslationRunsAreRunFoldersThatResume) {
  TempDir tmp;
  birdplane::fixtures::write_fake_cifar(tmp.path(), 20);
  const std::string common = "experiment translation --data-dir " + tmp.path() +
                             " --max-shift 2 --no-download --threads 1 --out " + (tmp / "t");
  auto r = run_birdplane(common + " --epochs 1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Each arm has a config.json like any training run, so `train --resume` continues it.
  for (const char* arm : {"plain", "augmented"}) {
    auto config = nlohmann::json::parse(birdplane::fixtures::read_file(tmp / (std::string("t/") + arm + "/config.json")));
    EXPECT_EQ(config.at("run").at("training").at("epochs"), 1) << arm;
    EXPECT_EQ(config.at("parameters"), 1574402) << arm;
    // ... and its report, linked from the experiment's page.
    EXPECT_TRUE(fs::exists(tmp / (std::string("t/") + arm + "/report.html"))) << arm;
    EXPECT_TRUE(contains(birdplane::fixtures::read_file(tmp / "t/index.html"),
                         std::string("href=\"") + arm + "/report.html\""))
        << arm;
  }
  r = run_birdplane("train --resume " + (tmp / "t/plain") + " --epochs 2 --data-dir " + tmp.path() + " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "epoch 2/2")) << r.out;
  // The experiment itself continues with --resume: the arms' runs are taken up again, not restarted.
  r = run_birdplane(common + " --epochs 2 --resume");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(contains(r.out, "epoch 1/2")) << r.out;  // neither arm trains its first epoch again
  EXPECT_TRUE(contains(r.out, "epoch 2/2")) << r.out;    // the augmented arm trains its second
  EXPECT_EQ(train_metrics_rows(tmp / "t/augmented/metrics.csv"), 2);
}

TEST(CliVersion, PrintsTheLibraryVersion) {
  auto r = run_birdplane("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, std::string("birdplane ") + BIRDPLANE_VERSION_STRING + "\n");
}
