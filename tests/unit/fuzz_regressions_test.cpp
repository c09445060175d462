// Regression tests for what the fuzzers in fuzz/ found (scripts/fuzz, docs/security.md): each test
// feeds the input that failed, or its essence, through the same library call.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "birdplane/check.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/trainer.h"
#include "support/expect_error.h"
#include "support/fixtures.h"
#include "support/torch_archive.h"

namespace fs = std::filesystem;
using namespace birdplane;

// fuzz_cifar_meta: batches.meta.txt naming a class twice was accepted, and --classes with that name
// then kept only the first of its two labels, silently dropping the other's images.
TEST(FuzzRegressions, CifarMetaWithANameTwiceIsRefused) {
  fixtures::TempDir tmp;
  fixtures::write_fake_batch(tmp / "test_batch.bin", {0, 7, 9});
  // The fuzzer's input, in essence: ten lines, "h" and "i" each twice, bytes that are not UTF-8.
  fixtures::write_text(tmp / "batches.meta.txt", "c\nd\n\xf5" "e\n\x9a:\n(\ng\xff\xff:\nh\ni\nh\ni\n");
  fixtures::expect_error([&] { data::read_class_names(tmp.path()); },
                         {"batches.meta.txt", "class name 'h' appears twice", "labels 6 and 8"});
  fixtures::expect_error([&] { data::read_cifar10(tmp.path(), data::Split::kTest, {"i"}); },
                         {"batches.meta.txt", "appears twice"});
  // Ten different names are read as before, blank lines and surrounding spaces ignored.
  fixtures::write_text(tmp / "batches.meta.txt", "a\n b \n\nc\nd\ne\nf\ng\nh\ni\nj\n");
  EXPECT_EQ(data::read_class_names(tmp.path()),
            (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}));
  const auto two = data::read_cifar10(tmp.path(), data::Split::kTest, {"j", "a"});
  EXPECT_EQ(two.labels().size(0), 2);
}

