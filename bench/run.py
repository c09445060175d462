"""Driver for bench/run: alternates the C++ and Python sides, takes medians, prints ratios and
writes bench/results/DATE.json. Every figure comes from a fresh process per repetition."""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd, cwd=None):
    out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default=os.environ.get("BIRDPLANE_DATA", "../shared/data/cifar-10-batches-bin"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per process; the first is warm-up")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="",
                    help="comma list of workloads: load,small,large,augepoch,augment (default: all)")
    args = ap.parse_args()
    bench = os.path.join(args.build, "bench", "birdplane_bench")
    py = os.path.join(HERE, "python")
    only = set(filter(None, args.only.split(",")))
    rows = []

    def side_by_side(name, cpp_cmd, py_cmd, pick):
        cpp, pyv = [], []
        for rep in range(args.reps):  # alternate, so drifting machine load hits both sides alike
            cpp.append(pick(run_json(cpp_cmd)))
            pyv.append(pick(run_json(py_cmd, cwd=py)))
            print(f"  {name} rep {rep + 1}/{args.reps}: C++ {cpp[-1]:.4f} s, Python {pyv[-1]:.4f} s", file=sys.stderr)
        c, p = statistics.median(cpp), statistics.median(pyv)
        rows.append({"workload": name, "cpp_seconds": c, "python_seconds": p, "speedup": p / c,
                     "cpp_all": cpp, "python_all": pyv})

    env_threads = str(args.threads)
    if not only or "load" in only:
        side_by_side("(a) load + normalized cifar2",
                     [bench, "load", args.data],
                     [sys.executable, "book_load.py", os.path.abspath(args.data), env_threads],
                     lambda j: j["seconds"])
    # Median of the timed epochs (all but the first) within a process, then median over processes.
    epoch_pick = lambda j: statistics.median(j["epoch_seconds"][1:] or j["epoch_seconds"])
    for key, model in (("small", "book-small"), ("large", "book-large")):
        if only and key not in only:
            continue
        side_by_side(f"({'b' if key == 'small' else 'c'}) epoch {model} fp32, batch 64",
                     [bench, "epoch", args.data, model, str(args.epochs)],
                     [sys.executable, "book_epoch.py", os.path.abspath(args.data), model, str(args.epochs),
                      env_threads],
                     epoch_pick)

    if not only or "augepoch" in only:
        side_by_side("(d) epoch book-small + crop,flip",
                     [bench, "epoch", args.data, "book-small", str(args.epochs),
                      "RandomCrop(32, padding=4), RandomHorizontalFlip()"],
                     [sys.executable, "book_epoch.py", os.path.abspath(args.data), "book-small", str(args.epochs),
                      env_threads, "augment"],
                     epoch_pick)
    # (h) augmentation throughput: seconds for one pass over cifar2's 10,000 images (median of the
    # passes after the first) through the loader, against a DataLoader with per-sample transforms.
    cifar2_images = 10000
    rate_pick = lambda j: cifar2_images / statistics.median(j["images_per_second"][1:] or j["images_per_second"])
    for workers in (0, 2):
        if only and "augment" not in only:
            continue
        side_by_side(f"(h) crop+flip+normalize pass, py {workers} workers",
                     [bench, "augment", args.data, "RandomCrop(32, padding=4), RandomHorizontalFlip()", "4"],
                     [sys.executable, "augment_loader.py", os.path.abspath(args.data), str(workers), "3",
                      env_threads],
                     rate_pick)
        rows[-1]["cpp_images_per_second"] = cifar2_images / rows[-1]["cpp_seconds"]
        rows[-1]["python_images_per_second"] = cifar2_images / rows[-1]["python_seconds"]

    print()
    print(f"{'workload':<36} {'C++ (s)':>9} {'book PyTorch (s)':>17} {'speedup':>8}")
    for r in rows:
        print(f"{r['workload']:<36} {r['cpp_seconds']:>9.4f} {r['python_seconds']:>17.4f} {r['speedup']:>7.1f}x")
    by_name = {r["workload"][:3]: r for r in rows}
    if "(b)" in by_name and "(d)" in by_name:
        ratio = by_name["(d)"]["cpp_seconds"] / by_name["(b)"]["cpp_seconds"]
        print(f"\nC++ augmented epoch / plain epoch: {ratio:.3f} (target <= 1.1)")
    for r in rows:
        if "cpp_images_per_second" in r:
            print(f"{r['workload']}: C++ {r['cpp_images_per_second']:,.0f} images/s, "
                  f"Python {r['python_images_per_second']:,.0f} images/s")
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_name(),
              "cores": os.cpu_count(), "threads": args.threads, "reps": args.reps, "epochs_per_process": args.epochs,
              "rows": rows}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S") + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
