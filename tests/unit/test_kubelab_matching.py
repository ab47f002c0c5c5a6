"""Partial-object matching: what a 'match' or 'where' accepts and what it reports."""

from __future__ import annotations

from kubelab.expect.matching import leaves, mismatches, pick

LIVE = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "replicas": 3,
        "template": {"spec": {"containers": [{"name": "web", "image": "a:v1"}]}},
    },
    "status": {"readyReplicas": 3, "paused": False},
}


def test_a_subset_of_maps_matches():
    assert mismatches({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 3}}, LIVE) == []


def test_a_different_value_is_named_with_its_path():
    assert mismatches({"spec": {"replicas": 2}}, LIVE) == ["spec.replicas: expected 2, found 3"]


def test_a_missing_field_is_reported():
    assert mismatches({"status": {"availableReplicas": 3}}, LIVE) == [
        "status.availableReplicas: missing (expected 3)"
    ]


def test_lists_match_element_by_element_and_by_length():
    ok = {"spec": {"template": {"spec": {"containers": [{"image": "a:v1"}]}}}}
    assert mismatches(ok, LIVE) == []
    two = {"spec": {"template": {"spec": {"containers": [{}, {}]}}}}
    assert mismatches(two, LIVE)[0].startswith(
        "spec.template.spec.containers: expected 2 item(s), found 1"
    )
    wrong = {"spec": {"template": {"spec": {"containers": [{"image": "a:v2"}]}}}}
    assert mismatches(wrong, LIVE) == [
        "spec.template.spec.containers[0].image: expected 'a:v2', found 'a:v1'"
    ]


def test_booleans_are_not_numbers():
    assert mismatches({"status": {"paused": 0}}, LIVE) == ["status.paused: expected 0, found false"]
    assert mismatches({"status": {"paused": False}}, LIVE) == []


def test_types_of_containers_must_agree():
    assert mismatches({"spec": [1]}, LIVE)[0].startswith("spec: expected a list")


def test_pick_shows_only_the_fields_asked_about():
    assert pick({"spec": {"replicas": 9}, "status": {}}, LIVE) == {
        "spec": {"replicas": 3},
        "status": {},
    }


def test_leaves_flatten_for_summaries():
    assert leaves({"a": {"b": 1}, "c": [{"d": "x"}]}) == ["a.b=1", "c[0].d=x"]
