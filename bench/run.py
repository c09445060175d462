"""Driver for bench/run: runs the C++ side and the Python references in turn, takes medians, prints
ratios and writes bench/results/DATE-HHMMSS.json. Every figure comes from a fresh process per
repetition; the order of the sides is reversed on every other repetition, so that drifting machine
load hits all sides alike.

Sides: "cpp" (build/bench/birdplane_bench, birdplane's defaults: the fused step in fp32, its input
layer on birdplane's AVX-512 kernels where the CPU has them), "cpp_blas" (the same with --kernels blas:
ATen and the BLAS for every product), "cpp_bf16" (the same with --precision bf16), "cpp_autograd" (--step autograd: backward() and the
optimizer, as in Python), "book" (the book's code as printed: a list of per-image tensors and a
DataLoader), "tuned" (whole tensors, randperm + index_select batches, no DataLoader) and
"tuned_bf16" (tuned under torch.autocast bf16). For the chapter-8 convnets "tuned" runs in
channels-last memory order (--convnet-layout; "tuned_nchw" is the same loop in NCHW, with
--convnet-layout both). In the (b) and (c) rows, "roofline" is the epoch's
matmul FLOP divided by the fp32 matmul rate of its shapes (birdplane_bench matmul), measured as one
more side in the same repetitions, so that the VM's drifting speed hits it alike: its ratio to a
side is that side's share of the fp32 roofline. Ratios are other sides' seconds over "cpp" seconds:
above 1, "cpp" is faster."""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.path.join(HERE, "python")
SIDES = ("cpp", "cpp_blas", "cpp_bf16", "cpp_autograd", "book", "tuned", "tuned_bf16", "roofline", "eager", "ort",
         "tuned_nchw", "tuned_tcmalloc")
EPOCH_SIDES = SIDES[:7]  # the sides of an epoch workload (all but the roofline and the serving sides)
PY_SIDES = ("book", "tuned", "tuned_bf16", "eager", "tuned_nchw", "tuned_tcmalloc")
SIDE_TITLES = {"cpp": "C++ s", "cpp_blas": "C++bl s", "cpp_bf16": "C++bf16", "cpp_autograd": "C++ag s", "book": "book s",
               "tuned": "tuned s", "tuned_bf16": "bf16 s", "roofline": "mm s", "eager": "eager s", "ort": "ORT s",
               "tuned_nchw": "tnchw s", "tuned_tcmalloc": "tcm s"}
RATIO_TITLES = {"cpp_blas": "C++bl/", "cpp_bf16": "C++bf16/", "cpp_autograd": "C++ag/", "book": "book/C++", "tuned": "tuned/C++",
                "tuned_bf16": "bf16/C++", "roofline": "mm/C++", "eager": "eager/C++", "ort": "ORT/C++",
                "tuned_nchw": "tnchw/C++", "tuned_tcmalloc": "tcm/C++"}
KEYS = ("load", "small", "large", "tuned", "augepoch", "augment", "eval", "full", "rss", "roofline", "net",
        "netwidth", "netall", "folder", "dist", "recipe", "predict", "speedrun")
# tcmalloc for the PyTorch side that runs "at its fastest" (Debian's libtcmalloc-minimal4, scripts/setup).
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# (l) image folders made from the CIFAR-10 test split: tree, and the size both sides bring images to
# (0: their own 32x32; the 224x224 tree is resized to 64x64 as torchvision's Resize(64)).
FOLDER_TREES = (("png32", 0), ("jpeg32", 0), ("jpeg224", 64))
# Layer widths of the models the roofline covers (cifar2: two outputs).
MODEL_DIMS = {"book-small": [3072, 512, 2], "book-large": [3072, 1024, 512, 128, 2]}


def convnet_epoch_flop(model, images):
    """Multiply-add FLOP (x2) of one training epoch of a chapter-8 convnet at 32x32: each convolution
    and linear layer forward, its weight gradient, and its input gradient (not for the first layer)."""
    c1 = 16 if model == "net" else 32
    c2 = c1 // 2
    conv1 = 2 * 3 * 9 * c1 * 32 * 32
    conv2 = 2 * c1 * 9 * c2 * 16 * 16
    fc1 = 2 * (8 * 8 * c2) * 32
    fc2 = 2 * 32 * 2
    return images * (2 * conv1 + 3 * (conv2 + fc1 + fc2))


