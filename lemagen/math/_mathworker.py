"""Worker process for symbolic answer checks: `python -m lemagen.math._mathworker`.

Reads one JSON array `[gold, pred]` per line on stdin and answers one JSON line per request:
`{"equal": bool, "gold_parsed": bool}`. It runs Math-Verify with its own signal-based timeouts
turned off; the parent enforces the time limit by killing this process, which works from any
thread and for any hang (a signal cannot interrupt a long C-level sympy call, a kill can).
"""

from __future__ import annotations

import json
import logging
import sys


def main() -> None:
    logging.disable(logging.WARNING)  # Math-Verify warns on every call that its timeout is off
    from math_verify import parse, verify

    def parsed(text: str) -> list[object]:
        return list(parse(f"${text}$", parsing_timeout=None))

    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        gold_text, pred_text = json.loads(line)
        try:
            gold = parsed(gold_text)
            pred = parsed(pred_text)
            equal = bool(gold and pred and verify(gold, pred, timeout_seconds=None))
            reply: dict[str, object] = {"equal": equal, "gold_parsed": bool(gold)}
        except Exception as exc:  # noqa: BLE001 - any sympy failure is an inequality, reported
            reply = {"equal": False, "gold_parsed": True, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
