// ONNX export (deploy/onnx.h). Each family of presets is written node by node from what its LibTorch
// forward pass computes in eval mode: the MLPs and the chapter-8 convnets from their spec and state_dict
// keys, torchvision's networks from their stages (nn/backbone_layers.h). Weights become initializers
// under their state_dict keys.
#include "birdplane/deploy/onnx.h"

#include <cmath>
#include <map>
#include <set>
#include <variant>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/backbones.h"
#include "birdplane/nn/convnets.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/speedrun_net.h"
#include "birdplane/version.h"
#include "common/files.h"
#include "nn/backbone_layers.h"

namespace birdplane::deploy {
namespace {

struct Attr {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>> value;
};

// The graph under construction: initializers and nodes, with fresh names for intermediate values.
class Graph {
 public:
  explicit Graph(onnx::GraphProto* g) : g_(g) {}

  std::string tensor(const std::string& name, const at::Tensor& t) {
    const auto c = t.detach().to(torch::kCPU).contiguous();
    auto* init = g_->add_initializer();
    init->set_name(name);
    if (c.scalar_type() == at::kLong) {
      init->set_data_type(onnx::TensorProto::INT64);
    } else {
      BIRDPLANE_CHECK(c.scalar_type() == at::kFloat, "ONNX export: {} is {}, expected float32", name,
                      c10::toString(c.scalar_type()));
      init->set_data_type(onnx::TensorProto::FLOAT);
    }
    for (const auto d : c.sizes()) init->add_dims(d);
    init->set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
    return name;
  }
  std::string constant(const std::vector<float>& values, const std::vector<int64_t>& shape) {
    return tensor(fresh("const"), torch::tensor(values, torch::kFloat).reshape(shape));
  }
  std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<Attr>& attrs = {}) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(fresh(op));
    for (const auto& i : inputs) n->add_input(i);
    const std::string out = fresh(op + "_out");
    n->add_output(out);
    for (const auto& a : attrs) {
      auto* p = n->add_attribute();
      p->set_name(a.name);
      if (const auto* i = std::get_if<int64_t>(&a.value)) {
        p->set_type(onnx::AttributeProto::INT);
        p->set_i(*i);
      } else if (const auto* f = std::get_if<float>(&a.value)) {
        p->set_type(onnx::AttributeProto::FLOAT);
        p->set_f(*f);
      } else {
        p->set_type(onnx::AttributeProto::INTS);
        for (const auto v : std::get<std::vector<int64_t>>(a.value)) p->add_ints(v);
      }
    }
    return out;
  }
  // The last node's output renamed to the graph's output name.
  void rename_output(const std::string& from, const std::string& to) {
    for (auto& n : *g_->mutable_node())
      for (auto& o : *n.mutable_output())
        if (o == from) o = to;
  }

 private:
  std::string fresh(const std::string& base) { return fmt::format("{}_{}", base, counter_++); }
  onnx::GraphProto* g_;
  int64_t counter_ = 0;
};

// A model's tensors by state_dict key.
class Weights {
 public:
  explicit Weights(const nn::Classifier& model) {
    for (const auto& [key, t] : model.state_dict()) map_[key] = t;
  }
  std::string operator()(Graph& g, const std::string& key) {
    auto it = map_.find(key);
    BIRDPLANE_CHECK(it != map_.end(), "ONNX export: the model has no tensor {}", key);
    if (!written_.count(key)) g.tensor(key, it->second);
    written_.insert(key);
    return key;
  }
  at::Tensor at(const std::string& key) const { return map_.at(key); }
  bool has(const std::string& key) const { return map_.count(key) > 0; }

 private:
  std::map<std::string, at::Tensor> map_;
  std::set<std::string> written_;
};

std::vector<int64_t> ints(std::initializer_list<int64_t> v) { return v; }

