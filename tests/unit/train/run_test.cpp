// train::RunSpec (one JSON form, older config.json files), data::load_training_data, and train::Run
// (start, resume, the run folder's checks).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "birdplane/data/training_data.h"
#include "birdplane/train/run.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace birdplane;

namespace {

// Two classes of 10 PNGs each, 8x6 pixels, told apart by brightness.
std::string write_photos(const fixtures::TempDir& tmp) {
  const std::string root = tmp / "photos";
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(fs::path(root) / (c ? "light" : "dark"));
    for (int i = 0; i < 10; ++i) {
      auto img = torch::full({3, 6, 8}, c ? 200 + i : 20 + i, torch::kByte);
      data::write_png((fs::path(root) / (c ? "light" : "dark") / (std::to_string(i) + ".png")).string(), img);
    }
  }
  return root;
}

train::RunSpec folder_spec(const fixtures::TempDir& tmp) {
  train::RunSpec spec;
  spec.data.image_folder = write_photos(tmp);
  spec.data.val_fraction = 0.2;
  spec.data.use_cache = false;
  spec.model.name = "mlp";
  spec.model.hidden = {8};
  spec.training.epochs = 2;
  spec.training.batch_size = 4;
  spec.runs_dir = tmp / "runs";
  spec.name = "r";
  return spec;
}

}  // namespace

TEST(RunSpec, JsonRoundTripsAndOlderFlatConfigsRead) {
  train::RunSpec spec;
  spec.data.classes = {"airplane", "bird"};
  spec.data.limit_train = 100;
  spec.model.name = "net-width";
  spec.model.channels = 16;
  spec.training.epochs = 7;
  spec.training.augment = "flip";
  spec.name = "x";
  const auto j = spec.to_json();
  EXPECT_EQ(j["data"]["classes"], (std::vector<std::string>{"airplane", "bird"}));
  EXPECT_EQ(j["model"]["channels"], 16);
  EXPECT_EQ(j["training"]["epochs"], 7);
  EXPECT_EQ(train::RunSpec::from_json(j).to_json(), j);

  // config.json from before the specification had parts: one flat "train" object.
  const nlohmann::json old = {
      {"data_dir", "/data"},  {"classes", {"airplane", "bird"}}, {"model", "net-width"}, {"hidden", nlohmann::json::array()},
      {"activation", "tanh"}, {"channels", 16},                 {"blocks", 10},         {"loss", ""},
      {"optimizer", train::OptimizerConfig().to_json()},        {"epochs", 7},          {"batch_size", 64},
      {"seed", 123},          {"drop_last", false},              {"eval_every", 1},      {"runs_dir", "runs"},
      {"name", "x"},          {"device", "auto"},                {"init_from", ""},      {"limit_train", 100},
      {"limit_val", 0},       {"augment", "flip"},               {"precision", "fp32"},  {"step", "auto"},
      {"image_folder", ""},   {"val_folder", ""},                {"val_fraction", 0.0},  {"image_size", nlohmann::json::array()},
      {"crop", "none"},       {"max_pixels", 89478485},          {"skip_bad_images", false}, {"cache_dir", ""}};
  const auto read = train::RunSpec::from_config({{"train", old}});
  EXPECT_EQ(read.data.data_dir, "/data");
  EXPECT_EQ(read.data.classes, (std::vector<std::string>{"airplane", "bird"}));
  EXPECT_EQ(read.data.limit_train, 100);
  EXPECT_EQ(read.model.name, "net-width");
  EXPECT_EQ(read.model.channels, 16);
  EXPECT_EQ(read.training.epochs, 7);
  EXPECT_EQ(read.training.augment, "flip");
  EXPECT_EQ(read.name, "x");
  // The new form is preferred where both are present.
  EXPECT_EQ(train::RunSpec::from_config({{"train", old}, {"run", j}}).to_json(), j);
}

TEST(RunSpec, ValidatesEachPartAndNamesTheSetting) {
  auto setting_of = [](const train::RunSpec& s) {
    try {
      s.validate();
    } catch (const SettingError& e) {
      return e.setting();
    }
    return std::string();
  };
  train::RunSpec s;
  EXPECT_EQ(setting_of(s), "");
  s.data.val_fraction = 0.2;  // no image folder
  EXPECT_EQ(setting_of(s), "val_fraction");
  s = {};
  s.data.limit_val = -1;
  EXPECT_EQ(setting_of(s), "limit_val");
  s = {};
  s.model.name = "vgg";
  EXPECT_EQ(setting_of(s), "model");
  s = {};
  s.training.eval_every = 0;
  EXPECT_EQ(setting_of(s), "eval_every");
}

