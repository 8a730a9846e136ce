"""Identity-based rules must not join different people's tracks (issue 25): an id-switch
bridge needs a similar colour signature, box-size continuity and a plausible speed, and is
refused in a crowd and at crossings; a wandering alert states the path, turns and time of
what it judged."""

from __future__ import annotations

import numpy as np

from analytics.appearance import SIZE, signatures, similarity
from analytics.config import LoiteringRule, WanderingRule
from analytics.history import TrackHistory
from analytics.zones import Zone
from tests.unit.test_rules_catalogue import FRAME, Runner, box, dets, same_look, times

WANDER = WanderingRule(name="w", type="wandering", window_s=40, min_path_ratio=3,
                       min_path_heights=4)  # fmt: skip


def walk(h: TrackHistory, frames: list[tuple[float, list[tuple], list[int]]]) -> None:
    """Feed (t, boxes, colour seed per box) frames into the history."""
    for t, boxes, seeds in frames:
        looks = np.concatenate([same_look(1, s) for s in seeds]) if seeds else None
        h.update(dets(*boxes), t, looks)


def test_colour_signatures_tell_a_red_coat_from_a_blue_one() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(90, 20, (200, 300, 3))  # a grey, grainy street
    cloth = rng.normal(0, 12, (80, 40, 3))  # folds and grain
    img[40:120, 20:60] = np.array([40, 40, 170]) + cloth  # a red coat (BGR)
    img[40:120, 100:140] = np.array([170, 70, 40]) + cloth  # a blue one
    img[40:120, 200:240] = (np.array([40, 40, 170]) + rng.normal(0, 12, (80, 40, 3))) * 0.9
    img = np.clip(img, 0, 255).astype(np.uint8)  # the red coat again, in a darker frame
    boxes = np.array([[20, 40, 60, 120], [100, 40, 140, 120], [200, 40, 240, 120], [5, 5, 9, 9]])
    sig = signatures(img, boxes.astype(np.float32))
    assert sig.shape == (4, SIZE) and np.isnan(sig[3]).all()  # 4x4 px: too small to tell
    red_red, red_blue = similarity(sig[0], sig[2]), similarity(sig[0], sig[1])
    assert red_red is not None and red_blue is not None
    assert red_red >= TrackHistory.MIN_SIMILARITY > red_blue
    assert similarity(sig[0], sig[3]) is None


def lost_then_new(seed_new: int, *, h_new: float = 40, w_new: float = 20, x_new: float = 168,
                  others: list[tuple] | None = None) -> TrackHistory:  # fmt: skip
    """Track 1 walks right at 40 px/s for 2 s, is lost for 1 s, then track 7 appears."""
    h = TrackHistory()
    walk(h, [(t, [box(1, 50 + 40 * t, 200)], [0]) for t in times(2)])
    extra = others or []
    walk(h, [(3.0, [box(7, x_new, 200, w=w_new, h=h_new), *extra], [seed_new] + [5] * len(extra))])
    return h


def test_a_bridge_needs_the_same_look_size_and_a_plausible_speed() -> None:
    ok = lost_then_new(0)
    assert ok.root(7) == 1 and ok.bridges == {"made": 1}
    other_colours = lost_then_new(3)
    assert other_colours.root(7) == 7 and other_colours.bridges == {"refused: appearance": 1}
    taller = lost_then_new(0, h_new=64, w_new=32)  # 1.6 x the height: another person
    assert taller.root(7) == 7 and taller.bridges == {"refused: size": 1}
    # No colour signature (too small, or no frame given): never bridged.
    h = TrackHistory()
    for t in times(2):
        h.update(dets(box(1, 50 + 40 * t, 200)), t)
    h.update(dets(box(7, 168, 200)), 3.0)
    assert h.root(7) == 7 and h.bridges == {"refused: appearance unknown": 1}