std::string conv(Graph& g, Weights& w, const std::string& x, const std::string& key, int64_t k, int64_t stride,
                 int64_t pad, int64_t groups) {
  std::vector<std::string> in = {x, w(g, key + ".weight")};
  if (w.has(key + ".bias")) in.push_back(w(g, key + ".bias"));
  return g.node("Conv", in,
                {{"kernel_shape", ints({k, k})}, {"strides", ints({stride, stride})},
                 {"pads", ints({pad, pad, pad, pad})}, {"group", groups}});
}
std::string batch_norm(Graph& g, Weights& w, const std::string& x, const std::string& key, double eps) {
  return g.node("BatchNormalization",
                {x, w(g, key + ".weight"), w(g, key + ".bias"), w(g, key + ".running_mean"), w(g, key + ".running_var")},
                {{"epsilon", static_cast<float>(eps)}});
}
std::string gemm(Graph& g, Weights& w, const std::string& x, const std::string& key) {
  return g.node("Gemm", {x, w(g, key + ".weight"), w(g, key + ".bias")}, {{"transB", int64_t{1}}});
}
std::string max_pool(Graph& g, const std::string& x, int64_t k, int64_t stride, int64_t pad) {
  return g.node("MaxPool", {x},
                {{"kernel_shape", ints({k, k})}, {"strides", ints({stride, stride})}, {"pads", ints({pad, pad, pad, pad})}});
}
std::string flatten(Graph& g, const std::string& x) { return g.node("Flatten", {x}, {{"axis", int64_t{1}}}); }
// Exact GELU from opset-17 operators (Gelu itself is opset 20): x * (1 + erf(x / sqrt(2))) / 2.
std::string gelu(Graph& g, const std::string& x) {
  const auto e = g.node("Erf", {g.node("Div", {x, g.constant({static_cast<float>(std::sqrt(2.0))}, {1})})});
  return g.node("Mul", {g.node("Mul", {x, g.node("Add", {e, g.constant({1.0f}, {1})})}), g.constant({0.5f}, {1})});
}

// The speedrun network (nn/speedrun_net.h) in eval mode.
std::string speedrun(Graph& g, Weights& w, const std::string& input) {
  auto x = gelu(g, conv(g, w, input, "whiten", 2, 1, 0, 1));
  for (int i = 1; i <= 3; ++i) {
    const auto key = fmt::format("group{}", i);
    x = max_pool(g, conv(g, w, x, key + ".conv1", 3, 1, 1, 1), 2, 2, 0);
    x = gelu(g, batch_norm(g, w, x, key + ".norm1", nn::SpeedrunNet::kNormEps));
    x = gelu(g, batch_norm(g, w, conv(g, w, x, key + ".conv2", 3, 1, 1, 1), key + ".norm2", nn::SpeedrunNet::kNormEps));
  }
  x = flatten(g, max_pool(g, x, 3, 3, 0));
  x = g.node("Gemm", {x, w(g, "head.weight")}, {{"transB", int64_t{1}}});
  return g.node("Mul", {x, g.constant({static_cast<float>(nn::SpeedrunNet::kHeadScale)}, {1})});
}

// --- the MLPs and the chapter-8 convnets ----------------------------------------------------------------

std::string mlp(Graph& g, Weights& w, const nn::Mlp& m, const std::string& input) {
  std::string x = flatten(g, input);
  const auto& linears = m.linears();
  const char* act = m.options().activation == nn::Activation::kRelu ? "Relu" : "Tanh";
  for (size_t i = 0; i < linears.size(); ++i) {
    x = gemm(g, w, x, std::to_string(2 * i));  // the book's nn.Sequential numbering
    if (i + 1 < linears.size()) x = g.node(act, {x});
  }
  return m.options().log_softmax ? g.node("LogSoftmax", {x}, {{"axis", int64_t{1}}}) : x;
}

