// torchvision's ImageNet architectures as presets of the model registry: resnet18, resnet34,
// resnet50, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0 and convnext_tiny (torchvision
// 0.14's models/). Every parameter and buffer sits under torchvision's state_dict key with its shape,
// so torchvision's published weight files load (train/checkpoint.h: import_state_dict) and a
// fine-tuned model's export loads into torchvision's class with load_state_dict(strict=True).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "birdplane/nn/model.h"

namespace birdplane::nn {

/// The architectures, in the order above.
const std::vector<std::string>& backbone_names();
/// Whether `name` is one of them.
bool is_backbone(const std::string& name);

/// How images reach a pretrained network: torchvision's ImageClassification preset (the weights
/// entry's transforms): resize the shorter side to `resize`, centre crop `crop` x `crop`, scale to
/// [0, 1], normalize with mean and std.
struct Preprocessing {
  int64_t resize = 256;
  int64_t crop = 224;
  std::string interpolation = "bilinear";  ///< "bilinear" or "bicubic"
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
};

/// The preprocessing torchvision gives the weights file `weights_file` of architecture `model`: known
/// by the published file name (resnet50-11ad3fa6.pth is IMAGENET1K_V2: resize 232), otherwise the
/// architecture's first ImageNet weights (resnet50-0676ba61.pth: resize 256).
Preprocessing weights_preprocessing(const std::string& model, const std::string& weights_file);

/// The state_dict keys of the layer that makes the outputs (the head torchvision replaces for another
/// number of classes): "fc" for the ResNets, "classifier.3" for MobileNet V3, "classifier.1" for
/// EfficientNet, "classifier.2" for ConvNeXt.
std::string backbone_head(const std::string& model);

/// One of torchvision's networks. Images [B,3,H,W] with H and W at least 32.
/// ModelSpec::dropout and ModelSpec::stochastic_depth set the classifier's dropout and the residual
/// branches' drop probability (below 0: torchvision's defaults).
class Backbone : public Classifier {
 public:
  /// A SettingError for "model" when the image shape is not [3, H>=32, W>=32], for "dropout" and
  /// "stochastic_depth" outside [0, 1).
  explicit Backbone(ModelSpec spec);

  at::Tensor logits(const at::Tensor& images) override;
  std::vector<LayerRow> layer_rows() const override;
  /// Module by module, each one's parameters then its buffers, as Python's state_dict() orders them.
  std::vector<std::pair<std::string, at::Tensor>> state_dict() const override;
  std::string fused_step_unsupported(const train::StepSetup& setup) const override;

  /// The top-level stages in order, the head's last: conv1, bn1, layer1 ... fc for the ResNets,
  /// features.0 ... features.N, classifier for the others.
  std::vector<std::string> stages() const;
  /// Stops training every parameter up to and including stage `upto` ("backbone": all but the head;
  /// "": none), and keeps their batch norms in eval mode (running statistics fixed) while the rest
  /// trains. A SettingError for "freeze" when `upto` names no stage.
  void freeze(const std::string& upto);
  const std::string& frozen() const { return frozen_; }
  /// Module::train, then eval() again on the frozen batch norms.
  void train(bool on = true) override;

  struct Net;  ///< the stages and their modules (private: src/nn/backbone_layers.h)
  const Net& net() const { return *net_; }

 private:
  std::shared_ptr<Net> net_;
  std::string frozen_;
};

}  // namespace birdplane::nn
