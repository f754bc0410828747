"""Concurrent clients: random operations against random nodes, recorded as a ``History``.

Every write carries an ``Idempotency-Key`` of its own. An answer that leaves the outcome open
(a timeout, a connection error, any 503) is retried with the same key through another node,
a bounded number of times; a write whose every attempt was open is "unknown" (it may or may
not have happened). Rolls are shared: several clients race to reserve the same roll, and
some creations reuse an id another client already sent, so refusals happen for real.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .history import (
    OK,
    READ_TARGETS,
    REFUSED,
    Attempt,
    History,
    ReadOp,
    WriteOp,
    json_digest,
    list_digest,
)

MAX_ATTEMPTS = 8
REQUEST_TIMEOUT_S = 4.0
OP_DEADLINE_S = 10.0  # no logical operation retries beyond this
WEIGHTS = (50, 100, 150, 200, 300, 400)
ROLL_GRAMS = 1000
DEFINITIVE = (404, 409, 422)


@dataclass
class Farmbook:
    """What the clients know of the farm, to pick arguments (not a model of it)."""

    printers: list[str] = field(default_factory=list)  # creation acknowledged
    printer_ids: list[str] = field(default_factory=list)  # creation sent
    rolls: list[str] = field(default_factory=list)  # creation sent, newest last
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (job id, roll id), not refused
    sent_jobs: list[tuple[str, str]] = field(default_factory=list)  # every job creation sent
    status: dict[str, str] = field(default_factory=dict)  # last acknowledged status of a job
    next_id: int = 0
    next_op: int = 0

    def new_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}{self.next_id}"

    def op_id(self) -> int:
        self.next_op += 1
        return self.next_op


class Clients:
    def __init__(self, urls: dict[str, str], history: History, seed: int) -> None:
        self.urls = urls
        self.history = history
        self.seed = seed
        self.book = Farmbook()
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Clients:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=64, force_close=False),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    # -- one request ------------------------------------------------------------------------

    async def _request(
        self, node: str, method: str, path: str, body: object | None, key: str | None
    ) -> tuple[Attempt, Any, dict[str, str]]:
        assert self.session is not None
        headers = {"Idempotency-Key": key} if key else {}
        start = time.monotonic()
        try:
            async with self.session.request(
                method, self.urls[node] + path, json=body, headers=headers
            ) as resp:
                raw = await resp.read()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                code = ""
                if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                    code = str(parsed["error"].get("code", ""))
                attempt = Attempt(
                    node,
                    start,
                    time.monotonic(),
                    resp.status,
                    code,
                    resp.headers.get("Idempotent-Replayed") == "true",
                )
                return attempt, parsed, dict(resp.headers)
        except TimeoutError:
            return Attempt(node, start, time.monotonic(), None, "timeout"), None, {}
        except (aiohttp.ClientError, OSError):
            return Attempt(node, start, time.monotonic(), None, "connection"), None, {}

    # -- operations -------------------------------------------------------------------------

    async def write(
        self,
        rng: random.Random,
        client: int,
        kind: str,
        args: dict[str, Any],
        method: str,
        path: str,
        body: object | None,
    ) -> WriteOp:
        op_id = self.book.op_id()
        op = WriteOp(op_id, client, kind, args, f"c{self.seed}-{op_id}", 0.0, 0.0)
        self.history.writes.append(op)
        node = rng.choice(list(self.urls))
        first = time.monotonic()
        for _ in range(MAX_ATTEMPTS):
            attempt, parsed, _ = await self._request(node, method, path, body, op.key)
            op.attempts.append(attempt)
            op.complete = attempt.end
            if attempt.status is not None and 200 <= attempt.status < 300:
                op.outcome, op.body_digest = OK, json_digest(parsed)
                break
            if attempt.status is not None and attempt.status < 500:
                op.outcome, op.code = REFUSED, attempt.code
                break
            if time.monotonic() - first > OP_DEADLINE_S:
                break
            others = [n for n in self.urls if n != node]
            node = rng.choice(others or list(self.urls))
            backoff = min(1.0, 0.05 * 2 ** len(op.attempts))
            await asyncio.sleep(rng.uniform(backoff / 2, backoff))  # retry backoff
        op.invoke = op.attempts[0].start
        return op

    async def read(self, rng: random.Random, client: int) -> ReadOp:
        target = rng.choice(list(READ_TARGETS))
        consistency = "local" if rng.random() < 0.25 else "linearizable"
        path, query = READ_TARGETS[target]
        params = [q for q in (query, "consistency=local" if consistency == "local" else "") if q]
        node = rng.choice(list(self.urls))
        attempt, parsed, headers = await self._request(
            node, "GET", path + ("?" + "&".join(params) if params else ""), None, None
        )
        read = ReadOp(
            self.book.op_id(),
            client,
            node,
            target,
            consistency,
            attempt.start,
            attempt.end,
            attempt.status,
        )
        if attempt.status == 200 and isinstance(parsed, list):
            index = headers.get("X-Raft3D-Applied-Index", "")
            read.index = int(index) if index.isdigit() else None
            read.digest, read.count = list_digest(parsed), len(parsed)
        self.history.reads.append(read)
        return read

    async def create_printer(self, rng: random.Random, client: int, contested: bool) -> None:
        book = self.book
        if contested and book.printer_ids:
            pid = rng.choice(book.printer_ids)
        else:
            pid = book.new_id("p")
            book.printer_ids.append(pid)
        body = {"id": pid, "company": "Creality", "model": f"Ender {rng.randint(2, 7)}"}
        op = await self.write(
            rng, client, "create_printer", {"id": pid}, "POST", "/api/v1/printers", body
        )
        if op.outcome == OK and pid not in book.printers:
            book.printers.append(pid)

    async def create_roll(self, rng: random.Random, client: int, contested: bool) -> None:
        book = self.book
        if contested and book.rolls:
            fid = rng.choice(book.rolls[-4:])
        else:
            fid = book.new_id("f")
            book.rolls.append(fid)
        remaining = rng.choice((ROLL_GRAMS, ROLL_GRAMS, 800, 600))
        body = {
            "id": fid,
            "type": rng.choice(("PLA", "petg", "ABS", "tpu")),
            "color": "red",
            "total_weight_in_grams": ROLL_GRAMS,
            "remaining_weight_in_grams": remaining,
        }
        args = {"id": fid, "filament_id": fid, "remaining_weight_in_grams": remaining}
        await self.write(rng, client, "create_filament", args, "POST", "/api/v1/filaments", body)

    async def create_job(self, rng: random.Random, client: int) -> None:
        book = self.book
        if not book.printers or not book.rolls:
            return
        jid, fid = book.new_id("j"), rng.choice(book.rolls[-3:])
        weight = rng.choice(WEIGHTS)
        body = {
            "id": jid,
            "printer_id": rng.choice(book.printers),
            "filament_id": fid,
            "filepath": f"prints/{jid}.gcode",
            "print_weight_in_grams": weight,
        }
        args = {"id": jid, "filament_id": fid, "print_weight_in_grams": weight}
        book.sent_jobs.append((jid, fid))
        op = await self.write(rng, client, "create_job", args, "POST", "/api/v1/print_jobs", body)
        if op.outcome != REFUSED:
            book.jobs.append((jid, fid))
            book.status[jid] = "Queued"

    async def change_status(self, rng: random.Random, client: int) -> None:
        book = self.book
        if not book.jobs:
            return
        jid, fid = rng.choice(book.sent_jobs[-40:] if rng.random() < 0.1 else book.jobs[-30:])
        target = rng.choice(("Running", "Done", "Cancelled"))
        if rng.random() < 0.8:  # mostly the natural next step, sometimes anything
            natural = {"Queued": ("Running",), "Running": ("Done", "Done", "Cancelled")}
            target = rng.choice(natural.get(book.status.get(jid, ""), (target,)))
        args = {"job_id": jid, "filament_id": fid, "status": target}
        path = f"/api/v1/print_jobs/{jid}/status"
        style = rng.random()
        if style < 0.5:
            op = await self.write(
                rng, client, "update_status", args, "POST", f"{path}?status={target.lower()}", None
            )
        else:
            method = "PUT" if style < 0.75 else "POST"
            op = await self.write(
                rng, client, "update_status", args, method, path, {"status": target.upper()}
            )
        if op.outcome == OK:
            book.status[jid] = target

    async def one(self, rng: random.Random, client: int) -> None:
        r = rng.random()
        if r < 0.35:
            await self.create_job(rng, client)
        elif r < 0.57:
            await self.change_status(rng, client)
        elif r < 0.59:
            await self.create_printer(rng, client, contested=rng.random() < 0.3)
        elif r < 0.62:
            await self.create_roll(rng, client, contested=rng.random() < 0.25)
        else:
            await self.read(rng, client)

    async def setup(self, rng: random.Random, printers: int = 4, rolls: int = 3) -> None:
        for _ in range(printers):
            await self.create_printer(rng, 0, contested=False)
        for _ in range(rolls):
            await self.create_roll(rng, 0, contested=False)

    async def run_client(self, client: int, stop: asyncio.Event, max_ops: int) -> None:
        rng = random.Random(self.seed * 1000 + client)
        for _ in range(max_ops):
            if stop.is_set():
                return
            await self.one(rng, client)
