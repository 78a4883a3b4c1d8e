"""The shape of the local Kafka cluster: nodes, ports, voters, replication (no JVM started)."""

from __future__ import annotations

import pytest

from clickpipe.config import load
from commands.cli import _stack_settings, build_parser
from stack.kafka import Kafka, brokers


def test_three_brokers_are_three_voters_on_their_own_ports_replicating_everything(tmp_path):
    settings = load({"CLICKPIPE_STATE_DIR": str(tmp_path), "CLICKPIPE_KAFKA_BROKERS": "3"})
    nodes = brokers(settings)
    assert [(b.name, b.port, b.controller_port) for b in nodes] == [
        ("kafka-1", 9092, 9093), ("kafka-2", 9094, 9095), ("kafka-3", 9096, 9097)]
    assert settings.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    config = nodes[1].configuration()
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor", "share.coordinator.state.topic.replication.factor"):
        assert config[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"):
        assert config[key] == "2", key
    assert config["unclean.leader.election.enable"] == "false"
    assert len({b.dir for b in nodes}) == 3


def test_one_broker_keeps_the_single_node_layout(tmp_path):
    [node] = brokers(load({"CLICKPIPE_STATE_DIR": str(tmp_path)}))
    assert (node.name, node.dir, node.port) == ("kafka", tmp_path / "kafka", 9092)
    config = node.configuration()
    assert (config["offsets.topic.replication.factor"], config["min.insync.replicas"]) == ("1", "1")


def test_replication_follows_the_broker_count_unless_set():
    assert [(s.kafka_replication, s.kafka_min_insync_replicas) for s in (
        load({"CLICKPIPE_KAFKA_BROKERS": str(n)}) for n in (1, 2, 3, 5))] == [(1, 1), (2, 1), (3, 2), (3, 2)]
    assert load({"CLICKPIPE_KAFKA_BROKERS": "5", "CLICKPIPE_KAFKA_REPLICATION": "5"}).kafka_min_insync_replicas == 4


def test_the_stack_command_takes_the_broker_count(monkeypatch):
    monkeypatch.delenv("CLICKPIPE_KAFKA_BOOTSTRAP", raising=False)
    args = build_parser().parse_args(["stack", "up", "--kafka-brokers", "3"])
    settings = _stack_settings(args)
    assert (settings.kafka_brokers, settings.kafka_replication) == (3, 3)
    assert len(settings.kafka_bootstrap.split(",")) == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stack", "up", "--kafka-brokers", "0"])


def test_storage_of_another_cluster_shape_is_refused(tmp_path):
    one = Kafka(load({"CLICKPIPE_STATE_DIR": str(tmp_path), "CLICKPIPE_KAFKA_BROKERS": "2"}), 1)
    one.data.mkdir(parents=True)
    (one.data / "meta.properties").write_text("cluster.id=x\n")
    (one.dir / "voters").write_text("1@127.0.0.1:9093\n")  # formatted as a cluster of one
    with pytest.raises(RuntimeError, match="clickpipe stack reset"):
        one.prepare()
