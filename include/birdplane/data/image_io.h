// Images in and out: PNG writing (the role of torchvision's ToPILImage + save), reading JPEG, PNG,
// WebP, GIF, BMP and PPM/PGM/PBM (image_decode.h), resizing that matches torchvision's Resize on
// tensors, and labelled grids of images, the C++ side of the book's plt.imshow(img.permute(1, 2, 0)).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "birdplane/data/image_decode.h"

namespace birdplane::data {

/// Writes `image` as a PNG. Accepts uint8 [3,H,W] or [1,H,W] (CHW, like a CIFAR image), or a
/// float/double [3,H,W] or [1,H,W] in [0,1], converted with round(x * 255) clamped to 0..255 (NaN
/// writes 0). The file is written to a temporary name in the same folder and renamed over `path`,
/// so an existing file is either replaced whole or left untouched. Throws birdplane::Error naming
/// the path when its folder is missing or not writable, or when the tensor has another shape/dtype.
void write_png(const std::string& path, const at::Tensor& image);

/// An image read from disk, always converted to RGB.
struct LoadedImage {
  at::Tensor image;               ///< uint8 [3,H,W] RGB, CHW
  int original_width = 0;         ///< width in the file
  int original_height = 0;        ///< height in the file
  int original_channels = 0;      ///< channels in the file: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
                                  ///< (a palette: 3, or 4 with transparency; a CMYK JPEG: 4)
};

/// Reads an image file (JPEG, PNG, WebP, GIF, BMP, PPM/PGM/PBM; see image_decode.h) as uint8 [3,H,W]
/// RGB, the pixels of PIL's Image.open(path).convert("RGB"). Throws birdplane::Error naming the file
/// and the reason when it is missing, unreadable, damaged, not an image, or declares more than
/// `max_pixels` pixels.
LoadedImage read_image(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);

/// Resizes uint8 [C,H,W] to uint8 [C,height,width] with bilinear interpolation, half-pixel centres
/// (align_corners=false) and antialiasing: bit for bit torchvision.transforms.functional.resize(img,
/// [height, width], InterpolationMode.BILINEAR, antialias=True) on a uint8 tensor (torchvision 0.14,
/// torch 1.13), i.e. interpolate in float32, then round half to even and cast. When enlarging,
/// antialiasing changes nothing but float rounding, so this also equals antialias=False within one
/// level. Throws birdplane::Error for other shapes/dtypes or a size below 1.
at::Tensor resize_bilinear(const at::Tensor& image_u8, int height, int width);

/// How an image of another aspect ratio is brought to a target size: kNone resizes it to exactly
/// height x width (torchvision Resize((h, w)), stretching); kCenter scales it, keeping its aspect
/// ratio, until it covers height x width and cuts the centre out (torchvision Resize + CenterCrop).
enum class CropMode { kNone, kCenter };
inline constexpr CropMode kCropModes[] = {CropMode::kNone, CropMode::kCenter};
/// "none" or "center".
std::string to_string(CropMode mode);
/// Reads "none" or "center" (any case); anything else is a SettingError for "crop".
CropMode parse_crop_mode(const std::string& text);

/// Brings uint8 [C,H,W] to uint8 [C,height,width] with resize_bilinear (antialiased, torchvision's
/// Resize on tensors). kNone: one resize to height x width. kCenter: a resize that keeps the aspect
/// ratio so that the image covers the target (the side that fits exactly gets the target's length,
/// the other floor(length * scale), as torchvision's Resize(int) computes it), then torchvision's
/// CenterCrop offsets (round((h - height) / 2)). For a square target this is exactly
/// CenterCrop(s)(Resize(s, antialias=True)(img)). An image already of the target size is returned as
/// a copy, untouched.
at::Tensor fit_image(const at::Tensor& image_u8, int64_t height, int64_t width, CropMode crop);

/// Integer nearest-neighbour enlargement of [C,H,W] (any dtype): each pixel becomes a
/// factor x factor block, so [C,H,W] -> [C,H*factor,W*factor]. factor must be at least 1.
at::Tensor upscale_nearest(const at::Tensor& image_u8, int factor);

/// Lays out uint8 images [N,3,H,W] in a rows x cols grid on a white background, row by row, each
/// scaled by `scale` (nearest neighbour) with captions[i] (e.g. the class name) centred under it in
/// dark text. Returns uint8 [3,GH,GW]. Layout, with s = grid_text_scale(scale):
///   caption band  = captions empty ? 0 : 2*s + text_height(s)
///   cell width    = max(W*scale, widest caption's text_width(s));  cell height = H*scale + band
///   GW = cols*cell_width + (cols+1)*padding;  GH = rows*cell_height + (rows+1)*padding
/// Cell (r, c) starts at (padding + c*(cell_width+padding), padding + r*(cell_height+padding)); the
/// image sits at its top, centred horizontally. N may be below rows*cols (the rest stays blank).
/// `captions` is empty or holds N strings. Throws birdplane::Error on bad shapes or counts.
at::Tensor make_grid(const at::Tensor& images_u8, int rows, int cols, int scale,
                     const std::vector<std::string>& captions, int padding);

/// The font scale make_grid uses for captions under images enlarged `scale` times: about a third
/// of the image scale, at least 1, so captions stay readable without dwarfing the images.
int grid_text_scale(int scale);

}  // namespace birdplane::data
