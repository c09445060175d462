#include "birdplane/data/data_spec.h"

#include <fmt/format.h>

#include "birdplane/check.h"
#include "common/json_fields.h"

namespace birdplane::data {

void DataSpec::validate() const {
  BIRDPLANE_CHECK_SETTING(limit_train >= 0, "limit_train", "{} is not allowed; expected 0 (all) or more",
                          limit_train);
  BIRDPLANE_CHECK_SETTING(limit_val >= 0, "limit_val", "{} is not allowed; expected 0 (all) or more", limit_val);
  BIRDPLANE_CHECK_SETTING(val_fraction == 0 || (val_fraction > 0 && val_fraction < 1), "val_fraction",
                          "{} is not allowed; expected a share above 0 and below 1, e.g. 0.2", val_fraction);
  BIRDPLANE_CHECK_SETTING(val_fraction == 0 || !image_folder.empty(), "val_fraction",
                          "applies to an image folder only (no image_folder is set)");
  BIRDPLANE_CHECK_SETTING(val_fraction == 0 || val_folder.empty(), "val_fraction",
                          "give either a validation folder or a fraction, not both");
  BIRDPLANE_CHECK_SETTING(val_folder.empty() || !image_folder.empty(), "val_folder",
                          "applies to an image folder only (no image_folder is set)");
  BIRDPLANE_CHECK_SETTING(image_size.empty() || (image_size.size() == 2 && image_size[0] >= 1 && image_size[1] >= 1),
                          "image_size", "expected a height and a width of 1 or more, got {}", fmt::join(image_size, ","));
  BIRDPLANE_CHECK_SETTING(max_pixels >= 1, "max_pixels", "{} is not allowed; expected 1 or more", max_pixels);
}

ImageFolderOptions DataSpec::folder_options() const {
  ImageFolderOptions o;
  o.classes = classes;
  o.image_size = image_size;
  o.crop = crop;
  o.max_pixels = max_pixels;
  o.skip_bad_images = skip_bad_images;
  o.cache_dir = cache_dir;
  o.use_cache = use_cache;
  return o;
}

void DataSpec::set_folder_options(const ImageFolderOptions& o) {
  image_size = o.image_size;
  crop = o.crop;
  max_pixels = o.max_pixels;
  skip_bad_images = o.skip_bad_images;
  cache_dir = o.cache_dir;
  use_cache = o.use_cache;
}

nlohmann::json DataSpec::to_json() const {
  return {{"data_dir", data_dir},   {"download", download},         {"image_folder", image_folder},
          {"val_folder", val_folder}, {"val_fraction", val_fraction}, {"image_size", image_size},
          {"crop", to_string(crop)}, {"max_pixels", max_pixels},     {"skip_bad_images", skip_bad_images},
          {"cache_dir", cache_dir},  {"use_cache", use_cache},       {"classes", classes},
          {"limit_train", limit_train}, {"limit_val", limit_val}};
}

DataSpec DataSpec::from_json(const nlohmann::json& j) {
  json_fields::require_whole(j, {"max_pixels", "limit_train", "limit_val", "image_size"});
  DataSpec d;
  d.data_dir = j.value("data_dir", d.data_dir);
  d.download = j.value("download", d.download);
  d.image_folder = j.value("image_folder", d.image_folder);
  d.val_folder = j.value("val_folder", d.val_folder);
  d.val_fraction = j.value("val_fraction", d.val_fraction);
  d.image_size = j.value("image_size", d.image_size);
  d.crop = parse_crop_mode(j.value("crop", to_string(d.crop)));
  d.max_pixels = j.value("max_pixels", d.max_pixels);
  d.skip_bad_images = j.value("skip_bad_images", d.skip_bad_images);
  d.cache_dir = j.value("cache_dir", d.cache_dir);
  d.use_cache = j.value("use_cache", d.use_cache);
  d.classes = j.value("classes", d.classes);
  d.limit_train = j.value("limit_train", d.limit_train);
  d.limit_val = j.value("limit_val", d.limit_val);
  return d;
}

}  // namespace birdplane::data
