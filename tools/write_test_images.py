#!/usr/bin/python3
"""Writes the images tests/unit/data/image_decode_test.cpp decodes, and what PIL makes of them.

    /usr/bin/python3 tools/write_test_images.py OUT_DIR

Run with Debian 12's python3 and python3-pil (Pillow 9.4; scripts/setup installs it). For every
case it writes the file (through PIL where PIL can write the variant, else crafted byte by byte
here) and NAME.rgb, the bytes of Image.open(NAME).convert("RGB").tobytes(); OUT_DIR/manifest.txt
lists one case a line: file name, format, width, height, and the channels birdplane reports
(channels_in_file). OUT_DIR/damaged/ then holds mutants of every file with PIL's verdict on each
(OUT_DIR/damaged.txt). The cases cover every variant the decoders read: JPEG (baseline, progressive,
4:2:0/4:2:2/4:4:4, gray, CMYK), PNG (every colour type and bit depth, tRNS, interlaced, APNG),
WebP (lossy, lossless, alpha, animated), GIF (PIL's own, and crafted frames: offset, past the
screen, local tables, transparency, interlace, indices past the palette), BMP (PIL's own, every
bitfield layout, 16-bit, top-down, OS/2, RLE8/RLE4, PIL's offset quirks) and PNM (P1-P6, maxval
other than 255, comments).
"""
import io
import os
import random
import struct
import sys
import warnings
import zlib

from PIL import Image

OUT = sys.argv[1]
MANIFEST = []
RNG = random.Random(20240607)
# PIL warns about palette transparency given as bytes when converting to RGB; the pixels are what count.
warnings.simplefilter("ignore")


def pattern(width, height, mode="RGB", noise=40):
    """A smooth gradient with some noise: JPEG keeps its detail, palettes get many colours."""
    im = Image.new("RGB", (width, height))
    im.putdata([((x * 255 // max(1, width - 1) + RNG.randrange(noise)) % 256,
                 (y * 255 // max(1, height - 1) + RNG.randrange(noise)) % 256,
                 ((x * y * 7) + RNG.randrange(noise)) % 256)
                for y in range(height) for x in range(width)])
    return im if mode == "RGB" else im.convert(mode)


def record(name, data, fmt, channels):
    """Writes the file and PIL's RGB pixels, and lists it in the manifest."""
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        width, height = rgb.size
        pixels = rgb.tobytes()
    with open(path + ".rgb", "wb") as f:
        f.write(pixels)
    MANIFEST.append(f"{name} {fmt} {width} {height} {channels}")


def save(im, fmt, **options):
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- JPEG
def jpegs():
    rgb = pattern(33, 17)
    record("jpeg_420.jpg", save(rgb, "JPEG", quality=90, subsampling=2), "JPEG", 3)
    record("jpeg_422.jpg", save(rgb, "JPEG", quality=90, subsampling=1), "JPEG", 3)
    record("jpeg_444.jpg", save(rgb, "JPEG", quality=95, subsampling=0), "JPEG", 3)
    record("jpeg_progressive.jpg", save(pattern(40, 31), "JPEG", quality=85, progressive=True), "JPEG", 3)
    record("jpeg_optimized_q50.jpg", save(pattern(64, 48), "JPEG", quality=50, optimize=True), "JPEG", 3)
    record("jpeg_gray.jpg", save(pattern(35, 21, "L"), "JPEG", quality=90), "JPEG", 1)
    record("jpeg_1x1.jpg", save(pattern(1, 1), "JPEG"), "JPEG", 3)
    # Damage libjpeg steps over with a warning, as PIL does: junk before a marker, and bytes of the
    # entropy-coded data flipped (never into 0xFF, which would make a marker).
    plain = bytearray(save(pattern(40, 32), "JPEG", quality=90))
    dqt = plain.index(b"\xff\xdb")
    record("jpeg_junk_before_marker.jpg", bytes(plain[:dqt] + b"\x00\x11\x22" + plain[dqt:]), "JPEG", 3)
    sos = plain.index(b"\xff\xda")
    start = sos + 2 + (plain[sos + 2] << 8 | plain[sos + 3])
    for k in range(start + 40, len(plain) - 10, 97):
        if plain[k] != 0xFF and plain[k - 1] != 0xFF and plain[k] ^ 0x5A != 0xFF:
            plain[k] ^= 0x5A
    record("jpeg_corrupt_scan.jpg", bytes(plain), "JPEG", 3)
    cmyk = Image.new("CMYK", (24, 16))
    cmyk.putdata([(x * 10, y * 15, 255 - x * 10, (x * y * 9) % 256) for y in range(16) for x in range(24)])
    record("jpeg_cmyk.jpg", save(cmyk, "JPEG", quality=95), "JPEG", 4)


# ---------------------------------------------------------------------------------------------- PNG
def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_pack_row(samples, depth):
    """Packs one row of samples (already flattened channels) at `depth` bits."""
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, nbits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        nbits += depth
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


def png_file(width, height, depth, color, pixels, chunks=b"", interlace=False):
    """A PNG written by hand. `pixels[y][x]` is a tuple of samples; filter 0 on every row."""
    raw = bytearray()
    if not interlace:
        for y in range(height):
            raw += b"\x00" + png_pack_row([s for x in range(width) for s in pixels[y][x]], depth)
    else:  # Adam7
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                               (1, 0, 2, 2), (0, 1, 1, 2)):
            xs, ys = range(x0, width, dx), range(y0, height, dy)
            if not xs or not ys:
                continue
            for y in ys:
                raw += b"\x00" + png_pack_row([s for x in xs for s in pixels[y][x]], depth)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + chunks +
            png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + png_chunk(b"IEND", b""))


