"""One training step (forward, cross-entropy, backward, Adam) of the models behind
``numbaconv train``, on a digits-sized batch (32 images of 1x8x8), per device: the
layer API end to end, including its elementwise, batch-norm and optimizer kernels."""

import numpy as np

from numbaconv import models, nn, optim, to_device

from .common import DEVICES, require_device, sync


class TrainStep:
    params = (["cnn", "resnet", "mobile", "inception"], DEVICES)
    param_names = ["model", "device"]
    timeout = 300

    def setup(self, name, device):
        require_device(device)
        nn.manual_seed(0)
        self.model = models.build(name)
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((32, 1, 8, 8)).astype(np.float32)
        self.y = rng.integers(0, 10, 32)
        if device == "cuda":
            self.model.to("cuda")
            self.x, self.y = to_device(self.x), to_device(self.y)
        self.device = device
        self.loss = nn.CrossEntropyLoss()
        self.opt = optim.Adam(self.model.parameters(), lr=1e-3)
        self.time_step(name, device)  # compile

    def time_step(self, name, device):
        self.opt.zero_grad()
        self.loss(self.model(self.x), self.y)
        self.model.backward(self.loss.backward())
        self.opt.step()
        sync(self.device)
