"""Validation: a table of broken graphs, each with the exact problems it must report."""

from __future__ import annotations

import textwrap

import pytest

import avflow
from avflow.errors import GraphValidationError
from avflow.graph.load import load_graph
from avflow.graph.validate import validate
from avflow.testing.dummies import registry_with_dummies

GOOD = """\
name: good
params:
  n: {type: int, default: 5, doc: how many}
  label: {type: str, default: x}
nodes:
  src:
    type: test.count
    params: {n: "${n}"}
  slow:
    type: test.slow
    inputs: {items: src.items}
  merge:
    type: test.merge
    inputs: {a: slow.items, b: src.odd}
outputs:
  log: merge.log
"""


@pytest.fixture(scope="module")
def registry():
    return registry_with_dummies()


def problems(text: str, registry, overrides=None, require_all=True) -> list[str]:
    with pytest.raises(GraphValidationError) as info:
        validate(load_graph(textwrap.dedent(text)), registry, overrides, require_all=require_all)
    return [str(i) for i in info.value.issues]


def test_good_graph_plans_in_topological_order(registry):
    plan = validate(load_graph(GOOD), registry)
    assert plan.order == ["src", "slow", "merge"]
    assert plan.nodes["src"].config.n == 5
    assert plan.nodes["src"].consumers == {"items": [("slow", "items")], "odd": [("merge", "b")]}


BROKEN = [
    pytest.param(
        GOOD.replace("type: test.slow", "type: test.slw"),
        ["9 slow: unknown node type 'test.slw'; did you mean 'test.slow', 'test.merge', 'test.count'?"],
        id="unknown-type-close-match"),
    pytest.param(
        GOOD.replace('params: {n: "${n}"}', 'params: {n: "${n}", m: 3}'),
        ["8 src(test.count).m: unknown parameter 'm'; valid: n, size, fail_at, interval"],
        id="unknown-param"),
    pytest.param(
        GOOD.replace('params: {n: "${n}"}', 'params: {n: many}'),
        ["8 src(test.count).n: expected int, got 'many'"],
        id="mistyped-param"),
    pytest.param(
        GOOD.replace('params: {n: "${n}"}', 'params: {n: -1}'),
        ["8 src(test.count).n: must be >= 0, got -1"],
        id="param-out-of-bounds"),
    pytest.param(
        GOOD.replace('params: {n: "${n}"}', 'params: {n: "${count}"}'),
        ["8 src(test.count).n: unknown graph parameter ${count}; parameters: n, label"],
        id="unknown-graph-param-ref"),
    pytest.param(
        GOOD.replace("inputs: {items: src.items}", "inputs: {items: src.item}"),
        ["11 slow(test.slow).items: no output 'item' on 'src'; did you mean 'items'? have: items, odd"],
        id="unknown-source-port"),
    pytest.param(
        GOOD.replace("inputs: {items: src.items}", "inputs: {item: src.items}"),
        ["11 slow(test.slow).item: no input port 'item'; did you mean 'items'? inputs: items",
         "9 slow(test.slow).items: required input 'items' (Payload) is not connected: anything"],
        id="unknown-input-port-and-unconnected"),
    pytest.param(
        GOOD.replace("inputs: {items: src.items}", "inputs: {items: sr.items}"),
        ["11 slow(test.slow).items: no node 'sr' (source sr.items); did you mean 'src'? nodes: src, slow, merge"],
        id="unknown-source-node"),
    pytest.param(
        GOOD.replace("inputs: {a: slow.items, b: src.odd}", "inputs: {a: slow.items, b: [src.odd, src.items]}"),
        ["14 merge(test.merge).b: input fed 2 times (src.odd, src.items); this port takes exactly one source"],
        id="input-fed-twice"),
    pytest.param(
        GOOD.replace("inputs: {a: slow.items, b: src.odd}", "inputs: {a: slow.items, a: src.odd}"),
        ["14: duplicate key 'a' (first at line 14); each key may appear once"],
        id="duplicate-yaml-key"),
    pytest.param(
        GOOD.replace("inputs: {a: slow.items, b: src.odd}", "inputs: {b: src.odd}"),
        ["12 merge(test.merge).a: required input 'a' (Tensor) is not connected: first stream"],
        id="required-input-unconnected"),
    pytest.param(
        GOOD.replace("outputs:\n  log: merge.log", "outputs:\n  log: merge.logs"),
        ["16: output 'log': no output 'logs' on 'merge'; have: log"],
        id="bad-graph-output"),
    pytest.param(
        GOOD.replace("name: good", "name: good\nextra: 1"),
        ["2: unknown top-level key 'extra'; valid: name, description, params, nodes, outputs"],
        id="unknown-top-level-key"),
]


