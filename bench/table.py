#!/usr/bin/env python3
"""Prints the Markdown tables of docs/performance.md from one bench/run result file, so the figures
in the docs are the file's, not retyped. Usage: bench/table.py bench/results/DATE.json"""
import json
import sys

COLUMNS = [("cpp", "C++"), ("cpp_blas", "C++ BLAS only"), ("cpp_bf16", "C++ bf16"), ("cpp_autograd", "C++ autograd"), ("book", "book"),
           ("tuned", "tuned"), ("tuned_bf16", "tuned bf16"), ("roofline", "roofline"), ("tuned_nchw", "tuned NCHW")]


def seconds(v):
    return f"{v:.4f} s" if v < 1 else f"{v:.3f} s"


def main(path):
    result = json.load(open(path))
    family = f" (family {result['cpu_family']}, model {result['cpu_model']})" if result.get("cpu_family") else ""
    print(f"`{path}`, {result['date']}, {result['cpu']}{family}, {result['threads']} threads, "
          f"{result['reps']} repetitions, {result['epochs_per_process']} epochs per process.\n")
    # The NCHW tuned side exists only in runs with --convnet-layout both.
    columns = [c for c in COLUMNS if c[0] != "tuned_nchw" or any(c[0] in r["seconds"] for r in result["rows"])]
    print("| workload | " + " | ".join(title for _, title in columns) + " | book/C++ | tuned/C++ |")
    print("| --- |" + " ---: |" * (len(columns) + 2))
    for row in result["rows"]:
        s = row["seconds"]
        ips = row.get("images_per_second", {})
        cells = []
        for key, _ in columns:
            if key not in s:
                cells.append("")
            elif key in ips:
                cells.append(f"{seconds(s[key])} ({ips[key]:,.0f} img/s)")
            else:
                cells.append(seconds(s[key]))
        ratios = [f"{s[k] / s['cpp']:.2f}x" if k in s else "" for k in ("book", "tuned")]
        print(f"| {row['workload']} | " + " | ".join(cells + ratios) + " |")
    for row in result["rows"]:
        if "share_of_fp32_roofline" in row:
            shares = row["share_of_fp32_roofline"]
            print(f"\n{row['workload']}: share of the fp32 roofline (median of per-repetition ratios): "
                  + ", ".join(f"{k} {100 * v:.1f}%" for k, v in shares.items()))
    by = {r["workload"][:3]: r["seconds"] for r in result["rows"]}
    if "(b)" in by and "(d)" in by:
        print(f"\n(d)/(b) for C++: {by['(d)']['cpp'] / by['(b)']['cpp']:.3f}")
    for letter in ("(b)", "(c)", "(f)"):
        s = by.get(letter, {})
        if "cpp_bf16" in s and "tuned" in s:
            print(f"{letter} tuned fp32 / C++ bf16: {s['tuned'] / s['cpp_bf16']:.2f}x")
    for m in result["memory"]:
        print(f"\n{m['workload']}: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in m["mib"].items()))
    if "peak" in result:
        print(f"\nCPU peak (`birdplane_bench peak`): fp32 FMA {result['peak'].get('fp32_fma_gflops', 0):.1f} GFLOP/s, "
              f"bf16 dot products {result['peak'].get('bf16_dot_gflops', 0):.1f} GFLOP/s")
    for model, entry in result["roofline"].items():
        print(f"\nroofline {model}: fp32 {entry['cpp_fp32']['step_gflops']:.1f} GFLOP/s, "
              f"bf16 {entry['cpp_bf16']['step_gflops']:.1f} GFLOP/s (C++ at::mm)")


if __name__ == "__main__":
    main(sys.argv[1])
