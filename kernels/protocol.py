"""The ping-pong kernel's barrier protocol as plain Python: a model of mbarriers and a simulator.

``kernels.pingpong`` coordinates three warp roles through shared-memory barriers (mbarriers). Getting
the waits and arrivals right is the hard part of writing such a kernel, and a mistake on the GPU is a
hang or a wrong answer with no message. Here the same protocol runs in Python, on any machine: each
role is a *generator* that yields requests, and ``simulate`` interleaves the roles in a random order
(many orders, one per seed), models the TMA engine and the barriers, and raises ``ProtocolError`` with
a plain explanation the moment something goes wrong: a deadlock, a slot read before its data landed
or after it was refilled, a tile stored twice, the two consumers' K loops interleaved.

Requests a role may yield (``s``: a ring slot, ``c``: a consumer, 0 or 1):

* ``("wait", "ready", s, parity)``, ``("wait", "empty", s, parity)``, ``("wait", "turn", c, parity)``:
  block until the barrier's phase of that parity has completed;
* ``("arrive", "ready" | "empty" | "turn", index)``: one arrival (every barrier here expects one per
  phase, so each arrival completes a phase);
* ``("load", s, tile, k)`` (producer): start a TMA copy of tile ``tile``'s K step ``k`` into slot ``s``;
  when it lands, the TMA engine arrives on ``ready[s]``;
* ``("mma", s, tile, k)`` (consumer): multiply what slot ``s`` holds, which must be tile ``tile``'s
  step ``k``;
* ``("store", tile)`` (consumer): the tile's epilogue.

Parity, as on the GPU: a fresh barrier is in phase 0; ``wait(parity)`` returns once the current phase's
parity differs from ``parity``, i.e. once the last completed phase had that parity. So on a fresh
barrier ``wait(1)`` returns at once (the phase "before" the first counts as complete) and ``wait(0)``
blocks until the first arrival. A wait cannot tell a phase from the one two laps earlier.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .schedule import persistent_tiles, pingpong_tiles

BARRIERS = ("ready", "empty", "turn")


class ProtocolError(Exception):
    """The protocol went wrong; the message says what and where."""


class Deadlock(ProtocolError):
    """Every unfinished role waits on a barrier that nothing will complete."""


@dataclass
class Event:
    """One thing that happened, in order: ``who`` ("producer", "consumer0", "consumer1", "tma") did
    ``what`` (the request tuple, or ``("landed", s, tile, k)`` for a TMA copy that completed)."""

    step: int
    who: str
    what: tuple


def wait_passes(phases_completed: int, parity: int) -> bool:
    """Whether ``wait(parity)`` returns on a barrier that has completed ``phases_completed`` phases:
    the current phase's parity must differ from ``parity``."""
    return phases_completed % 2 != parity