@pytest.mark.parametrize("text,expected", BROKEN)
def test_broken_graphs_report_exact_problems(text, expected, registry, tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(GraphValidationError) as info:
        validate(load_graph(path), registry)
    # Each message: 'file:line node(type).port: what was wrong; what would be valid'.
    assert [str(i) for i in info.value.issues] == [f"{path}:{e}" for e in expected]


def test_type_mismatch(registry):
    text = """\
    nodes:
      src: {type: test.count}
      batch: {type: test.batch_sum, inputs: {items: src.items}}
      merge: {type: test.merge, inputs: {a: batch.sums}}
    """
    assert problems(text, registry) == [
        "merge(test.merge).a: type mismatch: batch.sums gives Record but this input takes Tensor"]


def test_cycle_names_its_nodes(registry):
    text = """\
    nodes:
      src: {type: test.count}
      a: {type: test.slow, inputs: {items: c.items}}
      b: {type: test.slow, inputs: {items: a.items}}
      c: {type: test.slow, inputs: {items: b.items}}
      m: {type: test.merge, inputs: {a: src.items}}
    """
    assert problems(text, registry) == ["a: cycle: a -> b -> c -> a; graphs must be acyclic"]


def test_all_problems_are_collected_at_once(registry):
    text = GOOD.replace("type: test.slow", "type: test.slw").replace('params: {n: "${n}"}', "params: {n: x}")
    got = problems(text, registry)
    assert len(got) == 2 and "unknown node type 'test.slw'" in got[1] and "expected int" in got[0]


def test_file_and_line_in_messages(tmp_path, registry):
    path = tmp_path / "g.yaml"
    path.write_text(GOOD.replace("type: test.slow", "type: test.slw"))
    with pytest.raises(GraphValidationError) as info:
        validate(load_graph(path), registry)
    assert str(info.value.issues[0]).startswith(f"{path}:9 slow: unknown node type")
    assert info.value.exit_code == 2 and isinstance(info.value, ValueError)


def test_required_graph_param_and_overrides(registry):
    text = GOOD.replace("n: {type: int, default: 5, doc: how many}", "n: {type: int, required: true, doc: how many}")
    assert problems(text, registry) == [
        "n: graph parameter 'n' (int) is required: pass --set n=VALUE (how many)"]
    # validate without run-time params: structure only, the param is listed as unbound.
    plan = validate(load_graph(text), registry, require_all=False)
    assert plan.unbound == ["n"]
    plan = validate(load_graph(text), registry, {"n": "7", "slow.delay": "0.5"}, cli_strings=True)
    assert plan.nodes["src"].config.n == 7 and plan.nodes["slow"].config.delay == 0.5
    assert problems(text, registry, {"n": 3, "nn": 1, "slow.dealy": 1, "slo.delay": 1}) == [
        "--set nn: no graph parameter 'nn'; did you mean 'n'? parameters: n, label; use NODE.PARAM for a node parameter",
        "--set slo.delay: no node 'slo'; did you mean 'slow'? nodes: src, slow, merge",
        "slow(test.slow).dealy: --set slow.dealy: no parameter 'dealy'; did you mean 'delay'? valid: delay, fail_at",
    ]
    assert problems(text, registry, {"n": "abc"}) == ["n: graph parameter 'n': expected int, got 'abc'"]


def test_yaml_tags_never_construct_objects(registry):
    text = "nodes:\n  a: !!python/object/apply:posix.system ['echo pwned']\n"
    with pytest.raises(GraphValidationError, match="invalid YAML"):
        load_graph(text)


def test_embedded_param_reference_and_dict_source(registry):
    spec = avflow.load_graph({
        "name": "d", "params": {"label": {"type": "str", "default": "abc"}},
        "nodes": {"src": {"type": "test.count", "params": {"n": 3}},
                  "m": {"type": "test.merge", "inputs": {"a": "src.items", "many": ["src.items", "src.odd"]}}},
    })
    plan = validate(spec, registry)
    assert plan.nodes["m"].inputs["many"][1].port == "odd"


WHEN = """\
params:
  mode: {type: str, default: fast, choices: [fast, slow]}
  extra: {type: bool, default: false}
nodes:
  src: {type: test.count}
  fast: {type: test.slow, inputs: {items: src.items}, when: "${mode} == fast"}
  slow: {type: test.slow, inputs: {items: src.items}, params: {delay: 0.01}, when: "${mode} != fast"}
  m: {type: test.merge, inputs: {a: [fast.items, slow.items]}}
  more: {type: test.merge, inputs: {a: src.items}, when: "${extra}"}
outputs:
  log: m.log
  more: more.log
"""


def test_when_switches_nodes_and_alternative_sources(registry):
    plan = validate(load_graph(WHEN), registry)
    assert plan.order == ["src", "fast", "m"] and plan.disabled == ["more", "slow"]
    assert [str(r) for r in plan.nodes["m"].inputs["a"]] == ["fast.items"]
    assert list(plan.outputs) == ["log"]
    plan = validate(load_graph(WHEN), registry, {"mode": "slow", "extra": True})
    assert plan.order == ["src", "slow", "more", "m"]


def test_when_problems(registry):
    both = WHEN.replace('when: "${mode} != fast"', 'when: "${mode} != nope"')
    assert problems(both, registry) == [
        "m(test.merge).a: input fed 2 times (fast.items, slow.items); this port takes exactly one source"]
    none = WHEN.replace('when: "${mode} != fast"', 'when: "${mode} == nope"').replace(
        'when: "${mode} == fast"', 'when: "${mode} == nope"')
    assert problems(none, registry) == [
        "m(test.merge).a: required input 'a' (Tensor) has no enabled source: fast.items, slow.items "
        "are disabled by their 'when'"]
    assert problems(WHEN.replace('"${extra}"', '"${extar}"'), registry) == [
        "more: when: unknown graph parameter ${extar}; did you mean 'extra'? parameters: mode, extra"]
    assert problems(WHEN.replace('"${extra}"', '"extra is on"'), registry)[0].startswith(
        "more: invalid when 'extra is on'")


LIST_WHEN = """\
params:
  outputs: {type: list, default: [log], choices: [log, more]}
nodes:
  src: {type: test.count}
  m: {type: test.merge, inputs: {a: src.items}, when: "log in ${outputs}"}
  more: {type: test.merge, inputs: {a: src.items}, when: "more in ${outputs}"}
  less: {type: test.merge, inputs: {a: src.items}, when: "'more' not in ${outputs}"}
"""


def test_when_on_a_list_param_and_list_choices(registry):
    plan = validate(load_graph(LIST_WHEN), registry)
    assert plan.order == ["src", "m", "less"] and plan.disabled == ["more"]
    plan = validate(load_graph(LIST_WHEN), registry, {"outputs": ["more"]})
    assert plan.order == ["src", "more"]
    assert problems(LIST_WHEN, registry, {"outputs": ["log", "mp4"]}) == [
        "outputs: graph parameter 'outputs': unknown 'mp4' in ['log', 'mp4']; each item must be one of 'log', 'more'"]
    assert problems(LIST_WHEN.replace('"more in', '"moar in'), registry) == [
        "more: when 'moar in ${outputs}': 'moar' is not one of ${outputs}'s choices: log, more"]
    text = LIST_WHEN.replace("outputs: {type: list, default: [log], choices: [log, more]}",
                             "outputs: {type: list, default: [log], choices: [log, more]}\n  n: 3").replace(
        '"log in ${outputs}"', '"log in ${n}"')
    assert problems(text, registry) == ["m: when 'log in ${n}': ${n} must be a list, got 3"]