def test_no_bridge_at_an_implausible_speed() -> None:
    # Track 1 stands still at x=100, is lost for 0.2 s; track 7 appears 22 px (0.55 of its
    # height) away: 110 px/s from a standing start, 2.75 body heights per second.
    h = TrackHistory()
    walk(h, [(t, [box(1, 100, 200)], [0]) for t in times(2)])
    walk(h, [(2.2, [box(7, 122, 200)], [0])])
    assert h.root(7) == 7 and h.bridges == {"refused: speed": 1}
    # The same place 2 s later (11 px/s) is plausible.
    h2 = TrackHistory()
    walk(h2, [(t, [box(1, 100, 200)], [0]) for t in times(2)])
    walk(h2, [(3.6, [box(7, 122, 200)], [0])])
    assert h2.root(7) == 1


def test_no_bridge_in_a_crowd() -> None:
    # Someone else (same colours) stands 30 px from where track 7 appears.
    crowded = lost_then_new(0, others=[box(9, 198, 200)])
    assert crowded.root(7) == 7 and crowded.bridges == {"refused: crowd": 1}
    # Two lost tracks near where the new one appears.
    h = TrackHistory()
    walk(h, [(t, [box(1, 100, 200), box(2, 112, 200)], [0, 0]) for t in times(1)])
    walk(h, [(1.5, [box(5, 106, 200)], [0])])
    assert h.root(5) == 5 and h.bridges == {"refused: several lost tracks": 1}


def test_no_bridge_where_two_people_crossed() -> None:
    # A walks right, B walks left (faster) on the same row, dressed alike; they meet at x~196 at
    # t=2.4, the tracker loses A there, and a new id appears where A was heading. B walks on.
    h = TrackHistory()
    frames = []
    for t in times(4):
        boxes, seeds = [box(2, 340 - 60 * t, 200)], [0]
        if t <= 2.4:
            boxes.append(box(1, 100 + 40 * t, 200))
            seeds.append(0)
        elif t >= 3.6:
            boxes.append(box(7, 100 + 40 * t, 200))
            seeds.append(0)
        frames.append((t, boxes, seeds))
    walk(h, frames)
    assert h.root(7) == 7
    assert h.bridges == {"refused: crossing": 1}


def test_two_walkers_handing_over_an_id_do_not_make_a_wanderer() -> None:
    """The junction false alarm: A walks right to the kerb and leaves the view there; B, in
    other clothes, comes back the same way from there 1 s later. Joined, they would read as
    one person walking out and back (path/displacement ~ 20)."""
    r = Runner(WANDER, Zone.whole_frame(FRAME))
    frames = []
    for t in times(24):
        if t < 10:
            d, seed = dets(box(1, 60 + 25 * t, 200)), 0
        elif t < 11:
            d, seed = dets(), 0
        else:
            d, seed = dets(box(2, 330 - 25 * (t - 11), 200)), 4
        frames.append((t, d, seed))
    events = []
    for t, d, seed in frames:
        r.history.update(d, t, same_look(len(d), seed))
        events += r.rule.update(d, r.ctx(t))
    assert events == [] and r.history.bridges == {"refused: appearance": 1}
    # Dressed alike, the same two walks do join (the geometry allows it) and fire: the
    # appearance is what tells them apart.
    r2 = Runner(WANDER, Zone.whole_frame(FRAME))
    assert len(r2.run([(t, d) for t, d, _ in frames])) == 1


def test_wandering_alert_states_path_turns_and_time_of_its_track() -> None:
    pacing = []
    for i, t in enumerate(times(30)):
        phase = (i / 5.0) % 10  # 10 s period: 5 s right (150 px), 5 s back
        pacing.append((t, dets(box(1, 100 + 30 * (phase if phase < 5 else 10 - phase), 200))))
    (event,) = Runner(WANDER).run(pacing)
    x = event.extra
    assert x["track_ids"] == [1] and x["turns"] >= 1
    assert x["path_px"] >= 4 * 40 and x["path_heights"] == round(x["path_px"] / 40, 2)
    assert 10 <= x["span_s"] <= 40
    assert f"{x['turns']} turn(s)" in event.explanation and "(track 1)" in event.explanation
    # min_turns: a path that never turns back never fires, whatever its ratio.
    many = WanderingRule(name="w", type="wandering", window_s=40, min_path_ratio=3,
                         min_path_heights=4, min_turns=8)  # fmt: skip
    assert Runner(many).run(pacing) == []


