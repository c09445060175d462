"""Image-folder inputs for the folder-reading benchmark: from the CIFAR-10 test split (binary release),
writes three torchvision-ImageFolder trees under OUT_DIR, one subfolder per class (batches.meta.txt's
names), each image named by its index in test_batch.bin:
  png32/<class>/<index:05d>.png    the 32x32 image, PNG at PIL's default compression
  jpeg32/<class>/<index:05d>.jpg   the 32x32 image, JPEG quality 90
  jpeg224/<class>/<index:05d>.jpg  upscaled to 224x224 (PIL bicubic), then JPEG quality 90
Usage: make_folder_trees.py OUT_DIR [--data DIR] [--processes N].
A tree whose folder already holds all 10,000 files is skipped, so reruns are cheap. Each tree is
written into a hidden OUT_DIR/.<tree>.partial-<pid> folder and renamed into place only when complete,
so a killed run never leaves a partial tree under the real name (its leftover is removed by the next
run). Progress goes to stderr; the last line on stdout is a JSON summary."""
import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.environ.get("BIRDPLANE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data",
                                                             "cifar-10-batches-bin"))
RECORD = 1 + 3 * 32 * 32  # label byte + CHW pixels
# Pillow >= 9.1 moved the filters into Image.Resampling; older ones only have Image.BICUBIC.
BICUBIC = getattr(Image, "Resampling", Image).BICUBIC


def save_png32(img, path):
    img.save(path, format="PNG")  # PIL's default zlib level (6)


def save_jpeg32(img, path):
    img.save(path, format="JPEG", quality=90)


def save_jpeg224(img, path):
    img.resize((224, 224), BICUBIC).save(path, format="JPEG", quality=90)


# name -> (file extension, writer)
TREES = {"png32": (".png", save_png32), "jpeg32": (".jpg", save_jpeg32), "jpeg224": (".jpg", save_jpeg224)}


def load_test_split(data_dir):
    """(pixels uint8 [N, 32, 32, 3] HWC, labels list, class names) from test_batch.bin and
    batches.meta.txt, with a message naming the file and the fix when either is wrong."""
    batch = os.path.join(data_dir, "test_batch.bin")
    meta = os.path.join(data_dir, "batches.meta.txt")
    for f in (batch, meta):
        if not os.path.isfile(f):
            sys.exit(f"error: {f} not found; pass --data with the folder of the CIFAR-10 binary release "
                     "(cifar-10-batches-bin)")
    raw = np.fromfile(batch, dtype=np.uint8)
    if raw.size % RECORD:
        sys.exit(f"error: {batch} holds {raw.size} bytes, not a multiple of the {RECORD}-byte record")
    raw = raw.reshape(-1, RECORD)
    with open(meta) as f:
        names = [line.strip() for line in f if line.strip()]
    labels = raw[:, 0].astype(np.int64).tolist()
    if max(labels) >= len(names):
        sys.exit(f"error: {batch} has label {max(labels)} but {meta} names only {len(names)} classes")
    pixels = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW -> HWC for PIL
    return np.ascontiguousarray(pixels), labels, names


def relative_paths(labels, names, ext):
    return [os.path.join(names[label], f"{i:05d}{ext}") for i, label in enumerate(labels)]


def is_complete(root, rel_paths):
    return os.path.isdir(root) and all(os.path.isfile(os.path.join(root, p)) for p in rel_paths)


def tree_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def remove_stale_partials(out_dir, name):
    """Removes .<name>.partial-<pid> folders left by runs that are no longer alive (a killed run);
    a concurrent run's folder (its pid alive) is left alone."""
    prefix = f".{name}.partial-"
    for entry in os.listdir(out_dir):
        if not entry.startswith(prefix):
            continue
        try:
            pid = int(entry[len(prefix):])
            os.kill(pid, 0)  # raises when no such process
            if pid != os.getpid():
                continue
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:  # alive, another user's
            continue
        shutil.rmtree(os.path.join(out_dir, entry))


# Set in each worker by the pool initializer (inherited through fork, not pickled per task).
_pixels = None


def _init_worker(pixels):
    global _pixels
    _pixels = pixels


def _write_chunk(job):
    """Writes images [start, stop) of one tree; returns how many."""
    tmp_root, tree, rel_paths, start, stop = job
    save = TREES[tree][1]
    for i in range(start, stop):
        save(Image.fromarray(_pixels[i]), os.path.join(tmp_root, rel_paths[i - start]))
    return stop - start


def write_tree(pool, out_dir, tree, rel_paths, chunk=250):
    final = os.path.join(out_dir, tree)
    tmp_root = os.path.join(out_dir, f".{tree}.partial-{os.getpid()}")
    os.makedirs(tmp_root)
    for cls in sorted({os.path.dirname(p) for p in rel_paths}):
        os.makedirs(os.path.join(tmp_root, cls))
    jobs = [(tmp_root, tree, rel_paths[s:s + chunk], s, min(s + chunk, len(rel_paths)))
            for s in range(0, len(rel_paths), chunk)]
    done, t0, next_report = 0, time.perf_counter(), 0.1
    for n in pool.imap_unordered(_write_chunk, jobs):
        done += n
        if done >= next_report * len(rel_paths) or done == len(rel_paths):
            s = time.perf_counter() - t0
            print(f"{tree}: {done}/{len(rel_paths)} files, {s:.1f} s ({done / s:.0f} files/s)",
                  file=sys.stderr, flush=True)
            next_report += 0.1
    os.rename(tmp_root, final)  # same filesystem: atomic; main() made sure `final` does not exist
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder of the CIFAR-10 binary release")
    ap.add_argument("--processes", type=int, default=os.cpu_count(), help="writer processes (default: all cores)")
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out_dir)
    pixels, labels, names = load_test_split(os.path.abspath(args.data))
    os.makedirs(out_dir, exist_ok=True)
    summary = {"mode": "folder_trees", "out_dir": out_dir, "images": len(labels), "trees": {}}
    # fork: the workers inherit the pixel array instead of receiving a pickled copy.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.processes, initializer=_init_worker, initargs=(pixels,)) as pool:
        for tree, (ext, _) in TREES.items():
            final = os.path.join(out_dir, tree)
            rel = relative_paths(labels, names, ext)
            remove_stale_partials(out_dir, tree)
            if is_complete(final, rel):
                print(f"{tree}: complete, skipped", file=sys.stderr, flush=True)
                seconds, written = None, False
            else:
                if os.path.exists(final):
                    # Not made by this script (it only renames whole trees into place): leave the
                    # user's files alone rather than delete them.
                    sys.exit(f"error: {final} exists but does not hold the complete tree; remove it and rerun")
                seconds, written = write_tree(pool, out_dir, tree, rel), True
            summary["trees"][tree] = {"path": final, "files": len(rel), "bytes": tree_bytes(final),
                                      "written": written, "seconds": seconds}
    summary["files"] = sum(t["files"] for t in summary["trees"].values())
    summary["bytes"] = sum(t["bytes"] for t in summary["trees"].values())
    summary["processes"] = args.processes
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
