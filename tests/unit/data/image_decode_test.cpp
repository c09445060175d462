// The image decoders against PIL: tools/write_test_images.py writes every format and variant with
// Debian's PIL 9.4 (or crafts the bytes where PIL cannot write the variant) together with PIL's
// Image.open(f).convert("RGB") pixels, and every file must decode to exactly those bytes. Then the
// bad inputs: truncated and damaged copies, random bytes after each signature, headers declaring
// enormous sizes, and files that are not images or not regular files.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "birdplane/check.h"
#include "birdplane/data/image_decode.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

using namespace std::string_literals;
using birdplane::Error;
using birdplane::data::decode_image;
using birdplane::data::DecodedImage;
using birdplane::data::ImageFormat;
using birdplane::data::kDefaultMaxPixels;
using birdplane::data::read_image_header;
using birdplane::fixtures::expect_error;
using birdplane::fixtures::TempDir;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

Bytes read_bytes(const std::string& path) { return bytes_of(birdplane::fixtures::read_file(path)); }

DecodedImage decode(const Bytes& bytes, const std::string& name, int64_t max_pixels = kDefaultMaxPixels) {
  return decode_image(bytes.data(), bytes.size(), name, max_pixels);
}

// Decodes, and says whether it worked; anything but birdplane::Error escapes (and fails the test).
bool decodes(const Bytes& bytes, const std::string& name) {
  try {
    decode(bytes, name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool header_reads(const Bytes& bytes, const std::string& name) {
  try {
    read_image_header(bytes.data(), bytes.size(), name);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// One case from tools/write_test_images.py's manifest.
struct Case {
  std::string file;
  std::string format;
  int width = 0, height = 0, channels = 0;
};

// A damaged copy and PIL's verdict on it.
struct Mutant {
  std::string file;
  bool pil_reads = false;
  int width = 0, height = 0;
};

// The PIL-written images, made once per test process in a temporary folder.
struct PilImages {
  TempDir dir;
  std::vector<Case> cases;
  std::vector<Mutant> mutants;
  std::string problem;  // why they could not be written (the tests fail with it)

  PilImages() {
    const std::string script = std::string(BIRDPLANE_SOURCE_DIR) + "/tools/write_test_images.py";
    // Debian's python3 with python3-pil, never a python3 on PATH (a virtual environment lacks PIL).
    const auto run = birdplane::fixtures::run_shell("/usr/bin/python3 " + script + " " + dir.path());
    if (run.exit_code != 0) {
      problem = "tools/write_test_images.py failed (exit " + std::to_string(run.exit_code) + "): " + run.err +
                "\nIt needs Debian's /usr/bin/python3 with python3-pil (Pillow 9.4); scripts/setup installs both.";
      return;
    }
    std::istringstream manifest(birdplane::fixtures::read_file(dir / "manifest.txt"));
    Case c;
    while (manifest >> c.file >> c.format >> c.width >> c.height >> c.channels) cases.push_back(c);
    if (cases.size() < 100) problem = "the manifest lists only " + std::to_string(cases.size()) + " images";
    std::istringstream damaged(birdplane::fixtures::read_file(dir / "damaged.txt"));
    Mutant m;
    std::string verdict;
    while (damaged >> m.file >> verdict >> m.width >> m.height) {
      m.pil_reads = verdict == "ok";
      mutants.push_back(m);
    }
    if (mutants.size() < 1000) problem = "damaged.txt lists only " + std::to_string(mutants.size()) + " files";
  }
};

const PilImages& pil_images() {
  static PilImages images;
  return images;
}

#define REQUIRE_PIL_IMAGES(images)                     \
  const PilImages& images = pil_images();              \
  ASSERT_TRUE(images.problem.empty()) << images.problem

// zlib's CRC-32, for crafting PNG chunks.
uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}
void put_le16(Bytes& b, uint32_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void put_le32(Bytes& b, uint32_t v) {
  put_le16(b, v & 0xFFFF);
  put_le16(b, v >> 16);
}
void append(Bytes& b, const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }

void png_chunk(Bytes& b, const std::string& type, const Bytes& data) {
  put_be32(b, static_cast<uint32_t>(data.size()));
  const size_t start = b.size();
  append(b, type);
  b.insert(b.end(), data.begin(), data.end());
  put_be32(b, crc32(b.data() + start, b.size() - start));
}

Bytes png_header_only(uint32_t width, uint32_t height, uint8_t depth = 8, uint8_t color = 2) {
  Bytes b;
  append(b, "\x89PNG\r\n\x1A\n");
  Bytes ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {depth, color, 0, 0, 0});
  png_chunk(b, "IHDR", ihdr);
  return b;
}

// A 40-byte-header BMP with no pixel data (enough for the header checks).
Bytes bmp_header(int32_t width, int32_t height, uint16_t bits, uint32_t compression = 0, uint32_t colors = 0) {
  Bytes b;
  append(b, "BM");
  put_le32(b, 54);
  put_le32(b, 0);
  put_le32(b, 54);
  put_le32(b, 40);
  put_le32(b, static_cast<uint32_t>(width));
  put_le32(b, static_cast<uint32_t>(height));
  put_le16(b, 1);
  put_le16(b, bits);
  put_le32(b, compression);
  for (int i = 0; i < 3; ++i) put_le32(b, 0);
  put_le32(b, colors);
  put_le32(b, 0);
  return b;
}

Bytes gif_header(uint16_t screen_w, uint16_t screen_h, uint16_t left, uint16_t top, uint16_t w, uint16_t h) {
  Bytes b;
  append(b, "GIF89a");
  put_le16(b, screen_w);
  put_le16(b, screen_h);
  b.insert(b.end(), {0, 0, 0, ','});
  put_le16(b, left);
  put_le16(b, top);
  put_le16(b, w);
  put_le16(b, h);
  b.insert(b.end(), {0, 8, 0, ';'});
  return b;
}

// RIFF/WEBP around one chunk.
Bytes webp_file(const std::string& fourcc, const Bytes& payload) {
  Bytes b;
  append(b, "RIFF");
  put_le32(b, static_cast<uint32_t>(4 + 8 + payload.size() + (payload.size() & 1)));
  append(b, "WEBP");
  append(b, fourcc);
  put_le32(b, static_cast<uint32_t>(payload.size()));
  b.insert(b.end(), payload.begin(), payload.end());
  if (payload.size() & 1) b.push_back(0);
  return b;
}

}  // namespace

TEST(ImageDecode, EveryFormatAndVariantMatchesPilPixelForPixel) {
  REQUIRE_PIL_IMAGES(images);
  std::map<std::string, int> per_format;
  for (const Case& c : images.cases) {
    SCOPED_TRACE(c.file);
    const std::string path = images.dir / c.file;
    const Bytes file = read_bytes(path);
    const Bytes want = read_bytes(path + ".rgb");
    DecodedImage got;
    try {
      got = decode(file, c.file);
    } catch (const Error& e) {
      ADD_FAILURE() << c.file << ": PIL reads it, birdplane throws: " << e.what();
      continue;
    }
    ++per_format[c.format];
    EXPECT_EQ(birdplane::data::to_string(got.format), c.format);
    EXPECT_EQ(got.channels_in_file, c.channels);
    ASSERT_EQ(got.width, c.width);
    ASSERT_EQ(got.height, c.height);
    ASSERT_EQ(want.size(), static_cast<size_t>(c.width) * c.height * 3) << "PIL's .rgb file has another size";
    ASSERT_EQ(got.pixels.size(), want.size());
    size_t differ = 0;
    size_t first = want.size();
    for (size_t i = 0; i < want.size(); i += 3)
      if (got.pixels[i] != want[i] || got.pixels[i + 1] != want[i + 1] || got.pixels[i + 2] != want[i + 2]) {
        if (first == want.size()) first = i;
        ++differ;
      }
    if (differ) {
      const size_t px = first / 3;
      ADD_FAILURE() << c.file << ": " << differ << " of " << want.size() / 3 << " pixels differ from PIL; first at x="
                    << px % c.width << " y=" << px / c.width << ": birdplane (" << int(got.pixels[first]) << ", "
                    << int(got.pixels[first + 1]) << ", " << int(got.pixels[first + 2]) << "), PIL ("
                    << int(want[first]) << ", " << int(want[first + 1]) << ", " << int(want[first + 2]) << ")";
    }
    // The header alone gives the same size, and decode_image_file the same pixels.
    const auto header = read_image_header(file.data(), file.size(), c.file);
    EXPECT_EQ(header.width, c.width);
    EXPECT_EQ(header.height, c.height);
    EXPECT_EQ(header.format, got.format);
    EXPECT_TRUE(birdplane::data::decode_image_file(path).pixels == got.pixels);
  }
  for (const char* format : {"JPEG", "PNG", "WebP", "GIF", "BMP", "PNM"})
    EXPECT_GE(per_format[format], 5) << "too few " << format << " cases decoded";
}

TEST(ImageDecode, PixelLimitIsCheckedOnTheDeclaredSize) {
  REQUIRE_PIL_IMAGES(images);
  for (const Case& c : images.cases) {
    SCOPED_TRACE(c.file);
    const Bytes file = read_bytes(images.dir / c.file);
    const int64_t pixels = int64_t{c.width} * c.height;
    EXPECT_NO_THROW(decode(file, c.file, pixels));  // exactly at the limit
    if (pixels < 2) continue;
    const std::string size = std::to_string(c.width) + "x" + std::to_string(c.height);
    const std::string limit = "above the limit of " + std::to_string(pixels - 1);
    expect_error([&] { decode(file, c.file, pixels - 1); }, {c.file, size, limit});
    expect_error([&] { read_image_header(file.data(), file.size(), c.file, pixels - 1); }, {c.file, size, limit});
  }
  const Bytes png = read_bytes(images.dir / "png_rgb.png");
  expect_error([&] { decode(png, "a.png", 0); }, {"max_pixels", "at least 1"});
}

TEST(ImageDecode, TruncatedFilesAreErrors) {
  REQUIRE_PIL_IMAGES(images);
  for (const Case& c : images.cases) {
    SCOPED_TRACE(c.file);
    const Bytes file = read_bytes(images.dir / c.file);
    // The header only, and a third of the file (within the first frame of the animated files).
    for (size_t cut : {size_t{16}, file.size() / 3}) {
      const Bytes part(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(cut));
      expect_error([&] { decode(part, c.file); }, {"cannot read image " + c.file, "truncated", c.format});
    }
    // Every cut: an error or (past the pixels, e.g. a GIF without its trailer) the same image. Plain
    // PGM/PPM cannot tell a number cut short ("12" of "123"), in PIL or here: only no crash there.
    const bool plain_numbers = file[0] == 'P' && (file[1] == '2' || file[1] == '3');
    const DecodedImage whole = decode(file, c.file);
    const size_t step = std::max<size_t>(1, file.size() / 151);
    for (size_t cut = 0; cut < file.size(); cut += step) {
      const Bytes part(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(cut));
      try {
        const DecodedImage got = decode(part, c.file);
        if (!plain_numbers) {
          EXPECT_TRUE(got.pixels == whole.pixels) << "cut at " << cut << " decodes to other pixels";
        }
      } catch (const Error&) {
      }
      header_reads(part, c.file);
    }
  }
}

TEST(ImageDecode, DamagedFilesNeverCrash) {
  REQUIRE_PIL_IMAGES(images);
  std::mt19937 rng(7);
  int decoded = 0, refused = 0;
  for (const Case& c : images.cases) {
    const Bytes file = read_bytes(images.dir / c.file);
    for (int round = 0; round < 60; ++round) {
      Bytes damaged = file;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < flips; ++i) {
        const size_t at = 8 + rng() % (damaged.size() - 8);  // keep the signature
        const uint8_t flip = static_cast<uint8_t>(1u << (rng() % 8));
        damaged[at] = (round % 3 == 0) ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(damaged[at] ^ flip);
      }
      (decodes(damaged, c.file) ? decoded : refused)++;
      header_reads(damaged, c.file);
    }
  }
  std::cout << "randomly flipped copies: " << decoded << " decoded, " << refused << " refused with an error\n";
  EXPECT_GT(refused, 0);
}

TEST(ImageDecode, DamagedCopiesGivePilsPixelsOrAnError) {
  REQUIRE_PIL_IMAGES(images);
  // tools/write_test_images.py lets PIL refuse above 2 * 2^19 pixels (its decompression-bomb rule).
  const int64_t limit = int64_t{1} << 20;
  int same = 0, both_refuse = 0, only_pil = 0, only_birdplane = 0;
  for (const Mutant& m : images.mutants) {
    const Bytes file = read_bytes(images.dir / m.file);
    DecodedImage got;
    try {
      got = decode(file, m.file, limit);
    } catch (const Error&) {
      (m.pil_reads ? only_pil : both_refuse)++;
      continue;
    }
    if (!m.pil_reads) {
      ++only_birdplane;
      continue;
    }
    EXPECT_EQ(got.width, m.width) << m.file;
    EXPECT_EQ(got.height, m.height) << m.file;
    EXPECT_TRUE(got.pixels == read_bytes(images.dir / (m.file + ".rgb"))) << m.file << ": PIL reads other pixels";
    ++same;
  }
  // Refusing what PIL reads is allowed (birdplane is stricter: checksums, truncation, junk between
  // GIF blocks); reading what PIL refuses should stay rare (PIL checks the rest of a plain PBM block).
  std::cout << images.mutants.size() << " damaged copies: " << same << " read as PIL reads them, " << both_refuse
            << " refused by both, " << only_pil << " read only by PIL, " << only_birdplane
            << " read only by birdplane\n";
  EXPECT_GT(same, 300);
  EXPECT_LE(only_birdplane, static_cast<int>(images.mutants.size() / 100));
}

TEST(ImageDecode, RandomBytesAfterEachSignatureNeverCrash) {
  const std::vector<std::string> signatures = {
      "\xFF\xD8\xFF"s, "\xFF\xD8\xFF\xE0"s, "\xFF\xD8\xFF\xC0\x00\x11\x08"s, "\x89PNG\r\n\x1A\n"s,
      "\x89PNG\r\n\x1A\n\x00\x00\x00\x0DIHDR"s, "RIFF\xFF\x00\x00\x00WEBPVP8 "s,
      "RIFF\xFF\x00\x00\x00WEBPVP8L"s, "RIFF\xFF\x00\x00\x00WEBPVP8X"s, "GIF89a"s, "GIF87a"s, "BM"s,
      "BM\x00\x01\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00"s, "P1\n"s, "P2\n"s,
      "P3\n"s, "P4\n"s, "P5\n"s, "P6\n"s, "P6\n3 2\n255\n"s, "P2 2 2 65535\n"s};
  std::mt19937 rng(20240607);
  for (const std::string& sig : signatures) {
    for (int i = 0; i < 300; ++i) {
      Bytes b = bytes_of(sig);
      const size_t extra = rng() % 400;
      for (size_t k = 0; k < extra; ++k) b.push_back(static_cast<uint8_t>(rng()));
      decodes(b, "random.bin");
      header_reads(b, "random.bin");
    }
  }
  // Short inputs at the edges of the hand-written readers: a comment running into the end of a
  // PNM header, an OS/2 BMP header and nothing more.
  for (const std::string& f : {"P2 1 1 1\n#"s, "P1\n1 1\n#"s, "P6 1 1 255 "s,
                               "BM\0\0\0\0\0\0\0\0\0\0\0\0\x0c\0\0\0\x01\0\x01\0\x01\0\x08\0"s}) {
    EXPECT_FALSE(decodes(bytes_of(f), "edge.bin")) << f;
    header_reads(bytes_of(f), "edge.bin");
  }
}

TEST(ImageDecode, EnormousDeclaredSizesAreRefusedBeforeAllocating) {
  // Little-endian VP8L header: signature 0x2F, then 14-bit width-1 and height-1, alpha, version.
  auto vp8l = [](uint32_t w, uint32_t h) {
    const uint32_t bits = (w - 1) | ((h - 1) << 14);
    Bytes p = {0x2F};
    put_le32(p, bits);
    p.insert(p.end(), 16, 0);
    return p;
  };
  // VP8X with the animation flag: libwebp reports the canvas without looking further.
  auto vp8x = [](uint32_t w, uint32_t h) {
    Bytes p = {0x02, 0, 0, 0};
    for (uint32_t v : {w - 1, h - 1})
      for (int s = 0; s < 24; s += 8) p.push_back(static_cast<uint8_t>(v >> s));
    return p;
  };
  // VP8 key frame: tag (show, partition length 1), start code, 14-bit width and height.
  auto vp8 = [](uint32_t w, uint32_t h) {
    Bytes p = {0x30, 0x00, 0x00, 0x9D, 0x01, 0x2A};
    put_le16(p, w);
    put_le16(p, h);
    p.insert(p.end(), 20, 0);
    return p;
  };
  Bytes jpeg = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03, 0x01, 0x22, 0x00,
                0x02, 0x11, 0x00, 0x03, 0x11, 0x00, 0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11,
                0x03, 0x11, 0x00, 0x3F, 0x00, 0x00, 0x00, 0xFF, 0xD9};  // 60000x60000
  const std::vector<std::tuple<std::string, Bytes, std::string>> cases = {
      {"huge.png", png_header_only(100000, 100000), "100000x100000"},
      {"huge16.png", png_header_only(0x7FFFFFFF, 0x7FFFFFFF, 16, 0), "2147483647x2147483647"},
      {"huge.jpg", jpeg, "60000x60000"},
      {"huge.bmp", bmp_header(100000, 100000, 24), "100000x100000"},
      {"huge_top_down.bmp", bmp_header(100000, -100000, 24), "100000x100000"},
      {"huge_width.bmp", bmp_header(-1, 1, 24), "4294967295x1"},
      {"huge.ppm", bytes_of("P6\n100000 100000\n255\n"), "100000x100000"},
      {"huge.pbm", bytes_of("P4 9999999999 9999999999 "), "9999999999x9999999999"},
      {"huge.gif", gif_header(65535, 65535, 0, 0, 65535, 65535), "65535x65535"},
      {"frame_far_out.gif", gif_header(10, 10, 60000, 60000, 100, 100), "60100x60100"},
      {"huge_lossless.webp", webp_file("VP8L", vp8l(16384, 16384)), "16384x16384"},
      {"huge_animated.webp", webp_file("VP8X", vp8x(16384, 16384)), "16384x16384"},
      {"huge_lossy.webp", webp_file("VP8 ", vp8(16383, 16383)), "16383x16383"},
  };
  for (const auto& c : cases) {
    // Plain references, not structured bindings: C++17 lambdas cannot capture those.
    const std::string& name = std::get<0>(c);
    const Bytes& bytes = std::get<1>(c);
    const std::string& size = std::get<2>(c);
    SCOPED_TRACE(name);
    const auto start = std::chrono::steady_clock::now();
    expect_error([&] { decode(bytes, name); }, {name, size, "above the limit of 89478485"});
    expect_error([&] { read_image_header(bytes.data(), bytes.size(), name); }, {name, size, "above the limit"});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 1.0) << "refusing a header should not decode or allocate anything";
  }
}

