"""Load and bad input for the web demo (``kgsf demo``): concurrent sessions through the app's API.

Starts ``kgsf demo FOLDER`` on 127.0.0.1 (a free port) in a subprocess, drives ``--sessions``
browser-like sessions at once with ``gradio_client`` (one client = one session, its own
``gr.State``), each sending the same list of messages (a normal one, empty, 10,000 characters,
HTML with a script, an unknown ``@123456789``, emoji and mixed scripts, each tagged with the
session's marker) with a random think time between them, like people typing; then stops the
server. Measures the reply latency (request sent -> reply received, queue wait included), and
checks after every reply and in each session's export that the conversation holds exactly that
session's own turns (``cross_session_leaks``). ``errors``: requests that failed, or a non-empty
message answered without a reply. Bounded: ``--timeout`` seconds in all, then the sessions stop.

    python benchmarks/bench_demo_load.py runs/quick/conversation/best              # 20 sessions -> docs/results/demo_load.json
    python benchmarks/bench_demo_load.py FOLDER --sessions 3 --think 0 0.2 --output /tmp/load.json

Goal (issue 24): p95 <= 1 s on 2 cores, 0 leaks, 0 errors.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "docs" / "results" / "demo_load.json"
MAX_MESSAGE_CHARS = 2000  # modeling_kgsf.demo_kgsf.MAX_MESSAGE_CHARS (not imported: the client side needs no torch)


def messages_for(marker: str) -> list[tuple[str, str]]:
    """``(kind, text)`` of one session, each non-empty text carrying ``marker``."""
    long_text = (f"{marker} " + " ".join(["I really liked The Matrix and Inception, something smart please"] * 200))[:10_000]
    return [
        ("normal", f"{marker} Hi! I loved Paranormal Activity, anything scary?"),
        ("empty", ""),
        ("10k_chars", long_text.ljust(10_000, "x")),
        ("html", f"{marker} <b>bold</b><script>alert(1)</script><img src=x onerror=alert(2)>"),
        ("unknown_item", f"{marker} Have you seen @123456789 ?"),
        ("emoji_mixed_scripts", f"{marker} 😀🎬 映画 фильм película 영화 with Tom Hanks 👍"),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: str, port: int, ratings: str, queue_size: int, concurrency: int, wait: float) -> subprocess.Popen:
    """``kgsf demo`` in a subprocess; returns once it answers HTTP (``RuntimeError`` after ``wait`` s)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "kgsf_cli", "demo", folder, "--port", str(port), "--ratings", ratings,
               "--queue-size", str(queue_size), "--concurrency", str(concurrency)]
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    deadline = time.time() + wait
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"kgsf demo exited ({server.returncode}): {Path(log.name).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"kgsf demo did not answer within {wait:.0f} s: {Path(log.name).read_text()[-2000:]}")


def _texts(chat: list, role: str) -> list[str]:
    """The (unescaped) texts of ``role`` messages in a Chatbot value as gradio_client returns it."""
    texts = []
    for message in chat or []:
        if message.get("role") != role:
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        texts.append(html.unescape(str(content)))
    return texts


def run_session(url: str, index: int, think: tuple[float, float], deadline: float, seed: int, results: dict, lock: threading.Lock):
    """One session: its messages in order; appends latencies, errors, leaks to ``results``."""
    from gradio_client import Client

    rng = random.Random(seed + index)
    marker = f"[s{index:03d}]"
    sent: list[str] = []  # the non-empty messages this session sent, as the app keeps them
    latencies, errors, leaks = [], [], []
    try:
        client = Client(url, verbose=False)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        with lock:
            results["errors"].append(f"session {index}: cannot connect ({type(error).__name__}: {error})"[:300])
        return
    for kind, text in messages_for(marker):
        time.sleep(rng.uniform(*think))
        if time.time() > deadline:
            errors.append(f"session {index}: stopped by --timeout before {kind}")
            break
        started = time.perf_counter()
        try:
            chat, _, _, status, _ = client.predict(text, "default", 4, 0, 5, True, 8, 20, api_name="/chat")
        except Exception as error:  # noqa: BLE001 - counted
            errors.append(f"session {index} {kind}: {type(error).__name__}: {error}"[:300])
            continue
        latencies.append((kind, time.perf_counter() - started))
        if text.strip():
            sent.append(text[:MAX_MESSAGE_CHARS].strip())
        users, replies = _texts(chat, "user"), _texts(chat, "assistant")
        if users != sent:
            foreign = [u for u in users if marker not in u]
            leaks.append(f"session {index} after {kind}: {len(foreign)} foreign turns, {len(users)} shown vs {len(sent)} sent")
        if text.strip() and (len(replies) != len(sent) or not str(status).startswith("reply")):
            errors.append(f"session {index} {kind}: no reply ({status})"[:300])
        if not text.strip() and "empty" not in str(status):
            errors.append(f"session {index} empty: not refused ({status})"[:300])
    try:
        exported_path, _ = client.predict(api_name="/export")
        exported = json.loads(Path(exported_path).read_text(encoding="utf-8"))
        seekers = [turn["text"] for turn in exported["turns"] if turn["role"] == "seeker"]
        if seekers != sent:
            leaks.append(f"session {index}: export holds {len(seekers)} seeker turns, {sum(marker not in s for s in seekers)} foreign")
    except Exception as error:  # noqa: BLE001 - counted
        errors.append(f"session {index} export: {type(error).__name__}: {error}"[:300])
    with lock:
        results["latencies"].extend(latencies)
        results["errors"].extend(errors)
        results["leaks"].extend(leaks)


