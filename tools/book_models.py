#!/usr/bin/python3
"""The chapter-8 models of "Deep Learning with PyTorch" as Python classes with the book's layer
attribute names, for checking birdplane's convnet presets against PyTorch (run with Debian's
/usr/bin/python3, which has torch).

  book_models.py check --model net --channels 32 --blocks 10 --classes 2 \
      --cpp-state cpp.pt --py-state py.pt --out out.pt

loads cpp.pt (a state_dict from `birdplane export`) into the book's class and runs it in eval mode on a
fixed batch; builds a second model (seed 7), trains it one SGD step so batch-norm statistics move,
saves its state_dict to py.pt (for `birdplane train --init-from`) and its eval outputs; writes
{'from_cpp', 'from_py', 'x'} to out.pt.

  book_models.py onnx --model book-small --classes 2 --cpp-state cpp.pt --out book.onnx

loads cpp.pt into the book's class (the chapter-7 MLPs too, behind a flatten of the image) and writes
it with torch.onnx.export (opset 17, the batch dimension dynamic, input "images"): the reference that
birdplane's own ONNX export is compared with (tests/unit/deploy/onnx_test.cpp runs both files in ONNX
Runtime).
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 8, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(8 * 8 * 8, 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        h = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        h = F.max_pool2d(torch.tanh(self.conv2(h)), 2)
        return self.fc2(torch.tanh(self.fc1(h.flatten(1))))


class NetWidth(nn.Module):
    def __init__(self, chans=32, classes=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, chans, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(chans, chans // 2, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(8 * 8 * (chans // 2), 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        h = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        h = F.max_pool2d(torch.tanh(self.conv2(h)), 2)
        return self.fc2(torch.tanh(self.fc1(h.flatten(1))))


class NetDropout(NetWidth):
    def __init__(self, chans=32, classes=2):
        super().__init__(chans, classes)
        self.conv1_dropout = nn.Dropout2d(p=0.4)
        self.conv2_dropout = nn.Dropout2d(p=0.4)

    def forward(self, x):
        h = self.conv1_dropout(F.max_pool2d(torch.tanh(self.conv1(x)), 2))
        h = self.conv2_dropout(F.max_pool2d(torch.tanh(self.conv2(h)), 2))
        return self.fc2(torch.tanh(self.fc1(h.flatten(1))))


class NetBatchNorm(NetWidth):
    def __init__(self, chans=32, classes=2):
        super().__init__(chans, classes)
        self.conv1_batchnorm = nn.BatchNorm2d(num_features=chans)
        self.conv2_batchnorm = nn.BatchNorm2d(num_features=chans // 2)

    def forward(self, x):
        h = F.max_pool2d(torch.tanh(self.conv1_batchnorm(self.conv1(x))), 2)
        h = F.max_pool2d(torch.tanh(self.conv2_batchnorm(self.conv2(h))), 2)
        return self.fc2(torch.tanh(self.fc1(h.flatten(1))))


class NetDepth(nn.Module):
    skip = False

    def __init__(self, chans=32, classes=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, chans, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(chans, chans // 2, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(chans // 2, chans // 2, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(4 * 4 * (chans // 2), 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h)), 2)
        third = torch.relu(self.conv3(h))
        h = F.max_pool2d(third + h if self.skip else third, 2)
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


class NetRes(NetDepth):
    skip = True


class ResBlock(nn.Module):
    def __init__(self, chans):
        super().__init__()
        self.conv = nn.Conv2d(chans, chans, kernel_size=3, padding=1, bias=False)
        self.batch_norm = nn.BatchNorm2d(num_features=chans)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")
        nn.init.constant_(self.batch_norm.weight, 0.5)
        nn.init.zeros_(self.batch_norm.bias)

    def forward(self, x):
        return torch.relu(self.batch_norm(self.conv(x))) + x


class NetResDeep(nn.Module):
    def __init__(self, chans=32, blocks=10, classes=2, shared=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, chans, kernel_size=3, padding=1)
        # As in the book: a list of one block repeated, so all the entries share one block's weights.
        # shared=False: a block per depth, as the authors corrected it (dlwpt-code issue 89).
        self.resblocks = nn.Sequential(*(blocks * [ResBlock(chans)] if shared
                                         else [ResBlock(chans) for _ in range(blocks)]))
        self.fc1 = nn.Linear(8 * 8 * chans, 32)
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = F.max_pool2d(self.resblocks(h), 2)
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


class BookMlp(nn.Module):
    """The chapter-7 nn.Sequential (its keys 0.weight, 0.bias, 2.weight, ...) fed flattened images."""

    def __init__(self, widths, log_softmax, classes):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip([3072] + widths, widths + [classes])):
            layers += [nn.Linear(a, b)] + ([nn.Tanh()] if i < len(widths) else [])
        if log_softmax:
            layers.append(nn.LogSoftmax(dim=1))
        self.seq = nn.Sequential(*layers)

    def forward(self, x):
        return self.seq(x.flatten(1))


def build(name, chans, blocks, classes, shared=True):
    if name == "book-small":
        return BookMlp([512], True, classes)
    if name == "book-large":
        return BookMlp([1024, 512, 128], False, classes)
    if name == "net":
        return Net(classes)
    if name == "net-res-deep":
        return NetResDeep(chans, blocks, classes, shared)
    kinds = {"net-width": NetWidth, "net-dropout": NetDropout, "net-batchnorm": NetBatchNorm,
             "net-depth": NetDepth, "net-res": NetRes}
    return kinds[name](chans, classes)


def fixed_batch():
    return torch.linspace(-1, 1, 4 * 3 * 32 * 32).view(4, 3, 32, 32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["check", "onnx"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--separate-blocks", action="store_true", help="net-res-deep: a block per depth")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--cpp-state", required=True)
    ap.add_argument("--py-state")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    x = fixed_batch()
    if a.mode == "onnx":
        model = build(a.model, a.channels, a.blocks, a.classes, not a.separate_blocks)
        target = model.seq if isinstance(model, BookMlp) else model
        target.load_state_dict(torch.load(a.cpp_state))
        model.eval()
        torch.onnx.export(model, x, a.out, opset_version=17, input_names=["images"], output_names=["output"],
                          dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
        return
    if a.py_state is None:
        ap.error("check needs --py-state")

    from_cpp = build(a.model, a.channels, a.blocks, a.classes, not a.separate_blocks)
    from_cpp.load_state_dict(torch.load(a.cpp_state))  # strict: every key, every shape
    from_cpp.eval()

    torch.manual_seed(7)
    trained = build(a.model, a.channels, a.blocks, a.classes, not a.separate_blocks)
    opt = torch.optim.SGD(trained.parameters(), lr=1e-2)
    loss = F.cross_entropy(trained(torch.randn(8, 3, 32, 32)), torch.arange(8) % a.classes)
    opt.zero_grad()
    loss.backward()
    opt.step()
    trained.eval()
    torch.save(dict(trained.state_dict()), a.py_state)
    with torch.no_grad():
        torch.save({"from_cpp": from_cpp(x), "from_py": trained(x), "x": x}, a.out)


if __name__ == "__main__":
    main()