std::string convnet(Graph& g, Weights& w, const nn::ConvNet& m, const std::string& input) {
  using K = nn::ConvNetKind;
  const K kind = m.kind();
  const bool relu = kind == K::kDepth || kind == K::kRes || kind == K::kResDeep;
  const char* act = relu ? "Relu" : "Tanh";
  auto stage = [&](const std::string& x, const std::string& key, const std::string& bn) {
    std::string y = conv(g, w, x, key, 3, 1, 1, 1);
    if (!bn.empty()) y = batch_norm(g, w, y, bn, 1e-5);
    return max_pool(g, g.node(act, {y}), 2, 2, 0);  // the book's pool(act(conv)); dropout: identity
  };
  const bool bn = kind == K::kBatchNorm;
  std::string x = stage(input, "conv1", bn ? "conv1_batchnorm" : "");
  if (kind == K::kResDeep) {
    for (int64_t i = 0; i < m.spec().blocks; ++i) {  // the one shared block, or each depth's own
      const std::string block = fmt::format("resblocks.{}.", m.spec().shared_blocks ? 0 : i);
      auto y = batch_norm(g, w, conv(g, w, x, block + "conv", 3, 1, 1, 1), block + "batch_norm", 1e-5);
      x = g.node("Add", {g.node("Relu", {y}), x});
    }
    x = max_pool(g, x, 2, 2, 0);
  } else {
    x = stage(x, "conv2", bn ? "conv2_batchnorm" : "");
  }
  if (kind == K::kDepth) x = stage(x, "conv3", "");
  if (kind == K::kRes) x = max_pool(g, g.node("Add", {g.node("Relu", {conv(g, w, x, "conv3", 3, 1, 1, 1)}), x}), 2, 2, 0);
  x = g.node(act, {gemm(g, w, flatten(g, x), "fc1")});
  return gemm(g, w, x, "fc2");
}

// --- torchvision's networks ------------------------------------------------------------------------------

namespace bb = nn::backbone;

class BackboneWriter {
 public:
  BackboneWriter(Graph& g, Weights& w) : g_(g), w_(w) {}

  std::string act(const std::string& x, bb::Act a) {
    switch (a) {
      case bb::Act::kNone: return x;
      case bb::Act::kRelu: return g_.node("Relu", {x});
      case bb::Act::kHardswish: return g_.node("HardSwish", {x});
      case bb::Act::kSilu: return g_.node("Mul", {x, g_.node("Sigmoid", {x})});
      case bb::Act::kGelu: return gelu(g_, x);
    }
    return x;
  }
  // Linear on the last dimension of a tensor of any rank: MatMul with the transposed weight, then the bias.
  std::string linear_last(const std::string& x, const std::string& key, const bb::Linear& l) {
    const auto wt = g_.tensor(key + ".weight_transposed", l.weight.t().contiguous());
    return g_.node("Add", {g_.node("MatMul", {x, wt}), w_(g_, key + ".bias")});
  }
  std::string layer_norm(const std::string& x, const std::string& key, const bb::LayerNorm& n) {
    auto ln = [&](const std::string& y) {
      return g_.node("LayerNormalization", {y, w_(g_, key + ".weight"), w_(g_, key + ".bias")},
                     {{"axis", int64_t{-1}}, {"epsilon", 1e-6f}});
    };
    if (!n.channels_first_) return ln(x);
    const auto nhwc = g_.node("Transpose", {x}, {{"perm", ints({0, 2, 3, 1})}});
    return g_.node("Transpose", {ln(nhwc)}, {{"perm", ints({0, 3, 1, 2})}});
  }