def grid(width, height, channels, maximum):
    return [[tuple(RNG.randrange(maximum + 1) for _ in range(channels)) for _ in range(width)]
            for _ in range(height)]


def pngs():
    record("png_rgb.png", save(pattern(33, 17), "PNG"), "PNG", 3)
    rgba = pattern(21, 13).convert("RGBA")
    rgba.putalpha(Image.frombytes("L", (21, 13), bytes(RNG.randrange(256) for _ in range(21 * 13))))
    record("png_rgba.png", save(rgba, "PNG"), "PNG", 4)
    record("png_l.png", save(pattern(19, 11, "L"), "PNG"), "PNG", 1)
    record("png_la.png", save(pattern(19, 11, "LA"), "PNG"), "PNG", 2)
    record("png_1bit_pil.png", save(pattern(23, 9, "1"), "PNG"), "PNG", 1)
    p = pattern(25, 15).quantize(colors=37)
    record("png_p.png", save(p, "PNG"), "PNG", 3)
    record("png_p_trns.png", save(p, "PNG", transparency=3), "PNG", 4)
    record("png_p_4bit_pil.png", save(pattern(17, 9).quantize(colors=12), "PNG", bits=4), "PNG", 3)
    record("png_i16_pil.png", save(Image.frombytes("I;16", (9, 7), bytes(RNG.randrange(256) for _ in range(126))),
                                   "PNG"), "PNG", 1)
    # Crafted: every bit depth of gray, 16-bit colour, tRNS, palette indices past the palette.
    for depth in (1, 2, 4):
        record(f"png_gray_{depth}bit.png", png_file(13, 5, depth, 0, grid(13, 5, 1, (1 << depth) - 1)), "PNG", 1)
    gray16 = grid(11, 6, 1, 65535)
    gray16[0][:6] = [(0,), (1,), (200,), (254,), (255,), (256,)]  # PIL clips at 255
    record("png_gray_16bit.png", png_file(11, 6, 16, 0, gray16), "PNG", 1)
    record("png_gray_16bit_trns.png", png_file(11, 6, 16, 0, gray16, png_chunk(b"tRNS", struct.pack(">H", 200))),
           "PNG", 1)
    record("png_gray_trns.png", png_file(9, 4, 8, 0, grid(9, 4, 1, 255), png_chunk(b"tRNS", struct.pack(">H", 7))),
           "PNG", 1)
    record("png_rgb_16bit.png", png_file(10, 7, 16, 2, grid(10, 7, 3, 65535)), "PNG", 3)
    record("png_rgba_16bit.png", png_file(10, 7, 16, 6, grid(10, 7, 4, 65535)), "PNG", 4)
    record("png_la_16bit.png", png_file(10, 7, 16, 4, grid(10, 7, 2, 65535)), "PNG", 2)
    record("png_rgb_trns.png", png_file(8, 3, 8, 2, grid(8, 3, 3, 255), png_chunk(b"tRNS", struct.pack(">3H", 1, 2, 3))),
           "PNG", 3)
    palette = png_chunk(b"PLTE", bytes(RNG.randrange(256) for _ in range(5 * 3)))
    record("png_p_past_palette.png", png_file(16, 4, 8, 3, grid(16, 4, 1, 255), palette), "PNG", 3)
    for depth in (1, 2, 4):
        pal = png_chunk(b"PLTE", bytes(RNG.randrange(256) for _ in range(3 * (1 << depth))))
        trns = png_chunk(b"tRNS", bytes([0, 128]))
        record(f"png_p_{depth}bit.png", png_file(11, 5, depth, 3, grid(11, 5, 1, (1 << depth) - 1), pal + trns),
               "PNG", 4)
    # Ancillary chunks PIL ignores: gAMA, sRGB-less iCCP-free gamma, text.
    extra = png_chunk(b"gAMA", struct.pack(">I", 100000)) + png_chunk(b"tEXt", b"Comment\x00hello")
    record("png_gamma_text.png", png_file(6, 6, 8, 2, grid(6, 6, 3, 255), extra), "PNG", 3)
    # Interlaced (Adam7), including sizes smaller than the 8x8 pattern.
    record("png_interlaced_rgb.png", png_file(19, 13, 8, 2, grid(19, 13, 3, 255), interlace=True), "PNG", 3)
    record("png_interlaced_rgba16.png", png_file(9, 10, 16, 6, grid(9, 10, 4, 65535), interlace=True), "PNG", 4)
    pal = png_chunk(b"PLTE", bytes(RNG.randrange(256) for _ in range(16 * 3)))
    record("png_interlaced_p4.png", png_file(7, 5, 4, 3, grid(7, 5, 1, 15), pal, interlace=True), "PNG", 3)
    record("png_interlaced_gray2.png", png_file(3, 2, 2, 0, grid(3, 2, 1, 3), interlace=True), "PNG", 1)
    record("png_interlaced_1x1.png", png_file(1, 1, 8, 0, [[(77,)]], interlace=True), "PNG", 1)
    # An APNG: the first frame (the IDAT image) is what both read.
    frames = [pattern(12, 8), pattern(12, 8)]
    record("png_apng.png", save(frames[0], "PNG", save_all=True, append_images=frames[1:]), "PNG", 3)


