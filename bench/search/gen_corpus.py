#!/usr/bin/env python3
"""Generates a synthetic agent-event corpus as JSON Lines: {"session": ID, "event": {...}}.

Event mix (per session, in order): user messages, agent messages, tool calls (bash, read_file,
edit, grep, run_tests) whose inputs carry shell commands, paths and code, tool results with shell
output or code, and errors. Words come from a Zipfian vocabulary (s = 1.1) of generated words plus
a small set of real programming words, so a few terms are very common and most are rare.

  python3 gen_corpus.py --events 1000000 --sessions 2000 --seed 1 > corpus.jsonl
"""
import argparse
import bisect
import itertools
import json
import random
import sys

SYLL = ["ba", "ko", "ri", "tan", "vel", "mor", "shi", "qua", "zen", "lup", "dor", "fex", "gim",
        "hal", "jun", "nix", "pol", "rax", "sut", "wim", "yor", "cle", "bro", "stra", "ph"]
REAL = ["error", "timeout", "webhook", "stripe", "refund", "database", "migration", "deploy",
        "kubernetes", "retry", "cache", "token", "session", "index", "query", "handler", "payload",
        "config", "docker", "nginx", "python", "typescript", "request", "response", "failed",
        "test", "assert", "null", "pointer", "segfault", "memory", "leak", "thread", "lock"]
TOOLS = ["bash", "read_file", "edit", "grep", "run_tests"]


def vocabulary(n, rng):
    words = set(REAL)
    while len(words) < n:
        words.add("".join(rng.choice(SYLL) for _ in range(rng.randint(2, 4))))
    words = sorted(words)
    rng.shuffle(words)
    return words


class Zipf:
    def __init__(self, words, s, rng):
        self.words = words
        self.rng = rng
        w = [1.0 / (i + 1) ** s for i in range(len(words))]
        self.cum = list(itertools.accumulate(w))

    def word(self):
        return self.words[bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])]

    def text(self, lo, hi):
        return " ".join(self.word() for _ in range(self.rng.randint(lo, hi)))


def event(z, rng, i):
    k = rng.random()
    if k < 0.2:
        return {"type": "user.message", "content": [{"type": "text", "text": z.text(5, 60)}]}
    if k < 0.45:
        return {"type": "agent.message", "content": [{"type": "text", "text": z.text(20, 150)}]}
    if k < 0.7:
        tool = rng.choice(TOOLS)
        if tool == "bash":
            inp = {"command": f"{z.word()} --{z.word()} ./{z.word()}/{z.word()}.py | grep {z.word()}"}
        elif tool == "edit":
            inp = {"path": f"src/{z.word()}/{z.word()}.ts",
                   "new_text": f"function {z.word()}({z.word()}) {{ return {z.word()}.{z.word()}(); }}"}
        else:
            inp = {"path": f"src/{z.word()}.py", "pattern": z.word()}
        return {"type": "agent.tool_use", "id": f"toolu_{i:08d}", "name": tool, "input": inp}
    if k < 0.95:
        out = "\n".join(f"{z.word()}:{rng.randint(1, 999)}: {z.text(3, 12)}"
                        for _ in range(rng.randint(1, 12)))
        return {"type": "agent.tool_result", "tool_use_id": f"toolu_{i - 1:08d}",
                "content": [{"type": "text", "text": out}], "is_error": False}
    return {"type": "session.error",
            "error": {"type": "tool_error", "message": f"{z.word()} error: {z.text(4, 20)}"}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    z = Zipf(vocabulary(a.vocab, rng), 1.1, rng)
    out = sys.stdout
    for i in range(a.events):
        sid = f"bench-{i % a.sessions:05d}"
        out.write(json.dumps({"session": sid, "event": event(z, rng, i)}) + "\n")


if __name__ == "__main__":
    main()