  std::string write(const bb::Layer& layer, const std::string& key, const std::string& x) {
    if (const auto* c = dynamic_cast<const bb::Conv*>(&layer))
      return conv(g_, w_, x, key, c->weight.size(2), c->stride_, c->padding_, c->groups_);
    if (const auto* b = dynamic_cast<const bb::BatchNorm*>(&layer)) return batch_norm(g_, w_, x, key, b->eps_);
    if (const auto* n = dynamic_cast<const bb::LayerNorm*>(&layer)) return layer_norm(x, key, *n);
    if (dynamic_cast<const bb::Linear*>(&layer)) return gemm(g_, w_, x, key);
    if (const auto* s = dynamic_cast<const bb::Stack*>(&layer)) {
      std::string y = x;
      for (size_t i = 0; i < s->layers.size(); ++i) y = write(*s->layers[i], key + "." + std::to_string(i), y);
      return y;
    }
    if (const auto* c = dynamic_cast<const bb::ConvNormAct*>(&layer))
      return act(write(*c->norm, key + ".1", write(*c->conv, key + ".0", x)), c->act_);
    if (const auto* r = dynamic_cast<const bb::ResBlock*>(&layer)) {
      std::string y = x;
      for (size_t i = 0; i < r->convs.size(); ++i) {
        y = batch_norm(g_, w_, write(*r->convs[i], fmt::format("{}.conv{}", key, i + 1), y), fmt::format("{}.bn{}", key, i + 1),
                       r->bns[i]->eps_);
        if (i + 1 < r->convs.size()) y = g_.node("Relu", {y});
      }
      const auto skip = r->down ? write(*r->down, key + ".downsample", x) : x;
      return g_.node("Relu", {g_.node("Add", {y, skip})});
    }
    if (const auto* se = dynamic_cast<const bb::SqueezeExcitation*>(&layer)) {
      auto s = g_.node("GlobalAveragePool", {x});
      s = write(*se->fc2, key + ".fc2", act(write(*se->fc1, key + ".fc1", s), se->act_));
      s = se->hard_ ? g_.node("HardSigmoid", {s}, {{"alpha", 1.0f / 6.0f}, {"beta", 0.5f}}) : g_.node("Sigmoid", {s});
      return g_.node("Mul", {x, s});
    }
    if (const auto* ir = dynamic_cast<const bb::InvertedResidual*>(&layer)) {
      const auto y = write(*ir->block, key + ".block", x);
      return ir->residual_ ? g_.node("Add", {y, x}) : y;  // stochastic depth: identity in eval mode
    }
    if (const auto* cn = dynamic_cast<const bb::CNBlock*>(&layer)) {
      auto y = write(*cn->dw, key + ".block.0", x);
      y = g_.node("Transpose", {y}, {{"perm", ints({0, 2, 3, 1})}});
      y = layer_norm(y, key + ".block.2", *cn->norm);
      y = act(linear_last(y, key + ".block.3", *cn->fc1), bb::Act::kGelu);
      y = linear_last(y, key + ".block.5", *cn->fc2);
      y = g_.node("Transpose", {y}, {{"perm", ints({0, 3, 1, 2})}});
      return g_.node("Add", {g_.node("Mul", {y, w_(g_, key + ".layer_scale")}), x});
    }
    fail("ONNX export: a layer at {} of a kind the exporter does not know", key);
  }

  std::string after(bb::After a, const std::string& x) {
    using A = bb::After;
    switch (a) {
      case A::kNone: return x;
      case A::kRelu: return g_.node("Relu", {x});
      case A::kMaxPool: return max_pool(g_, x, 3, 2, 1);
      case A::kPool: return g_.node("GlobalAveragePool", {x});
      case A::kPoolFlatten:
      case A::kPoolFlattenDropout: return flatten(g_, g_.node("GlobalAveragePool", {x}));
      case A::kHardswishDropout: return g_.node("HardSwish", {x});
      case A::kFlatten: return flatten(g_, x);
    }
    return x;
  }

 private:
  Graph& g_;
  Weights& w_;
};

void add_value_info(onnx::ValueInfoProto* v, const std::string& name, int elem_type, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem_type);
  auto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param("batch");
  for (const auto d : dims) shape->add_dim()->set_dim_value(d);
}

}  // namespace

