// birdplane eval: accuracy, per-class precision and recall, confusion matrix of a saved model.
#include <iostream>

#include <fmt/format.h>

#include "birdplane/train/trainer.h"
#include "commands.h"
#include "flags.h"
#include "progress.h"

namespace birdplane::cli {
namespace {

struct EvalOptions {
  std::string checkpoint;
  std::string data_dir;
  std::string split = "test";
  train::DeviceKind device = train::DeviceKind::kAuto;
  train::Precision precision = train::Precision::kFp32;
  std::string tta;  ///< --tta: empty keeps the model's
  bool json = false;
  bool no_download = false;
  std::string image_folder;
  FolderFlags folder;
};

void run_eval(const EvalOptions& o) {
  const auto split = data::parse_split(o.split);
  auto ck = train::load_checkpoint(o.checkpoint);
  if (!o.tta.empty()) ck.config.tta = train::parse_tta(o.tta);
  const auto device = train::resolve_device(o.device);
  data::ImageSet set = [&] {
    if (o.image_folder.empty()) return load_split(o.data_dir, split, !o.no_download, ck.config.classes);
    // The images are brought to the model's size the way its training images were.
    auto options = folder_options(o.folder);
    const auto& shape = ck.config.spec.image_shape;
    BIRDPLANE_CHECK(shape.size() == 3, "{}: the model takes inputs of shape [{}], not images; it cannot be "
                    "evaluated on an image folder", o.checkpoint, fmt::join(shape, ","));
    options.image_size = {shape[1], shape[2]};
    options.crop = ck.config.crop;
    options.classes = ck.config.classes;
    return read_folder_with_progress(o.image_folder, options);
  }();
  const std::string where = o.image_folder.empty() ? fmt::format("the {} split", o.split) : o.image_folder;
  ck.model->to(device);
  auto r = train::evaluate(*ck.model, set, ck.config, device, 1000, o.precision);
  if (o.json) {
    auto j = r.confusion.to_json(ck.config.classes);
    j["checkpoint"] = o.checkpoint;
    if (o.image_folder.empty()) {
      j["split"] = o.split;
    } else {
      j["image_folder"] = o.image_folder;
    }
    j["loss"] = r.loss;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{} on {} ({} images, {}): accuracy {:.4f}, loss {:.4f}\n\n",
                           o.checkpoint, where, r.confusion.total(), ck.config.spec.name,
                           r.confusion.accuracy(), r.loss);
  std::cout << r.confusion.format(ck.config.classes);
}

}  // namespace

void setup_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a saved model: accuracy, per-class precision and recall, "
                                         "confusion matrix");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/model.pt or checkpoint.pt")->required();
  add_data_dir(*cmd, o->data_dir);
  cmd->add_option("--split", o->split, "train or test (CIFAR-10)")->capture_default_str();
  cmd->add_option("--image-folder", o->image_folder,
                  "Evaluate on an image folder (one subfolder per class, as the model's classes) instead of "
                  "CIFAR-10; images are brought to the model's size as in training");
  add_folder_flags(*cmd, o->folder, /*with_size=*/false);
  cmd->add_option("--device", o->device, "auto, cpu or cuda")
      ->transform(choices(train::kDeviceKinds))
      ->default_str(train::to_string(o->device));
  cmd->add_option("--tta", o->tta,
                  "Test-time augmentation: none, flip or flip-shift (default: what the model was trained with)");
  cmd->add_option("--precision", o->precision, "fp32, or bf16 (matmuls in bfloat16)")
      ->transform(choices(train::kPrecisions))
      ->default_str(train::to_string(o->precision));
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace birdplane::cli
