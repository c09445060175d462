// The model interface and the registry: presets by name, a program's own model, specs that rebuild
// the same network, the summary table.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/model.h"

using namespace birdplane;

namespace {

// A classifier of the caller's own: global average pooling then one linear layer.
struct PoolLinear : nn::Classifier {
  explicit PoolLinear(const nn::ModelSpec& spec) : nn::Classifier(spec) {
    fc = register_module("fc", torch::nn::Linear(spec.image_shape[0], spec.num_classes));
  }
  at::Tensor logits(const at::Tensor& x) override { return fc->forward(x.mean({2, 3})); }
  std::vector<nn::LayerRow> layer_rows() const override {
    return {{"", "input", "[B, C, H, W]", 0}, {"fc", "Linear", "[B, K]", nn::count_parameters(*fc)}};
  }
  torch::nn::Linear fc{nullptr};
};

}  // namespace

TEST(ModelRegistry, ListsTheBuiltInPresetsFirst) {
  const auto names = nn::model_names();
  ASSERT_GE(names.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 3),
            (std::vector<std::string>{"book-small", "book-large", "mlp"}));
  for (const auto& p : nn::model_presets()) EXPECT_FALSE(p.description.empty()) << p.name;
}

TEST(ModelRegistry, TakesAProgramsOwnModel) {
  nn::register_model({"pool-linear", "average pooling and a linear layer",
                      [](const nn::ModelSpec& s) { return std::make_shared<PoolLinear>(s); }});
  EXPECT_THROW(nn::register_model({"pool-linear", "again", [](const nn::ModelSpec& s) {
                                     return std::make_shared<PoolLinear>(s);
                                   }}),
               Error);
  nn::ModelSpec spec;
  spec.name = "pool-linear";
  spec.num_classes = 4;
  spec.image_shape = {3, 8, 8};
  auto model = nn::make_model(spec);
  EXPECT_EQ(model->forward(torch::randn({2, 3, 8, 8})).sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(nn::natural_loss(*model), nn::LossKind::kCrossEntropy);
  EXPECT_EQ(nn::count_parameters(*model), 3 * 4 + 4);
  EXPECT_NE(nn::summary(*model).find("total parameters: 16"), std::string::npos);
}

TEST(ModelSpec, RoundTripsThroughJsonAndReadsVersion01Files) {
  nn::ModelSpec spec;
  spec.name = "mlp";
  spec.num_classes = 3;
  spec.hidden = {64, 32};
  spec.activation = nn::Activation::kRelu;
  const auto back = nn::ModelSpec::from_json(spec.to_json());
  EXPECT_EQ(back.to_json(), spec.to_json());
  spec.shared_blocks = false;
  EXPECT_FALSE(nn::ModelSpec::from_json(spec.to_json()).shared_blocks);
  auto j = spec.to_json();
  j.erase("shared_blocks");  // files written before the setting existed: the book's shared block
  EXPECT_TRUE(nn::ModelSpec::from_json(j).shared_blocks);
  j["shared_blocks"] = 0;
  EXPECT_THROW(nn::ModelSpec::from_json(j), SettingError);
  // The model section of a birdplane 0.1 checkpoint.
  const auto old = nlohmann::json::parse(R"({"model": "book-large", "in_features": 3072, "hidden": [1024, 512, 128],
      "out_features": 2, "activation": "tanh", "log_softmax": false, "loss": "cross-entropy"})");
  const auto read = nn::ModelSpec::from_json(old);
  EXPECT_EQ(read.name, "book-large");
  EXPECT_EQ(read.num_classes, 2);
  EXPECT_EQ(read.image_shape, (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(nn::count_parameters(*nn::make_model(read)), 3737474);
}

TEST(Mlp, MakeMlpGivesASpecThatRebuildsTheSameNetwork) {
  for (bool log_softmax : {true, false}) {
    nn::MlpOptions o;
    o.in_features = 12;
    o.hidden = {7, 5};
    o.out_features = 3;
    o.log_softmax = log_softmax;
    auto direct = nn::make_mlp(o);
    auto rebuilt = nn::make_model(direct->spec());
    EXPECT_EQ(rebuilt->ends_in_log_softmax(), log_softmax);
    std::vector<std::vector<int64_t>> a, b;
    for (const auto& p : direct->parameters()) a.push_back(p.sizes().vec());
    for (const auto& p : rebuilt->parameters()) b.push_back(p.sizes().vec());
    EXPECT_EQ(a, b);
  }
}
