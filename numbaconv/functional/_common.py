"""Helpers every op module shares: views in the 2-D form the kernels take."""


def as_4d(be, a):
    """``a`` on its backend, contiguous; 3-D ``(N, C, L)`` viewed as ``(N, C, 1, L)``."""
    a = be.asarray(a)
    return a if len(a.shape) == 4 else a.reshape(a.shape[:2] + (1,) + a.shape[2:])


def one_grad(grad):
    """Backward of a one-array op: a tuple with one gradient (the API's convention)."""
    return (grad,)
