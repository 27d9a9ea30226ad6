"""The request engine against a loopback OpenAI-compatible server (aiohttp, its own process).

Run by hand: `python benchmarks/bench_engine.py [--quick] [--only SCENARIO ...]`; to measure
another checkout of lemagen with the same benchmark, put it first on PYTHONPATH.

Every client runs in its own process against a server in another process; what is measured:
* throughput: requests / (last response - first request), timed by the server, so process
  start-up and imports are left out for every client alike;
* CPU per request: the client process's user + system time from its first request to its exit,
  divided by the requests (read from /proc, so start-up is left out here too);
* peak RSS of the client process (VmHWM, read while it runs).

Clients, all posting the same chat-completion JSON:
* `aiohttp`: a bare aiohttp loop with a semaphore that retries a failed call after its
  Retry-After (at once without one): the practical ceiling for a Python client and the
  reference every other row is a fraction of;
* `openai-sdk` (`--sdk`): a bare `AsyncOpenAI` + semaphore loop (the SDK's default transport);
* `lemagen`: the whole CLI, `lemagen sample problems.jsonl -n 1 --concurrency C`, reading,
  grading, writing JSONL and storing every response in the request store, over its default
  transport (its own HTTP/1.1 client); `--transports` adds the CLI over aiohttp
  (`--transport aiohttp`) to the throughput scenarios.

Scenarios (`--only`):
* `throughput`: a server answering after 200 ms, C=128 and C=512;
* `fast`: a server answering after 1 ms (a vLLM box on the same rack), C=128;
* `faults`: 10% 429 (`Retry-After: 1`) + 5% 500, C=128: wall time against the bare loop's
  (three rounds, the median ratio's reported: a run's end is set by its unluckiest call);
* `limit`: a token bucket of 150 requests/s (429 with `retry-after-ms` until the next token,
  `x-ratelimit-*` headers), C=256: wall time against the ideal N/150, 429s, rows set aside;
* `resume`: 100,000 problems against a server answering at once: a fresh run, then a run that
  finds 99% in the store, then one that finds everything (wall time of the whole process, and
  its whole CPU time per row: on a shared machine the wall time is mostly waiting for a core);
  outputs compared (sorted) with the fresh run's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
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


def serve(port_file: Path, options: dict[str, Any]) -> None:
    from aiohttp import web

    delay = float(options.get("delay", 0.2))
    rate_429 = float(options.get("rate_429", 0.0))
    rate_500 = float(options.get("rate_500", 0.0))
    retry_after = options.get("retry_after", {"retry-after-ms": "50"})
    bucket_rate = float(options.get("bucket_rate", 0.0))
    bucket_burst = float(options.get("bucket_burst", bucket_rate))
    stats: dict[str, Any] = {}
    ok_keys: dict[str, int] = {}
    bucket = {"tokens": bucket_burst, "at": time.monotonic()}

    def reset() -> None:
        stats.update(requests=0, ok=0, limited=0, first=None, last=None)
        ok_keys.clear()
        bucket.update(tokens=bucket_burst, at=time.monotonic())

    reset()
    rng = random.Random(0)
    text = "We add them.\nThe answer is 4."

    def take() -> tuple[bool, dict[str, str]]:
        """A token bucket, as providers enforce a request limit."""
        now = time.monotonic()
        tokens = min(bucket_burst, bucket["tokens"] + (now - bucket["at"]) * bucket_rate)
        admitted = tokens >= 1.0
        if admitted:
            tokens -= 1.0
        bucket.update(tokens=tokens, at=now)
        wait = max(0.0, (1.0 - tokens) / bucket_rate)
        headers = {
            "x-ratelimit-limit-requests": f"{bucket_rate * 60:g}",
            "x-ratelimit-remaining-requests": str(int(tokens)),
            "x-ratelimit-reset-requests": f"{round(wait * 1000)}ms",
        }
        if not admitted:
            headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
        return admitted, headers

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        if stats["first"] is None:
            stats["first"] = now
        stats["requests"] += 1
        headers: dict[str, str] = {}
        if bucket_rate:
            admitted, headers = take()
            if not admitted:
                stats["limited"] += 1
                return web.json_response(
                    {"error": {"message": "Rate limit reached for requests"}},
                    status=429,
                    headers=headers,
                )
        await asyncio.sleep(delay)
        x = rng.random()
        if x < rate_429:
            stats["limited"] += 1
            return web.json_response(
                {"error": {"message": "rate limited"}}, status=429, headers=retry_after
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
            },
            headers=headers,
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
    def __init__(self, **options: Any) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        port_file = Path(self._tmp.name) / "port"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(port_file), json.dumps(options)]
        )
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
                for _ in range(max_retries + 1):
                    post = session.post(
                        url + "/chat/completions", data=json.dumps(body), headers=headers
                    )
                    async with sem, post as r:
                        data = json.loads(await r.read())
                        if r.status == 200:
                            return 1 if data["choices"] else 0
                        millis = r.headers.get("retry-after-ms")
                        wait = float(millis) / 1000 if millis else None
                        if wait is None:
                            wait = float(r.headers.get("retry-after") or 0)
                    await asyncio.sleep(wait)  # after its Retry-After, outside the semaphore
                return 0

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


# Clients run from bytecode, as an installed package does: a machine that sets
# PYTHONDONTWRITEBYTECODE would otherwise time compiling every module on each run.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_lemagen() -> None:
    """Compile the lemagen that the clients import (this checkout, or the one first on
    PYTHONPATH) once, before anything is timed."""
    code = "import compileall, lemagen, os; compileall.compile_dir(os.path.dirname(lemagen.__file__), quiet=1)"  # noqa: E501
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV, cwd=tempfile.gettempdir())


def high_water_kb(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, which starts again at exec). Not ru_maxrss: that
    counts the moment between fork and exec, when the child is a copy of this process, which
    holds the outputs of earlier runs (about 180 MB by the resume runs)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(server: Server, cmd: list[str]) -> dict[str, Any]:
    server.reset()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        # Not from this checkout's directory: `python -m` puts the working directory first on
        # the path, ahead of a PYTHONPATH naming another checkout to measure.
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=ENV, cwd=tempfile.gettempdir())
        cpu_at_first = None
        status = usage = None
        peak_kb = 0
        while status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
                break
            peak_kb = high_water_kb(proc.pid) or peak_kb
            if cpu_at_first is None and server.stats()["requests"]:
                cpu_at_first = cpu_seconds(proc.pid)
            else:
                time.sleep(0.002 if cpu_at_first is None else 0.05)
        wall = time.monotonic() - started
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
        "wall": wall,
        "limited": stats["limited"],
        "cpu": cpu_total - (cpu_at_first or 0.0),
        "cpu_total": cpu_total,
        "rss_mb": (peak_kb or usage.ru_maxrss) / 1024,
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


SCENARIOS = ("throughput", "fast", "faults", "limit", "resume")
HEADER = (
    "| scenario | client | N | C | req/s | of bare aiohttp | wall s | of reference | CPU ms/req "
    "| 429s | peak RSS MB | rows out | rc |"
)


def row(scenario: str, name: str, n: int, c: int, r: dict[str, Any], ref_rate: float,
        ref_time: float, lines: int) -> str:  # fmt: skip
    rate = r["ok"] / r["span"] if r["span"] else 0.0
    span = r["span"] or r["wall"]
    return (
        f"| {scenario} | {name} | {n} | {c} | {rate:.0f} | {rate / ref_rate:.2f} | {span:.1f} | "
        f"{span / ref_time:.2f} | {1000 * r['cpu'] / max(1, r['requests']):.2f} | "
        f"{r['limited']} | {r['rss_mb']:.0f} | {lines} | {r['rc']} |"
    )


def lines_out(r: dict[str, Any]) -> int:
    return len(r["stdout"].splitlines())


def report_failure(name: str, r: dict[str, Any]) -> None:
    if r["rc"] != 0:
        print(f"{name} exited {r['rc']}: {r['stderr'][-500:]}", file=sys.stderr)


def throughput(tmp: Path, rows: list[str], scenario: str, delay: float,
               cases: list[tuple[int, int]], sdk: bool, transports: bool) -> None:  # fmt: skip
    server = Server(delay=delay)
    try:
        for n, c in cases:
            problems = problems_file(tmp, n)
            results = {"aiohttp": measure(server, bare_cmd("aiohttp", server, n, c))}
            if sdk:
                results["openai-sdk"] = measure(server, bare_cmd("openai", server, n, c))
            cache = tmp / f"cache-{scenario}-{n}-{c}"
            results["lemagen"] = measure(server, lemagen_cmd(server, problems, c, cache))
            if transports:  # the same CLI over aiohttp: what lemagen's own client saves
                cache = tmp / f"cache-{scenario}-{n}-{c}-aiohttp"
                results["lemagen --transport aiohttp"] = measure(
                    server, lemagen_cmd(server, problems, c, cache, "--transport", "aiohttp")
                )
            ref = results["aiohttp"]
            for name, r in results.items():
                lines = lines_out(r) if name.startswith("lemagen") else r["ok"]
                rows.append(row(scenario, name, n, c, r, n / ref["span"], ref["span"], lines))
                report_failure(name, r)
    finally:
        server.stop()


FAULT_ROUNDS = 3


def faults(tmp: Path, scale: int, rows: list[str]) -> None:
    """10% 429 with Retry-After: 1 and 5% 500, C=128: lemagen's wall time against the bare
    loop's (which retries each failed call after its Retry-After, at once without one).

    Both wall times are set by the unluckiest call's chain of faults (four in a row cost
    about 5 s whoever the client is), so one run of each says little: the clients take
    turns for FAULT_ROUNDS rounds, and the round with the median ratio is reported."""
    n, c = 1500 // scale, 128
    rounds = FAULT_ROUNDS if scale == 1 else 1
    server = Server(delay=0.2, rate_429=0.10, rate_500=0.05, retry_after={"Retry-After": "1"})
    pairs = []
    try:
        problems = problems_file(tmp, n)
        for k in range(rounds):
            bare = measure(server, bare_cmd("aiohttp", server, n, c, retries=50))
            lem = measure(server, lemagen_cmd(server, problems, c, tmp / f"cache-faults-{k}"))
            pairs.append((lem["span"] / bare["span"], bare, lem))
    finally:
        server.stop()
    pairs.sort(key=lambda pair: pair[0])
    ratios = ", ".join(f"{ratio:.2f}" for ratio, _, _ in pairs)
    _, bare, lem = pairs[len(pairs) // 2]
    scenario = f"faults (median of {rounds}: {ratios})" if rounds > 1 else "faults"
    for name, r, lines in (("aiohttp", bare, bare["ok"]), ("lemagen", lem, lines_out(lem))):
        rows.append(row(scenario, name, n, c, r, n / bare["span"], bare["span"], lines))
        report_failure(name, r)


def limit(tmp: Path, scale: int, rows: list[str]) -> None:
    """A token bucket of 150 requests/s with rate-limit headers, C=256: wall time against
    the ideal N/150."""
    n, c, rate = 1500 // scale, 256, 150.0
    server = Server(delay=0.2, bucket_rate=rate)
    ideal = n / rate
    try:
        problems = problems_file(tmp, n)
        bare = measure(server, bare_cmd("aiohttp", server, n, c, retries=1000))
        lem = measure(server, lemagen_cmd(server, problems, c, tmp / "cache-limit"))
    finally:
        server.stop()
    for name, r, lines in (("aiohttp", bare, bare["ok"]), ("lemagen", lem, lines_out(lem))):
        rows.append(row(f"limit (ideal {ideal:.0f} s)", name, n, c, r, n / bare["span"],
                        ideal, lines))  # fmt: skip
        report_failure(name, r)


def resume(tmp: Path, scale: int, rows: list[str]) -> None:
    """100,000 problems: fresh, then 99% in the store, then all of it; outputs compared."""
    n = 100_000 // scale
    server = Server(delay=0.0)
    try:
        full = problems_file(tmp, n)
        most = problems_file(tmp, n - n // 100)
        fresh = measure(server, lemagen_cmd(server, full, 128, tmp / "cache-fresh"))
        cache = tmp / "cache-resume"
        measure(server, lemagen_cmd(server, most, 128, cache))
        partial = measure(server, lemagen_cmd(server, full, 128, cache))
        done = measure(server, lemagen_cmd(server, full, 128, cache))
    finally:
        server.stop()
    expected = sorted(fresh["stdout"].splitlines())
    for name, r in (("fresh", fresh), ("99% stored", partial), ("all stored", done)):
        same = sorted(r["stdout"].splitlines()) == expected
        rows.append(
            f"| resume | lemagen, {name} | {n} | 128 | - | - | {r['wall']:.1f} | - | "
            f"{1000 * r['cpu_total'] / n:.3f} | - | "
            f"{r['rss_mb']:.0f} | {lines_out(r)}{'' if same else ' (DIFFERS)'} | {r['rc']} |"
        )
        report_failure(name, r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of N, for a smoke run")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--sdk", action="store_true", help="also the bare openai SDK loop")
    parser.add_argument(
        "--transports",
        action="store_true",
        help="also lemagen with --transport aiohttp (throughput and fast server)",
    )
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    tmp = Path(tempfile.mkdtemp(prefix="lemagen-bench-"))
    rows: list[str] = []
    compile_lemagen()
    try:
        if "throughput" in args.only:
            cases = [(2000 // scale, 128), (6000 // scale, 512)]
            throughput(tmp, rows, "throughput", 0.2, cases, args.sdk, args.transports)
        if "fast" in args.only:
            fast = [(6000 // scale, 128)]
            throughput(tmp, rows, "fast server", 0.001, fast, args.sdk, args.transports)
        if "faults" in args.only:
            faults(tmp, scale, rows)
        if "limit" in args.only:
            limit(tmp, scale, rows)
        if "resume" in args.only:
            resume(tmp, scale, rows)
    finally:
        print(HEADER)
        print("|" + "---|" * (HEADER.count(" | ") + 1))
        print("\n".join(rows))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]), json.loads(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        bare_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