# --------------------------------------------------------------------------------------------- WebP
def webps():
    record("webp_lossy.webp", save(pattern(33, 17), "WEBP", quality=80), "WebP", 3)
    record("webp_lossy_odd.webp", save(pattern(7, 5), "WEBP", quality=60), "WebP", 3)
    record("webp_lossless.webp", save(pattern(29, 15), "WEBP", lossless=True), "WebP", 3)
    rgba = pattern(21, 13).convert("RGBA")
    rgba.putalpha(Image.frombytes("L", (21, 13), bytes(RNG.choice((0, 1, 128, 255)) for _ in range(21 * 13))))
    record("webp_lossless_alpha.webp", save(rgba, "WEBP", lossless=True, exact=True), "WebP", 4)
    record("webp_lossy_alpha.webp", save(rgba, "WEBP", quality=75), "WebP", 4)
    frame1 = Image.new("RGBA", (16, 12), (0, 0, 0, 0))
    frame1.paste(pattern(8, 6).convert("RGBA"), (4, 3))
    frame2 = pattern(16, 12).convert("RGBA")
    record("webp_animated.webp", save(frame1, "WEBP", save_all=True, append_images=[frame2], lossless=True,
                                      duration=100), "WebP", 4)


# ---------------------------------------------------------------------------------------------- GIF
def gif_lzw(indices, min_code):
    """An LZW stream of literal codes only, with a clear code before the code width would grow."""
    clear, end, width = 1 << min_code, (1 << min_code) + 1, min_code + 1
    codes, run = [clear], 0
    for p in indices:
        if run == (1 << min_code) - 2:
            codes.append(clear)
            run = 0
        codes.append(p)
        run += 1
    codes.append(end)
    out, acc, nbits = bytearray(), 0, 0
    for c in codes:
        acc |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 255)
    blocks = bytearray([min_code])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks + b"\x00")


