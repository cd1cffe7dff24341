"""Analysis tools: output-size formulas (shared with the ops' validation)."""

from ._args import conv_output_size, conv_transpose_output_size, pool_output_size

__all__ = ["conv_output_size", "conv_transpose_output_size", "pool_output_size"]
