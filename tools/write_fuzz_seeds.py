#!/usr/bin/python3
"""Writes the Python-made seeds of the checkpoint fuzz target (fuzz/checkpoint.cpp) with Debian's
PyTorch: state_dicts of the target's tiny MLP (3x4x4 images, one hidden layer of 8, two classes, the
book's nn.Sequential layout, so the keys are 0.weight, 0.bias, 2.weight, 2.bias).

  /usr/bin/python3 tools/write_fuzz_seeds.py fuzz/corpus/checkpoint

writes python_dict.pt (torch.save(dict(model.state_dict())), what `birdplane train --init-from`
loads) and python_ordereddict.pt (torch.save(model.state_dict()), an OrderedDict, which LibTorch 1.13
cannot rebuild: birdplane refuses it with a hint). The birdplane-made seeds come from the target:

  BIRDPLANE_FUZZ_WRITE_SEEDS=fuzz/corpus/checkpoint build-fuzz/fuzz/fuzz_checkpoint -runs=0 fuzz/corpus/checkpoint
"""
import os
import sys

import torch
import torch.nn as nn


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/checkpoint"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(48, 8), nn.Tanh(), nn.Linear(8, 2), nn.LogSoftmax(dim=1))
    torch.save(dict(model.state_dict()), os.path.join(out, "python_dict.pt"))
    torch.save(model.state_dict(), os.path.join(out, "python_ordereddict.pt"))


if __name__ == "__main__":
    main()
