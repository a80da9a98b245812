"""Render a results JSON as Markdown tables and put them into BENCHMARKS.md.

    .venv/bin/python -m bench.report bench/results/latest-as-generated.json   # re-render

The tables go between `<!-- bench:<label>:begin -->` and `<!-- bench:<label>:end -->` (label:
`--label` of the run); the prose around them (analysis, fixes) is written by people.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
X, DASH = "\u00d7", "\u2013"  # multiplication sign, en dash


def _f(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return DASH if ok is None else ("met" if ok else "**missed**")


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def goals(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(goal, target, measured, verdict) rows."""
    rows: list[tuple[str, str, str, str]] = []
    ladder = {e["level"]: e for e in r.get("ladder", [])}
    worst_first = [
        e["stack"]["first_token_overhead_ms"]["p50"] for lvl, e in ladder.items() if lvl <= 10
    ]
    worst_first = [v for v in worst_first if v is not None]
    if worst_first:
        v = max(worst_first)
        rows.append(
            ("First-token overhead p50, ≤ 10 simultaneous", "≤ 25 ms", _f(v, 1, " ms"),
             _verdict(v <= 25))
        )  # fmt: skip
    small = [e["stack"]["per_delta_ms"]["p99"] for lvl, e in ladder.items() if lvl <= 50]
    small = [v for v in small if v is not None]
    if small:
        v = max(small)
        rows.append(
            ("Per-delta p99, ≤ 50 simultaneous", "≤ 20 ms", _f(v, 1, " ms"), _verdict(v <= 20))
        )
    if 200 in ladder:
        e = ladder[200]["stack"]
        v = e["per_delta_ms"]["p99"]
        ok = v is not None and v <= 100 and not e["error_count"]
        rows.append(("Per-delta p99, 200 simultaneous", "≤ 100 ms", _f(v, 1, " ms"), _verdict(ok)))
    sat = r.get("saturation", {}).get("stack")
    if sat:
        v = sat["tokens_per_s"]
        rows.append(
            ("Tokens/s delivered at saturation", "≥ 4,000", _f(v, 0),
             _verdict(v is not None and v >= 4000))
        )  # fmt: skip
    ratios = [e["stack"]["bytes_ratio"]["p50"] for e in ladder.values()]
    ratios = [v for v in ratios if v is not None]
    if ratios:
        v = max(ratios)
        rows.append(("SSE bytes per answer ÷ final rendered size", f"≤ 3{X}", _f(v, 2, X),
                     _verdict(v <= 3)))  # fmt: skip
    writes = r.get("writes", {})
    if len(writes) >= 2:
        medians = {k: w["answer_row_writes"]["p50"] for k, w in writes.items()}
        same = len(set(medians.values())) == 1
        text = ", ".join(f"{k} tokens: {_f(v, 0)}" for k, v in medians.items())
        rows.append(("DB writes per answer independent of length", "equal", text, _verdict(same)))
    return rows


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    c = r["config"]
    out = [
        f"Run of {m['date']} on commit `{m['commit']}`: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_mb']:,} MB, Python {m['python']}, {m['postgres']}, Linux {m['kernel']}. "
        f"Web: uvicorn {X}{c['web_workers']}; workers: {c['workers']} {X} "
        f"`{r.get('worker_command')}` "
        f"(concurrency {c['worker_concurrency']} each). Ladder answers: {c['tokens']} tokens at "
        f"{c['tps']:g} tokens/s, TTFT {c['ttft']:g} s, starts spread over {c['stagger']:g} s. "
        f"Wall time {_f(r.get('wall_s'), 0)} s. Raw data: `{r.get('raw_file')}` (git-ignored).",
        "",
        "### Goals",
        "",
        "| Goal | Target | Measured | Verdict |",
        "|---|---|---|---|",
    ]
    out += [f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in goals(r)]
    out += [
        "",
        "### Concurrency ladder (stack = POST → worker → pub/sub → SSE; limit = fake server read "
        "directly)",
        "",
        "| Simultaneous | Answers ok | First-token overhead p50 / p99 | vs limit (p50) | "
        "Per-delta p50 / p99 | Limit per-delta p50 / p99 | p99 ratio | Tokens/s | "
        "POST → provider p50 | Bytes ÷ final (wire / decoded) | CPU s / 1k tokens web · worker · "
        "pg | Other processes (cores busy) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in r.get("ladder", []):
        s, d = e["stack"], e["direct"]
        sf, df = s["first_token_overhead_ms"], d["first_token_overhead_ms"]
        sp, dp = s["per_delta_ms"], d["per_delta_ms"]
        diff = None if sf["p50"] is None or df["p50"] is None else sf["p50"] - df["p50"]
        ratio = None if not sp["p99"] or not dp["p99"] else sp["p99"] / dp["p99"]
        k = s["cpu_s_per_1k_tokens"]
        out.append(
            f"| {e['level']} | {s['completed']}/{s['answers']} | {_f(sf['p50'])} / "
            f"{_f(sf['p99'])} ms | +{_f(diff)} ms | {_f(sp['p50'])} / {_f(sp['p99'])} ms | "
            f"{_f(dp['p50'])} / {_f(dp['p99'])} ms | {_f(ratio)}{X} | "
            f"{_f(s['tokens_per_s'], 0)} | {_f(s['post_to_provider_ms']['p50'])} ms | "
            f"{_f(s['bytes_ratio']['p50'], 2)}{X} / {_f(s['decoded_bytes_ratio']['p50'], 2)}{X} | "
            f"{_f(k['web'], 2)} · {_f(k['worker'], 2)} · {_f(k['postgres'], 2)} | "
            f"{_f(s.get('other_cores_busy'), 2)} |"
        )
    passing = [
        e["level"]
        for e in r.get("ladder", [])
        if e["stack"]["per_delta_ms"]["p99"] is not None
        and e["stack"]["per_delta_ms"]["p99"] < 100
        and not e["stack"]["error_count"]
    ]
    out += ["", f"Highest level with per-delta p99 < 100 ms: **{max(passing, default='none')}**."]
    steps = [e for e in r.get("ladder", []) if e["stack"].get("breakdown_ms")]
    if steps:
        names = list(steps[0]["stack"]["breakdown_ms"])
        out += [
            "",
            "Where the time to the first token goes (p50 ms, from client, row and provider "
            "timestamps; last round of each level):",
            "",
            "| Simultaneous | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for e in steps:
            b = e["stack"]["breakdown_ms"]
            out.append(
                f"| {e['level']} | " + " | ".join(_f(b.get(n, {}).get("p50")) for n in names) + " |"
            )
    sat = r.get("saturation")
    if sat:
        s, d = sat["stack"], sat["direct"]
        out += [
            "",
            f"### Saturation ({sat['clients']} simultaneous answers of {sat['tokens']} tokens, "
            "provider unthrottled)",
            "",
            "| | Tokens/s delivered | Per-delta p50 / p99 | CPU s web · worker · pg · provider |",
            "|---|---|---|---|",
        ]
        for name, f in (("stack", s), ("limit", d)):
            cpu = f["cpu_s"]
            out.append(
                f"| {name} | {_f(f['tokens_per_s'], 0)} | {_f(f['per_delta_ms']['p50'])} / "
                f"{_f(f['per_delta_ms']['p99'])} ms | {_f(cpu['web'])} · {_f(cpu['worker'])} · "
                f"{_f(cpu['postgres'])} · {_f(cpu['provider'])} |"
            )
        k = s["cpu_s_per_1k_tokens"]
        out.append(
            f"\nCPU seconds per 1,000 tokens at saturation: web {_f(k['web'], 3)}, worker "
            f"{_f(k['worker'], 3)}, Postgres {_f(k['postgres'], 3)}."
        )
    writes = r.get("writes")
    if writes:
        out += [
            "",
            "### Database writes per answer",
            "",
            "| Answer length | Duration | Answer-row writes (insert + updates) p50 / max | "
            "All tables, rows written per answer (pg_stat) |",
            "|---|---|---|---|",
        ]
        for tokens, w in writes.items():
            aw = w["answer_row_writes"]
            out.append(
                f"| {tokens} tokens at {w['tps']:g}/s | {_f(w['duration_s'])} s | "
                f"{_f(aw['p50'], 0)} / {_f(aw['max'], 0)} | "
                f"{_f(w['pg_stat_per_answer'].get('ALL'))} |"
            )
    h = r.get("history")
    if h:
        out += [
            "",
            f"### A conversation of {h['messages']:,} messages",
            "",
            f"Opening it (full page, newest messages): p50 {_f(h['open_ms']['p50'])} ms, max "
            f"{_f(h['open_ms']['max'])} ms (first, cold: {_f(h['open_first_ms'])} ms; "
            f"{_f(h['open_bytes'], 0)} bytes; HTTP {h['status']}). Paging back 50 at a time "
            f"through `actions.message_history(before=…)`: p50 "
            f"{_f(h['page_back_action_ms']['p50'], 2)} ms, max "
            f"{_f(h['page_back_action_ms']['max'], 2)} ms per page; through the view "
            f"(`history/?before=`, {_f(h.get('page_back_view_ms', {}).get('n'))} pages): p50 "
            f"{_f(h.get('page_back_view_ms', {}).get('p50'))} ms, max "
            f"{_f(h.get('page_back_view_ms', {}).get('max'))} ms per request.",
        ]
    g = r.get("generator")
    if g:
        dry = sorted(g["dry_run_s"])[len(g["dry_run_s"]) // 2]
        out += [
            "",
            "### Generator",
            "",
            f"`django-ai-chat gen --live --dry-run` on a fresh `startproject`: {dry:.2f} s "
            f"(median of 3); `gen --yes --live` (writes + `makemigrations`): "
            f"{g['gen_yes_s']:.2f} s; `--dry-run` again, in sync: {g['dry_run_in_sync_s']:.2f} s "
            f"(`--check` exit {g['check_exit']}).",
        ]
    rss = r.get("peak_rss_mb")
    if rss:
        out += [
            "",
            f"Peak RSS (largest process of each role): web {_f(rss['web'], 0)} MB, worker "
            f"{_f(rss['worker'], 0)} MB, fake provider {_f(rss['provider'], 0)} MB.",
        ]
    if r.get("pubsub"):
        out += ["", "### Pub/sub alone (`bench/pubsub_bench.py`)", "", "```"]
        out += r["pubsub"]
        out += ["```"]
    if r.get("sdk_floor"):
        out += [
            "",
            "### Reading the provider's stream alone (`bench/sdk_floor.py`, no Django)",
            "",
            r["sdk_floor"][0],
            "",
            *r["sdk_floor"][1:],
        ]
    if r.get("failure") or r.get("died"):
        out += ["", f"Run problems: {r.get('failure') or ''} died: {r.get('died') or []}"]
    return "\n".join(out)


def write(results: dict[str, Any]) -> None:
    """Put the tables of `results` into BENCHMARKS.md, in the section of its `label`."""
    table = render(results)
    label = results["config"].get("label") or "as-generated"
    (ROOT / "bench" / "results" / f"latest-{label}.md").write_text(table + "\n")
    begin, end = f"<!-- bench:{label}:begin -->", f"<!-- bench:{label}:end -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    print(table)


if __name__ == "__main__":
    default = "bench/results/latest-as-generated.json"
    write(json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else default).read_text()))
