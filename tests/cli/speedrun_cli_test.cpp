// birdplane experiment speedrun: a short run on fake CIFAR-10 files writes each run's model.pt and
// speedrun.json and the table; eval on that model.pt (its recorded statistics and TTA) gives the
// accuracy the run printed; bad settings exit 2 before anything is written.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane::fixtures;

TEST(CliSpeedrun, AShortRunWritesAModelThatEvalAgreesWith) {
  TempDir tmp;
  write_fake_cifar(tmp.path(), 40);  // 200 training images, 40 test images
  const std::string out = tmp.path() + "/sr";
  auto r = run_birdplane("experiment speedrun --data-dir " + tmp.path() + " --no-download --batch-size 64 --epochs 1.5 "
                         "--precision fp32 --runs 2 --seed 5 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "seed 5: accuracy")) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "seed 6: accuracy")) << r.out << r.err;
  for (const char* f : {"/seed-5/model.pt", "/seed-5/speedrun.json", "/seed-6/model.pt", "/table.md", "/index.html"})
    EXPECT_TRUE(fs::exists(out + f)) << f;
  const auto record = nlohmann::json::parse(read_file(out + "/seed-5/speedrun.json"));
  ASSERT_EQ(record["epochs"].size(), 2u);  // ceil(3 steps * 1.5) = 5 steps: 3 + 2
  EXPECT_EQ(record["epochs"][0]["steps"], 3);
  EXPECT_EQ(record["epochs"][1]["steps"], 2);
  EXPECT_EQ(record["options"]["tta"], "flip-shift");
  auto e = run_birdplane("eval --checkpoint " + out + "/seed-5/model.pt --data-dir " + tmp.path() + " --no-download --json");
  ASSERT_EQ(e.exit_code, 0) << e.out << e.err;
  const auto j = nlohmann::json::parse(e.out);
  EXPECT_DOUBLE_EQ(j.at("accuracy").template get<double>(), record.at("accuracy").template get<double>());
  EXPECT_TRUE(contains(read_file(out + "/table.md"), "Speedrun runs"));
}

TEST(CliSpeedrun, BadSettingsExit2AndWriteNothing) {
  TempDir tmp;
  write_fake_cifar(tmp.path(), 40);
  const std::string base = "experiment speedrun --data-dir " + tmp.path() + " --no-download --out " + tmp.path() + "/sr ";
  for (const auto& [flags, says] : std::vector<std::pair<std::string, std::string>>{
           {"--epochs 0", "epochs"}, {"--runs 0", "runs"}, {"--batch-size 4096", "--batch-size"},
           {"--precision fp16", "--precision"}, {"--step sideways", "--step"}, {"--conv sideways", "--conv"},
           {"--conv winograd --precision fp32", "winograd runs in bf16 only"},
           {"--conv winograd --step autograd", "--conv: winograd runs in the fused step only"}}) {
    auto r = run_birdplane(base + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.out << r.err;
    EXPECT_TRUE(contains(r.err + r.out, says)) << flags << "\n" << r.out << r.err;
    EXPECT_FALSE(fs::exists(tmp.path() + "/sr")) << flags;
  }
  fs::create_directories(tmp.path() + "/sr");
  auto r = run_birdplane(base + "--epochs 1");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "already exists")) << r.out << r.err;
}