def run(folder: str, sessions: int = 20, think: tuple[float, float] = (4.0, 12.0), timeout: float = 600.0, seed: int = 0,
        queue_size: int = 64, concurrency: int = 1, server_wait: float = 180.0) -> dict:
    """Start the server, drive ``sessions`` at once, stop the server; the result dict."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="kgsf-demo-load-"))
    load_before = os.getloadavg()
    server = start_server(folder, port, str(workdir / "ratings.jsonl"), queue_size, concurrency, server_wait)
    url = f"http://127.0.0.1:{port}/"
    results: dict = {"latencies": [], "errors": [], "leaks": []}
    lock = threading.Lock()
    started = time.time()
    try:
        threads = [threading.Thread(target=run_session, args=(url, i, think, started + timeout, seed, results, lock), daemon=True)
                   for i in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(1.0, started + timeout + 60 - time.time()))
        hung = sum(thread.is_alive() for thread in threads)
        if hung:
            results["errors"].append(f"{hung} sessions still running after --timeout")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    seconds = np.array([latency for _, latency in results["latencies"]]) if results["latencies"] else np.zeros(0)
    by_kind: dict[str, list[float]] = {}
    for kind, latency in results["latencies"]:
        by_kind.setdefault(kind, []).append(latency)
    return {
        "sessions": sessions,
        "requests": int(len(seconds)),
        "p50_seconds": round(float(np.percentile(seconds, 50)), 4) if len(seconds) else None,
        "p95_seconds": round(float(np.percentile(seconds, 95)), 4) if len(seconds) else None,
        "max_seconds": round(float(seconds.max()), 4) if len(seconds) else None,
        "p95_seconds_by_input": {kind: round(float(np.percentile(values, 95)), 4) for kind, values in by_kind.items()},
        "cross_session_leaks": len(results["leaks"]),
        "errors": len(results["errors"]),
        "leak_examples": results["leaks"][:5],
        "error_examples": results["errors"][:5],
        "goal": {"p95_seconds_at_most": 1.0, "leaks": 0, "errors": 0},
        "goal_met": bool(len(seconds) and np.percentile(seconds, 95) <= 1.0 and not results["leaks"] and not results["errors"]),
        "think_seconds": list(think),
        "inputs": [kind for kind, _ in messages_for("")],
        "server": {"queue_size": queue_size, "concurrency": concurrency, "decoding": "default", "k": 5, "max_new_tokens": 20},
        "wall_seconds": round(time.time() - started, 1),
        "model": folder,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *sys.argv[1:]]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a trained KGSF folder")
    parser.add_argument("--sessions", type=int, default=20, help="sessions at once (default 20)")
    parser.add_argument("--think", type=float, nargs=2, default=(4.0, 12.0), metavar=("MIN", "MAX"),
                        help="seconds a session waits before each message, uniform in [MIN, MAX] (default 4 12: typing)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for all sessions; later messages are not sent (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queue-size", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help=f"JSON result (default {os.path.relpath(DEFAULT_OUTPUT, REPO)})")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.think[0] < 0 or args.think[1] < args.think[0] or args.timeout <= 0:
        parser.error("--sessions >= 1, 0 <= --think MIN <= MAX, --timeout > 0")
    result = run(args.folder, args.sessions, tuple(args.think), args.timeout, args.seed, args.queue_size, args.concurrency)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("sessions", "requests", "p50_seconds", "p95_seconds", "cross_session_leaks", "errors", "goal_met")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
