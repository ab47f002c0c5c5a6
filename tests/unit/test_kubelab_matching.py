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


# --- operators --------------------------------------------------------------------------------

SLICE = {
    "endpoints": [
        {"conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "web-a"}},
        {"conditions": {"ready": False}, "targetRef": {"kind": "Pod", "name": "web-b"}},
    ]
}
A_READY = {"conditions": {"ready": True}, "targetRef": {"name": "web-a"}}
B_NOT_READY = {"conditions": {"ready": False}, "targetRef": {"name": "web-b"}}


def test_an_endpointslice_with_two_endpoints_matches_in_either_order():
    for order in ([A_READY, B_NOT_READY], [B_NOT_READY, A_READY]):
        assert mismatches({"endpoints": {"$unordered": order}}, SLICE) == []
        assert mismatches({"endpoints": {"$includes": order[:1]}}, SLICE) == []
    # a plain list is exact and ordered: the reversed order does not match, and says what to use
    found = mismatches({"endpoints": [B_NOT_READY, A_READY]}, SLICE)
    assert found and found[0].startswith("endpoints[0].conditions.ready: expected false")
    # each expected element needs an element of its own
    twice = mismatches({"endpoints": {"$includes": [A_READY, A_READY]}}, SLICE)
    assert twice == ["endpoints: no distinct elements match (each alone matches, but not each a "
                     "different element)"]  # fmt: skip
    extra = mismatches({"endpoints": {"$unordered": [A_READY]}}, SLICE)
    assert extra == ["endpoints: expected 1 item(s) in any order, found 2"]


def test_some_and_every_tolerate_sidecars_and_say_what_is_closest():
    pod = {"containerStatuses": [{"name": "istio-proxy", "ready": True},
                                 {"name": "app", "ready": True, "restartCount": 1}]}  # fmt: skip
    assert (
        mismatches({"containerStatuses": {"$some": {"name": "app", "restartCount": 1}}}, pod) == []
    )
    found = mismatches({"containerStatuses": {"$some": {"name": "app", "restartCount": 2}}}, pod)
    assert found == [
        'containerStatuses: no element of 2 matches {"name": "app", "restartCount": 2} '
        "(closest: containerStatuses.restartCount: expected 2, found 1)"
    ]
    assert mismatches({"containerStatuses": {"$every": {"ready": True}}}, pod) == []
    assert mismatches({"containerStatuses": {"$len": 2}}, pod) == []
    assert mismatches({"containerStatuses": {"$len": {"$gte": 3}}}, pod) == [
        "containerStatuses length: 2 is not >= 3"
    ]


def test_numeric_comparisons_as_an_hpa_needs_them():
    hpa = {"status": {"desiredReplicas": 3, "currentReplicas": 1}}
    assert mismatches({"status": {"desiredReplicas": {"$gte": 2, "$lte": 5}}}, hpa) == []
    assert mismatches({"status": {"currentReplicas": {"$gte": 2}}}, hpa) == [
        "status.currentReplicas: 1 is not >= 2"
    ]
    assert mismatches(
        {"status": {"desiredReplicas": {"$gt": 1}}}, {"status": {"desiredReplicas": "3"}}
    ) == ["status.desiredReplicas: expected a number $gt 1, found '3'"]


def test_exists_non_empty_regex_not_and_expressions():
    pod = {"metadata": {"name": "web-7d9", "labels": {"app": "web"}}, "status": {"podIP": ""}}
    assert mismatches({"metadata": {"deletionTimestamp": {"$exists": False}}}, pod) == []
    assert mismatches({"metadata": {"labels": {"$exists": True}}}, pod) == []
    assert mismatches({"status": {"podIP": {"$nonEmpty": True}}}, pod) == ["status.podIP: is empty"]
    assert mismatches({"metadata": {"name": {"$regex": "^web-[0-9a-f]+$"}}}, pod) == []
    assert mismatches({"metadata": {"labels": {"$not": {"app": "db"}}}}, pod) == []
    assert mismatches({"metadata": {"labels": {"$not": {"app": "web"}}}}, pod) == [
        'metadata.labels: matches {"app": "web"} but must not'
    ]
    assert mismatches({"$expr": "metadata.labels.app == 'web'"}, pod) == []
    assert mismatches({"$expr": "length(metadata.labels) > `1`"}, pod) == [
        "(object): `length(metadata.labels) > `1`` is False"
    ]


def test_operator_mistakes_are_found_when_a_lab_loads():
    from kubelab.expect.matching import operator_errors

    assert operator_errors({"spec": {"replicas": {"$atLeast": 2}}})[0].startswith(
        "spec.replicas: unknown operator '$atLeast'; the operators are: $every,"
    )
    assert operator_errors({"a": {"$gte": "2"}}) == ["a: $gte compares numbers; got '2'"]
    assert operator_errors({"a": {"$regex": "("}})[0].startswith("a: the regex does not compile")
    assert operator_errors({"$expr": "a[?"})[0].startswith("(top): not a JMESPath expression")
