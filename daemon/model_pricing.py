"""Per-model prices (settings ``model_prices``) and the cost estimate they give."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


def parse_prices(entries: Iterable[str]) -> dict[str, Price]:
    """``["<model>=<input>:<output>", ...]`` (USD per million tokens); ValueError if malformed."""
    prices: dict[str, Price] = {}
    for entry in entries:
        model, sep, rates = entry.rpartition("=")
        given_in, colon, given_out = rates.partition(":")
        if not sep or not model or not colon:
            raise ValueError(f"expected '<model>=<input>:<output>', got {entry!r}")
        try:
            price = Price(float(given_in), float(given_out))
        except ValueError:
            raise ValueError(f"prices must be numbers in {entry!r}") from None
        if price.input_per_mtok < 0 or price.output_per_mtok < 0:
            raise ValueError(f"prices must not be negative in {entry!r}")
        prices[model] = price
    return prices


def cost_usd(
    prices: dict[str, Price], model: str, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """Estimated cost, or None when the model has no price."""
    price = prices.get(model)
    if price is None:
        return None
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6