// fuzz_config_resume: an epoch in metrics.csv beyond int64 (or NaN) was converted to an integer
// before it was checked, undefined behaviour (UBSan: "2.22222e+30 is outside the range of
// representable values of type 'long'").
TEST(FuzzRegressions, MetricsEpochOutOfRangeIsAnErrorNotAnIntegerOverflow) {
  fixtures::TempDir tmp;
  // The fuzzer's input: a header line, then an epoch of 2.2e30 (the cells after it are never read).
  const std::string crash = "11" + std::string(33, '2') + std::string("\x01\0\0\n", 4) + std::string(31, '2');
  fixtures::write_text(tmp / "m.csv", crash);
  fixtures::expect_error([&] { train::read_metrics(tmp / "m.csv"); }, {"m.csv line 2", "epoch 2222"});
  for (const std::string epoch : {"1e30", "-1e30", "nan", "inf", "1.5", "9223372036854775808"}) {
    fixtures::write_text(tmp / "m.csv", "epoch,train_loss\n" + epoch + ",0.5\n");
    fixtures::expect_error([&] { train::read_metrics(tmp / "m.csv"); }, {"m.csv line 2", "epoch " + epoch});
  }
  fixtures::write_text(tmp / "m.csv", "epoch,train_loss\n1,0.5\n2,0.25\n");
  const auto rows = train::read_metrics(tmp / "m.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].epoch, 2);
  EXPECT_DOUBLE_EQ(rows[1].train_loss, 0.25);
}

// fuzz_image_folder_cache: the cache's JSON header is not covered by its checksum, and a header whose
// class names (or channels, size, image count) differ from the folder's was accepted: a damaged
// class name came back as the set's class name.
TEST(FuzzRegressions, ImageFolderCacheHeaderThatDoesNotMatchTheFolderIsNotUsed) {
  fixtures::TempDir tmp;
  for (const std::string cls : {"cat", "dog"}) {
    fs::create_directories(tmp / ("tree/" + cls));
    for (const std::string name : {"a", "b"}) {
      std::string ppm = "P6\n4 4\n255\n";
      for (int i = 0; i < 48; ++i) ppm.push_back(static_cast<char>(cls[0] + name[0] + i));
      fixtures::write_text(tmp / ("tree/" + cls + "/" + name + ".ppm"), ppm);
    }
  }
  data::ImageFolderOptions options;
  options.cache_dir = tmp / "cache";
  data::ImageFolderReport first, second;
  data::read_image_folder(tmp / "tree", options, &first);
  ASSERT_FALSE(first.cache_file.empty()) << first.cache_note;
  data::read_image_folder(tmp / "tree", options, &second);
  ASSERT_TRUE(second.from_cache) << second.cache_note;  // an intact cache is used
  const std::string intact = fixtures::read_file(first.cache_file);
  // Each damage keeps the file's length, so only the header check can notice it.
  const std::vector<std::pair<std::string, std::string>> damages = {
      {"\"dog\"", "\"`og\""},            // the fuzzer's input: a class name changed
      {"\"shape\":[3,4,4]", "\"shape\":[1,6,8]"},  // the same bytes as one channel
  };
  for (const auto& [from, to] : damages) {
    std::string damaged = intact;
    const auto at = damaged.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    damaged.replace(at, from.size(), to);
    fixtures::write_text(first.cache_file, damaged);
    data::ImageFolderReport report;
    const auto set = data::read_image_folder(tmp / "tree", options, &report);
    EXPECT_FALSE(report.from_cache) << to;
    EXPECT_NE(report.cache_note.find("does not match the folder"), std::string::npos) << report.cache_note;
    EXPECT_EQ(set.class_names(), (std::vector<std::string>{"cat", "dog"}));
    EXPECT_EQ(set.images().sizes(), (std::vector<int64_t>{4, 3, 4, 4}));
  }
}

// fuzz_config_resume: a whole-number setting written as a huge floating-point number in config.json
// ("epochs": 1.2e118) reached nlohmann's get<int64_t>(), a cast with undefined behaviour (UBSan:
// "1.22222e+118 is outside the range of representable values of type 'long'").
TEST(FuzzRegressions, ResumedConfigWithAFloatForAWholeNumberIsRefused) {
  nlohmann::json j = train::RunSpec().to_json();
  EXPECT_NO_THROW(train::RunSpec::from_json(j));
  for (const auto& [part, key] : std::vector<std::pair<std::string, std::string>>{
           {"training", "epochs"}, {"training", "batch_size"}, {"training", "seed"}, {"data", "max_pixels"}}) {
    nlohmann::json bad = j;
    bad[part][key] = 1.2e118;
    fixtures::expect_error([&] { train::RunSpec::from_json(bad); }, {key, "not a whole number"});
  }
  nlohmann::json bad = j;
  bad["model"]["hidden"] = {512, 1e300};
  fixtures::expect_error([&] { train::RunSpec::from_json(bad); }, {"hidden", "not a whole number"});
}

namespace {

// The fuzz_checkpoint target's model: a 48-8-2 MLP on 3x4x4 images.
train::ModelConfig tiny_mlp_config() {
  train::ModelConfig c;
  c.spec.name = "mlp";
  c.spec.num_classes = 2;
  c.spec.image_shape = {3, 4, 4};
  c.spec.hidden = {8};
  c.classes = {"airplane", "bird"};
  c.mean = {0.5, 0.5, 0.5};
  c.std = {0.25, 0.25, 0.25};
  return c;
}

// A checkpoint of that model after one Adam step (so it holds optimizer state), as the seed is.
void write_tiny_checkpoint(const std::string& path) {
  const auto config = tiny_mlp_config();
  torch::manual_seed(0);
  auto model = nn::make_model(config.spec);
  train::OptimizerConfig o;
  o.kind = train::OptimizerKind::kAdam;
  auto optimizer = train::make_optimizer(o, model->parameters());
  for (auto& p : model->parameters()) p.mutable_grad() = torch::ones_like(p);
  optimizer->step();
  train::save_checkpoint(path, config, *model, optimizer.get(), 1);
}

}  // namespace

// fuzz_checkpoint: a BINGET in a checkpoint's data.pkl turned into LONG_BINPUT, whose index is the
// next four bytes (0x74522913). LibTorch 1.13 grows its memo table to the largest index it is given
// and asked for 31 GB (ASan: "allocator is out of memory trying to allocate 0x745229130 bytes").
// birdplane's pickle walker now takes memo indices only in the order picklers write them.
TEST(FuzzRegressions, PickleMemoIndexOutOfOrderIsDamageNotAHugeAllocation) {
  fixtures::TempDir tmp;
  // In essence: an empty dict memoized as entry 0, then as entry 0x7fffffff.
  fixtures::write_records(tmp / "sd.pt", {{"data.pkl", fixtures::bytes("\x80\x02}q\x00r\xff\xff\xff\x7f.")}});
  auto model = nn::make_model(tiny_mlp_config().spec);
  fixtures::expect_error([&] { train::import_state_dict(tmp / "sd.pt", *model); },
                         {"sd.pt", "damaged", "memo entry 2147483647 out of order"});
  fixtures::expect_error([&] { train::load_checkpoint(tmp / "sd.pt"); },
                         {"sd.pt", "damaged", "memo entry 2147483647 out of order"});
  // The fuzzer's input, in essence: a real checkpoint's data.pkl with LONG_BINPUT 0x74522913 (the index
  // it had) before its final STOP.
  write_tiny_checkpoint(tmp / "c.pt");
  auto records = fixtures::read_records(tmp / "c.pt");
  bool damaged = false;
  for (auto& [name, data] : records) {
    if (name != "data.pkl") continue;
    ASSERT_EQ(data.back(), '.');
    data.insert(data.size() - 1, fixtures::bytes("r\x13\x29\x52\x74"));
    damaged = true;
  }
  ASSERT_TRUE(damaged);
  fixtures::write_records(tmp / "bad.pt", records);
  fixtures::expect_error([&] { train::load_checkpoint(tmp / "bad.pt"); },
                         {"bad.pt", "damaged", "memo entry 1951541523 out of order"});
  // Indices in order: an empty dict, an empty state_dict (refused for its missing keys only).
  fixtures::write_records(tmp / "ok.pt", {{"data.pkl", fixtures::bytes("\x80\x02}q\x00q\x01.")}});
  fixtures::expect_error([&] { train::import_state_dict(tmp / "ok.pt", *model); }, {"ok.pt", "'0.weight' is missing"});
}

// fuzz_checkpoint: one byte of a class definition inside a checkpoint changed ("  __buffers__ = []"
// became "  __buffers__z= []"). LibTorch 1.13 compiles the class definitions under code/ when it opens
// a checkpoint, and crashed on that one (SEGV in torch::jit::ScriptTypeParser::parseClassConstant).
// birdplane now reads them first: only the lines LibTorch writes for a checkpoint pass, and LibTorch is
// given a fresh archive of the checked entries alone.
TEST(FuzzRegressions, ADamagedClassDefinitionInACheckpointIsRefusedBeforeLibTorchCompilesIt) {
  fixtures::TempDir tmp;
  write_tiny_checkpoint(tmp / "c.pt");
  const auto records = fixtures::read_records(tmp / "c.pt");
  // Taken apart and put back together (entries stored, version rewritten), it still loads.
  fixtures::write_records(tmp / "copy.pt", records);
  ASSERT_NO_THROW(train::load_checkpoint(tmp / "copy.pt"));
  auto resumed = nn::make_model(tiny_mlp_config().spec);
  train::OptimizerConfig adam;
  adam.kind = train::OptimizerKind::kAdam;
  auto optimizer = train::make_optimizer(adam, resumed->parameters());
  ASSERT_NO_THROW(train::load_optimizer_state(tmp / "copy.pt", *optimizer));

  // Each damage: (file to change, text to find, its replacement, part of the message).
  struct Damage {
    std::string file, from, to, says;
  };
  std::string inner;  // a class definition other than the top one, and its class name
  for (const auto& [name, data] : records)
    if (inner.empty() && name.rfind("code/__torch__/___torch_mangle_", 0) == 0 && name.size() > 3 &&
        name.compare(name.size() - 3, 3, ".py") == 0)
      inner = name;
  ASSERT_FALSE(inner.empty());
  const std::string inner_class = "__torch__." + inner.substr(15, inner.size() - 15 - 3) + ".Module";
  const std::vector<Damage> damages = {
      {"", "  __buffers__ = []\n", "  __buffers__z= []\n", "class definition"},  // the fuzzer's input
      {"", "Tensor\n", "Tensr\n", "class definition"},
      {"code/__torch__.py", "class Module(Module):\n", "class Module(Module)\n", "class definition"},
      {"code/__torch__.py", "___torch_mangle_0.Module", "___torch_mangle_999.Module", "names a class it does not hold"},
      {inner, "class Module(Module):\n", "class Module(Module):\n  me : " + inner_class + "\n", "contains itself"},
  };
  for (const auto& d : damages) {
    auto changed = records;
    bool done = false;
    for (auto& [name, data] : changed) {
      const bool definition =
          name.rfind("code/", 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".py") == 0;
      if (done || !definition || (!d.file.empty() && name != d.file)) continue;
      const auto at = data.find(d.from);
      if (at == std::string::npos) continue;
      data.replace(at, d.from.size(), d.to);
      done = true;
    }
    ASSERT_TRUE(done) << d.from;
    fixtures::write_records(tmp / "bad.pt", changed);
    fixtures::expect_error([&] { train::load_checkpoint(tmp / "bad.pt"); }, {"bad.pt", "damaged", d.says});
    fixtures::expect_error([&] { train::load_optimizer_state(tmp / "bad.pt", *optimizer); },
                           {"bad.pt", "damaged", d.says});
  }
}

// fuzz_checkpoint (LeakSanitizer): the directory record of a file's version entry marked as a folder
// (its attribute bytes overwritten). LibTorch's zip reader then leaves that entry unread, its reader
// fails on the version it did not read, and leaks the zip state it had opened, both for a checkpoint
// and for a state_dict. birdplane refuses entries marked as folders before LibTorch opens the file.
TEST(FuzzRegressions, AnEntryMarkedAsAFolderIsRefusedBeforeLibTorchOpensTheFile) {
  fixtures::TempDir tmp;
  write_tiny_checkpoint(tmp / "c.pt");
  auto model = nn::make_model(tiny_mlp_config().spec);
  train::export_state_dict(tmp / "sd.pt", *model);
  ASSERT_NO_THROW(train::import_state_dict(tmp / "sd.pt", *model));
  for (const std::string name : {"c.pt", "sd.pt"}) {
    std::string file = fixtures::read_file(tmp / name);
    bool marked = false;
    // Central directory records: "PK\1\2", the name's length at +28, the name at +46, attributes at +38.
    for (size_t at = file.find("PK\x01\x02"); at != std::string::npos && at + 46 <= file.size();
         at = file.find("PK\x01\x02", at + 4)) {
      const size_t name_len = static_cast<uint8_t>(file[at + 28]) | (static_cast<uint8_t>(file[at + 29]) << 8);
      if (file.compare(at + 46, name_len, "archive/version") == 0 && name_len == 15) {
        file[at + 38] = static_cast<char>(static_cast<uint8_t>(file[at + 38]) | 0x10);
        marked = true;
      }
    }
    ASSERT_TRUE(marked) << name;
    fixtures::write_text(tmp / ("folder_" + name), file);
    fixtures::expect_error([&] { train::load_checkpoint(tmp / ("folder_" + name)); },
                           {"folder_" + name, "damaged", "archive/version is marked as a folder"});
    fixtures::expect_error([&] { train::import_state_dict(tmp / ("folder_" + name), *model); },
                           {"folder_" + name, "damaged", "archive/version is marked as a folder"});
  }
}
