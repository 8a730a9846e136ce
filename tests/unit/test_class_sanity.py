"""Class sanity (issue 25): a bicycle or motorcycle someone is on or at (a rider waiting, a
pushchair, wheelchair or pushed bike the detector calls a two-wheeler) is no stopped vehicle;
one standing alone still is (analytics/sanity.attended_two_wheelers)."""

from __future__ import annotations

from analytics.config import StoppedVehicleRule
from tests.unit.test_rules_catalogue import PERSON, Runner, box, dets, times

MOTORCYCLE = 3


def _stopped(with_person: bool, ignore: bool = True) -> list:
    cfg = StoppedVehicleRule(name="s", type="stopped_vehicle", min_duration_s=5,
                             ignore_attended_two_wheelers=ignore)  # fmt: skip
    bike = box(1, 200, 200, MOTORCYCLE, 40, 30)
    rider = box(2, 205, 195, PERSON, 20, 45)  # on it or pushing it: overlapping its box
    frame = dets(bike, rider) if with_person else dets(bike)
    return Runner(cfg).run([(t, frame) for t in times(8)])


def test_a_waiting_rider_or_pushed_two_wheeler_is_no_stopped_vehicle() -> None:
    assert _stopped(with_person=True) == []
    assert len(_stopped(with_person=True, ignore=False)) == 1


def test_a_two_wheeler_standing_alone_is_still_a_stopped_vehicle() -> None:
    events = _stopped(with_person=False)
    assert len(events) == 1 and events[0].type == "stopped_vehicle"
