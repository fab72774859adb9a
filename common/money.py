"""Money is Decimal quantized to 0.01 CNY with half-up rounding: the fen is the unit on an invoice."""

from decimal import ROUND_HALF_UP, Decimal

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal) -> Decimal:
    return value.quantize(FEN, rounding=ROUND_HALF_UP)
