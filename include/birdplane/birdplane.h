// birdplane: train, check and use image classifiers from C++ on LibTorch, on CIFAR-10 or your own
// image folders. This umbrella header brings in the whole installed API (every public header; a test
// checks that none is missing); docs/api.md describes it.
#pragma once

#include "birdplane/check.h"
#include "birdplane/doctor.h"
#include "birdplane/path_error.h"
#include "birdplane/threads.h"
#include "birdplane/version.h"

#include "birdplane/deploy/onnx.h"
#include "birdplane/deploy/predictor.h"

#include "birdplane/data/batch_loader.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/data/data_spec.h"
#include "birdplane/data/download.h"
#include "birdplane/data/image_decode.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/data/image_io.h"
#include "birdplane/data/image_set.h"
#include "birdplane/data/stats.h"
#include "birdplane/data/training_data.h"

#include "birdplane/transforms/autoaugment.h"
#include "birdplane/transforms/batch.h"
#include "birdplane/transforms/color.h"
#include "birdplane/transforms/convert_erase_linear.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/interpolation.h"
#include "birdplane/transforms/random.h"
#include "birdplane/transforms/spec.h"
#include "birdplane/transforms/transforms.h"
#include "birdplane/transforms/warp.h"

#include "birdplane/nn/backbones.h"
#include "birdplane/nn/convnets.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/model.h"

#include "birdplane/train/average.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/distributed.h"
#include "birdplane/train/evaluate.h"
#include "birdplane/train/lr_find.h"
#include "birdplane/train/metrics.h"
#include "birdplane/train/metrics_csv.h"
#include "birdplane/train/mixing.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/run.h"
#include "birdplane/train/run_dir.h"
#include "birdplane/train/run_spec.h"
#include "birdplane/train/schedule.h"
#include "birdplane/train/settings.h"
#include "birdplane/train/step.h"
#include "birdplane/train/trainer.h"

#include "birdplane/experiments/chapter.h"

#include "birdplane/report/plot.h"
#include "birdplane/report/run_report.h"
