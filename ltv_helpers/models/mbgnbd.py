"""MBG/NBD (Batislam, Denizel and Filiztekin 2007): BG/NBD with dropout possible at the first purchase."""

from __future__ import annotations

from ltv_helpers.models.base import ModifiedBetaGeoFitter, register
from ltv_helpers.models.bgnbd import BGNBD, _BGNBDLikelihood


class _MBGNBDLikelihood(_BGNBDLikelihood):
    """lifetimes' MBG/NBD objective (Batislam et al. 2007: a customer may also drop out at the
    first purchase) with an analytic gradient, computed like BG/NBD's.

    Per customer ``ll = A1 + A2 + A3 + log(1 + exp(A4))`` with lifetimes' terms
    ``A1 = lnG(r+x) - lnG(r) + r ln(alpha)``, ``A2 = lnG(a+b) + lnG(b+x+1) - lnG(b) - lnG(a+b+x+1)``,
    ``A3 = -(r+x) ln(alpha+T)``, ``A4 = ln(a) - ln(b+x) + (r+x) (ln(alpha+T) - ln(alpha+t_x))``:
    BG/NBD's form with ``b + x`` for ``b + x - 1`` and the dropout term for every customer.
    """

    offset = 0.0


@register
class MBGNBD(BGNBD):
    """MBG/NBD: BG/NBD's processes, with a possible dropout at the first purchase too."""

    name, label = "mbgnbd", "MBG/NBD"
    fitter_class = ModifiedBetaGeoFitter
    likelihood_class = _MBGNBDLikelihood
    posterior_offset = 1.0  # Beta(a, b + x + 1)

    @staticmethod
    def _terms(r, alpha, a, b, x, tx, T_, px, pT, t, z, hyp2f1):
        hyp = hyp2f1(r + px, b + px + 1, a + b + px, z)
        numerator = (a + b + px) / (a - 1) * (1 - hyp * ((alpha + pT) / (alpha + t + pT)) ** (r + px))
        recency_term = (a / (b + x)) * ((alpha + T_) / (alpha + tx)) ** (r + x)
        return numerator, recency_term
