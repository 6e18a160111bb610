"""Contractual retention (sBG): the model lives in :mod:`ltv_helpers.models.sbg`; this name stays."""

from ltv_helpers.models.sbg import SBGModel, fit_sbg  # noqa: F401
