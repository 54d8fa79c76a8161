"""Schema registry helpers of the streamscore integration tests.

The stack's registry is Apicurio Registry with its Confluent-compatible API (scripts/dev-stack
runs it with REGISTRY=1); these helpers talk to it with confluent-kafka's own
SchemaRegistryClient, AvroSerializer and AvroDeserializer, an independent client of the
Confluent wire format the worker reads and writes (magic byte 0, 4-byte big-endian schema id,
Avro body).

    import harness as h
    import registry
    registry.wait_ready(registry.URL, 60)
    schema_id = registry.register(registry.URL, "customer-events-value", h.EVENT_SCHEMA_PATH)
    encode = registry.serializer(registry.URL, h.EVENT_SCHEMA_PATH, "customer-events-value")
    value = encode(event)                       # bytes, framed with the schema's id
    record = registry.deserializer(registry.URL)(value)

What to know about this registry:
- Its storage is in memory: after `dev-stack restart-registry` it is empty and ids start
  again at 1, so an id met before the restart may be unknown, or name another schema.
  Every helper makes its own SchemaRegistryClient, whose cache lives as long as the
  serializer or deserializer made with it: make new ones after a restart.
- Ids are Apicurio content ids, from 1: the same schema text has the same id in every
  subject, and registering a schema again under a subject returns its id, whatever its
  layout (dev-stack sets apicurio.ccompat.use-canonical-hash). Another layout under a new
  subject gets a new id (the helpers send the file's text stripped, as AvroSerializer does).
  Ids have gaps: a refused registration (409) uses ids up.
- Default compatibility is NONE; PUT /config/{subject} sets a subject's level.
- An unknown id (GET /schemas/ids/N) answers 404 with error_code 40403.

Ports come from the environment as in harness.py: SS_IT_REGISTRY_PORT (22081, the test
stack's, as harness.py has it); URL is the API's base, http://127.0.0.1:PORT/apis/ccompat/v7.
"""

import os
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka.schema_registry import (Schema, SchemaRegistryClient,
                                             topic_subject_name_strategy)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

REGISTRY_PORT = int(os.environ.get("SS_IT_REGISTRY_PORT", "22081"))
URL = f"http://127.0.0.1:{REGISTRY_PORT}/apis/ccompat/v7"

_VALUE_SUFFIX = "-value"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def client(url):
    """A new SchemaRegistryClient for url (its id cache is its own)."""
    return SchemaRegistryClient({"url": url})


def _schema_text(schema_path):
    """The schema file's text without its surrounding whitespace, as AvroSerializer sends it:
    Apicurio gives a schema the id of the same text in another subject, but a new id to
    another layout of it (within one subject any layout finds the registered version)."""
    return Path(schema_path).read_text(encoding="utf-8").strip()


def _topic_of(subject):
    """The topic whose values TopicNameStrategy puts under subject ("<topic>-value")."""
    if not subject.endswith(_VALUE_SUFFIX) or len(subject) == len(_VALUE_SUFFIX):
        raise ValueError(f"subject {subject!r} is not a TopicNameStrategy value subject"
                         " '<topic>-value'")
    return subject[:-len(_VALUE_SUFFIX)]


def register(url, subject, schema_path):
    """Registers the Avro schema in schema_path under subject; returns its id (the same id
    again if the subject already holds that schema). Raises SchemaRegistryError if the
    registry refuses it (e.g. 409 when incompatible under the subject's level)."""
    return client(url).register_schema(subject, Schema(_schema_text(schema_path), "AVRO"))


def serializer(url, schema_path, subject):
    """A value serializer: record (dict) -> bytes in the Confluent wire format, with the
    schema in schema_path, registered under subject on first use (auto.register.schemas).

    The subject is TopicNameStrategy's, "<topic>-value". Called as f(record) it serializes
    for that topic; as f(record, ctx), the signature of a SerializingProducer's
    value.serializer, the subject is ctx.topic's. Timestamp fields take int milliseconds."""
    topic = _topic_of(subject)
    ser = AvroSerializer(client(url), _schema_text(schema_path),
                         conf={"auto.register.schemas": True,
                               "subject.name.strategy": topic_subject_name_strategy})
    default_ctx = SerializationContext(topic, MessageField.VALUE)

    def serialize(record, ctx=None):
        return ser(record, ctx or default_ctx)

    return serialize


def _to_millis(value):
    if not isinstance(value, datetime):
        return value
    d = value - _EPOCH  # exact: no float seconds
    return d.days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000


def _millis(record):
    """timestamp-millis values back to int milliseconds, as harness.py's decoders give them."""
    if record is None:
        return None
    return {k: _to_millis(v) for k, v in record.items()}


def deserializer(url):
    """A value deserializer: Confluent-framed bytes -> record (dict), the writer schema
    fetched from the registry by the id in the frame. Top-level timestamp fields come back
    as int milliseconds. Raises SchemaRegistryError (404, error_code 40403) for an id the
    registry does not know, SerializationError (or ValueError) for bytes not in the wire
    format.
    Also usable as f(value, ctx), a DeserializingConsumer's value.deserializer."""
    de = AvroDeserializer(client(url))

    def deserialize(value, ctx=None):
        return _millis(de(value, ctx))

    return deserialize


def wait_ready(url, timeout):
    """Waits until GET {url}/subjects answers 200 (the check scripts/dev-stack makes);
    raises TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/subjects", timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except OSError as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"schema registry at {url} not ready after {timeout}s ({last})")
        time.sleep(0.2)
