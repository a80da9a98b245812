"""Figures from what the clients saw and what the fake provider recorded."""

from __future__ import annotations

import bisect
import math
from typing import Any

from bench.clients import Answer


def pct(values: list[float], q: float) -> float | None:
    """The `q` quantile (nearest rank); `None` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 0.5),
        "p99": pct(values, 0.99),
        "max": max(values) if values else None,
    }


def delta_latencies_ms(answer: Answer, emits: list[tuple[int, float]]) -> list[float]:
    """Provider emit → client receive for each delta (matched on the character end)."""
    if answer.via == "direct":
        return [
            (recv - emit) * 1000
            for (recv, _, _), emit in zip(answer.deltas, answer.emit_ts, strict=False)
        ]
    ends = [end for end, _ in emits]
    out = []
    for recv, _offset, end in answer.deltas:
        # The newest token the delta holds; a delta may carry several (trimmed or coalesced).
        i = bisect.bisect_right(ends, end) - 1
        if i >= 0:
            out.append((recv - emits[i][1]) * 1000)
    return out


def level_figures(
    answers: list[Answer], emits: dict[str, dict[str, Any]], ttft: float
) -> dict[str, Any]:
    """First-token overhead, per-delta latency, throughput and bytes of one batch of answers."""
    done = [a for a in answers if a.completed and a.first_delta and not a.error]
    errors = [a.error or "incomplete" for a in answers if a not in done]
    first = [(a.first_delta - a.posted - ttft) * 1000 for a in done if a.first_delta]
    per_delta: list[float] = []
    pre_llm: list[float] = []
    delivery_first: list[float] = []
    tokens = 0
    for a in done:
        record = emits.get(a.tag, {})
        got = [tuple(e) for e in record.get("emits", [])]
        per_delta += delta_latencies_ms(a, got)  # type: ignore[arg-type]
        tokens += len(got) if a.via == "stack" else len(a.deltas)
        if a.via == "stack" and record.get("arrived") and got:
            pre_llm.append((record["arrived"] - a.posted) * 1000)
            delivery_first.append((a.first_delta - got[0][1]) * 1000)  # type: ignore[operator]
    span = (
        max(a.completed for a in done) - min(a.posted for a in done)  # type: ignore[type-var]
        if done
        else 0.0
    )
    bytes_ratio = [a.wire_bytes / a.final_html_bytes for a in done if a.final_html_bytes]
    decoded_ratio = [a.sse_bytes / a.final_html_bytes for a in done if a.final_html_bytes]
    return {
        "samples": {"first": first, "per_delta": per_delta, "bytes_ratio": bytes_ratio},
        "answers": len(answers),
        "completed": len(done),
        "errors": errors[:10],
        "error_count": len(errors),
        "first_token_overhead_ms": summary(first),
        "per_delta_ms": summary(per_delta),
        "post_to_provider_ms": summary(pre_llm),
        "provider_first_emit_to_client_ms": summary(delivery_first),
        "post_ms": summary([a.post_ms for a in done]),
        "tokens": tokens,
        "span_s": span,
        "tokens_per_s": tokens / span if span else None,
        "bytes_ratio": summary(bytes_ratio),
        "decoded_bytes_ratio": summary(decoded_ratio),
        "deltas_per_answer": summary([float(len(a.deltas)) for a in done]),
        "sse_bytes_per_answer": summary([float(a.sse_bytes) for a in done]),
        "final_html_bytes": summary([float(a.final_html_bytes) for a in done]),
    }