TEST(TrainingData, AFolderIsSplitPerClassAndRecorded) {
  fixtures::TempDir tmp;
  auto spec = folder_spec(tmp);
  struct Observer : data::DataObserver {
    std::vector<std::string> read;
    void on_folder_read(const std::string& root, const data::ImageSet& set, const data::ImageFolderReport&) override {
      read.push_back(root);
    }
  } observer;
  data::DataLoadOptions options;
  options.observer = &observer;
  const auto d = data::load_training_data(spec.data, 5, options);
  EXPECT_EQ(*d.train.size(), 16u);
  EXPECT_EQ(*d.val.size(), 4u);  // 20% of each class
  EXPECT_EQ(d.val.labels().sum().item<int64_t>(), 2);
  EXPECT_EQ(d.train.class_names(), (std::vector<std::string>{"dark", "light"}));
  EXPECT_EQ(observer.read, (std::vector<std::string>{spec.data.image_folder}));
  EXPECT_EQ(d.record["train_folder"]["images"], 20);
  // The statistics are those of the training images.
  EXPECT_NEAR(d.stats.mean[0], d.train.images().to(torch::kDouble).mean().item<double>() / 255, 1e-9);
  // Another seed draws another validation set, of the same size.
  const auto other = data::load_training_data(spec.data, 6, options);
  EXPECT_EQ(*other.val.size(), 4u);
  EXPECT_FALSE(torch::equal(other.val.images(), d.val.images()));
}

TEST(TrainingData, MissingCifarWithoutDownloadIsATypedError) {
  fixtures::TempDir tmp;
  data::DataSpec spec;
  spec.data_dir = tmp / "nowhere";
  spec.download = false;
  try {
    data::load_training_data(spec, 1);
    FAIL() << "expected MissingDataError";
  } catch (const data::MissingDataError& e) {
    EXPECT_EQ(e.path(), spec.data_dir);
  }
}

TEST(Run, StartsOnAFolderThenResumesAndRefusesAnExistingFolder) {
  fixtures::TempDir tmp;
  auto spec = folder_spec(tmp);
  {
    auto run = train::Run::start(spec);
    EXPECT_FALSE(run.resumed());
    EXPECT_EQ(run.spec().model.num_classes, 2);  // filled in from the data
    EXPECT_EQ(run.spec().model.image_shape, (std::vector<int64_t>{3, 6, 8}));
    const auto r = run.train();
    EXPECT_EQ(r.history.size(), 2u);
    EXPECT_EQ(r.final_val_accuracy, 1.0);
    std::ifstream in(fs::path(run.path()) / "config.json");
    const auto config = nlohmann::json::parse(in);
    EXPECT_EQ(config["run"]["data"]["image_folder"], spec.data.image_folder);
    EXPECT_EQ(config["data"]["train_folder"]["images"], 20);
  }
  try {
    train::Run::start(spec);
    FAIL() << "expected RunExistsError";
  } catch (const train::RunExistsError& e) {
    EXPECT_EQ(e.path(), spec.path());
  }
  train::ResumeChanges more;
  more.epochs = 3;
  auto resumed = train::Run::resume(spec.path(), more);
  EXPECT_TRUE(resumed.resumed());
  EXPECT_EQ(resumed.trainer().start_epoch(), 2);
  EXPECT_EQ(resumed.train().history.size(), 3u);
}

TEST(Run, ADataErrorLeavesNothingOnDiskAndAFolderWithoutCheckpointIsNamed) {
  fixtures::TempDir tmp;
  auto spec = folder_spec(tmp);
  spec.data.image_folder = tmp / "missing";
  EXPECT_THROW(train::Run::start(spec), Error);
  EXPECT_FALSE(fs::exists(spec.path()));
  // A run folder whose first epoch never ended.
  spec = folder_spec(tmp);
  train::RunDir::create(spec.path()).write_config({{"run", spec.to_json()}});
  try {
    train::Run::resume(spec.path());
    FAIL() << "expected NoCheckpointError";
  } catch (const train::NoCheckpointError& e) {
    EXPECT_EQ(e.path(), spec.path());
  }
}

TEST(Run, ResumesAFolderWrittenBeforeTheSpecificationHadParts) {
  // The same run, started now, then its config.json rewritten in the flat form of version 0.2: it
  // must resume and end where an uninterrupted run ends.
  fixtures::TempDir tmp;
  auto spec = folder_spec(tmp);
  spec.training.epochs = 1;
  train::Run::start(spec).train();
  const auto path = fs::path(spec.path()) / "config.json";
  auto config = nlohmann::json::parse(fixtures::read_file(path.string()));
  const auto& run = config["run"];
  nlohmann::json flat = run["training"];
  for (const auto& [k, v] : run["data"].items()) flat[k] = v;
  flat["model"] = run["model"]["name"];
  flat["hidden"] = run["model"]["hidden"];
  flat["activation"] = run["model"]["activation"];
  flat["runs_dir"] = run["runs_dir"];
  flat["name"] = run["name"];
  config.erase("run");
  config["train"] = flat;
  fixtures::write_text(path.string(), config.dump());
  train::ResumeChanges more;
  more.epochs = 2;
  auto resumed = train::Run::resume(spec.path(), more);
  EXPECT_EQ(resumed.spec().model.hidden, (std::vector<int64_t>{8}));
  EXPECT_EQ(resumed.train().history.size(), 2u);
}