def test_loitering_does_not_join_two_people_taking_turns_at_one_spot() -> None:
    """Two people, in different clothes, stand 6 s each at the same bench, one after the
    other: neither stays the loitering time (10 s), their dwell must not add up."""
    cfg = LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=3)
    r = Runner(cfg, Zone.whole_frame(FRAME))
    events = []
    for t in times(13):
        if t < 6:
            d, seed = dets(box(1, 200, 200)), 0
        elif t < 7:
            d, seed = dets(), 0
        else:
            d, seed = dets(box(2, 204, 200)), 4
        r.history.update(d, t, same_look(len(d), seed))
        events += r.rule.update(d, r.ctx(t))
    assert events == []
    # The same person (same colours) back after a missed second: one presence, it fires.
    r2 = Runner(cfg, Zone.whole_frame(FRAME))
    frames = [(t, dets(box(1 if t < 6 else 2, 200, 200)) if not 6 <= t < 7 else dets())
              for t in times(13)]  # fmt: skip
    assert len(r2.run(frames)) == 1


def test_no_wandering_when_the_track_itself_changes_person() -> None:
    """In a crowd the tracker can hand one id from person to person: the id's path out and
    back is two people's. The box's colours at the start and at the end of the path differ."""
    frames = []
    for i, t in enumerate(times(30)):
        phase = (i / 5.0) % 10
        frames.append((t, dets(box(1, 100 + 30 * (phase if phase < 5 else 10 - phase), 200))))
    r = Runner(WANDER)
    events = []
    for t, d in frames:
        r.history.update(d, t, same_look(len(d), 0 if t < 6 else 6))  # another coat from 6 s
        events += r.rule.update(d, r.ctx(t))
    assert events == []
    alike = r.history.same_look(1, 0.0)
    assert alike is not None and alike < TrackHistory.MIN_SIMILARITY
    assert len(Runner(WANDER).run(frames)) == 1  # one coat all along: it fires


def test_no_wandering_where_two_people_met_and_the_tracker_swapped_their_ids() -> None:
    """A walks right, B walks left, both in grey (their colours correlate > 0.6); they meet
    at x=200 at 10 s and the tracker swaps their ids. Id 1's path is out (A) and back (B): a
    turn, but id 2 walks on the way id 1 had been going and now looks like id 1 did."""
    a = same_look(1, 0)[0]
    b = 0.75 * a + 0.25 * same_look(1, 7)[0]
    r = Runner(WANDER)
    events = []
    for t in times(20):
        swapped = t >= 10
        x1 = 60 + 14 * t if not swapped else 200 - 14 * (t - 10)  # id 1: A, then B
        x2 = 340 - 14 * t if not swapped else 200 + 14 * (t - 10)  # id 2: B, then A
        d = dets(box(1, x1, 200), box(2, x2, 203))
        r.history.update(d, t, np.stack([b if swapped else a, a if swapped else b]))
        events += r.rule.update(d, r.ctx(t))
    assert events == []
    alike = r.history.same_look(1, 0.0)
    assert alike is not None and alike >= TrackHistory.MIN_SIMILARITY  # not caught by that
    # Both really turned back at the meeting (each keeps its own look): id 1 paces.
    r2 = Runner(WANDER)
    events = []
    for t in times(20):
        back = t >= 10
        x1 = 60 + 14 * t if not back else 200 - 14 * (t - 10)
        x2 = 340 - 14 * t if not back else 200 + 14 * (t - 10)
        d = dets(box(1, x1, 200), box(2, x2, 203))
        r2.history.update(d, t, np.stack([a, b]))
        events += r2.rule.update(d, r2.ctx(t))
    assert len(events) >= 1 and events[0].track_ids == [1]