TEST(ImageDecode, EmptySizesAreRefused) {
  expect_error([&] { decode(png_header_only(0, 10), "z.png"); }, {"z.png", "empty image of 0x10"});
  expect_error([&] { decode(bmp_header(5, 0, 24), "z.bmp"); }, {"z.bmp", "empty image of 5x0"});
  expect_error([&] { decode(bytes_of("P5\n0 3\n255\n"), "z.pgm"); }, {"z.pgm", "empty image of 0x3"});
  expect_error([&] { decode(gif_header(0, 0, 0, 0, 0, 0), "z.gif"); }, {"z.gif", "first frame is empty"});
}

TEST(ImageDecode, NotAnImageNamesTheFileAndTheFormatsExpected) {
  TempDir tmp;
  birdplane::fixtures::write_text(tmp / "x.jpg", "just some text, not a picture\n");
  birdplane::fixtures::write_text(tmp / "empty.png", "");
  const std::string expected = "(JPEG, PNG, WebP, GIF, BMP, PPM/PGM/PBM expected)";
  expect_error([&] { birdplane::data::decode_image_file(tmp / "x.jpg"); },
               {"cannot read image " + (tmp / "x.jpg"), "not an image birdplane can read", expected});
  expect_error([&] { birdplane::data::decode_image_file(tmp / "empty.png"); }, {"empty.png", "the file is empty"});
  expect_error([&] { decode(bytes_of("\x89PN"), "short.png"); }, {"short.png", "not an image"});
  expect_error([&] { decode(Bytes{}, "none"); }, {"none", "empty"});
  expect_error([&] { read_image_header(nullptr, 0, "null"); }, {"null", "empty"});
}

