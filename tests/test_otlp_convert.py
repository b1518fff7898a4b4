"""The pure parts of OTLP ingest: record -> entry mapping and the channel template."""

from __future__ import annotations

import re

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from gateway.api.otlp.convert import entries_from, text_of
from gateway.api.otlp.decode import decode_protobuf
from gateway.api.otlp.limits import OtlpLimits
from gateway.core.channel_template import ChannelTemplate
from gateway.core.errors import GatewayError
from gateway.core.events import Entry
from tests.test_otlp_requests import ETL, kv, otlp


async def converted(
    request: ExportLogsServiceRequest, template: ChannelTemplate | None
) -> list[Entry | GatewayError]:
    """A request's entries as the export makes them: decoded from its bytes, converted."""
    decoded = decode_protobuf(request.SerializeToString(), OtlpLimits.of(1000, 65536))
    return await entries_from(decoded, template)


def test_values_other_than_strings_become_compact_json() -> None:
    nested = AnyValue(
        kvlist_value=KeyValueList(
            values=[
                KeyValue(
                    key="ids",
                    value=AnyValue(
                        array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue()])
                    ),
                ),
                KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
            ]
        )
    )
    assert text_of(nested) == '{"ids":[1,null],"raw":"AP8="}'
    assert text_of(AnyValue(bool_value=True)) == "true"
    assert text_of(AnyValue(string_value="plain")) == "plain"


async def test_severity_from_text_alone_ids_of_zeros_and_the_resource_channel() -> None:
    rec = LogRecord(
        body=AnyValue(string_value="m"),
        severity_text="error",
        trace_id=bytes(16),
        span_id=bytes(8),
        attributes=[kv("k", 1), KeyValue(key="unset", value=AnyValue())],
    )
    (entry,) = await converted(otlp(rec, **{"logs_gateway.channel": ETL}), None)
    assert isinstance(entry, Entry)
    assert (entry.channel, entry.severity, entry.trace_id, entry.span_id) == (ETL, 17, "", "")
    assert entry.attributes == {"k": 1, "severity_text": "error"}
    odd = LogRecord(body=AnyValue(string_value="m"), severity_text="Information")
    (entry,) = await converted(otlp(odd, **{"logs_gateway.channel": ETL}), None)
    assert isinstance(entry, Entry) and entry.severity == 0  # read as info


async def test_a_channel_attribute_that_is_not_a_string_is_refused() -> None:
    rec = LogRecord(body=AnyValue(string_value="m"), attributes=[kv("logs_gateway.channel", 3)])
    (refused,) = await converted(otlp(rec), None)
    assert isinstance(refused, GatewayError)
    assert refused.message == "entry 0: attribute 'logs_gateway.channel' must be a string"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("logs:{service.name}", "needs at least logs:{service}:{workspace}"),
        ("logs:{service name}:w", "placeholder '{service name}' must name an attribute"),
        ("logs:{a}:{b", "braces must pair up"),
        ("logs:{a}:w}", "braces must pair up"),
        ("app:{a}:{b}", "must start with 'logs:'"),
    ],
)
def test_bad_templates_are_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        ChannelTemplate.parse(text)


def test_a_template_renders_whole_segments_and_parts_of_them() -> None:
    template = ChannelTemplate.parse("logs:{service.name}:ws-{workspace.id}")
    assert template.render({"service.name": "etl", "workspace.id": "7"}.get) == "logs:etl:ws-7"
    with pytest.raises(
        GatewayError, match=re.escape("'workspace.id' is 'a:b'; a channel segment is")
    ):
        template.render({"service.name": "etl", "workspace.id": "a:b"}.get)
