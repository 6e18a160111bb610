"""ltv_helpers: customer lifetime value toolkit (collection, segmentation, prediction, evaluation)."""

from ltv_helpers.schema import LTVError

__version__ = "0.1.0"
__all__ = ["LTVError", "__version__"]
