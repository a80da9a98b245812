"""Load with a rolling deploy in the middle: does anyone lose an answer, see an error or a seam?

Two web processes (uvicorn) and two workers (`manage.py chat_worker`) of a generated project, a
fake OpenAI-compatible provider, and N signed-in clients, each following its conversation's event
stream as `chat.js` does (cursor in `Last-Event-ID`, deltas applied at their offsets, reconnecting
to the other web process when its stream ends) and asking one question after another. Halfway,
every process is stopped (SIGTERM) and restarted, one after the other. At the end every answer
is checked twice: as the client assembled it and as the database holds it, against the text the
fake model produces.

    .venv/bin/python -m bench.deploy --clients 50 --seconds 60        # ~3 min on 2 cores

Prints a summary and writes `bench/results/deploy-<date>.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import procs
from bench.project import BIN, SETTINGS_TAIL, Project, run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "bench-password"
_MESSAGE = re.compile(r'<article id="message-([0-9a-f-]{36})"[^>]*?data-source="(\w+)"', re.S)
_RAW = re.compile(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', re.S)
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def expected_text(tokens: int) -> str:
    from django_ai_chat.testing._fake_openai import _filler

    return "".join(_filler(tokens))


def _plain(html: str) -> str:
    """The words of a message's rendered HTML (its Markdown body), whitespace collapsed."""
    import html as html_module

    body = html.split("data-body", 1)[-1].split(">", 1)[-1]
    body = body.split("</div>", 1)[0]
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _attribute(html: str, name: str) -> str | None:
    found = re.search(rf'{name}="([^"]*)"', html)
    return found.group(1) if found else None