def run_json(cmd, cwd=None, env=None):
    out = subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_peak_rss(cmd, cwd=None, env=None):
    """Runs cmd to the end; returns its peak resident set size in MiB. os.wait4 gives the resource
    usage of that one child (ru_maxrss, KiB on Linux), not the maximum over all children so far as
    RUSAGE_CHILDREN would."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise subprocess.CalledProcessError(p.returncode, cmd, stderr=err.read().decode(errors="replace"))
    return usage.ru_maxrss / 1024


def epoch_flop(dims, images):
    """Matmul FLOP of one epoch of an MLP with widths dims over `images` images. Per image and layer
    (in -> out): forward 2*in*out, weight gradient 2*in*out, input gradient 2*in*out except for the
    first layer (its input needs no gradient). Bias, activation, loss and optimizer work are not
    counted."""
    layers = list(zip(dims[:-1], dims[1:]))
    per_image = sum(4 * i * o for i, o in layers) + sum(2 * i * o for i, o in layers[1:])
    return per_image * images


def cpu_info():
    """The first CPU's model name, family and model numbers (a VM's model name may say no more than
    "AMD EPYC"; family 26 is AMD's Zen 5) and its vector flags."""
    info = {"cpu": platform.processor(), "cpu_family": "", "cpu_model": "", "flags": []}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key == "model name":
                    info["cpu"] = line.split(":", 1)[1].strip()
                elif key in ("cpu family", "model"):
                    info["cpu_family" if key == "cpu family" else "cpu_model"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    info["flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
                    break
    except OSError:
        pass
    return info


# The CPU features OpenBLAS's SkylakeX kernels need (its Cooperlake and SapphireRapids cores add bf16
# and AMX routines that LibTorch's fp32 products do not call).
SKYLAKEX_FLAGS = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}


def blas_core_for(choice, flags):
    """The OPENBLAS_CORETYPE every side runs with: the environment's for "keep"; for "auto", SKYLAKEX
    when the CPU has AVX-512 and the environment's otherwise; else the given name. None: leave it."""
    if choice == "keep":
        return None
    if choice == "auto":
        return "SKYLAKEX" if SKYLAKEX_FLAGS <= set(flags) else None
    return choice


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_tail(values):
    """Median of all but the first value (the warm-up), or of the only one."""
    return statistics.median(values[1:] or values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default=os.environ.get("BIRDPLANE_DATA", "../shared/data/cifar-10-batches-bin"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per process; the first is warm-up")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="", help="comma list of workloads: " + ",".join(KEYS) + " (default: all)")
    ap.add_argument("--rss-epochs", type=int, default=100, help="epochs of the (g) peak memory runs")
    ap.add_argument("--rss-reps", type=int, default=1, help="repetitions of (g) (peak RSS is not noisy)")
    ap.add_argument("--eval-repeats", type=int, default=20,
                    help="(e) passes over the validation set per process (training set: a quarter, >= 3)")
    ap.add_argument("--blas-core", default="auto",
                    help="OPENBLAS_CORETYPE for every side alike: auto (SKYLAKEX, OpenBLAS's AVX-512 kernels, when "
                         "the CPU has AVX-512; otherwise the environment's), keep (the environment's) or a core name")
    ap.add_argument("--convnet-layout", default="channels-last", choices=("channels-last", "nchw", "both"),
                    help="memory order of the tuned PyTorch convnets ((i)-(k), (n)): channels-last (measured faster "
                         "than NCHW on that loop), nchw (PyTorch's default), or both as two sides (tuned, tuned_nchw)")
    ap.add_argument("--folder-trees", default=os.path.join(tempfile.gettempdir(), "birdplane-folder-trees"),
                    help="(l) where the image-folder trees are written once (about 100 MB) and reused")
    ap.add_argument("--speedrun-epochs", type=int, default=2,
                    help="(s) epochs per process of the speedrun workload; the first is warm-up")
    args = ap.parse_args()
    bench = os.path.join(args.build, "bench", "birdplane_bench")
    cli = os.path.join(args.build, "birdplane")
    data = os.path.abspath(args.data)
    threads = str(args.threads)
    only = set(filter(None, args.only.split(",")))
    unknown = only - set(KEYS)
    if unknown:
        ap.error(f"--only: unknown {','.join(sorted(unknown))}; expected some of {','.join(KEYS)}")
    info = cpu_info()
    blas_core = blas_core_for(args.blas_core, info["flags"])
    # C++ and Python sides get the same BLAS kernels, so the ratios compare the code, not the BLAS.
    py_env = dict(os.environ, **({"OPENBLAS_CORETYPE": blas_core} if blas_core is not None else {}))
    cpp_env = dict(py_env, BIRDPLANE_BENCH_THREADS=threads)
    print(f"OPENBLAS_CORETYPE for every side: {py_env.get('OPENBLAS_CORETYPE', '(unset: OpenBLAS detects)')}",
          file=sys.stderr)
    rows, memory, roofline, folders, distributed = [], [], {}, [], []

    def wanted(key):
        return not only or key in only

    def compare(picks, sides, reps=args.reps):
        """Runs each side once per repetition and appends one row per (name, pick) of picks; pick(j)
        turns a side's JSON line into seconds."""
        values = {name: {key: [] for key, _, _ in sides} for name, _ in picks}
        for rep in range(reps):
            order = sides if rep % 2 == 0 else sides[::-1]
            for key, cmd, cwd in order:
                j = run_json(cmd, cwd=cwd, env=cpp_env if cwd is None else py_env)
                for name, pick in picks:
                    values[name][key].append(pick(j))
            last = ", ".join(f"{key} {values[picks[0][0]][key][-1]:.4f}" for key, _, _ in sides)
            print(f"  {picks[0][0]} rep {rep + 1}/{reps}: {last}", file=sys.stderr)
        new = []
        for name, _ in picks:
            med = {key: statistics.median(v) for key, v in values[name].items()}
            row = {"workload": name, "reps": reps, "seconds": med, "all": values[name]}
            # The keys of earlier result files: C++ against the first Python side.
            py_key = next(k for k in PY_SIDES if k in med)
            row.update(cpp_seconds=med["cpp"], python_seconds=med[py_key], python_side=py_key,
                       speedup=med[py_key] / med["cpp"])
            rows.append(row)
            new.append(row)
        return new

    def py(script, *rest):
        return [sys.executable, script, *rest]

    # The tuned convnets' memory order: "nchw" as a word on the script's command line keeps NCHW.
    tuned_layout = ("nchw",) if args.convnet_layout == "nchw" else ()
    layout_sides = ("tuned_nchw",) if args.convnet_layout == "both" else ()

    def epoch_sides(model, keys, extra_cpp=(), extra_py=(), dims=None):
        dims = dims or MODEL_DIMS[model]
        cpp = [bench, "epoch", args.data, model, str(args.epochs), *extra_cpp]
        tuned = py("tuned_epoch.py", data, model, str(args.epochs), threads, *extra_py)
        cmds = {"cpp": (cpp, None),
                "cpp_blas": (cpp + ["--kernels", "blas"], None),
                "cpp_bf16": (cpp + ["--precision", "bf16"], None),
                "cpp_autograd": (cpp + ["--step", "autograd"], None),
                "book": (py("book_epoch.py", data, model, str(args.epochs), threads, *extra_py), PY),
                "tuned": (tuned + list(tuned_layout), PY),
                "tuned_nchw": (tuned + ["nchw"], PY),
                "tuned_bf16": (py("tuned_epoch.py", data, model, str(args.epochs), threads, "bf16", *extra_py), PY),
                "roofline": ([bench, "matmul", ",".join(map(str, dims)), "64"], None)}
        return [(k, *cmds[k]) for k in keys]

    epoch_pick = lambda j: median_tail(j["epoch_seconds"])

    def epoch_or_roofline(dims, images):
        """Seconds of an epoch side, or for the roofline side the epoch's matmul FLOP over the fp32
        step rate birdplane_bench matmul measured."""
        flop = epoch_flop(dims, images)
        return lambda j: flop / (j["results"]["fp32"]["gflops"] * 1e9) if j.get("mode") == "matmul" \
            else epoch_pick(j)

    if wanted("load"):
        compare([("(a) load + normalized cifar2", lambda j: j["seconds"])],
                [("cpp", [bench, "load", args.data], None),
                 ("book", py("book_load.py", data, threads), PY)])

    # (b), (c): all four sides; --only tuned runs them without the (slow) book side.
    for key, letter, model in (("small", "b", "book-small"), ("large", "c", "book-large")):
        if wanted(key):
            keys = EPOCH_SIDES
        elif "tuned" in only:
            keys = ("cpp", "cpp_blas", "cpp_bf16", "cpp_autograd", "tuned", "tuned_bf16")
        else:
            continue
        compare([(f"({letter}) epoch {model}, batch 64", epoch_or_roofline(MODEL_DIMS[model], 10000))],
                epoch_sides(model, keys + ("roofline",)))

    # (i)-(k): the chapter-8 convnets, C++ (the default step: fused for net and net-width on an AVX-512
    # CPU; and --step autograd, autograd on LibTorch) against the book's Python loop and the tuned one,
    # and a roofline: the epoch's convolution and linear FLOP (a dense backward pass) at the fp32 GEMM
    # rate that birdplane_bench matmul measures on this machine (book-small's products at batch 64).
    # The tuned loop runs the convnet in channels-last memory order unless --convnet-layout says nchw.
    for key, letter, model, extra_cpp, extra_py, images in (
            ("net", "i", "net", (), (), 10000), ("netwidth", "j", "net-width", (), (), 10000),
            ("netall", "k", "net", ("--all-classes",), ("all",), 50000)):
        if wanted(key):
            flop = convnet_epoch_flop(model, images)
            pick = lambda j, flop=flop: flop / (j["results"]["fp32"]["gflops"] * 1e9) \
                if j.get("mode") == "matmul" else epoch_pick(j)
            compare([(f"({letter}) epoch {model}{', all CIFAR-10' if extra_py else ''}, batch 64", pick)],
                    epoch_sides(model, ("cpp", "cpp_autograd", "book", "tuned", "roofline") + layout_sides,
                                extra_cpp=extra_cpp,
                                extra_py=extra_py, dims=MODEL_DIMS["book-small"]))

    # (n) net on cifar2 with every setting of `train --recipe modern` on (Nesterov SGD, weight decay off
    # the 1-D parameters, warmup + cosine, label smoothing, mixup, the weight average; test-time
    # augmentation only validates, which neither side times) and a gradient-norm clip, against the tuned
    # PyTorch loop running the same recipe (python/recipe_epoch.py). "cpp" is birdplane's default step
    # (the fused one where it applies), "cpp_autograd" autograd.
    if wanted("recipe"):
        clip = "1.0"
        cpp = [bench, "epoch", args.data, "net", str(args.epochs), "--recipe", "modern", "--clip-grad-norm", clip]
        recipe = py("recipe_epoch.py", data, "net", str(args.epochs), threads, clip)
        compare([("(n) epoch net, modern recipe + clip, batch 64", epoch_pick)],
                [("cpp", cpp, None), ("cpp_autograd", cpp + ["--step", "autograd"], None),
                 ("tuned", recipe + list(tuned_layout), PY)]
                + [("tuned_nchw", recipe + ["nchw"], PY) for _ in layout_sides])

    # (s) the CIFAR-10 speedrun (airbench94's network and recipe, batch 1024): training epochs of
    # birdplane's default step (fused) and of autograd, against the same recipe in PyTorch
    # (python/speedrun.py: autocast, channels-last) with glibc's malloc and with tcmalloc preloaded
    # (PyTorch's fastest here). bf16 where the CPU has AVX512-BF16 or AMX, fp32 elsewhere; every side alike.
    if wanted("speedrun"):
        precision = "bf16" if {"avx512_bf16", "amx_bf16"} & set(info["flags"]) else "fp32"
        e = str(args.speedrun_epochs)
        cpp = [bench, "speedrun", args.data, e, "--precision", precision]
        pyr = py("speedrun.py", "--data", data, "--mode", "epochs", "--epochs-timed", e, "--precision", precision,
                 "--layout", "cl", "--threads", threads, "--json")
        sides = [("cpp", cpp, None), ("cpp_autograd", cpp + ["--step", "autograd"], None), ("tuned", pyr, PY)]
        if os.path.exists(TCMALLOC):
            sides.append(("tuned_tcmalloc", ["env", f"LD_PRELOAD={TCMALLOC}", *pyr], PY))
        else:
            print(f"(s): {TCMALLOC} is missing (scripts/setup installs it): no tcmalloc side", file=sys.stderr)
        compare([(f"(s) speedrun epoch, {precision}, batch 1024", epoch_pick)], sides)

    # (p) serving: seconds per call of birdplane's Predictor (uint8 images in: scale, normalize, forward,
    # probabilities, top 5) on one image and on a batch of 64, against PyTorch eager doing the same under
    # torch.no_grad() (python/predict_eager.py) and ONNX Runtime on birdplane's ONNX export with the
    # preprocessing inside (node/predict_ort.js; softmax and top 5 in JavaScript). Same threads; one
    # seeded model per preset for 10 classes at 32x32, written once by the C++ side.
    if wanted("predict"):
        calls = "300"
        for model in ("book-small", "net", "resnet18"):
            folder = os.path.join(tempfile.gettempdir(), "birdplane-predict-bench", model)
            run_json([bench, "predict", model, folder, "1"], env=cpp_env)  # writes the model files once
            new = compare([(f"(p) predict {model}, 1 image", lambda j: j["single_seconds"]),
                           (f"(p) predict {model}, batch 64", lambda j: j["batch64_seconds"])],
                          [("cpp", [bench, "predict", model, folder, calls], None),
                           ("eager", py("predict_eager.py", model, folder, calls, threads), PY),
                           ("ort", ["node", os.path.join(HERE, "node", "predict_ort.js"), folder, calls, threads],
                            None)])
            for row in new:
                row["note"] = "seconds per call, median over the calls of a process, then over processes"

    if wanted("augepoch"):
        compare([("(d) epoch book-small + crop,flip", epoch_pick)],
                [("cpp", [bench, "epoch", args.data, "book-small", str(args.epochs),
                          "RandomCrop(32, padding=4), RandomHorizontalFlip()"], None),
                 ("book", py("book_epoch.py", data, "book-small", str(args.epochs), threads, "augment"), PY)])

    if wanted("eval"):
        # Seconds per pass (median of the passes after the first); images/s are printed below.
        n = str(args.eval_repeats)
        new = compare([("(e) eval book-small, cifar2 val",
                        lambda j: j["val_images"] / median_tail(j["val_images_per_second"])),
                       ("(e) eval book-small, cifar2 train",
                        lambda j: j["train_images"] / median_tail(j["train_images_per_second"]))],
                      [("cpp", [bench, "eval", args.data, "book-small", n], None),
                       ("tuned", py("tuned_eval.py", data, "book-small", n, threads), PY)])
        for row, images in zip(new, (2000, 10000)):
            row["images"] = images
            row["images_per_second"] = {k: images / s for k, s in row["seconds"].items()}

    if wanted("full"):
        compare([("(f) epoch book-small, all CIFAR-10", epoch_pick)],
                epoch_sides("book-small", EPOCH_SIDES, extra_cpp=("--all-classes",), extra_py=("all",)))

    # (h) augmentation throughput: seconds for one pass over cifar2's 10,000 images (median of the
    # passes after the first) through the loader: crop, flip, then ToTensor + Normalize into float
    # batches on both sides (birdplane_bench augment ... normalize: what training consumes), against a
    # DataLoader with per-sample transforms (PIL images, so ToTensor + Normalize to collate them).
    if wanted("augment"):
        for workers in (0, 2):
            new = compare([(f"(h) crop+flip+normalize loader, py {workers} workers",
                            lambda j: 10000 / median_tail(j["images_per_second"]))],
                          [("cpp", [bench, "augment", args.data, "RandomCrop(32, padding=4), RandomHorizontalFlip()",
                                    "4", "normalize"], None),
                           ("book", py("augment_loader.py", data, str(workers), "3", threads), PY)])
            new[0]["images_per_second"] = {k: 10000 / s for k, s in new[0]["seconds"].items()}

    if wanted("folder"):
        # (l) an image folder read and consumed once: birdplane's first epoch (decoding every file on all
        # cores, writing the cache) and an epoch from the cache, both including the listing, against
        # torchvision's ImageFolder (its listing) + DataLoader (batch 64, ToTensor + Normalize) with 0 and 2
        # workers. Both sides read one value of each finished batch. The C++ cached epoch runs in a fresh
        # process right after the first epoch's (birdplane_bench folder-cached), as a user's second run
        # does: it starts its loader threads inside the timed epoch as the DataLoader starts its workers.
        # (cpp_cached_same_process, the cached epoch in the first epoch's warm process, is kept for
        # comparison with result files before 2026-12-07.) Every side runs once per repetition, in
        # alternating order; medians.
        run_json(py("make_folder_trees.py", args.folder_trees, "--data", data), cwd=PY, env=py_env)
        cache_dir = tempfile.mkdtemp(prefix="birdplane-folder-cache-")
        for tree, size in FOLDER_TREES:
            path = os.path.join(args.folder_trees, tree)
            resize = ("--resize", str(size)) if size else ()
            sides = [("cpp", [bench, "folder", path, str(size), "1", "--keep-cache", cache_dir], None)] + [
                (f"py{w}", py("folder_epoch.py", path, "--workers", str(w), "--reps", "1", "--threads", threads,
                              *resize), PY) for w in (0, 2)]
            values = {"cpp_first": [], "cpp_cached": [], "py0": [], "py2": [], "cpp_cached_same_process": []}
            files = 0
            for rep in range(args.reps):
                for key, cmd, cwd in (sides if rep % 2 == 0 else sides[::-1]):
                    j = run_json(cmd, cwd=cwd, env=cpp_env if cwd is None else py_env)
                    files = j["files"]
                    if key == "cpp":
                        values["cpp_first"].append(j["first_epoch_seconds"])
                        values["cpp_cached_same_process"].append(j["cached_epoch_seconds"])
                        c = run_json([bench, "folder-cached", path, str(size), cache_dir], env=cpp_env)
                        if c["checksum"] != j["checksum"] or c["files"] != files:
                            raise RuntimeError(f"(l) {tree}: the epoch from the cache differs from the first epoch")
                        values["cpp_cached"].append(c["cached_epoch_seconds"])
                    else:  # what a user waits for: ImageFolder's listing, then the epoch
                        values[key].append(j["listing_seconds"] + j["median_seconds"])
                print(f"  (l) folder {tree} rep {rep + 1}/{args.reps}: "
                      + ", ".join(f"{k} {v[-1]:.3f}" for k, v in values.items()), file=sys.stderr)
            med = {k: statistics.median(v) for k, v in values.items()}
            best_py = min(med["py0"], med["py2"])
            folders.append({"workload": f"(l) image folder {tree}" + (f", resized to {size}" if size else ""),
                            "files": files, "reps": args.reps, "seconds": med, "all": values,
                            "first_epoch_speedup": best_py / med["cpp_first"],
                            "cached_epoch_speedup": best_py / med["cpp_cached"],
                            "files_per_second_per_core": {
                                "cpp_first": files / med["cpp_first"] / args.threads,
                                "py0": files / med["py0"], "py2": files / med["py2"] / 2},
                            "note": "cpp_cached: a fresh process reading the cache (birdplane_bench folder-cached); "
                                    "cpp_cached_same_process: the first epoch's process, warm"})
        shutil.rmtree(cache_dir, ignore_errors=True)

    if wanted("dist"):
        # (m) multi-process training on c10d (Gloo over loopback), per model:
        #   allreduce: one step's gradient buckets all-reduced between 2 processes (birdplane_bench
        #     allreduce as ranks 0 and 1), median seconds;
        #   step: one autograd training step at batch 64 on --threads threads (birdplane_bench step);
        #   epochs: `birdplane train` on cifar2, 1 process x --threads threads x batch 64 (autograd step,
        #     and the default step) against 2 processes x 1 thread x batch 32 (`--nproc 2`): median seconds
        #     of the epochs after the first (metrics.csv), and rank 0's wait for all-reduces after backward.
        runs_dir = tempfile.mkdtemp(prefix="birdplane-dist-")
        epochs = str(max(3, args.epochs))
        try:
            for model in ("book-small", "book-large", "net"):
                values = {"allreduce": [], "step": [], "one_autograd": [], "one_default": [], "two_ranks": [],
                          "two_ranks_wait_per_step": []}
                gradient_bytes = 0
                for rep in range(args.reps):
                    port = free_port()
                    env0 = dict(cpp_env, RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                                BIRDPLANE_BENCH_THREADS="1")
                    peer = subprocess.Popen([bench, "allreduce", model, "20"], stdout=subprocess.DEVNULL,
                                            env=dict(env0, RANK="1"))
                    j = run_json([bench, "allreduce", model, "20"], env=env0)
                    peer.wait()
                    gradient_bytes = j["gradient_bytes"]
                    values["allreduce"].append(j["median_seconds"])
                    j = run_json([bench, "step", model, "20", "--step", "autograd"], env=cpp_env)
                    values["step"].append(j["seconds_per_step"])
                    base = [cli, "train", "--data-dir", data, "--classes", "airplane,bird", "--model", model,
                            "--epochs", epochs, "--runs-dir", runs_dir, "--no-download"]
                    runs = {"one_autograd": ["--threads", threads, "--step", "autograd"],
                            "one_default": ["--threads", threads],
                            "two_ranks": ["--threads", "1", "--nproc", "2", "--batch-size", "32"]}
                    for key, extra in (runs.items() if rep % 2 == 0 else reversed(list(runs.items()))):
                        name = f"{model}-{key}-{rep}"
                        subprocess.run(base + ["--name", name] + extra, check=True, stdout=subprocess.DEVNULL,
                                       env=cpp_env)
                        with open(os.path.join(runs_dir, name, "metrics.csv")) as f:
                            secs = [float(line.split(",")[5]) for line in f.read().splitlines()[1:] if line]
                        values[key].append(median_tail(secs))
                        if key == "two_ranks":
                            with open(os.path.join(runs_dir, name, "results.json")) as f:
                                wait = json.load(f)["gradient_wait_seconds"]
                            values["two_ranks_wait_per_step"].append(wait / (int(epochs) * 157))
                    print(f"  (m) {model} rep {rep + 1}/{args.reps}: "
                          + ", ".join(f"{k} {v[-1]:.4f}" for k, v in values.items()), file=sys.stderr)
                med = {k: statistics.median(v) for k, v in values.items()}
                distributed.append({"workload": f"(m) {model}, cifar2", "model": model, "reps": args.reps,
                                    "gradient_bytes": gradient_bytes, "seconds": med, "all": values,
                                    "allreduce_over_step": med["allreduce"] / med["step"],
                                    "two_ranks_over_one_autograd": med["one_autograd"] / med["two_ranks"],
                                    "two_ranks_over_one_default": med["one_default"] / med["two_ranks"],
                                    "allreduce_gbytes_per_second": gradient_bytes / med["allreduce"] / 1e9})
        finally:
            shutil.rmtree(runs_dir, ignore_errors=True)

    if wanted("rss"):
        # (g) peak resident memory of a whole book-small cifar2 training run of --rss-epochs epochs.
        e = str(args.rss_epochs)
        sides = [("cpp", [bench, "epoch", args.data, "book-small", e], None),
                 ("book", py("book_epoch.py", data, "book-small", e, threads), PY)]
        runs_dir = tempfile.mkdtemp(prefix="birdplane-rss-")
        if os.path.exists(cli):  # the program users run: checkpoints, metrics.csv, validation each epoch
            sides.append(("cpp_train", [cli, "--threads", threads, "train", "--data-dir", data, "--classes",
                                        "airplane,bird", "--model", "book-small", "--epochs", e, "--runs-dir",
                                        runs_dir, "--name", "rss", "--no-download"], None))
        values = {key: [] for key, _, _ in sides}
        try:
            for rep in range(args.rss_reps):
                for key, cmd, cwd in (sides if rep % 2 == 0 else sides[::-1]):
                    shutil.rmtree(os.path.join(runs_dir, "rss"), ignore_errors=True)
                    values[key].append(run_peak_rss(cmd, cwd=cwd, env=cpp_env if cwd is None else py_env))
                    print(f"  (g) peak RSS rep {rep + 1}/{args.rss_reps}: {key} {values[key][-1]:.1f} MiB",
                          file=sys.stderr)
        finally:
            shutil.rmtree(runs_dir, ignore_errors=True)
        memory.append({"workload": f"(g) peak RSS, book-small cifar2, {e} epochs", "epochs": args.rss_epochs,
                       "reps": args.rss_reps, "mib": {k: statistics.median(v) for k, v in values.items()},
                       "all": values,
                       "note": "cpp: birdplane_bench epoch (validation after the last epoch only); "
                               "cpp_train: birdplane train (validation, checkpoint and metrics.csv every "
                               "epoch); book: book_epoch.py. One repetition by default: two runs of each side at 2 "
                               "epochs differed by about 2%."})

    if wanted("roofline"):
        for model, dims in MODEL_DIMS.items():
            d = ",".join(map(str, dims))
            out = {"cpp": [], "python": []}
            cmds = [("cpp", [bench, "matmul", d, "64"], None), ("python", py("matmul.py", d, "64", "7", threads), PY)]
            for rep in range(args.reps):
                for key, cmd, cwd in (cmds if rep % 2 == 0 else cmds[::-1]):
                    out[key].append(run_json(cmd, cwd=cwd, env=cpp_env if cwd is None else py_env))
            print(f"  roofline {model}: {args.reps} reps", file=sys.stderr)
            entry = {"dims": dims, "batch": 64, "reps": args.reps, "epoch_flop_cifar2": epoch_flop(dims, 10000),
                     "blas_core": out["cpp"][0].get("blas_core", "")}  # what OpenBLAS reported it runs
            for key, runs in out.items():
                for dtype in ("fp32", "bf16"):
                    step = runs[0]["results"][dtype]
                    shapes = [dict(s, gflops=statistics.median(r["results"][dtype]["shapes"][i]["gflops"]
                                                               for r in runs))
                              for i, s in enumerate(step["shapes"])]
                    for s in shapes:
                        s.pop("seconds", None)
                    entry[f"{key}_{dtype}"] = {
                        "step_gflops": statistics.median(r["results"][dtype]["gflops"] for r in runs),
                        "shapes": shapes}
            roofline[model] = entry

    # ---- report ----
    print()
    if rows:
        print("Ratios: each side's seconds / C++ (cpp) seconds (above 1: cpp is faster). Medians of the repetitions.")
    head = f"{'workload':<36}" + "".join(f"{SIDE_TITLES[k]:>9}" for k in SIDES) + \
        "".join(f"{RATIO_TITLES[k]:>10}" for k in SIDES[1:])
    if rows:
        print(head)
    for r in rows:
        s = r["seconds"]
        line = f"{r['workload']:<36}" + "".join(f"{s[k]:>9.4f}" if k in s else f"{'-':>9}" for k in SIDES)
        line += "".join(f"{s[k] / s['cpp']:>9.2f}x" if k in s else f"{'-':>10}" for k in SIDES[1:])
        print(line)
    by_name = {r["workload"][:3]: r for r in rows}
    if "(b)" in by_name and "(d)" in by_name:
        ratio = by_name["(d)"]["seconds"]["cpp"] / by_name["(b)"]["seconds"]["cpp"]
        print(f"\nC++ augmented epoch / plain epoch: {ratio:.3f} (target <= 1.1)")
    for letter in ("(b)", "(c)"):
        row = by_name.get(letter)
        if row and "roofline" in row["all"]:
            mm = row["all"]["roofline"]
            shares = {k: statistics.median(m / v for m, v in zip(mm, vals))
                      for k, vals in row["all"].items() if k != "roofline"}
            row["share_of_fp32_roofline"] = shares
            print(f"{letter} share of the fp32 roofline measured in the same repetitions (median of per-repetition "
                  "ratios): " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in shares.items()) + " (target cpp >= 85%)")
    for letter in ("(b)", "(c)", "(f)"):
        s = by_name.get(letter, {}).get("seconds", {})
        if "cpp_bf16" in s and "tuned" in s:
            print(f"{letter} tuned fp32 / C++ bf16: {s['tuned'] / s['cpp_bf16']:.2f}x (target >= 4)"
                  + (f"; tuned fp32 / C++ fp32: {s['tuned'] / s['cpp']:.2f}x (target >= 1)" if "cpp" in s else ""))
    for r in rows:
        if "images_per_second" in r:
            print(f"{r['workload']}: " + ", ".join(f"{k} {v:,.0f} images/s" for k, v in r["images_per_second"].items()))
    for m in memory:
        print(f"\n{m['workload']} (reps {m['reps']}): "
              + ", ".join(f"{k} {v:,.1f} MiB" for k, v in m["mib"].items())
              + (f"; book/C++ {m['mib']['book'] / m['mib']['cpp']:.2f}x" if "book" in m["mib"] else ""))

    if folders:
        print("\n(l) image folders: one epoch, seconds (medians); speedups against the faster DataLoader "
              "(targets: first epoch >= 4x, from the cache >= 50x); C++ cache: a fresh process")
        print(f"{'tree':<40}{'C++ first':>10}{'C++ cache':>10}{'py 0 wk':>9}{'py 2 wk':>9}{'first':>8}{'cached':>9}")
        for f in folders:
            s = f["seconds"]
            print(f"{f['workload']:<40}{s['cpp_first']:>10.3f}{s['cpp_cached']:>10.4f}{s['py0']:>9.3f}{s['py2']:>9.3f}"
                  f"{f['first_epoch_speedup']:>7.1f}x{f['cached_epoch_speedup']:>8.0f}x")
            print(f"{'':<40}files/s per core: " + ", ".join(f"{k} {v:,.0f}" for k, v in f["files_per_second_per_core"].items()))
            print(f"{'':<40}C++ cache in the first epoch's warm process: {s['cpp_cached_same_process']:.4f} s")

    if distributed:
        print("\n(m) multi-process (Gloo, loopback, 2 ranks): per step and per epoch (cifar2, medians); "
              "speedup = 1 process x all threads / 2 processes x 1 thread")
        print(f"{'model':<14}{'grad MB':>8}{'allreduce':>10}{'step':>9}{'ar/step':>8}{'1p ag s':>9}{'1p def s':>9}"
              f"{'2r s':>8}{'wait/st':>9}{'2r vs ag':>9}{'2r vs def':>10}")
        for d in distributed:
            s = d["seconds"]
            print(f"{d['model']:<14}{d['gradient_bytes'] / 1e6:>8.2f}{s['allreduce'] * 1e3:>8.2f}ms"
                  f"{s['step'] * 1e3:>7.2f}ms{d['allreduce_over_step']:>8.2f}{s['one_autograd']:>9.3f}"
                  f"{s['one_default']:>9.3f}{s['two_ranks']:>8.3f}{s['two_ranks_wait_per_step'] * 1e3:>7.2f}ms"
                  f"{d['two_ranks_over_one_autograd']:>8.2f}x{d['two_ranks_over_one_default']:>9.2f}x")

    # The arithmetic ceiling itself (no memory, no data): what no product can beat.
    peak = run_json([bench, "peak"], env=cpp_env)
    print(f"\nCPU peak ({args.threads} threads, `birdplane_bench peak`): fp32 FMA {peak.get('fp32_fma_gflops', 0):.1f} "
          f"GFLOP/s, bf16 dot products {peak.get('bf16_dot_gflops', 0):.1f} GFLOP/s")
    for model, entry in roofline.items():
        print(f"\nRoofline {model} (batch 64, GFLOP/s of one training step's matmuls; per shape in the JSON):")
        for dtype in ("fp32", "bf16"):
            print(f"  {dtype}: C++ at::mm {entry[f'cpp_{dtype}']['step_gflops']:.1f}, "
                  f"Python torch.mm {entry[f'python_{dtype}']['step_gflops']:.1f}")
        letter = "(b)" if model == "book-small" else "(c)"
        if letter in by_name:
            flop = entry["epoch_flop_cifar2"]
            peak32 = entry["cpp_fp32"]["step_gflops"]
            peak16 = entry["cpp_bf16"]["step_gflops"]
            entry["achieved"] = {}
            print(f"  {letter} epoch = {flop / 1e9:.3f} GFLOP of matmul:")
            for side, secs in by_name[letter]["seconds"].items():
                rate = flop / secs / 1e9
                entry["achieved"][side] = {"epoch_seconds": secs, "gflops": rate, "share_of_fp32_roofline": rate / peak32,
                                           "share_of_bf16_roofline": rate / peak16}
                print(f"    {side:<13} {secs:.4f} s  {rate:7.1f} GFLOP/s  {100 * rate / peak32:5.1f}% of fp32 matmul"
                      + (f"  {100 * rate / peak16:5.1f}% of bf16 matmul" if side.endswith("bf16") else ""))

    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": info["cpu"],
              "cpu_family": info["cpu_family"], "cpu_model": info["cpu_model"],
              "cpu_flags": info["flags"], "cores": os.cpu_count(), "threads": args.threads, "reps": args.reps,
              "epochs_per_process": args.epochs, "rss_epochs": args.rss_epochs, "rss_reps": args.rss_reps,
              "eval_repeats": args.eval_repeats, "only": sorted(only),
              "openblas_coretype": py_env.get("OPENBLAS_CORETYPE", ""), "blas_core_option": args.blas_core,
              "ratio": "python seconds / cpp seconds", "peak": peak, "rows": rows, "memory": memory, "roofline": roofline,
              "folders": folders, "distributed": distributed}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S") + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