TEST(ImageDecode, SniffsSignaturesNotExtensions) {
  using F = ImageFormat;
  auto sniff = [](const std::string& s) {
    return birdplane::data::sniff_image_format(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(sniff("\xFF\xD8\xFF\xE0"), F::kJpeg);
  EXPECT_EQ(sniff("\x89PNG\r\n\x1A\n"), F::kPng);
  EXPECT_EQ(sniff("RIFF\x10\x00\x00\x00WEBPVP8 "s), F::kWebp);
  EXPECT_EQ(sniff("GIF87a"), F::kGif);
  EXPECT_EQ(sniff("GIF89a"), F::kGif);
  EXPECT_EQ(sniff("BM"), F::kBmp);
  for (char k = '1'; k <= '6'; ++k) EXPECT_EQ(sniff(std::string("P") + k + "\n"), F::kPnm);
  // One byte short of each signature, and look-alikes.
  for (const std::string& s : {"\xFF\xD8"s, "\x89PNG\r\n\x1A"s, "RIFF\x10\x00\x00\x00WEB"s, "GIF89"s, "B"s, "P6"s,
                               "P7\n"s, "P6x"s, "RIFF\x10\x00\x00\x00WAVE"s, "GIF90a"s, ""s})
    EXPECT_EQ(sniff(s), F::kUnknown) << s;
  EXPECT_EQ(birdplane::data::sniff_image_format(nullptr, 0), F::kUnknown);
  EXPECT_STREQ(birdplane::data::to_string(F::kWebp), "WebP");
  EXPECT_STREQ(birdplane::data::to_string(F::kPnm), "PNM");
  EXPECT_STREQ(birdplane::data::to_string(F::kUnknown), "unknown");
}

TEST(ImageDecode, DamagedJpegAndPngAreErrorsAsInPil) {
  REQUIRE_PIL_IMAGES(images);
  // JPEG: a missing end-of-image marker is a truncated file (PIL: "image file is truncated"); junk
  // after it is ignored, as PIL ignores it.
  const Bytes jpeg = read_bytes(images.dir / "jpeg_420.jpg");
  expect_error([&] { decode(Bytes(jpeg.begin(), jpeg.end() - 2), "a.jpg"); }, {"a.jpg", "truncated (JPEG)"});
  Bytes junk = jpeg;
  append(junk, "trailing junk");
  EXPECT_EQ(decode(junk, "a.jpg").pixels, decode(jpeg, "a.jpg").pixels);

  // PNG: checksum errors in any chunk (PIL checks them all), a missing IEND, a zlib stream that
  // ends before the last row (PIL pads it with black; birdplane refuses).
  const Bytes png = read_bytes(images.dir / "png_gamma_text.png");
  Bytes bad_crc = png;
  bad_crc[bad_crc.size() - 13] ^= 1;  // the last byte of the IDAT checksum
  expect_error([&] { decode(bad_crc, "b.png"); }, {"b.png", "damaged (PNG", "CRC"});
  Bytes bad_text = png;
  for (size_t i = 8; i + 8 < bad_text.size();) {  // find the tEXt chunk and spoil its checksum
    const uint32_t length = (uint32_t{bad_text[i]} << 24) | (bad_text[i + 1] << 16) | (bad_text[i + 2] << 8) | bad_text[i + 3];
    if (std::string(bad_text.begin() + i + 4, bad_text.begin() + i + 8) == "tEXt") {
      bad_text[i + 8 + length + 3] ^= 1;
      break;
    }
    i += 12 + length;
  }
  expect_error([&] { decode(bad_text, "t.png"); }, {"t.png", "damaged (PNG", "CRC"});
  expect_error([&] { decode(Bytes(png.begin(), png.end() - 12), "c.png"); }, {"c.png", "truncated (PNG)"});
  Bytes short_stream = png_header_only(3, 4, 8, 0);
  // zlib.compress(b"\x00\x05\x06\x07"): the first of four rows.
  png_chunk(short_stream, "IDAT", {0x78, 0x9C, 0x63, 0x60, 0x65, 0x63, 0x07, 0x00, 0x00, 0x26, 0x00, 0x13});
  png_chunk(short_stream, "IEND", {});
  expect_error([&] { decode(short_stream, "s.png"); }, {"s.png", "damaged (PNG"});
}

TEST(ImageDecode, VariantsPilMisreadsOrCannotReadAreRefusedClearly) {
  auto with_palette = [](Bytes b, int colors, bool gray) {
    for (int i = 0; i < colors; ++i) {
      const uint8_t v = static_cast<uint8_t>(gray ? i : 100 + i);
      b.insert(b.end(), {v, v, static_cast<uint8_t>(gray ? v : 7), 0});
    }
    b.insert(b.end(), 64, 0);
    return b;
  };
  expect_error([&] { decode(bmp_header(4, 4, 2), "two.bmp"); }, {"two.bmp", "2 bits per pixel", "not supported"});
  expect_error([&] { decode(bmp_header(4, 4, 24, 4), "j.bmp"); }, {"j.bmp", "compression 4 (JPEG)", "convert"});
  expect_error([&] { decode(bmp_header(4, 4, 24, 1), "r.bmp"); }, {"r.bmp", "24-bit BMP compressed with RLE8"});
  Bytes swapped = bmp_header(4, 4, 32, 3);
  for (uint32_t mask : {0xFFu, 0xFF00u, 0xFF0000u}) put_le32(swapped, mask);  // RGB masks PIL does not know
  swapped.insert(swapped.end(), 64, 0);
  expect_error([&] { decode(swapped, "m.bmp"); }, {"m.bmp", "bitfield masks 0xff 0xff00 0xff0000 0x0"});
  expect_error([&] { decode(with_palette(bmp_header(4, 4, 4, 0, 16), 16, true), "g.bmp"); },
               {"g.bmp", "gray levels", "PIL 9.4 misreads"});
  expect_error([&] { decode(with_palette(bmp_header(4, 4, 8, 0, 300), 300, false), "p.bmp"); },
               {"p.bmp", "palette of 300 colours"});
  // LZW code size 1 (the format's minimum is 2): giflib and PIL read the codes differently, found
  // by comparing damaged copies with PIL.
  const Bytes code_size_1 = bytes_of(
      "GIF89a\x04\x00\x01\x00\x81\x00\x00\xDD\xFB\x3D\x7F\x77\x5A\xAF\x41\x90\x0C\xE1\xFE"
      "\x2C\x00\x00\x00\x00\x04\x00\x01\x00\x00\x01\x02\x4A\x31\x00\x3B"s);
  expect_error([&] { decode(code_size_1, "c.gif"); }, {"c.gif", "LZW code size 1 (2 to 8 expected)"});
  Bytes no_image;
  append(no_image, "GIF89a");
  no_image.insert(no_image.end(), {1, 0, 1, 0, 0, 0, 0, ';'});
  expect_error([&] { decode(no_image, "n.gif"); }, {"n.gif", "ends before its first image"});
  expect_error([&] { decode(bytes_of("P2\n2 1\n255\n3 256\n"), "v.pgm"); }, {"v.pgm", "above maxval 255"});
  expect_error([&] { decode(bytes_of("P1\n2 1\n0 2\n"), "b.pbm"); }, {"b.pbm", "0 or 1"});
  expect_error([&] { decode(bytes_of("P5\n2 1\n70000\n"), "m.pgm"); }, {"m.pgm", "maxval 70000"});
  expect_error([&] { decode(bytes_of("P5\n2x 1\n255\n"), "t.pgm"); }, {"t.pgm", "'2x', not a number"});
}

TEST(ReadFileBytes, NamesThePathAndTheProblem) {
  TempDir tmp;
  birdplane::fixtures::write_text(tmp / "a.bin", "12345");
  EXPECT_EQ(birdplane::data::read_file_bytes(tmp / "a.bin"), bytes_of("12345"));
  EXPECT_TRUE(birdplane::data::read_file_bytes(tmp / "a.bin", 5).size() == 5);
  expect_error([&] { birdplane::data::read_file_bytes(tmp / "a.bin", 4); },
               {tmp / "a.bin", "5 bytes, above the limit of 4 bytes"});
  expect_error([&] { birdplane::data::read_file_bytes(tmp / "missing.png"); }, {"missing.png", "does not exist"});
  expect_error([&] { birdplane::data::read_file_bytes(tmp / "a.bin/inside.png"); }, {"inside.png", "does not exist"});
  expect_error([&] { birdplane::data::read_file_bytes(tmp.path()); }, {tmp.path(), "is a folder"});
  ASSERT_EQ(::mkfifo((tmp / "fifo.png").c_str(), 0600), 0);
  // Opening a FIFO must not wait for a writer: refused at once as not a regular file.
  expect_error([&] { birdplane::data::decode_image_file(tmp / "fifo.png"); },
               {"cannot read image", "fifo.png", "not a regular file"});
  expect_error([&] { birdplane::data::read_file_bytes("/dev/null"); }, {"/dev/null", "not a regular file"});
  expect_error([&] { birdplane::data::decode_image_file(tmp / "missing.png"); },
               {"cannot read image", "missing.png", "does not exist"});
}

TEST(ReadFileBytes, UnreadableFileIsAPermissionError) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "running as root: root reads any file, so a permission error cannot be provoked here "
                    "(not tested in this run)";
  }
  TempDir tmp;
  birdplane::fixtures::write_text(tmp / "locked.png", "x");
  ASSERT_EQ(::chmod((tmp / "locked.png").c_str(), 0), 0);
  expect_error([&] { birdplane::data::read_file_bytes(tmp / "locked.png"); }, {"locked.png", "permission denied"});
}
