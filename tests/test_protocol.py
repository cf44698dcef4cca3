"""The barrier-protocol model behind the chapter 05 exercise: the course's consumer passes every
interleaving, the model's parity rule is the GPU's, and malformed requests get clear errors."""
import pytest

from kernels import protocol as P


def test_reference_consumer_passes_many_interleavings():
    assert P.check_consumer(P.reference_consumer, seeds=range(30)) == 6 * 30


@pytest.mark.parametrize("num_programs,program", [(1, 0), (4, 1), (3, 2), (5, 4)])
def test_every_tile_of_the_program_is_stored_once(num_programs, program):
    events = P.simulate(P.reference_consumer, 17, 3, 3, program, num_programs, seed=program)
    stores = [e.what[1] for e in events if e.what[0] == "store"]
    assert sorted(stores) == list(range(program, 17, num_programs))
    loads = [e for e in events if e.what[0] == "load"]
    assert len(loads) == len(stores) * 3 and all(e.who == "producer" for e in loads)


def test_parity_rule_is_the_gpus():
    # on a fresh barrier wait(1) passes (the phase "before" the first) and wait(0) blocks; a wait
    # cannot tell a phase from the one two laps earlier
    assert P.wait_passes(0, 1) and not P.wait_passes(0, 0)
    assert P.wait_passes(1, 0) and not P.wait_passes(1, 1)
    assert P.wait_passes(3, 0) == P.wait_passes(1, 0)

    def waits_forever(consumer, *args):
        yield ("wait", "turn", consumer, 0)

    with pytest.raises(P.Deadlock, match=r"consumer0 waits on turn\[0\] for parity 0 \(phases completed: 0\)"):
        P.simulate(waits_forever, 2, 1, 2)


@pytest.mark.parametrize("bad,words", [
    (("wait", "ready", 0), "has 4 fields"),
    (("wait", "nope", 0, 0), "barriers are"),
    (("wait", "ready", 9, 0), "indices 0..1"),
    (("wait", "ready", 0, 2), "parity is 0 or 1"),
    (("fly",), "unknown request"),
    ("store", "requests are tuples"),
    (("load", 0, 0, 0), "only the producer loads"),
])
def test_malformed_requests_are_named(bad, words):
    def consumer(c, *args):
        yield bad

    with pytest.raises(P.ProtocolError, match=words):
        P.simulate(consumer, 2, 1, 2)


def test_endless_consumer_is_stopped():
    def spins(c, *args):
        while True:
            yield ("arrive", "turn", 1 - c)

    with pytest.raises(P.ProtocolError, match="did not finish"):
        P.simulate(spins, 2, 1, 2, max_steps=500)