def producer(program, num_programs, num_tiles, k_steps, stages):
    """The producer's side (the course's, as in ``kernels.pingpong._producer``): for every K step of
    every tile of this program, in order, wait until the slot is free, then start the TMA copy."""
    g = 0  # ring step
    for tile in persistent_tiles(program, num_programs, num_tiles):
        for k in range(k_steps):
            s = g % stages
            yield ("wait", "empty", s, ((g // stages) & 1) ^ 1)  # the first lap passes at once
            yield ("load", s, tile, k)
            g += 1


def reference_consumer(consumer, program, num_programs, num_tiles, k_steps, stages):
    """The consumer's side, as in ``kernels.pingpong._consumer`` (the course's answer)."""
    j = consumer  # the program's tile ordinal
    n = 0  # tiles done by this consumer
    for tile in pingpong_tiles(program, num_programs, num_tiles, consumer):
        yield ("wait", "turn", consumer, (n & 1) ^ (1 - consumer))
        for k in range(k_steps):
            g = j * k_steps + k
            s = g % stages
            yield ("wait", "ready", s, (g // stages) & 1)
            yield ("mma", s, tile, k)
            yield ("arrive", "empty", s)
        yield ("arrive", "turn", 1 - consumer)
        yield ("store", tile)
        j += 2
        n += 1


def _request(who, req, stages):
    """Check a request's shape; return it as a tuple."""
    if not isinstance(req, tuple) or not req:
        raise ProtocolError(f"{who} yielded {req!r}; requests are tuples such as ('wait', 'ready', 0, 0)")
    op = req[0]
    shapes = {"wait": 4, "arrive": 3, "load": 4, "mma": 4, "store": 2}
    if op not in shapes:
        raise ProtocolError(f"{who} yielded an unknown request {req!r}; known: {', '.join(shapes)}")
    if len(req) != shapes[op]:
        raise ProtocolError(f"{who} yielded {req!r}: a {op!r} request has {shapes[op]} fields")
    if op in ("wait", "arrive"):
        name, index = req[1], req[2]
        if name not in BARRIERS:
            raise ProtocolError(f"{who} yielded {req!r}: barriers are {', '.join(BARRIERS)}")
        size = 2 if name == "turn" else stages
        if not isinstance(index, int) or not 0 <= index < size:
            raise ProtocolError(f"{who} yielded {req!r}: {name} has indices 0..{size - 1}")
        if op == "wait" and req[3] not in (0, 1):
            raise ProtocolError(f"{who} yielded {req!r}: a parity is 0 or 1")
    if op in ("load", "mma") and not (isinstance(req[1], int) and 0 <= req[1] < stages):
        raise ProtocolError(f"{who} yielded {req!r}: slots are 0..{stages - 1}")
    return req


def simulate(consumer_fn, num_tiles, k_steps, stages, program=0, num_programs=1, seed=0,
             max_steps=None) -> list[Event]:
    """Run the producer and ``consumer_fn(0, ...)``, ``consumer_fn(1, ...)`` (each called as
    ``consumer_fn(consumer, program, num_programs, num_tiles, k_steps, stages)`` and returning an
    iterator of requests) in a random interleaving chosen by ``seed``. Returns the events; raises
    ``ProtocolError`` (``Deadlock``) at the first mistake."""
    rng = random.Random(seed)
    my_tiles = persistent_tiles(program, num_programs, num_tiles)
    plan = {c: [(t, k) for t in pingpong_tiles(program, num_programs, num_tiles, c) for k in range(k_steps)]
            for c in (0, 1)}
    max_steps = max_steps or 50 * (len(my_tiles) * k_steps + 10)
    completed = {(name, i): 0 for name in BARRIERS for i in range(2 if name == "turn" else stages)}
    slot = [None] * stages  # what each slot holds: (tile, k) or None
    used = [True] * stages  # whether a consumer has multiplied the slot's current contents
    in_flight = []  # TMA copies started, not landed: (s, tile, k)
    done_mma = {0: [], 1: []}
    stored = {}
    last_turn_arrive = {0: -1, 1: -1}  # step of each consumer's last arrival on the other's turn
    last_mma = {0: -1, 1: -1}  # step of each consumer's last multiplication
    k_loop_of = {0: None, 1: None}  # tile whose K loop a consumer is in
    events = []
    agents = {"producer": producer(program, num_programs, num_tiles, k_steps, stages)}
    for c in (0, 1):
        it = consumer_fn(c, program, num_programs, num_tiles, k_steps, stages)
        if it is None or not hasattr(it, "__next__"):
            raise ProtocolError(f"consumer_fn({c}, ...) returned {type(it).__name__}, not a generator: "
                                "write it with `yield` requests")
        agents[f"consumer{c}"] = it
    pending = {}  # who -> the request it waits to have carried out

    def fetch(who):
        try:
            pending[who] = _request(who, next(agents[who]), stages)
        except StopIteration:
            pending[who] = None

    for who in agents:
        fetch(who)

    def ready_to_run(who):
        req = pending[who]
        if req is None:
            return False
        if req[0] == "wait":
            return wait_passes(completed[(req[1], req[2])], req[3])
        return True

    for step in range(max_steps):
        runnable = [w for w in agents if ready_to_run(w)] + (["tma"] if in_flight else [])
        if not runnable:
            if all(pending[w] is None for w in agents):
                break
            waits = "; ".join(f"{w} waits on {pending[w][1]}[{pending[w][2]}] for parity {pending[w][3]} "
                              f"(phases completed: {completed[(pending[w][1], pending[w][2])]})"
                              for w in agents if pending[w] is not None)
            raise Deadlock(f"deadlock after {step} steps: {waits}")
        who = rng.choice(runnable)
        if who == "tma":
            s, tile, k = in_flight.pop(rng.randrange(len(in_flight)))
            if not used[s]:
                old = slot[s]
                raise ProtocolError(f"slot {s} was refilled with tile {tile} step {k} before tile {old[0]} "
                                    f"step {old[1]} in it was multiplied: an arrive on empty[{s}] came "
                                    "too early or for the wrong slot")
            slot[s], used[s] = (tile, k), False
            completed[("ready", s)] += 1
            events.append(Event(step, "tma", ("landed", s, tile, k)))
            continue
        req = pending[who]
        events.append(Event(step, who, req))
        op = req[0]
        if op == "arrive":
            completed[(req[1], req[2])] += 1
            if who.startswith("consumer") and req[1] == "turn":
                c = int(who[-1])
                last_turn_arrive[c] = step
                k_loop_of[c] = None
        elif op == "load":
            if who != "producer":
                raise ProtocolError(f"{who} yielded {req!r}: only the producer loads")
            in_flight.append(req[1:])
        elif op in ("mma", "store"):
            if not who.startswith("consumer"):
                raise ProtocolError(f"{who} yielded {req!r}: only consumers multiply and store")
            c = int(who[-1])
            if op == "mma":
                s, tile, k = req[1:]
                i = len(done_mma[c])
                if i >= len(plan[c]) or plan[c][i] != (tile, k):
                    want = plan[c][i] if i < len(plan[c]) else None
                    raise ProtocolError(f"consumer {c} multiplies tile {tile} step {k}, but its next work is "
                                        + (f"tile {want[0]} step {want[1]}" if want else "nothing: it has done all "
                                           "its tiles") + f" (consumer {c} takes tiles {sorted(set(t for t, _ in plan[c]))})")
                if slot[s] != (tile, k):
                    what = "nothing yet" if slot[s] is None else f"tile {slot[s][0]} step {slot[s][1]}"
                    raise ProtocolError(f"consumer {c} multiplies slot {s} as tile {tile} step {k}, but the slot "
                                        f"holds {what}: it did not wait for the right phase of ready[{s}] "
                                        "(or read the wrong slot)")
                other = 1 - c
                if k_loop_of[other] is not None:
                    raise ProtocolError(f"consumer {c} multiplies tile {tile} step {k} while consumer {other} is "
                                        f"in the middle of tile {k_loop_of[other]}'s K loop: in ping-pong one "
                                        "consumer's whole K loop runs before the other's (the turn)")
                used[s] = True
                last_mma[c] = step
                k_loop_of[c] = tile
                done_mma[c].append((tile, k))
            else:
                tile = req[1]
                if tile in stored:
                    raise ProtocolError(f"consumer {c} stores tile {tile} a second time")
                mine = [k for t, k in done_mma[c] if t == tile]
                if len(mine) != k_steps:
                    raise ProtocolError(f"consumer {c} stores tile {tile} after {len(mine)} of its {k_steps} K steps")
                if last_turn_arrive[c] < last_mma[c]:
                    raise ProtocolError(f"consumer {c} stores tile {tile} before passing the turn: the epilogue "
                                        "should overlap the other consumer's K loop, so arrive on its turn first")
                stored[tile] = c
        fetch(who)
    else:
        raise ProtocolError(f"the protocol did not finish within {max_steps} steps (an endless loop?)")
    missing = [t for t in my_tiles if t not in stored]
    if missing:
        raise ProtocolError(f"the consumers finished without storing tiles {missing[:5]}"
                            + (" ..." if len(missing) > 5 else ""))
    return events


def check_consumer(consumer_fn, cases=None, seeds=range(20)):
    """Simulate ``consumer_fn`` on several problem shapes, each under many interleavings; return the
    number of runs. ``cases``: ``(num_tiles, k_steps, stages, program, num_programs)`` tuples."""
    cases = cases or [(1, 1, 2, 0, 1), (2, 3, 2, 0, 1), (7, 4, 3, 0, 1), (19, 5, 4, 1, 4), (10, 2, 5, 0, 1),
                      (6, 7, 2, 2, 3)]
    runs = 0
    for num_tiles, k_steps, stages, program, num_programs in cases:
        for seed in seeds:
            simulate(consumer_fn, num_tiles, k_steps, stages, program, num_programs, seed)
            runs += 1
    return runs
