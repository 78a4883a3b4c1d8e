"""The local stack: Apache Kafka (KRaft) and Apache Druid as plain processes on 127.0.0.1.

Jars come from Maven Central through the poms in ``maven/`` into ``settings.cache_dir``;
configuration, data, logs and pid files live under ``settings.state_dir``. Entry point:
:class:`stack.manager.StackManager` (also ``clickpipe stack ...``).
"""