void export_onnx(const std::string& path, const train::ModelConfig& config, const nn::Classifier& model,
                 const OnnxOptions& options) {
  const auto& shape = config.spec.image_shape;
  BIRDPLANE_CHECK(shape.size() == 3, "ONNX export: the model takes inputs of shape [{}], not images [C,H,W]",
                  fmt::join(shape, ","));
  BIRDPLANE_CHECK(config.mean.size() == static_cast<size_t>(shape[0]) && config.std.size() == config.mean.size(),
                  "ONNX export: {} means and {} stds for {} channels", config.mean.size(), config.std.size(), shape[0]);
  onnx::ModelProto proto;
  proto.set_ir_version(onnx::IR_VERSION);
  proto.set_producer_name("birdplane");
  proto.set_producer_version(version());
  proto.set_model_version(1);
  proto.set_doc_string(fmt::format("{} for {} classes, exported by birdplane", config.spec.name, config.classes.size()));
  auto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  auto* graph = proto.mutable_graph();
  graph->set_name(config.spec.name);
  Graph g(graph);
  Weights w(model);

  std::string x;
  if (options.with_preprocessing) {
    add_value_info(graph->add_input(), "pixels", onnx::TensorProto::UINT8, shape);
    x = g.node("Cast", {"pixels"}, {{"to", int64_t{onnx::TensorProto::FLOAT}}});
    std::vector<float> mean, inv;
    for (size_t c = 0; c < config.mean.size(); ++c) {
      mean.push_back(static_cast<float>(config.mean[c] * 255.0));
      inv.push_back(static_cast<float>(255.0 * config.std[c]));
    }
    // (p / 255 - mean) / std, computed as (p - 255 mean) / (255 std).
    const std::vector<int64_t> per_channel = {1, shape[0], 1, 1};
    x = g.node("Div", {g.node("Sub", {x, g.constant(mean, per_channel)}), g.constant(inv, per_channel)});
  } else {
    add_value_info(graph->add_input(), "images", onnx::TensorProto::FLOAT, shape);
    x = "images";
  }

  std::string out;
  if (const auto* m = dynamic_cast<const nn::Mlp*>(&model)) {
    out = mlp(g, w, *m, x);
  } else if (const auto* c = dynamic_cast<const nn::ConvNet*>(&model)) {
    out = convnet(g, w, *c, x);
  } else if (dynamic_cast<const nn::SpeedrunNet*>(&model)) {
    out = speedrun(g, w, x);
  } else if (const auto* b = dynamic_cast<const nn::Backbone*>(&model)) {
    BackboneWriter writer(g, w);
    out = x;
    for (const auto& stage : b->net().stages) {
      if (stage.layer) out = writer.write(*stage.layer, stage.name, out);
      out = writer.after(stage.then, out);
    }
  } else {
    fail("ONNX export: model {} is not one of birdplane's presets; the exporter writes those only", config.spec.name);
  }
  const std::string out_name = model.ends_in_log_softmax() ? "log_probabilities" : "logits";
  g.rename_output(out, out_name);
  add_value_info(graph->add_output(), out_name, onnx::TensorProto::FLOAT, {config.spec.num_classes});

  auto meta = [&](const std::string& key, const std::string& value) {
    auto* p = proto.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  };
  meta("model", config.spec.name);
  meta("classes", nlohmann::json(config.classes).dump());
  meta("image_size", nlohmann::json({shape[1], shape[2]}).dump());
  meta("mean", nlohmann::json(config.mean).dump());
  meta("std", nlohmann::json(config.std).dump());
  if (config.resize > 0) {
    meta("resize", std::to_string(config.resize));
    meta("interpolation", config.interpolation);
  }
  meta("birdplane_config", config.to_json().dump());  // everything else: crop mode, loss, test-time augmentation
  meta("input", options.with_preprocessing ? "pixels: uint8 RGB [batch, 3, H, W], normalized inside the graph"
                                           : "images: float32 [batch, 3, H, W], (x / 255 - mean) / std");
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    fail("ONNX export of {}: ONNX's checker refused the graph ({}); this is a bug in birdplane", config.spec.name,
         e.what());
  }
  std::string bytes;
  BIRDPLANE_CHECK(proto.SerializeToString(&bytes), "ONNX export: the model could not be serialized");
  write_file_atomically(path, bytes);
}

}  // namespace birdplane::deploy
