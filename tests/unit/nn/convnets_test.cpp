// The chapter-8 presets: the book's shapes, parameter counts and keys, modes, summaries, bad settings.
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/convnets.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

using namespace birdplane;

namespace {

nn::ClassifierPtr make(const std::string& name, int64_t channels = 32, int64_t blocks = 10, int64_t classes = 2) {
  nn::ModelSpec spec;
  spec.name = name;
  spec.num_classes = classes;
  spec.channels = channels;
  spec.blocks = blocks;
  return nn::make_model(spec);
}

std::vector<std::string> keys(const nn::Classifier& m) {
  std::vector<std::string> out;
  for (const auto& [k, t] : m.state_dict()) out.push_back(k);
  return out;
}

}  // namespace

TEST(ConvNets, TheBooksParameterCountsAndOutputs) {
  EXPECT_EQ(nn::count_parameters(*make("net")), 18090);
  EXPECT_EQ(nn::count_parameters(*make("net-width")), 38386);
  EXPECT_EQ(nn::count_parameters(*make("net-dropout")), 38386);
  EXPECT_EQ(nn::count_parameters(*make("net-batchnorm")), 38386 + 2 * 32 + 2 * 16);
  // net-res-deep: conv1 896, one shared block (9216 + 64), fc1 8*8*32*32+32, fc2 66.
  EXPECT_EQ(nn::count_parameters(*make("net-res-deep")), 896 + 9216 + 64 + 65568 + 66);
  for (const auto& name : nn::convnet_names()) {
    auto m = make(name, 8, 2, 5);
    m->eval();
    EXPECT_EQ(m->forward(torch::randn({3, 3, 32, 32})).sizes(), (std::vector<int64_t>{3, 5})) << name;
    EXPECT_EQ(nn::natural_loss(*m), nn::LossKind::kCrossEntropy) << name;
    EXPECT_NE(nn::summary(*m).find("fc2"), std::string::npos) << name;
  }
}

TEST(ConvNets, KeysAreTheBooksAttributeNames) {
  EXPECT_EQ(keys(*make("net")), (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                                          "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  const auto bn = keys(*make("net-batchnorm"));
  for (const char* k : {"conv1_batchnorm.weight", "conv1_batchnorm.running_mean", "conv2_batchnorm.running_var",
                        "conv2_batchnorm.num_batches_tracked"})
    EXPECT_NE(std::find(bn.begin(), bn.end(), k), bn.end()) << k;
  // The book's shared block appears under every index, and the optimizer sees its weights once.
  auto deep = make("net-res-deep", 8, 3);
  const auto dk = keys(*deep);
  for (const char* k : {"resblocks.0.conv.weight", "resblocks.2.conv.weight", "resblocks.1.batch_norm.running_mean"})
    EXPECT_NE(std::find(dk.begin(), dk.end(), k), dk.end()) << k;
  EXPECT_EQ(deep->parameters().size(), 2u + 1u + 2u + 2u + 2u);  // conv1, block conv, block bn, fc1, fc2
}

TEST(ConvNets, NetResDeepWithSeparateBlocksHasABlockPerDepth) {
  nn::ModelSpec spec;
  spec.name = "net-res-deep";
  spec.channels = 8;
  spec.blocks = 3;
  spec.shared_blocks = false;
  torch::manual_seed(3);
  auto separate = nn::make_model(spec);
  // conv1 3*8*9+8, three blocks of 8*8*9 + 2*8, fc1 8*8*8*32+32, fc2 32*2+2.
  EXPECT_EQ(nn::count_parameters(*separate), 224 + 3 * (576 + 16) + 16416 + 66);
  EXPECT_EQ(separate->parameters().size(), 2u + 3u * 3u + 2u + 2u);
  std::map<std::string, at::Tensor> state;
  for (const auto& [k, t] : separate->state_dict()) state[k] = t;
  ASSERT_EQ(state.count("resblocks.2.batch_norm.running_var"), 1u);
  EXPECT_FALSE(state.at("resblocks.0.conv.weight").is_same(state.at("resblocks.1.conv.weight")));
  EXPECT_FALSE(torch::equal(state.at("resblocks.0.conv.weight"), state.at("resblocks.1.conv.weight")));
  EXPECT_NE(nn::summary(*separate).find("one per depth"), std::string::npos);
  // With every block given the shared block's weights (and statistics), the outputs are the book's.
  spec.shared_blocks = true;
  auto shared = nn::make_model(spec);
  {
    torch::NoGradGuard no_grad;
    shared->train();
    shared->forward(torch::randn({6, 3, 32, 32}));  // batch-norm statistics off their start
    std::map<std::string, at::Tensor> from;
    for (const auto& [k, t] : shared->state_dict()) from[k] = t;
    for (const auto& [k, t] : state) t.copy_(from.at(k));
  }
  shared->eval();
  separate->eval();
  const auto x = torch::randn({4, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(separate->forward(x), shared->forward(x), 1e-5, 1e-6));
}

TEST(ConvNets, DropoutAndBatchNormFollowTrainAndEvalModes) {
  auto drop = make("net-dropout", 8);
  auto x = torch::randn({4, 3, 32, 32});
  drop->eval();
  EXPECT_TRUE(torch::equal(drop->forward(x), drop->forward(x)));
  drop->train();
  EXPECT_FALSE(torch::equal(drop->forward(x), drop->forward(x)));
  auto bn = make("net-batchnorm", 8);
  bn->train();
  bn->forward(x);
  auto stats = bn->named_buffers()["conv1_batchnorm.running_mean"];
  EXPECT_GT(stats.abs().sum().item<double>(), 0);
  bn->eval();
  const auto frozen = stats.clone();
  bn->forward(x);
  EXPECT_TRUE(torch::equal(frozen, bn->named_buffers()["conv1_batchnorm.running_mean"]));
}

TEST(ConvNets, RefusesBadChannelsBlocksAndImageSizes) {
  auto setting = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const SettingError& e) {
      return e.setting() + ": " + e.problem();
    }
    return "(no error)";
  };
  EXPECT_EQ(setting([] { make("net-width", 0); }).rfind("channels: 0", 0), 0u);
  EXPECT_NE(setting([] { make("net-width", 7); }).find("odd"), std::string::npos);
  EXPECT_EQ(setting([] { make("net-res-deep", 7, 2); }), "(no error)");  // it does not halve
  EXPECT_EQ(setting([] { make("net-res-deep", 8, -1); }).rfind("blocks: -1", 0), 0u);
  nn::ModelSpec tiny;
  tiny.name = "net-depth";
  tiny.image_shape = {3, 4, 4};
  EXPECT_NE(setting([&] { nn::make_model(tiny); }).find("at least 8x8"), std::string::npos);
}

TEST(ConvNets, AStateDictOfAnotherPresetNamesTheKeyAndShapes) {
  fixtures::TempDir tmp;
  train::export_state_dict(tmp / "net.pt", *make("net"));
  auto width = make("net-width");
  fixtures::expect_error([&] { train::import_state_dict(tmp / "net.pt", *width); },
                         {"net.pt", "'conv1.weight' has shape [16, 3, 3, 3], the model needs [32, 3, 3, 3]"});
  auto bn = make("net-batchnorm");
  train::export_state_dict(tmp / "width.pt", *make("net-width"));
  fixtures::expect_error([&] { train::import_state_dict(tmp / "width.pt", *bn); },
                         {"width.pt", "key 'conv1_batchnorm.weight' is missing"});
}
