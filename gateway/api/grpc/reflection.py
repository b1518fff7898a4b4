"""gRPC server reflection under both names: `grpc.reflection.v1`, which current tools ask
for first, and `grpc.reflection.v1alpha`, which older ones use.

grpcio-reflection serves only v1alpha. v1 is the same protocol, field for field, under a new
package name, so one servicer answers both: a v1 request decodes as a v1alpha message and
its answer encodes as v1 bytes. The v1 file is built from the v1alpha one (package and type
names changed) and added to the descriptor pool, so that v1 too can be described.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"
_OLD, _NEW = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."


def enable(server: grpc.aio.Server, services: Sequence[str]) -> None:
    """Serve reflection for `services` (and for both reflection services) on `server`."""
    _add_v1_file(descriptor_pool.Default())
    servicer = reflection.aio.ReflectionServicer((*services, reflection.SERVICE_NAME, V1_SERVICE))
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    v1 = grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": method})
    server.add_generic_rpc_handlers((v1,))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)


def _add_v1_file(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(_V1_FILE)
        return  # added by an earlier gateway in this process
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    file.name, file.package = _V1_FILE, "grpc.reflection.v1"
    file.ClearField("options")
    for message in file.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # set only on message fields; stays unset else
                field.type_name = field.type_name.replace(_OLD, _NEW)
    for service in file.service:
        for m in service.method:
            m.input_type, m.output_type = (
                m.input_type.replace(_OLD, _NEW),
                m.output_type.replace(_OLD, _NEW),
            )
    pool.AddSerializedFile(file.SerializeToString())
