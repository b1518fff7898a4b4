from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SeverityNumber(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_NUMBER_UNSPECIFIED: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_TRACE: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_TRACE2: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_TRACE3: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_TRACE4: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_DEBUG: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_DEBUG2: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_DEBUG3: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_DEBUG4: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_INFO: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_INFO2: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_INFO3: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_INFO4: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_WARN: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_WARN2: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_WARN3: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_WARN4: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_ERROR: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_ERROR2: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_ERROR3: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_ERROR4: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_FATAL: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_FATAL2: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_FATAL3: _ClassVar[SeverityNumber]
    SEVERITY_NUMBER_FATAL4: _ClassVar[SeverityNumber]
SEVERITY_NUMBER_UNSPECIFIED: SeverityNumber
SEVERITY_NUMBER_TRACE: SeverityNumber
SEVERITY_NUMBER_TRACE2: SeverityNumber
SEVERITY_NUMBER_TRACE3: SeverityNumber
SEVERITY_NUMBER_TRACE4: SeverityNumber
SEVERITY_NUMBER_DEBUG: SeverityNumber
SEVERITY_NUMBER_DEBUG2: SeverityNumber
SEVERITY_NUMBER_DEBUG3: SeverityNumber
SEVERITY_NUMBER_DEBUG4: SeverityNumber
SEVERITY_NUMBER_INFO: SeverityNumber
SEVERITY_NUMBER_INFO2: SeverityNumber
SEVERITY_NUMBER_INFO3: SeverityNumber
SEVERITY_NUMBER_INFO4: SeverityNumber
SEVERITY_NUMBER_WARN: SeverityNumber
SEVERITY_NUMBER_WARN2: SeverityNumber
SEVERITY_NUMBER_WARN3: SeverityNumber
SEVERITY_NUMBER_WARN4: SeverityNumber
SEVERITY_NUMBER_ERROR: SeverityNumber
SEVERITY_NUMBER_ERROR2: SeverityNumber
SEVERITY_NUMBER_ERROR3: SeverityNumber
SEVERITY_NUMBER_ERROR4: SeverityNumber
SEVERITY_NUMBER_FATAL: SeverityNumber
SEVERITY_NUMBER_FATAL2: SeverityNumber
SEVERITY_NUMBER_FATAL3: SeverityNumber
SEVERITY_NUMBER_FATAL4: SeverityNumber

class AttributeValue(_message.Message):
    __slots__ = ("string_value", "int_value", "double_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("channel", "time_unix_nano", "severity_number", "severity_text", "body", "attributes", "trace_id", "span_id", "source")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_TEXT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    time_unix_nano: int
    severity_number: SeverityNumber
    severity_text: str
    body: str
    attributes: _containers.MessageMap[str, AttributeValue]
    trace_id: bytes
    span_id: bytes
    source: str
    def __init__(self, channel: _Optional[str] = ..., time_unix_nano: _Optional[int] = ..., severity_number: _Optional[_Union[SeverityNumber, str]] = ..., severity_text: _Optional[str] = ..., body: _Optional[str] = ..., attributes: _Optional[_Mapping[str, AttributeValue]] = ..., trace_id: _Optional[bytes] = ..., span_id: _Optional[bytes] = ..., source: _Optional[str] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("producer_id", "sequence", "entries")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    sequence: int
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, producer_id: _Optional[str] = ..., sequence: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class EntryResult(_message.Message):
    __slots__ = ("code", "message", "offset", "cursor")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    offset: int
    cursor: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., offset: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class PublishAck(_message.Message):
    __slots__ = ("sequence", "results", "duplicate")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    results: _containers.RepeatedCompositeFieldContainer[EntryResult]
    duplicate: bool
    def __init__(self, sequence: _Optional[int] = ..., results: _Optional[_Iterable[_Union[EntryResult, _Mapping]]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("channels", "cursor", "min_level", "tail")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedScalarFieldContainer[str]
    cursor: str
    min_level: str
    tail: int
    def __init__(self, channels: _Optional[_Iterable[str]] = ..., cursor: _Optional[str] = ..., min_level: _Optional[str] = ..., tail: _Optional[int] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("channel", "lost", "reason", "channels")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    lost: int
    reason: str
    channels: int
    def __init__(self, channel: _Optional[str] = ..., lost: _Optional[int] = ..., reason: _Optional[str] = ..., channels: _Optional[int] = ...) -> None: ...

class LogEvent(_message.Message):
    __slots__ = ("cursor", "entry", "gap", "ready")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    entry: StoredEntry
    gap: Gap
    ready: Ready
    def __init__(self, cursor: _Optional[str] = ..., entry: _Optional[_Union[StoredEntry, _Mapping]] = ..., gap: _Optional[_Union[Gap, _Mapping]] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("connection", "channels")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    connection: str
    channels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, connection: _Optional[str] = ..., channels: _Optional[_Iterable[str]] = ...) -> None: ...

class StoredEntry(_message.Message):
    __slots__ = ("offset", "entry")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    offset: int
    entry: LogEntry
    def __init__(self, offset: _Optional[int] = ..., entry: _Optional[_Union[LogEntry, _Mapping]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("channels", "before", "after", "since", "limit", "min_level")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIN_LEVEL_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedScalarFieldContainer[str]
    before: str
    after: str
    since: str
    limit: int
    min_level: str
    def __init__(self, channels: _Optional[_Iterable[str]] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., since: _Optional[str] = ..., limit: _Optional[int] = ..., min_level: _Optional[str] = ...) -> None: ...

class HistoryPage(_message.Message):
    __slots__ = ("events", "before", "after", "start", "end", "lost_before_start")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LOST_BEFORE_START_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[LogEvent]
    before: str
    after: str
    start: bool
    end: bool
    lost_before_start: _containers.RepeatedCompositeFieldContainer[Gap]
    def __init__(self, events: _Optional[_Iterable[_Union[LogEvent, _Mapping]]] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., start: _Optional[bool] = ..., end: _Optional[bool] = ..., lost_before_start: _Optional[_Iterable[_Union[Gap, _Mapping]]] = ...) -> None: ...
