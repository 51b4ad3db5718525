// Hand-written helpers around protobuf-c for MBONNX (not generated).
#ifndef MB_PROTOBUF_SHIM_H
#define MB_PROTOBUF_SHIM_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Packs `message` to the open file descriptor `fd` through a 1 MiB buffer, so a model is
/// never materialised twice in memory. Returns 0 on success, or the errno of the failed write.
int mb_pack_to_fd(const ProtobufCMessage *message, int fd, uint64_t *bytes_written);

/// Unpacks with the default allocator. NULL when the bytes are not a valid message.
ProtobufCMessage *mb_unpack(const ProtobufCMessageDescriptor *descriptor, size_t len, const uint8_t *data);

/// Frees a tree made by mb_unpack (or any protobuf-c unpack with the default allocator).
void mb_free_unpacked(ProtobufCMessage *message);

/// Descriptors by address (Swift would take the address of a copy of the C constant).
const ProtobufCMessageDescriptor *mb_model_descriptor(void);
const ProtobufCMessageDescriptor *mb_training_info_descriptor(void);
const ProtobufCMessageDescriptor *mb_device_configuration_descriptor(void);
const ProtobufCMessageDescriptor *mb_node_device_configuration_descriptor(void);
const ProtobufCMessageDescriptor *mb_tensor_descriptor(void);
const ProtobufCMessageDescriptor *mb_sequence_descriptor(void);
const ProtobufCMessageDescriptor *mb_optional_descriptor(void);
/// NodeProto and AttributeProto, which the wire-level check counts against their limits.
const ProtobufCMessageDescriptor *mb_node_descriptor(void);
const ProtobufCMessageDescriptor *mb_attribute_descriptor(void);

#ifdef __cplusplus
}
#endif

#endif