class Webs:
    """The web processes' base URLs, and which of them are up (for clients choosing one)."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = bases
        self.down: set[str] = set()
        self.lock = threading.Lock()

    def pick(self, avoid: str | None = None) -> str:
        with self.lock:
            up = [b for b in self.bases if b not in self.down and b != avoid]
            return (up or [b for b in self.bases if b != avoid] or self.bases)[0]


@dataclass
class Client:
    """One browser tab: its stream on a thread, its questions one after another."""

    number: int
    username: str
    conversation: str
    webs: Webs
    tokens: int
    base: str = ""
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)
    last_event_id: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    finals: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    reconnects: int = 0
    post_retries: int = 0
    asked: int = 0
    closed: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    # -- the stream ------------------------------------------------------------------------------

    def follow(self) -> None:
        while not self.closed:
            headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            base = self.base
            try:
                with (
                    httpx.Client(base_url=base, cookies=self.cookies, timeout=None) as http,
                    http.stream("GET", f"/chat/{self.conversation}/stream/", headers=headers) as r,
                ):
                    if r.status_code != 200:
                        self.problems.append(f"stream {r.status_code}")
                        raise httpx.TransportError("bad status")
                    buffer = ""
                    for chunk in r.iter_text():
                        buffer += chunk
                        while "\n\n" in buffer:
                            raw, buffer = buffer.split("\n\n", 1)
                            self._event(raw)
            except httpx.HTTPError:
                pass
            if self.closed:
                return
            # As chat.js: the stream ended (a deploy) or failed: reconnect, elsewhere if down.
            self.reconnects += 1
            self.base = self.webs.pick(avoid=base)
            time.sleep(0.5)

    def _event(self, raw: str) -> None:
        name, data = "message", []
        for line in raw.split("\n"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                self.last_event_id = value
            elif key in ("", "retry"):
                return
        payload = "\n".join(data)
        with self.changed:
            self._apply(name, payload)
            self.changed.notify_all()

    def _apply(self, name: str, payload: str) -> None:
        if name == "delta":
            delta = json.loads(payload)
            have = self.texts.get(delta["id"])
            if have is None:
                return
            if delta["offset"] > len(have):
                self.problems.append(f"gap in {delta['id']}")
                return
            self.texts[delta["id"]] = have + delta["text"][len(have) - delta["offset"] :]
        elif name == "message":
            found = _MESSAGE.search(payload)
            if found is None or found.group(2) != "agent":
                return
            message_id = found.group(1)
            if message_id not in self.texts and message_id not in self.finals:
                # Started while this page was away: as chat.js, adopt the raw text the
                # HTML carries (`json_script`) and go on from its end.
                raw = _RAW.search(payload)
                self.texts[message_id] = json.loads(raw.group(1)) if raw else ""
                incomplete = _attribute(payload, "data-complete") != "true"
                end = int(_attribute(payload, "data-end") or 0)
                if incomplete and len(self.texts[message_id]) != end:
                    self.problems.append(f"{message_id}: no raw text to go on from")
                self.order.append(message_id)
            if _attribute(payload, "data-complete") == "true":
                self.finals[message_id] = payload
        elif name == "removed":
            self.removed.add(json.loads(payload)["id"])

    # -- questions -------------------------------------------------------------------------------

    def sign_in(self) -> None:
        self.base = self.webs.bases[self.number % len(self.webs.bases)]
        with httpx.Client(base_url=self.base, timeout=60) as http:
            page = http.get("/admin/login/")
            token = _CSRF_INPUT.search(page.text)
            assert token is not None, page.status_code
            response = http.post(
                "/admin/login/?next=/admin/",
                data={
                    "username": self.username,
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": token[1],
                },
            )
            assert response.status_code == 302, response.status_code
            self.cookies = http.cookies

    def post(self, text: str) -> None:
        for attempt in range(60):
            base = self.base if attempt == 0 else self.webs.pick(avoid=None)
            try:
                response = httpx.post(
                    f"{base}/chat/{self.conversation}/send/",
                    data={"text": text},
                    cookies=self.cookies,
                    headers={
                        "X-CSRFToken": self.cookies["csrftoken"],
                        "HX-Request": "true",
                        "Referer": f"{base}/chat/{self.conversation}/",
                    },
                    timeout=30,
                )
                if response.status_code < 500:
                    if response.status_code >= 400:
                        self.problems.append(f"POST {response.status_code}")
                    return
            except httpx.HTTPError:
                pass
            self.post_retries += 1  # a web process going down: as a browser would, try again
            time.sleep(0.5)
        self.problems.append("POST never went through")

    def ask_until(self, stop: threading.Event, prompt: str, wait: float) -> None:
        while not stop.is_set() and not self.closed:
            with self.changed:
                known = len(self.order)
            self.post(prompt)
            self.asked += 1
            limit = time.monotonic() + wait
            with self.changed:
                while True:
                    fresh = [m for m in self.order[known:] if m not in self.removed]
                    if fresh and fresh[-1] in self.finals:
                        break
                    if time.monotonic() > limit:
                        self.problems.append("an answer never completed on the page")
                        break
                    self.changed.wait(0.5)


def _create_project(root: Path, database_url: str, concurrency: int) -> Project:
    project = Project(root, database_url)
    run(
        [str(BIN / "django-admin"), "startproject", project.name],
        cwd=root,
        env=project.env,
        timeout=60,
    )
    settings = project.dir / project.name / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS_TAIL)
    run(
        [str(BIN / "django-ai-chat"), "gen", "--yes", "--live"],
        cwd=project.dir,
        env=project.env,
        timeout=300,
    )
    project.set_worker_concurrency(concurrency)
    with settings.open("a") as file:  # the handovers, counted from the workers' logs
        file.write(
            '\nLOGGING["loggers"] = {"django_ai_chat.jobs": {"level": "INFO"}, '
            '"procrastinate.worker": {"level": "INFO"}}\n'
        )
    project.manage("migrate", "--noinput")
    return project


def main(argv: list[str] | None = None) -> int:  # noqa: C901 (a script, in order)
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long clients ask")
    parser.add_argument("--tokens", type=int, default=80, help="tokens per answer")
    parser.add_argument("--tps", type=float, default=20.0, help="tokens per second of the model")
    parser.add_argument("--shutdown-timeout", type=float, default=2.0, help="of the workers")
    parser.add_argument("--concurrency", type=int, default=50, help="answers per worker")
    parser.add_argument("--redis", default="", help="AI_CHAT_PUBSUB_URL (default LISTEN/NOTIFY)")
    parser.add_argument("--no-deploy", action="store_true", help="the same load, no restarts")
    args = parser.parse_args(argv)

    from django_ai_chat import devdb

    tmp = Path(tempfile.mkdtemp(prefix="ai-chat-deploy-"))
    processes = procs.Processes(tmp)
    cluster = devdb.start("deploy", max_connections=400)
    results: dict[str, Any] = {"config": vars(args), "date": datetime.date.today().isoformat()}
    try:
        log(f"generating the project in {tmp}")
        project = _create_project(tmp, cluster.url, args.concurrency)
        seeded = project.seed("users", project.app, str(args.clients), PASSWORD)["users"]
        port = procs.free_port()
        provider_base = f"http://127.0.0.1:{port}/v1"
        provider = processes.start(
            "provider",
            [sys.executable, "-m", "django_ai_chat.testing", "--port", str(port), "--ttft", "0.2"],
            cwd=ROOT,
            env=dict(os.environ),
            name="provider",
        )
        procs.wait_for_http(f"{provider_base}/models", provider, 30)
        env = project.manage_env | {
            "AI_CHAT_MODEL": "openai:fake",
            "AI_CHAT_OPENAI_BASE_URL": provider_base,
            "OPENAI_API_KEY": "sk-bench",
        }
        if args.redis:
            env["AI_CHAT_PUBSUB_URL"] = args.redis
            (project.dir / project.name / "settings.py").open("a").write(
                "\nAI_CHAT_PUBSUB_URL = os.environ.get('AI_CHAT_PUBSUB_URL') or None\n"
            )
        ports = [procs.free_port(), procs.free_port()]
        webs = Webs([f"http://127.0.0.1:{p}" for p in ports])
        uvicorn = str(Path(sys.executable).parent / "uvicorn")
        commands: dict[str, list[str]] = {}
        for i, web_port in enumerate(ports):
            commands[f"web{i}"] = [
                uvicorn, f"{project.name}.asgi:application", "--port", str(web_port),
                "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
        for i in range(2):
            commands[f"worker{i}"] = [
                sys.executable, "manage.py", f"{project.app}_worker",
                "--shutdown-timeout", str(args.shutdown_timeout),
            ]  # fmt: skip
        running: dict[str, procs.Proc] = {}

        def start(name: str) -> None:
            role = "web" if name.startswith("web") else "worker"
            log_name = f"{name}.{sum(1 for _ in tmp.glob(f'{name}.*.log'))}"  # one per run
            proc = processes.start(role, commands[name], cwd=project.dir, env=env, name=log_name)
            running[name] = proc
            if role == "web":
                base = webs.bases[int(name[-1])]
                procs.wait_for_http(f"{base}/admin/login/", proc, 90)
                with webs.lock:
                    webs.down.discard(base)
            else:
                deadline = time.monotonic() + 90
                while "Worker running" not in proc.log.read_text(errors="replace"):
                    if not proc.alive() or time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start:\n{proc.tail()}")
                    time.sleep(0.1)

        for name in commands:
            start(name)
        log("2 web, 2 workers, provider up; signing in")
        clients = [
            Client(i, username, conversation, webs, args.tokens)
            for i, (username, conversation) in enumerate(seeded)
        ]
        for client in clients:
            client.sign_in()
        followers = [threading.Thread(target=c.follow, daemon=True) for c in clients]
        for thread in followers:
            thread.start()
        time.sleep(2)
        prompt = f"[tokens:{args.tokens}] [tps:{args.tps:g}]"
        answer_seconds = args.tokens / args.tps
        started = time.monotonic()
        stop_asking = threading.Event()
        askers = [
            threading.Thread(
                target=c.ask_until, args=(stop_asking, prompt, answer_seconds * 4 + 60), daemon=True
            )
            for c in clients
        ]
        for thread in askers:
            thread.start()
        log(f"{args.clients} clients asking for {args.seconds:g} s ({answer_seconds:g} s answers)")
        deploy: list[dict[str, Any]] = []
        if not args.no_deploy:
            time.sleep(args.seconds / 4)
            log("deploy: SIGTERM + restart of every process, one by one")
            for name in commands:
                proc = running[name]
                if name.startswith("web"):
                    with webs.lock:
                        webs.down.add(webs.bases[int(name[-1])])
                t0 = time.monotonic()
                os.killpg(proc.popen.pid, signal.SIGTERM)
                try:
                    code = proc.popen.wait(60)
                except subprocess.TimeoutExpired:
                    code = None
                stopped = time.monotonic() - t0
                processes.stop(proc)
                t1 = time.monotonic()
                start(name)
                step = {"process": name, "exit_code": code, "stop_s": round(stopped, 2),
                        "restart_s": round(time.monotonic() - t1, 2)}  # fmt: skip
                deploy.append(step)
                log(f"  {step}")
            # The same load after the deploy, for as long as before it.
            time.sleep(args.seconds / 4)
        time.sleep(max(0.0, started + args.seconds - time.monotonic()))
        stop_asking.set()
        results["load_seconds"] = round(time.monotonic() - started, 1)
        for thread in askers:
            thread.join()
        log("clients done; checking every answer")
        for client in clients:
            client.closed = True
        text = expected_text(args.tokens)
        shown = [(c, m) for c in clients for m in c.order if m not in c.removed]
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT q.id, a.id, a.text, a.complete, a.error FROM {project.app}_message q "
                f"LEFT JOIN {project.app}_message a ON a.response_to_id = q.id "
                "WHERE q.source = 'user'"
            ).fetchall()
        questions = len(rows)
        lost = sum(1 for r in rows if r[1] is None or not r[3])
        errors_db = sum(1 for r in rows if r[4])
        wrong_db = sum(1 for r in rows if r[1] is not None and r[3] and r[2] != text)

        def as_shown(client: Client, message_id: str) -> str:
            # Completed while the page was reconnecting: the page shows the final HTML.
            final = client.finals[message_id]
            built = client.texts.get(message_id, "")
            if len(built) == int(_attribute(final, "data-end") or -1):
                return built
            from_html = _plain(final)
            return text if from_html == " ".join(text.split()) else from_html

        wrong_shown = sum(1 for c, m in shown if m in c.finals and as_shown(c, m) != text)
        errors_shown = sum(
            1 for c, m in shown if m in c.finals and _attribute(c.finals[m], "data-error")
        )
        incomplete_shown = sum(1 for c, m in shown if m not in c.finals)
        results["summary"] = {
            "questions": questions,
            "asked_by_clients": sum(c.asked for c in clients),
            "lost_answers": lost,
            "errors_in_db": errors_db,
            "errors_shown": errors_shown,
            "text_not_the_models_db": wrong_db,
            "text_not_the_models_shown": wrong_shown,
            "answers_never_completed_on_page": incomplete_shown,
            "replaced_answers_shown": sum(len(c.removed) for c in clients),
            "answers_handed_over": sum(
                path.read_text(errors="replace").count("handed over")
                for path in tmp.glob("worker*.log")
            ),
            "stream_reconnects": sum(c.reconnects for c in clients),
            "post_retries": sum(c.post_retries for c in clients),
            "client_problems": sorted({p for c in clients for p in c.problems})[:20],
        }
        results["mismatches_shown"] = [
            {
                "id": m,
                "shown_chars": len(c.texts.get(m, "")),
                "final_end": _attribute(c.finals[m], "data-end"),
                "shown_tail": c.texts.get(m, "")[-60:],
            }
            for c, m in shown
            if m in c.finals and as_shown(c, m) != text
        ][:10]
        results["deploy"] = deploy
        print(json.dumps(results["summary"], indent=2))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"deploy-{results['date']}.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {out.relative_to(ROOT)}")
        return 0
    finally:
        processes.stop_all()
        with contextlib.suppress(Exception):
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
