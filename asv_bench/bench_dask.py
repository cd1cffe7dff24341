"""numbaconv.dask's own cost, in this process (dask's threaded scheduler, one thread):
a 3-layer conv model and a strided conv over a 1024x1024 image in 256x256 chunks,
beside the same call on the whole array.  The ratio is the chunking's overhead (graph,
halos, copies); docs/benchmarks/scale.py measures worker processes and disk."""

import numpy as np

try:
    import dask
    import dask.array as da

    import numbaconv.dask as ndk
except ImportError:  # the dask extra is optional
    ndk = None

import numbaconv as nc
from numbaconv import config, models, nn

config.CPU_TIERING = False  # time the kernels, never a first call answered by NumPy


def _model():
    """1 -> 4 -> 4 -> 1 channels: models.fcn, narrow."""
    nn.manual_seed(0)
    return models.fcn(1, 1, width=4).eval()


class Chunked:
    timeout = 300

    def setup(self):
        if ndk is None:
            raise NotImplementedError("dask is not installed")
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((1, 1, 1024, 1024)).astype(np.float32)
        self.w = rng.standard_normal((8, 1, 5, 5)).astype(np.float32)
        self.lazy = da.from_array(self.x, chunks=(1, 1, 256, 256))
        self.model = _model()
        self.config = dask.config.set(scheduler="threads", num_workers=1)
        self.config.__enter__()
        self.time_predict_dask()  # compile outside the timing
        self.time_conv2d_dask()

    def teardown(self):
        self.config.__exit__(None, None, None)

    def time_predict_whole(self):
        self.model.forward(self.x)

    def time_predict_dask(self):
        ndk.predict(self.model, self.lazy).compute()

    def time_conv2d_whole(self):
        nc.conv2d(self.x, self.w, stride=2, padding=2)

    def time_conv2d_dask(self):
        ndk.conv2d(self.lazy, self.w, stride=2, padding=2).compute()
