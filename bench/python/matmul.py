"""Roofline reference: torch.mm / torch.addmm rates for the matrix products of one training step of
an MLP with widths DIMS at batch BATCH, fp32 and bf16, with the layouts autograd uses for nn.Linear
(the same list as birdplane_bench's matmul mode; see there). Usage:
matmul.py DIMS [BATCH] [REPS] [THREADS]. Prints one JSON line."""
import json
import sys
import time

import torch

dims = [int(d) for d in sys.argv[1].split(",")]
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 7
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
torch.manual_seed(1)


def seconds_per_call(f):
    f()  # warm-up
    t0 = time.perf_counter()
    f()
    calls = max(3, int(0.05 / max(time.perf_counter() - t0, 1e-7)))
    per_call = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        per_call.append((time.perf_counter() - t0) / calls)
    return sorted(per_call)[len(per_call) // 2]


results = {}
for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    shapes, step_flop, step_seconds = [], 0.0, 0.0
    for layer in range(1, len(dims)):
        n_in, n_out = dims[layer - 1], dims[layer]
        x, w = torch.randn(batch, n_in).to(dtype), torch.randn(n_out, n_in).to(dtype)
        b, g = torch.randn(n_out).to(dtype), torch.randn(batch, n_out).to(dtype)
        flop = 2.0 * batch * n_in * n_out
        ops = [("forward", lambda: torch.addmm(b, x, w.t())), ("weight_grad", lambda: torch.mm(g.t(), x))]
        if layer > 1:
            ops.append(("input_grad", lambda: torch.mm(g, w)))
        for op, f in ops:
            s = seconds_per_call(f)
            step_flop += flop
            step_seconds += s
            shapes.append({"layer": layer, "op": op, "in": n_in, "out": n_out, "flop": flop, "seconds": s,
                           "gflops": flop / s / 1e9})
    results[name] = {"shapes": shapes, "step_flop": step_flop, "step_seconds": step_seconds,
                     "gflops": step_flop / step_seconds / 1e9}
print(json.dumps({"mode": "matmul", "dims": dims, "batch": batch, "reps": reps,
                  "mkldnn": torch.backends.mkldnn.is_available(), "threads": torch.get_num_threads(),
                  "results": results}))
