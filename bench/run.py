"""The whole benchmark, end to end, on loopback: `bin/bench` (or `python -m bench.run`).

Throwaway Postgres → `django-admin startproject` + `django-ai-chat gen --yes --live` (timed) →
migrate, seed users → fake OpenAI server (process) → the generated app under uvicorn → real
worker processes → simulated users (asyncio + httpx) that sign in, POST a message and read the
SSE stream as a browser does. Every batch also runs against the fake server directly (the limit).
Everything has a timeout and is stopped and removed at the end. Results: `bench/results/`.

    bin/bench                      # full run (~8 minutes)
    bin/bench --levels 1,10        # quick first look
    bin/bench --profile            # also py-spy the web and worker processes at the top level
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import procs, stats
from bench.clients import _MESSAGE_ID as MESSAGE_ID
from bench.clients import Answer, Gate, User, ask_direct, new_tag, prompt
from bench.procs import Processes
from bench.project import Project

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "bench-password-1"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgres": pg.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "dirty": subprocess.run(
            ["git", "status", "--short", "--untracked-files=no", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


class Postgres:
    """CPU of the whole cluster: postmaster + live backends + reaped ones (cutime)."""

    def __init__(self, data_dir: Path) -> None:
        self.pid = int((data_dir / "postmaster.pid").read_text().split()[0])

    def cpu(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        own = sum(int(f) for f in fields[11:15]) / procs.TICKS
        return own + sum(procs.cpu_seconds(p) for p in procs.children(self.pid))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {"machine": machine(), "config": vars(args).copy()}
        self.raw: dict[str, Any] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="ai-chat-bench-"))
        self.processes = Processes(self.tmp)
        self.cluster: Any = None
        self.project: Project | None = None
        self.users: list[User] = []
        self.web_base = ""
        self.provider_base = ""

    # -- set-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        from django_ai_chat.dev import devdb

        log("starting a throwaway PostgreSQL")
        self.cluster = devdb.start("bench", max_connections=600)
        self.pg = Postgres(self.cluster.data_dir)
        log("generating the project (startproject + gen --dry-run x3, gen --yes --live)")
        self.project = Project(self.tmp, self.cluster.url)
        self.results["generator"] = self.project.create()
        log(f"  generator: {self.results['generator']}")
        per_worker = self.args.worker_concurrency
        if not self.project.set_worker_concurrency(per_worker):
            log("  warning: QUEUE_CONCURRENCY not found in jobs.py; worker concurrency unchanged")
        if self.args.coalesce is not None:
            self.results["coalesce_patched"] = self.project.set_constant(
                "views.py", "STREAM_COALESCE", repr(self.args.coalesce)
            )
        self.results["generated_constants"] = self.project.constants()
        self.project.manage("migrate", "--noinput")
        log(f"seeding {self.args.users} users")
        seeded = self.project.seed("users", self.project.app, str(self.args.users), PASSWORD)
        self.seeded_users = seeded["users"]

        port = procs.free_port()
        self.provider_base = f"http://127.0.0.1:{port}/v1"
        provider = self.processes.start(
            "provider",
            [
                sys.executable,
                str(ROOT / "bench" / "fake_provider.py"),
                "--port",
                str(port),
                "--ttft",
                str(self.args.ttft),
                "--tps",
                str(self.args.tps),
                "--jitter",
                str(self.args.jitter),
            ],
            cwd=ROOT,
            env=dict(os.environ) | {"PYTHONPATH": str(ROOT / "src")},
            name="provider",
        )
        procs.wait_for_http(f"{self.provider_base}/models", provider, 30)

        env = self.project.manage_env | {
            "AI_CHAT_MODEL": "openai:fake",
            "AI_CHAT_OPENAI_BASE_URL": self.provider_base,
            "OPENAI_API_KEY": "sk-bench",
        }
        if "no-db-pool" in self.args.patch:
            env["BENCH_NO_DB_POOL"] = "1"
        web_port = procs.free_port()
        self.web_base = f"http://127.0.0.1:{web_port}"
        web_args = [
            str(procs.Path(sys.executable).parent / "uvicorn"),
            f"{self.project.name}.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(web_port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
        ]
        if self.args.web_workers > 1:
            web_args += ["--workers", str(self.args.web_workers)]
        web = self.processes.start("web", web_args, cwd=self.project.dir, env=env, name="web")
        procs.wait_for_http(f"{self.web_base}/admin/login/", web, 60)
        command = self.project.worker_command(per_worker)
        self.results["worker_command"] = " ".join(command[1:])
        for i in range(self.args.workers):
            self.processes.start(
                "worker", command, cwd=self.project.dir, env=env, name=f"worker{i}"
            )
        time.sleep(2)
        for worker in self.processes.by_role("worker"):
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
        log(
            f"web {self.web_base} (uvicorn x{self.args.web_workers}), {self.args.workers} "
            f"worker(s) x{per_worker}, provider {self.provider_base}"
        )

    async def login(self) -> None:
        route = "chat"
        self.route = route
        self.users = [
            User(self.web_base, u, PASSWORD, c, gzip=not self.args.no_gzip)
            for u, c in self.seeded_users
        ]
        gate = asyncio.Semaphore(20)

        async def one(user: User) -> None:
            async with gate:
                await user.login()

        await asyncio.gather(*(one(u) for u in self.users))
        log(f"{len(self.users)} users signed in")

    # -- measuring ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, float]:
        return {
            "web": self.processes.cpu("web"),
            "worker": self.processes.cpu("worker"),
            "provider": self.processes.cpu("provider"),
            "postgres": self.pg.cpu(),
            "client": time.process_time(),
            "machine": procs.machine_busy_seconds(),
            "wall": time.monotonic(),
        }

    async def emits(self) -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.provider_base.removesuffix("/v1") + "/bench/emits")
            records: dict[str, dict[str, Any]] = response.json()
            return records

    async def batch(
        self, via: str, n: int, *, tokens: int, tps: float, ttft: float, stagger: float
    ) -> tuple[list[Answer], dict[str, Any]]:
        """`n` simultaneous answers (one per user), started within `stagger` seconds."""
        answers = [Answer(new_tag(), tokens, via) for _ in range(n)]
        gate = Gate(n)
        offsets = [stagger * i / n for i in range(n)]
        before = self.snapshot()
        budget = ttft + tokens / (tps or 2000) + stagger + 30 + n * 0.1
        if via == "stack":
            jobs = [
                user.ask(
                    self.route, prompt(a.tag, tokens=tokens, tps=tps, ttft=ttft), a, gate, offset
                )
                for user, a, offset in zip(self.users, answers, offsets, strict=False)
            ]
        else:
            client = httpx.AsyncClient(
                base_url=self.provider_base,
                timeout=httpx.Timeout(60.0, read=None),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
            )
            jobs = [
                ask_direct(client, prompt(a.tag, tokens=tokens, tps=tps, ttft=ttft), a, gate, o)
                for a, o in zip(answers, offsets, strict=True)
            ]
        try:
            async with asyncio.timeout(budget):
                await asyncio.gather(*jobs)
        except TimeoutError:
            log(f"  {via} x{n}: timed out after {budget:.0f} s")
        finally:
            if via == "direct":
                await client.aclose()
        after = self.snapshot()
        await asyncio.sleep(0.3)
        emits = await self.emits()
        figures = stats.level_figures(answers, emits, ttft)
        if via == "stack":
            figures["breakdown_ms"] = self.breakdown(answers, emits)
        cpu = {k: after[k] - before[k] for k in before}
        ours = sum(cpu[k] for k in ("web", "worker", "provider", "postgres", "client"))
        # Other people's processes on this machine: the run cannot control them, only report.
        cpu["other"] = max(0.0, cpu["machine"] - ours)
        figures["cpu_s"] = cpu
        figures["other_cores_busy"] = cpu["other"] / cpu["wall"] if cpu["wall"] else None
        per_k = figures["tokens"] / 1000 or 1
        figures["cpu_s_per_1k_tokens"] = {
            k: cpu[k] / per_k for k in ("web", "worker", "provider", "postgres", "client")
        }
        return answers, figures

    def breakdown(self, answers: list[Answer], emits: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Where the time to the first token goes: client, database and provider timestamps."""
        app = self.project.app if self.project else "chat"
        tags = {a.tag: a for a in answers if a.first_delta}
        with psycopg.connect(self.cluster.url) as conn:
            rows = conn.execute(
                f"""SELECT substring(q.text from 'bench-[0-9a-f]+'),
                       extract(epoch from q.inserted_at), extract(epoch from a.inserted_at)
                FROM {app}_message q JOIN {app}_message a ON a.response_to_id = q.id
                WHERE q.text LIKE 'bench-%%'
                  AND substring(q.text from 'bench-[0-9a-f]+') = ANY(%s)""",
                (list(tags),),
            ).fetchall()
        steps: dict[str, list[float]] = {}
        for tag, inserted, answer_row in rows:
            a, record = tags[tag], emits.get(tag, {})
            if not (inserted and answer_row and record.get("emits")):
                continue
            # Jobs are deleted when they succeed, so the job's own timestamps are gone.
            points = [
                ("POST -> user row saved", a.posted, float(inserted)),
                ("user row -> POST answered", float(inserted), a.posted + a.post_ms / 1000),
                ("POST answered -> answer row", a.posted + a.post_ms / 1000, float(answer_row)),
                ("answer row -> provider request", float(answer_row), record["arrived"]),
                ("provider request -> first emit", record["arrived"], record["emits"][0][1]),
                ("first emit -> client", record["emits"][0][1], a.first_delta or 0.0),
            ]
            for name, t0, t1 in points:
                steps.setdefault(name, []).append((t1 - t0) * 1000)
        return {name: stats.summary(values) for name, values in steps.items()}

    def describe(self, label: str, f: dict[str, Any]) -> None:
        ft, pd = f["first_token_overhead_ms"], f["per_delta_ms"]
        tps = f["tokens_per_s"] or 0
        log(
            f"  {label}: {f['completed']}/{f['answers']} ok, first-token overhead "
            f"p50 {_ms(ft['p50'])} p99 {_ms(ft['p99'])}; per-delta p50 {_ms(pd['p50'])} "
            f"p99 {_ms(pd['p99'])}; {tps:,.0f} tok/s; bytes/final "
            f"{_num(f['bytes_ratio']['p50'])} (decoded {_num(f['decoded_bytes_ratio']['p50'])}); "
            f"cpu web {f['cpu_s']['web']:.1f}s "
            f"worker {f['cpu_s']['worker']:.1f}s pg {f['cpu_s']['postgres']:.1f}s "
            f"client {f['cpu_s']['client']:.1f}s; other processes {f['cpu_s']['other']:.1f}s "
            f"over {f['cpu_s']['wall']:.1f}s"
        )

    async def ladder(self) -> None:
        a = self.args
        self.results["ladder"] = []
        log(f"warm-up: {min(10, len(self.users))} answers")
        await self.batch("stack", min(10, len(self.users)), tokens=20, tps=100, ttft=0, stagger=0)
        for level in a.levels:
            if level > len(self.users):
                log(f"level {level} skipped: only {len(self.users)} users")
                continue
            rounds = max(1, a.min_answers // level)
            entry: dict[str, Any] = {"level": level, "rounds": rounds}
            for via in ("stack", "direct"):
                all_answers: list[Answer] = []
                figures_by_round = []
                for _ in range(rounds):
                    answers, figures = await self.batch(
                        via, level, tokens=a.tokens, tps=a.tps, ttft=a.ttft, stagger=a.stagger
                    )
                    all_answers += answers
                    figures_by_round.append(figures)
                merged = _merge(figures_by_round)
                entry[via] = merged
                self.raw.setdefault("ladder", {})[f"{level}-{via}"] = [
                    x.to_json() for x in all_answers
                ]
                self.describe(f"{level:>3} {via:<6}", merged)
                if via == "stack":
                    for name, v in figures_by_round[-1].get("breakdown_ms", {}).items():
                        log(f"      {name:<32} p50 {_ms(v['p50'])} max {_ms(v['max'])}")
            self.results["ladder"].append(entry)
            self.save()

    async def saturation(self) -> None:
        a = self.args
        n = min(a.saturation_clients, len(self.users))
        entry: dict[str, Any] = {"clients": n, "tokens": a.saturation_tokens}
        for via in ("stack", "direct"):
            answers, figures = await self.batch(
                via, n, tokens=a.saturation_tokens, tps=0, ttft=0, stagger=0
            )
            figures.pop("samples", None)
            entry[via] = figures
            self.raw.setdefault("saturation", {})[via] = [x.to_json() for x in answers]
            self.describe(f"saturation {n} {via}", figures)
        self.results["saturation"] = entry
        self.save()

    async def writes(self) -> None:
        """Rows written per answer, at two answer lengths (trigger count + pg_stat cross-check)."""
        app = self.project.app if self.project else "chat"
        table = f"{app}_message"
        with psycopg.connect(self.cluster.url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_writes (id uuid, op text, at timestamptz "
                "DEFAULT clock_timestamp())"
            )
            conn.execute(
                """CREATE OR REPLACE FUNCTION bench_count() RETURNS trigger AS $$
                BEGIN INSERT INTO bench_writes (id, op) VALUES (NEW.id, TG_OP); RETURN NEW; END
                $$ LANGUAGE plpgsql"""
            )
            conn.execute(
                f"CREATE TRIGGER bench_count AFTER INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION bench_count()"
            )
        out: dict[str, Any] = {}
        try:
            for tokens in self.args.write_lengths:
                n = min(5, len(self.users))
                before = await self._settled_table_stats()
                answers, figures = await self.batch(
                    "stack", n, tokens=tokens, tps=self.args.write_tps, ttft=0.1, stagger=0.5
                )
                await asyncio.sleep(1.5)
                after = await self._settled_table_stats()
                ids = [x.answer_id for x in answers if x.answer_id]
                with psycopg.connect(self.cluster.url) as conn:
                    rows = conn.execute(
                        "SELECT id::text, op, count(*) FROM bench_writes WHERE id::text = ANY(%s) "
                        "GROUP BY 1, 2",
                        (ids,),
                    ).fetchall()
                per_answer: dict[str, dict[str, int]] = {}
                for mid, op, count in rows:
                    per_answer.setdefault(mid, {})[op] = count
                totals = [sum(v.values()) for v in per_answer.values()]
                delta = {k: (after.get(k, 0) - before.get(k, 0)) / max(1, len(ids)) for k in after}
                out[str(tokens)] = {
                    "answers": len(ids),
                    "tps": self.args.write_tps,
                    "duration_s": tokens / self.args.write_tps,
                    "answer_row_writes": stats.summary([float(t) for t in totals]),
                    "by_op": per_answer,
                    "pg_stat_per_answer": delta,
                    "bytes_ratio": figures["bytes_ratio"],
                }
                log(
                    f"  writes, {tokens} tokens at {self.args.write_tps:g} tok/s: answer row "
                    f"{stats.summary([float(t) for t in totals])}; pg_stat per answer {delta}"
                )
        finally:
            with psycopg.connect(self.cluster.url, autocommit=True) as conn:
                conn.execute(f"DROP TRIGGER IF EXISTS bench_count ON {table}")
        self.results["writes"] = out
        self.save()

    def _table_stats(self) -> dict[str, int]:
        app = self.project.app if self.project else "chat"
        with psycopg.connect(self.cluster.url) as conn:
            rows = conn.execute(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                "WHERE relname NOT LIKE 'bench_%%'"
            ).fetchall()
        table_stats = {name: int(v) for name, v in rows}
        table_stats["ALL"] = sum(v for k, v in table_stats.items())
        table_stats["MESSAGE"] = table_stats.get(f"{app}_message", 0)
        return table_stats

    async def _settled_table_stats(self) -> dict[str, int]:
        # Backends report their counters when idle, up to ~10 s late: wait until stable.
        last = self._table_stats()
        for _ in range(12):
            await asyncio.sleep(1)
            now = self._table_stats()
            if now == last:
                break
            last = now
        return last

    async def history(self) -> None:
        assert self.project is not None
        user = self.users[0]
        log(f"seeding a conversation of {self.args.history} messages")
        cid = self.project.seed("long", self.project.app, user.username, str(self.args.history))[
            "conversation"
        ]
        opens = [await user.get(f"/{self.route}/{cid}/") for _ in range(6)]
        status = {s for _, s, _ in opens}
        paging = self.project.seed("page", self.project.app, user.username, cid, "20", "50")
        view_pages = await self._page_back_view(user, cid)
        self.results["history"] = {
            "messages": self.args.history,
            "open_ms": stats.summary([ms for ms, _, _ in opens[1:]]),
            "open_first_ms": opens[0][0],
            "open_bytes": opens[-1][2],
            "status": sorted(status),
            "page_back_action_ms": stats.summary(paging["page_ms"][1:]),
            "page_back_view_ms": stats.summary(view_pages),
        }
        log(f"  history: {self.results['history']}")
        self.save()

    async def _page_back_view(self, user: User, cid: str, pages: int = 20) -> list[float]:
        """ "Load earlier messages": GET <route>/<cid>/history/?before=<oldest shown>, in turn."""
        page = await user.client.get(f"/{self.route}/{cid}/")
        ids = MESSAGE_ID.findall(page.text)
        times: list[float] = []
        while ids and len(times) < pages:
            start = time.perf_counter()
            response = await user.client.get(
                f"/{self.route}/{cid}/history/", params={"before": min(ids)}
            )
            if response.status_code != 200:
                break
            times.append((time.perf_counter() - start) * 1000)
            ids = MESSAGE_ID.findall(response.text)
        return times

    def pubsub(self) -> None:
        """`bench/pubsub_bench.py` on this cluster (its own database), output kept verbatim."""
        name = "pubsub_bench"
        with psycopg.connect(self.cluster.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = self.cluster.url.rsplit("/", 1)[0] + f"/{name}"
        script = [str(ROOT / "bench" / "pubsub_bench.py"), "--streams", "100"]
        self._tool("pubsub", script, {"DATABASE_URL": url})

    def sdk_floor(self) -> None:
        """`bench/sdk_floor.py`: CPU per token of reading a stream through the LLM libraries."""
        self._tool("sdk_floor", ["-m", "bench.sdk_floor"], {})

    def _tool(self, name: str, args: list[str], env: dict[str, str]) -> None:
        """Run a bench script to its end (3 minutes at most); its output goes in verbatim."""
        try:
            out = subprocess.run(
                [sys.executable, *args],
                cwd=ROOT,
                env=dict(os.environ) | env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            lines = (out.stdout + out.stderr[-2000:]).strip().splitlines()
        except subprocess.TimeoutExpired:
            lines = ["timed out after 180 s"]
        self.results[name] = lines
        for line in lines:
            log(f"  {name}: {line}")
        self.save()

    async def profile(self, seconds: int = 20, *, first_token: bool = False) -> None:
        """py-spy the web and worker processes while the top ladder level runs again.

        `first_token`: instead, one short answer after another (wall-clock samples, idle
        included), to see where the time before the first token goes.
        """
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            log("py-spy not installed; skipping the profile")
            return
        out: dict[str, str] = {}
        spies = []
        # Warm: the first answer of a worker process imports the provider SDK (seconds of CPU).
        await self.batch("stack", min(10, len(self.users)), tokens=20, tps=100, ttft=0, stagger=0)
        for role in ("web", "worker"):
            proc = self.processes.by_role(role)[0]
            pid = max(proc.measured_pids())  # the uvicorn child when forked
            kind = "first-token" if first_token else "load"
            target = RESULTS / f"profile-{kind}-{role}.txt"
            spies.append(
                subprocess.Popen(
                    [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200",
                     "-f", "raw", "-o", str(target), "--nonblocking",
                     *(["--idle"] if first_token else ["--gil"])],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            out[role] = str(target.relative_to(ROOT))
        level = max(x for x in self.args.levels if x <= len(self.users))
        a = self.args
        await asyncio.sleep(1)
        if first_token:
            log(f"profiling the first token (py-spy --idle, {seconds} s)")
            deadline = time.monotonic() + seconds - 2
            while time.monotonic() < deadline:
                _, figures = await self.batch("stack", 1, tokens=5, tps=0, ttft=0, stagger=0)
            self.describe("first-token profiled", figures)
        else:
            log(f"profiling web and worker (py-spy, {seconds} s) at {level} simultaneous answers")
            _, figures = await self.batch(
                "stack", level, tokens=a.tokens, tps=a.tps, ttft=a.ttft, stagger=a.stagger
            )
            self.describe(f"{level:>3} profiled", figures)
        for spy_proc in spies:
            try:
                await asyncio.to_thread(spy_proc.wait, seconds + 30)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
        self.results.setdefault("profile", {}).update(
            {f"{k}-{'first-token' if first_token else 'load'}": v for k, v in out.items()}
        )

    def finish_process_figures(self) -> None:
        self.results["peak_rss_mb"] = {
            role: self.processes.peak_rss(role) for role in ("web", "worker", "provider")
        }
        for proc in self.processes.procs:
            if not proc.alive():
                self.results.setdefault("died", []).append(proc.role)

    def save(self) -> None:
        RESULTS.mkdir(exist_ok=True)
        stamp = self.results["machine"]["date"].replace(" ", "_").replace(":", "")
        self.results["raw_file"] = f"bench/results/{stamp}.raw.json"
        (RESULTS / f"{stamp}.json").write_text(json.dumps(self.results, indent=1, default=str))
        label = self.args.label
        (RESULTS / f"latest-{label}.json").write_text(
            json.dumps(self.results, indent=1, default=str)
        )
        (RESULTS / f"{stamp}.raw.json").write_text(json.dumps(self.raw, default=str))

    def stop(self) -> None:
        self.processes.stop_all()
        if self.cluster is not None:
            self.cluster.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _merge(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [r.pop("samples", {}) for r in rounds]
    if len(rounds) == 1:
        return rounds[0]
    merged = dict(rounds[-1])
    merged["rounds"] = [
        {
            "first_token_p50_ms": r["first_token_overhead_ms"]["p50"],
            "per_delta_p99_ms": r["per_delta_ms"]["p99"],
            "other_cores_busy": r.get("other_cores_busy"),
        }
        for r in rounds
    ]
    for key in ("answers", "completed", "error_count", "tokens"):
        merged[key] = sum(r[key] for r in rounds)
    for key in (
        "first_token_overhead_ms",
        "per_delta_ms",
        "post_to_provider_ms",
        "provider_first_emit_to_client_ms",
        "bytes_ratio",
    ):
        merged[key] = _worst(r[key] for r in rounds)
    # Quantiles over every answer of every round, from the samples.
    for key, name in (
        ("first_token_overhead_ms", "first"),
        ("per_delta_ms", "per_delta"),
        ("bytes_ratio", "bytes_ratio"),
    ):
        merged[key] = stats.summary([v for s in samples for v in s.get(name, [])])
    merged["cpu_s"] = {k: sum(r["cpu_s"][k] for r in rounds) for k in rounds[0]["cpu_s"]}
    merged["other_cores_busy"] = (
        merged["cpu_s"]["other"] / merged["cpu_s"]["wall"] if merged["cpu_s"]["wall"] else None
    )
    per_k = merged["tokens"] / 1000 or 1
    merged["cpu_s_per_1k_tokens"] = {
        k: merged["cpu_s"][k] / per_k for k in rounds[0]["cpu_s_per_1k_tokens"]
    }
    rates = [r["tokens_per_s"] for r in rounds if r["tokens_per_s"]]
    merged["tokens_per_s"] = sum(rates) / len(rates) if rates else None
    return merged


def _worst(summaries: Any) -> dict[str, Any]:
    items = [s for s in summaries if s["n"]]
    if not items:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    n = sum(s["n"] for s in items)
    return {
        "n": n,
        "p50": sorted(s["p50"] for s in items)[len(items) // 2],
        "p99": max(s["p99"] for s in items),
        "max": max(s["max"] for s in items),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", default="1,10,50,200", type=_ints)
    p.add_argument("--tokens", type=int, default=60, help="answer length on the ladder")
    p.add_argument("--tps", type=float, default=20, help="provider tokens/s on the ladder")
    p.add_argument("--ttft", type=float, default=0.1, help="provider time to first token (s)")
    p.add_argument(
        "--jitter", type=float, default=0.5, help="fraction of 1/tps a token may move either way"
    )
    p.add_argument("--stagger", type=float, default=1.0, help="spread of start times (s)")
    p.add_argument("--min-answers", type=int, default=20, help="answers per level, at least")
    p.add_argument("--users", type=int, default=0, help="default: the top level")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--worker-concurrency", type=int, default=0, help="answers per worker")
    p.add_argument("--web-workers", type=int, default=1, help="uvicorn processes")
    p.add_argument("--saturation-clients", type=int, default=100)
    p.add_argument("--saturation-tokens", type=int, default=200)
    p.add_argument(
        "--write-lengths", default="20,400", type=lambda s: [int(x) for x in s.split(",")]
    )
    p.add_argument("--write-tps", type=float, default=40)
    p.add_argument("--history", type=int, default=10_000)
    p.add_argument(
        "--skip", default="", help="comma list: ladder,saturation,writes,history,pubsub,floor"
    )
    p.add_argument("--no-gzip", action="store_true", help="clients send Accept-Encoding: identity")
    p.add_argument(
        "--coalesce",
        type=float,
        default=None,
        help="set the generated views.STREAM_COALESCE (seconds); default: as generated",
    )
    p.add_argument(
        "--patch",
        default="",
        help="comma list of experiments: no-db-pool (settings without the connection pool)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy web and worker at the top level")
    p.add_argument("--profile-first-token", action="store_true", help="py-spy short answers")
    p.add_argument("--label", default="as-generated", help="BENCHMARKS.md section of this run")
    p.add_argument("--hold", type=float, default=0, help="keep the stack up N s after set-up")
    p.add_argument("--deadline", type=float, default=900, help="whole run, seconds")
    args = p.parse_args(argv)
    args.users = args.users or max(args.levels)
    if not args.worker_concurrency:
        args.worker_concurrency = -(-max(args.levels) // args.workers) + 10
    args.skip = {s for s in args.skip.split(",") if s}
    args.patch = {s for s in args.patch.split(",") if s}
    return args


async def measure(bench: Bench) -> None:
    skip = bench.args.skip
    await bench.login()
    if bench.args.hold:
        # For poking at the running stack by hand (profilers, curl); everything still stops.
        assert bench.project is not None
        log(f"holding {bench.args.hold:.0f} s: project {bench.project.dir}, web {bench.web_base}")
        log(f"  DATABASE_URL={bench.cluster.url} provider {bench.provider_base}")
        for proc in bench.processes.procs:
            log(f"  {proc.role}: pids {proc.measured_pids()}")
        await asyncio.sleep(bench.args.hold)
    try:
        if "ladder" not in skip:
            await bench.ladder()
        if "saturation" not in skip:
            await bench.saturation()
        if "writes" not in skip:
            await bench.writes()
        if "history" not in skip:
            await bench.history()
        if bench.args.profile:
            await bench.profile()
        if bench.args.profile_first_token:
            await bench.profile(30, first_token=True)
    finally:
        for user in bench.users:
            await user.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    # Everything stops by itself: an alarm ends the run even if a phase hangs.
    import signal

    def _deadline(*_: object) -> None:
        raise TimeoutError(f"bench deadline of {args.deadline:.0f} s reached")

    def _terminated(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through `finally`: cleans up

    signal.signal(signal.SIGALRM, _deadline)
    signal.signal(signal.SIGTERM, _terminated)
    signal.alarm(int(args.deadline))
    started = time.monotonic()
    try:
        bench.start()
        asyncio.run(measure(bench))
        if "pubsub" not in args.skip:
            bench.pubsub()
        if "floor" not in args.skip:
            bench.sdk_floor()
        bench.finish_process_figures()
    except BaseException as error:
        bench.results["failure"] = repr(error)
        log(f"FAILED: {error!r}")
        for proc in bench.processes.procs:
            log(f"--- {proc.role} ({proc.log.name}) ---\n{proc.tail(40)}")
        raise
    finally:
        signal.alarm(0)
        bench.results["wall_s"] = time.monotonic() - started
        bench.save()
        bench.stop()
        log(f"done in {bench.results['wall_s']:.0f} s; bench/results/latest-{args.label}.json")
    from bench import report

    report.write(bench.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
