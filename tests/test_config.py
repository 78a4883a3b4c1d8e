"""clickpipe.config: defaults, overrides, and errors that name the variable."""

import pytest

from clickpipe.config import ConfigError, load


def test_defaults_work_on_one_machine():
    s = load({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert (s.topic_raw, s.partitions) == ("clicks.raw", 4)
    assert s.collector_host == "127.0.0.1" and s.collector_url == "http://127.0.0.1:8090"


def test_overrides_and_derived_values():
    s = load({"CLICKPIPE_KAFKA_HOST": "10.0.0.5", "CLICKPIPE_KAFKA_PORT": "19092", "CLICKPIPE_PARTITIONS": "12"})
    assert s.kafka_bootstrap == "10.0.0.5:19092" and s.partitions == 12
    assert load({"CLICKPIPE_KAFKA_BOOTSTRAP": "a:1,b:2"}).kafka_bootstrap == "a:1,b:2"


@pytest.mark.parametrize("host, url", [("0.0.0.0", "http://127.0.0.1:9000"), ("::", "http://[::1]:9000"),
                                       ("collector.internal", "http://collector.internal:9000")])
def test_collector_url_reaches_a_wildcard_bind_on_loopback(host, url):
    assert load({"CLICKPIPE_COLLECTOR_HOST": host, "CLICKPIPE_COLLECTOR_PORT": "9000"}).collector_url == url


@pytest.mark.parametrize("name, value, message", [
    ("PARTITIONS", "four", "is not an integer"),
    ("PARTITIONS", "0", "must be >= 1"),
    ("COLLECTOR_BATCH_MAX_BYTES", "1000000", "must be <= 900000"),
    ("KAFKA_PORT", "", "is not an integer"),
    ("COLLECTOR_ANONYMIZE_IP", "maybe", "is not a boolean"),
])
def test_unusable_values_name_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=f"CLICKPIPE_{name}.*{message}"):
        load({f"CLICKPIPE_{name}": value})