def gif_table_flags(table):
    bits = max(1, (len(table) // 3 - 1).bit_length())
    assert 3 << bits == len(table)
    return 0x80 | (bits - 1)


def gif_file(screen_w, screen_h, frames, global_table=None):
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", screen_w, screen_h, gif_table_flags(global_table) if global_table else 0, 0, 0)
    out += global_table or b""
    for f in frames:
        if f.get("trns") is not None:
            out += b"!\xf9\x04" + struct.pack("<BHB", 1, 0, f["trns"]) + b"\x00"
        table = f.get("table")
        flags = (gif_table_flags(table) if table else 0) | (0x40 if f.get("interlace") else 0)
        out += b"," + struct.pack("<HHHHB", f["x"], f["y"], f["w"], f["h"], flags) + (table or b"")
        idx = f["idx"]
        if f.get("interlace"):
            rows = [idx[r * f["w"]:(r + 1) * f["w"]] for r in range(f["h"])]
            order = [r for start, step in ((0, 8), (4, 8), (2, 4), (1, 2)) for r in range(start, f["h"], step)]
            idx = [p for r in order for p in rows[r]]
        out += gif_lzw(idx, f.get("code_size", 8))
    return bytes(out + b";")


def table(n):
    return bytes(RNG.randrange(256) for _ in range(3 * n))


def indices(n, below):
    return [RNG.randrange(below) for _ in range(n)]


def gifs():
    p = pattern(33, 17).quantize(colors=60)
    record("gif_pil.gif", save(p, "GIF"), "GIF", 3)
    record("gif_pil_trns.gif", save(p, "GIF", transparency=5), "GIF", 4)
    record("gif_pil_gray.gif", save(pattern(20, 10, "L"), "GIF"), "GIF", 3)  # PIL writes a sorted palette
    frames = [pattern(14, 9).quantize(colors=16), pattern(14, 9).quantize(colors=16)]
    record("gif_pil_animated.gif", save(frames[0], "GIF", save_all=True, append_images=frames[1:]), "GIF", 3)
    g = table(8)
    record("gif_offset_frame.gif", gif_file(9, 7, [dict(x=2, y=3, w=5, h=3, idx=indices(15, 8))], g), "GIF", 3)
    record("gif_offset_frame_trns.gif",
           gif_file(9, 7, [dict(x=2, y=1, w=4, h=4, idx=indices(16, 8), trns=6)], g), "GIF", 4)
    record("gif_past_screen.gif", gif_file(6, 4, [dict(x=3, y=2, w=5, h=4, idx=indices(20, 8))], g), "GIF", 3)
    record("gif_local_table.gif",
           gif_file(8, 5, [dict(x=0, y=0, w=8, h=5, idx=indices(40, 16), table=table(16))], g), "GIF", 3)
    record("gif_local_table_only.gif",
           gif_file(5, 3, [dict(x=0, y=0, w=5, h=3, idx=indices(15, 4), table=table(4), code_size=2)]), "GIF", 3)
    record("gif_no_table.gif", gif_file(7, 3, [dict(x=0, y=0, w=7, h=3, idx=indices(21, 256))]), "GIF", 1)
    record("gif_past_table.gif", gif_file(10, 4, [dict(x=0, y=0, w=10, h=4, idx=indices(40, 256))], table(4)),
           "GIF", 3)
    record("gif_trns_past_table.gif",
           gif_file(6, 4, [dict(x=1, y=1, w=2, h=2, idx=indices(4, 4), trns=77)], table(4)), "GIF", 4)
    record("gif_interlaced.gif",
           gif_file(5, 19, [dict(x=0, y=0, w=5, h=19, idx=indices(95, 32), interlace=True)], table(32)), "GIF", 3)
    record("gif_interlaced_offset.gif",
           gif_file(8, 12, [dict(x=1, y=2, w=6, h=9, idx=indices(54, 8), interlace=True, trns=2)], g), "GIF", 4)
    ramp = bytes(v for i in range(16) for v in (i, i, i))
    record("gif_gray_ramp_table.gif", gif_file(6, 2, [dict(x=0, y=0, w=6, h=2, idx=indices(12, 40))], ramp),
           "GIF", 1)
    record("gif_small_code_size.gif",
           gif_file(9, 3, [dict(x=0, y=0, w=9, h=3, idx=indices(27, 4), code_size=2)], table(4)), "GIF", 3)


# ---------------------------------------------------------------------------------------------- BMP
def bmp_file(width, height, bits, pixel_data, palette=b"", compression=0, masks=b"", header_size=40,
             colors=0, offset=None, flip=False):
    """A BMP written by hand: file header, an info header of `header_size` bytes, masks, palette."""
    h = -height if flip else height
    if header_size == 12:
        info = struct.pack("<IHHHH", 12, width, height, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", header_size, width, h, 1, bits, compression, len(pixel_data), 2835,
                           2835, colors, 0)
        if header_size > 40:
            info += masks.ljust(header_size - 40, b"\x00")[:header_size - 40]
            masks = b""
    body = info + masks + palette
    data_offset = 14 + len(body) if offset is None else offset
    return b"BM" + struct.pack("<IHHI", 14 + len(body) + len(pixel_data), 0, 0, data_offset) + body + pixel_data


def bmp_rows(width, height, bits, pack):
    """Pixel rows padded to 4 bytes; pack(x, y) gives the bytes (or bit value) of one pixel."""
    stride = ((width * bits + 31) >> 3) & ~3
    out = bytearray()
    for y in range(height):
        if bits >= 8:
            row = b"".join(pack(x, y) for x in range(width))
        else:
            row = png_pack_row([pack(x, y) for x in range(width)], bits)
        out += row.ljust(stride, b"\x00")
    return bytes(out)


def rand_bytes(n):
    return bytes(RNG.randrange(256) for _ in range(n))


def bgr0_palette(n):
    return b"".join(rand_bytes(3) + b"\x00" for _ in range(n))


def bmps():
    record("bmp_24_pil.bmp", save(pattern(33, 17), "BMP"), "BMP", 3)
    record("bmp_8_pil.bmp", save(pattern(21, 11).quantize(colors=50), "BMP"), "BMP", 3)
    record("bmp_l_pil.bmp", save(pattern(13, 7, "L"), "BMP"), "BMP", 1)
    record("bmp_1_pil.bmp", save(pattern(19, 5, "1"), "BMP"), "BMP", 1)
    rgba = pattern(9, 6).convert("RGBA")
    rgba.putalpha(77)
    record("bmp_32_pil.bmp", save(rgba, "BMP"), "BMP", 3)  # BI_RGB 32-bit: PIL ignores the 4th byte
    w, h = 11, 7
    record("bmp_16_555.bmp", bmp_file(w, h, 16, bmp_rows(w, h, 16, lambda x, y: rand_bytes(2))), "BMP", 3)
    m565 = struct.pack("<III", 0xF800, 0x7E0, 0x1F)
    record("bmp_16_565.bmp", bmp_file(w, h, 16, bmp_rows(w, h, 16, lambda x, y: rand_bytes(2)), compression=3,
                                      masks=m565), "BMP", 3)
    m555 = struct.pack("<III", 0x7C00, 0x3E0, 0x1F)
    record("bmp_16_555_bitfields_v4.bmp",
           bmp_file(w, h, 16, bmp_rows(w, h, 16, lambda x, y: rand_bytes(2)), compression=3, masks=m555,
                    header_size=108), "BMP", 3)
    record("bmp_24_bitfields.bmp", bmp_file(w, h, 24, bmp_rows(w, h, 24, lambda x, y: rand_bytes(3)), compression=3,
                                            masks=struct.pack("<III", 0xFF0000, 0xFF00, 0xFF)), "BMP", 3)
    layouts = {"bgrx": (0xFF0000, 0xFF00, 0xFF, 0), "xbgr": (0xFF000000, 0xFF0000, 0xFF00, 0),
               "abgr": (0xFF000000, 0xFF0000, 0xFF00, 0xFF), "rgba": (0xFF, 0xFF00, 0xFF0000, 0xFF000000),
               "bgra": (0xFF0000, 0xFF00, 0xFF, 0xFF000000), "zero": (0, 0, 0, 0)}
    for name, masks in layouts.items():
        channels = 4 if masks[3] or name == "zero" else 3
        for header in (108, 124):
            record(f"bmp_32_{name}_v{4 if header == 108 else 5}.bmp",
                   bmp_file(w, h, 32, bmp_rows(w, h, 32, lambda x, y: rand_bytes(4)), compression=3,
                            masks=struct.pack("<IIII", *masks), header_size=header), "BMP", channels)
    record("bmp_32_bitfields_40.bmp", bmp_file(w, h, 32, bmp_rows(w, h, 32, lambda x, y: rand_bytes(4)), compression=3,
                                               masks=struct.pack("<III", 0xFF0000, 0xFF00, 0xFF)), "BMP", 3)
    record("bmp_24_top_down.bmp", bmp_file(w, h, 24, bmp_rows(w, h, 24, lambda x, y: rand_bytes(3)), flip=True),
           "BMP", 3)
    record("bmp_8_top_down.bmp", bmp_file(w, h, 8, bmp_rows(w, h, 8, lambda x, y: rand_bytes(1)),
                                          bgr0_palette(256), flip=True), "BMP", 3)
    record("bmp_4.bmp", bmp_file(13, 5, 4, bmp_rows(13, 5, 4, lambda x, y: RNG.randrange(16)), bgr0_palette(16)),
           "BMP", 3)
    record("bmp_4_few_colours.bmp", bmp_file(13, 5, 4, bmp_rows(13, 5, 4, lambda x, y: RNG.randrange(16)),
                                             bgr0_palette(3), colors=3), "BMP", 3)
    record("bmp_1_colour.bmp", bmp_file(17, 3, 1, bmp_rows(17, 3, 1, lambda x, y: RNG.randrange(2)),
                                        bgr0_palette(2)), "BMP", 3)
    record("bmp_8_past_palette.bmp", bmp_file(w, h, 8, bmp_rows(w, h, 8, lambda x, y: rand_bytes(1)),
                                              bgr0_palette(5), colors=5), "BMP", 3)
    gray = b"".join(bytes([i, i, i, 0]) for i in range(100))
    record("bmp_8_gray_palette_100.bmp", bmp_file(w, h, 8, bmp_rows(w, h, 8, lambda x, y: rand_bytes(1)), gray,
                                                  colors=100), "BMP", 1)
    # OS/2 1.x: 12-byte header, 3-byte palette entries.
    os2_palette = rand_bytes(3 * 256)
    record("bmp_os2_8.bmp", bmp_file(w, h, 8, bmp_rows(w, h, 8, lambda x, y: rand_bytes(1)), os2_palette,
                                     header_size=12), "BMP", 3)
    record("bmp_os2_24.bmp", bmp_file(w, h, 24, bmp_rows(w, h, 24, lambda x, y: rand_bytes(3)), header_size=12),
           "BMP", 3)
    record("bmp_64_header.bmp", bmp_file(w, h, 24, bmp_rows(w, h, 24, lambda x, y: rand_bytes(3)), header_size=64),
           "BMP", 3)
    # PIL's offset quirks: bfOffBits right after the header (PIL skips a 4-byte palette), and 0.
    pal = bgr0_palette(256)
    px = bmp_rows(w, h, 8, lambda x, y: rand_bytes(1))
    record("bmp_offset_after_header.bmp", bmp_file(w, h, 8, px, pal, offset=54), "BMP", 3)
    record("bmp_offset_zero.bmp", bmp_file(w, h, 8, px, pal, offset=0), "BMP", 3)
    record("bmp_offset_gap.bmp", bmp_file(w, h, 24, b"\x07" * 10 + bmp_rows(w, h, 24, lambda x, y: rand_bytes(3)),
                                          offset=64), "BMP", 3)
    # RLE8: runs, a literal run (odd, padded), end of line, a delta, runs past the row, end of bitmap.
    rle8 = bytes([3, 1, 2, 7, 0, 3, 9, 8, 7, 0, 0, 0,          # row 0: 1 1 1 7 7 9 8 7, padded literal
                  12, 4, 0, 0,                                  # row 1: a run clipped to the row
                  0, 2, 9, 9, 1, 0, 2, 5, 0, 0,                 # delta (PIL reads the second pair)
                  4, 200, 0, 0,                                 # index past the palette
                  0, 4, 1, 2, 3, 4, 2, 6, 0, 0,                 # literal of 4, run, end of line
                  8, 3, 0, 1])                                  # last row, end of bitmap
    record("bmp_rle8.bmp", bmp_file(8, 6, 8, rle8, bgr0_palette(10), compression=1, colors=10), "BMP", 3)
    rle8_gray = bytes([8, 3, 0, 0, 8, 200, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1])
    record("bmp_rle8_gray.bmp", bmp_file(8, 3, 8, rle8_gray, b"".join(bytes([i, i, i, 0]) for i in range(256)),
                                         compression=1), "BMP", 1)
    rle4 = bytes([5, 0x12, 0, 0,                 # row 0: 1 2 1 2 1, end of line
                  0, 3, 0x34, 0x50, 4, 0x6F, 0, 0,  # odd literal of 3 (PIL reads one byte), run
                  7, 0xAB, 0, 0,
                  0, 7, 0x12, 0x34, 0x56, 0x70, 0, 0, 0, 1])
    record("bmp_rle4.bmp", bmp_file(7, 4, 4, rle4, bgr0_palette(16), compression=2), "BMP", 3)


# ---------------------------------------------------------------------------------------------- PNM
def pnms():
    record("ppm_p6_pil.ppm", save(pattern(33, 17), "PPM"), "PNM", 3)
    record("pgm_p5_pil.pgm", save(pattern(19, 11, "L"), "PPM"), "PNM", 1)
    record("pbm_p4_pil.pbm", save(pattern(21, 9, "1"), "PPM"), "PNM", 1)
    record("pgm_p5_16_pil.pgm", save(Image.frombytes("I;16", (9, 7), rand_bytes(126)).convert("I"), "PPM"), "PNM", 1)

    def text(values, per_line=12):
        lines = [" ".join(str(v) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
        return ("\n".join(lines) + "\n").encode()

    w, h = 7, 5
    rgb = [RNG.randrange(256) for _ in range(w * h * 3)]
    record("ppm_p3.ppm", b"P3\n# a comment\n7 5\n255\n" + text(rgb), "PNM", 3)
    gray = [RNG.randrange(256) for _ in range(w * h)]
    record("pgm_p2_comments.pgm", b"P2 #c1\n7#c2\n 5\n#c3\n255\n" + text(gray[:10]) + b"# inside\n" + text(gray[10:]),
           "PNM", 1)
    bits = [RNG.randrange(2) for _ in range(w * h)]
    record("pbm_p1.pbm", b"P1\n7 5\n" + "".join(str(b) for b in bits).encode() + b"\n", "PNM", 1)
    record("pbm_p1_spaced.pbm", b"P1\n7 5\n" + text(bits, per_line=5), "PNM", 1)
    record("ppm_p6_maxval_100.ppm", b"P6\n7 5\n100\n" + bytes(RNG.randrange(101) for _ in range(w * h * 3)),
           "PNM", 3)
    record("ppm_p6_maxval_100_above.ppm", b"P6\n7 5\n100\n" + rand_bytes(w * h * 3), "PNM", 3)  # PIL clips
    record("pgm_p5_maxval_15.pgm", b"P5 7 5 15\n" + bytes(RNG.randrange(16) for _ in range(w * h)), "PNM", 1)
    record("pgm_p5_maxval_1000.pgm", b"P5\n7 5\n1000\n" +
           b"".join(struct.pack(">H", RNG.choice((0, 1, 2, 3, 4, 500, 999, 1000))) for _ in range(w * h)), "PNM", 1)
    record("pgm_p5_maxval_65535.pgm", b"P5\n7 5\n65535\n" +
           b"".join(struct.pack(">H", RNG.choice((0, 1, 254, 255, 256, 65535, RNG.randrange(65536))))
                    for _ in range(w * h)), "PNM", 1)
    record("ppm_p6_maxval_65535.ppm", b"P6\n7 5\n65535\n" +
           b"".join(struct.pack(">H", RNG.randrange(65536)) for _ in range(w * h * 3)), "PNM", 3)
    record("ppm_p6_maxval_300.ppm", b"P6\n7 5\n300\n" +
           b"".join(struct.pack(">H", RNG.randrange(301)) for _ in range(w * h * 3)), "PNM", 3)
    record("pgm_p2_maxval_300.pgm", b"P2\n7 5\n300\n" + text([RNG.randrange(301) for _ in range(w * h)]), "PNM", 1)
    record("ppm_p3_maxval_7.ppm", b"P3\n7 5\n7\n" + text([RNG.randrange(8) for _ in range(w * h * 3)]), "PNM", 3)
    record("pgm_p2_maxval_2_ties.pgm", b"P2\n7 5\n2\n" + text([RNG.randrange(3) for _ in range(w * h)]), "PNM", 1)
    record("pgm_p5_trailing.pgm", b"P5\n7 5\n255\n" + rand_bytes(w * h) + b"trailing bytes", "PNM", 1)


# ------------------------------------------------------------------------------------------ damaged
DAMAGED_MAX_PIXELS = 1 << 19  # PIL refuses above twice this; the test gives birdplane that limit


def damaged(per_file=16):
    """Mutants of every file above (bytes replaced, flipped, inserted or deleted past the signature)
    and PIL's verdict on each: OUT/damaged.txt lists "damaged/NAME ok W H" with NAME.rgb beside the
    file, or "damaged/NAME error 0 0". Where both read a mutant, birdplane must give PIL's pixels."""
    Image.MAX_IMAGE_PIXELS = DAMAGED_MAX_PIXELS
    os.makedirs(os.path.join(OUT, "damaged"), exist_ok=True)
    rng = random.Random(99)
    lines = []
    for entry in MANIFEST:
        name = entry.split()[0]
        with open(os.path.join(OUT, name), "rb") as f:
            data = f.read()
        for k in range(per_file):
            m = bytearray(data)
            kind = rng.randrange(4)
            for _ in range(1 + rng.randrange(6)):
                at = rng.randrange(3, len(m))
                if kind == 0:
                    m[at] = rng.randrange(256)
                elif kind == 1:
                    m[at] ^= 1 << rng.randrange(8)
                elif kind == 2:
                    m[at] = rng.choice((0, 1, 2, 0x7F, 0x80, 0xFF, 255 - m[at]))
                elif rng.randrange(2):
                    del m[at:at + rng.randrange(1, 9)]
                else:
                    m[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
            mutant = f"damaged/{name}.{k}"
            with open(os.path.join(OUT, mutant), "wb") as f:
                f.write(m)
            try:
                with Image.open(io.BytesIO(bytes(m))) as im:
                    rgb = im.convert("RGB")
                with open(os.path.join(OUT, mutant + ".rgb"), "wb") as f:
                    f.write(rgb.tobytes())
                lines.append(f"{mutant} ok {rgb.size[0]} {rgb.size[1]}")
            except Exception:  # any refusal by PIL: SyntaxError, OSError, ValueError, ...
                lines.append(f"{mutant} error 0 0")
    with open(os.path.join(OUT, "damaged.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


def main():
    os.makedirs(OUT, exist_ok=True)
    for group in (jpegs, pngs, webps, gifs, bmps, pnms):
        group()
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(MANIFEST) + "\n")
    mutants = damaged()
    print(f"wrote {len(MANIFEST)} images and {mutants} damaged copies to {OUT}")


if __name__ == "__main__":
    main()
