"""DistributedSampler's share of an epoch per rank (tests/golden/data/sampler.pt).

birdplane draws its own permutation per epoch; what must match PyTorch is how a permutation is
shared out. With shuffle=False DistributedSampler shares out range(n), so its indices per rank are
the rule itself: pad by repeating from the start, then every world-th position from the rank.
"""
import torch
from torch.utils.data.distributed import DistributedSampler


def generate(save):
    out = {}
    for n, world in [(10, 4), (12, 3), (3, 5), (1, 2), (7, 7), (1000, 3), (5, 1)]:
        for rank in range(world):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
            out[f"n{n}_w{world}_r{rank}"] = torch.tensor(list(iter(sampler)), dtype=torch.int64)
    save("sampler.pt", out)
