"""The request engine against a loopback OpenAI-compatible server that answers after 200 ms.

Run by hand: `python benchmarks/bench_engine.py [--quick] [--skip-big]`.

Every client runs in its own process against a server in another process; what is measured:
* throughput: requests / (last response - first request), timed by the server, so process
  start-up and imports are left out for every client alike;
* CPU per request: the client process's user + system time from its first request to its exit,
  divided by the requests (read from /proc, so start-up is left out here too);
* peak RSS of the client process (ru_maxrss).

Clients, all posting the same chat-completion JSON:
* `aiohttp`: a bare aiohttp loop with a semaphore: the practical ceiling for a Python client
  and the reference every other row is a fraction of;
* `openai-sdk`: a bare `AsyncOpenAI` + semaphore loop (the SDK's default transport);
* `lemagen`: the whole CLI, `lemagen sample problems.jsonl -n 1 --concurrency C`, reading,
  grading, writing JSONL and storing every response in the request store.

Then lemagen with 10% 429 + 5% 500 injected (zero lost or duplicated rows expected), the bare
SDK with its default two retries under 10% 429 (rows lost), and lemagen's peak RSS on a
100,000-problem input (server answering at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the server (its own process)


def serve(port_file: Path, delay: float, rate_429: float, rate_500: float) -> None:
    from aiohttp import web

    stats: dict[str, Any] = {}
    ok_keys: dict[str, int] = {}

    def reset() -> None:
        stats.update(requests=0, ok=0, first=None, last=None)
        ok_keys.clear()

    reset()
    rng = random.Random(0)
    text = "We add them.\nThe answer is 4."

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        if stats["first"] is None:
            stats["first"] = now
        stats["requests"] += 1
        await asyncio.sleep(delay)
        x = rng.random()
        if x < rate_429:
            return web.json_response(
                {"error": {"message": "rate limited"}}, status=429, headers={"retry-after-ms": "50"}
            )
        if x < rate_429 + rate_500:
            return web.json_response({"error": {"message": "boom"}}, status=500)
        n = int(body.get("n") or 1)
        key = json.dumps([body.get("messages"), body.get("n"), body.get("seed")])
        ok_keys[key] = ok_keys.get(key, 0) + 1
        stats["ok"] += 1
        stats["last"] = time.monotonic()
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                    for i in range(n)
                ],
                "usage": {"prompt_tokens": 60, "completion_tokens": 9, "total_tokens": 69},
            }
        )

    async def get_stats(request: web.Request) -> web.Response:
        dup = sum(1 for v in ok_keys.values() if v > 1)
        return web.json_response({**stats, "duplicated": dup, "distinct_ok": len(ok_keys)})

    async def post_reset(request: web.Request) -> web.Response:
        reset()
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", completions)
        app.router.add_get("/stats", get_stats)
        app.router.add_post("/reset", post_reset)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        port_file.write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(main())


class Server:
    def __init__(self, delay: float, rate_429: float = 0.0, rate_500: float = 0.0) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        port_file = Path(self._tmp.name) / "port"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(port_file), str(delay), str(rate_429),
             str(rate_500)]
        )  # fmt: skip
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{port_file.read_text()}"
        self.url = self.base + "/v1"

    def _get(self, path: str, method: str = "GET") -> dict[str, Any]:
        import urllib.request

        req = urllib.request.Request(
            self.base + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def stats(self) -> dict[str, Any]:
        return self._get("/stats")

    def reset(self) -> None:
        self._get("/reset", "POST")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        self._tmp.cleanup()


# ---------------------------------------------------------------- the bare clients


def prompt(i: int) -> str:
    return f"Question: Sam has {i} apples and buys {i} more. How many apples does he have?\nAnswer:"


def bare_client(kind: str, url: str, n: int, concurrency: int, max_retries: int) -> None:
    async def with_aiohttp() -> int:
        import aiohttp

        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one(i: int) -> int:
                body = {"model": MODEL, "n": 1, "temperature": 0.7, "max_tokens": 256,
                        "messages": [{"role": "user", "content": prompt(i)}]}  # fmt: skip
                headers = {"Content-Type": "application/json"}
                post = session.post(
                    url + "/chat/completions", data=json.dumps(body), headers=headers
                )
                async with sem, post as r:
                    data = json.loads(await r.read())
                    return 1 if r.status == 200 and data["choices"] else 0

            return sum(await asyncio.gather(*(one(i) for i in range(n))))

    async def with_sdk() -> int:
        import openai

        client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=max_retries)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> int:
            async with sem:
                try:
                    out = await client.chat.completions.create(
                        model=MODEL, n=1, temperature=0.7, max_tokens=256,
                        messages=[{"role": "user", "content": prompt(i)}],
                    )  # fmt: skip
                except openai.APIError:
                    return 0
                return 1 if out.choices else 0

        got = sum(await asyncio.gather(*(one(i) for i in range(n))))
        await client.close()
        return got

    ok = asyncio.run(with_aiohttp() if kind == "aiohttp" else with_sdk())
    print(ok)


# ---------------------------------------------------------------- measuring a client process


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def measure(server: Server, cmd: list[str]) -> dict[str, Any]:
    server.reset()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        cpu_at_first = None
        status = usage = None
        while status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
            elif cpu_at_first is None and server.stats()["requests"]:
                cpu_at_first = cpu_seconds(proc.pid)
            else:
                time.sleep(0.002 if cpu_at_first is None else 0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert usage is not None
    cpu_total = usage.ru_utime + usage.ru_stime
    stats = server.stats()
    span = (stats["last"] or 0) - (stats["first"] or 0)
    return {
        "rc": proc.returncode,
        "stdout": stdout,
        "stderr": stderr.decode(errors="replace"),
        "ok": stats["ok"],
        "requests": stats["requests"],
        "duplicated": stats["duplicated"],
        "span": span,
        "cpu": cpu_total - (cpu_at_first or 0.0),
        "rss_mb": usage.ru_maxrss / 1024,
    }


def problems_file(directory: Path, n: int) -> Path:
    path = directory / f"problems-{n}.jsonl"
    if not path.exists():
        with path.open("w") as out:
            for i in range(n):
                out.write(json.dumps({"id": f"q{i}", "question": f"Sam has {i} apples and buys "
                                      f"{i} more. How many apples does he have?",
                                      "answer": f"#### {2 * i}"}) + "\n")  # fmt: skip
    return path


def lemagen_cmd(
    server: Server, problems: Path, concurrency: int, cache: Path, *extra: str
) -> list[str]:
    return [
        sys.executable, "-m", "lemagen", "sample", str(problems), "-m", MODEL, "-n", "1",
        "--keep", "all", "--concurrency", str(concurrency), "--base-url", server.url,
        "--cache-dir", str(cache), "-q", *extra,
    ]  # fmt: skip


def bare_cmd(kind: str, server: Server, n: int, concurrency: int, retries: int = 0) -> list[str]:
    return [sys.executable, __file__, "client", kind, server.url, str(n), str(concurrency),
            str(retries)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=500/1500, for a smoke run")
    parser.add_argument("--skip-big", action="store_true", help="skip the 100,000-problem run")
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    cases = [(2000 // scale, 128), (6000 // scale, 512)]
    tmp = Path(tempfile.mkdtemp(prefix="lemagen-bench-"))
    server = Server(delay=0.2)
    rows = []
    try:
        for n, c in cases:
            ideal = c / 0.2
            problems = problems_file(tmp, n)
            results = {
                "aiohttp": measure(server, bare_cmd("aiohttp", server, n, c)),
                "openai-sdk": measure(server, bare_cmd("openai", server, n, c)),
                "lemagen": measure(server, lemagen_cmd(server, problems, c, tmp / f"cache-{n}")),
            }
            ref = n / results["aiohttp"]["span"]
            for name, r in results.items():
                rate = r["ok"] / r["span"] if r["span"] else 0.0
                lines = len(r["stdout"].splitlines()) if name == "lemagen" else r["ok"]
                rows.append(
                    f"| {name} | {n} | {c} | {rate:.0f} | {rate / ideal:.2f} | "
                    f"{rate / ref:.2f} | {1000 * r['cpu'] / n:.2f} | {r['rss_mb']:.0f} | "
                    f"{lines} | {r['duplicated']} |"
                )
                if r["rc"] != 0:
                    print(f"{name} exited {r['rc']}: {r['stderr'][-500:]}", file=sys.stderr)
    finally:
        server.stop()
    print("| client | N | C | req/s | of ideal | of bare aiohttp | CPU ms/req | peak RSS MB "
          "| rows out | duplicated |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))

    n = 2000 // scale
    faulty = Server(delay=0.2, rate_429=0.10, rate_500=0.05)
    try:
        problems = problems_file(tmp, n)
        lem = measure(faulty, lemagen_cmd(faulty, problems, 128, tmp / "cache-faults",
                                          "--retry-delay", "0.05"))  # fmt: skip
        sdk = measure(faulty, bare_cmd("openai", faulty, n, 128, retries=2))
    finally:
        faulty.stop()
    lem_rows = len(lem["stdout"].splitlines())
    print(f"\nWith 10% 429 + 5% 500 injected, N={n}, C=128:")
    print(f"- lemagen: exit {lem['rc']}, {lem_rows} of {n} rows out, {lem['duplicated']} requests "
          f"answered twice, {lem['requests']} requests in all")  # fmt: skip
    print(f"- bare AsyncOpenAI, default 2 retries: {int(sdk['stdout'] or 0)} of {n} rows, "
          f"{n - int(sdk['stdout'] or 0)} lost")  # fmt: skip

    if not args.skip_big:
        fast = Server(delay=0.0)
        try:
            big = problems_file(tmp, 100_000)
            run = measure(fast, lemagen_cmd(fast, big, 128, tmp / "cache-big", "-o", os.devnull))
        finally:
            fast.stop()
        print(
            f"\n100,000 problems (server answering at once, C=128): exit {run['rc']}, "
            f"{run['ok']} requests, {run['span']:.1f} s, peak RSS {run['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        bare_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
