// Hand-written helpers around protobuf-c for MBONNX (not generated).
#include "include/mb_protobuf_shim.h"
#include "include/onnx.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    ProtobufCBuffer base;   // must come first: protobuf-c calls base.append with &base
    int fd;
    int error;
    uint8_t *buffer;
    size_t used;
    size_t capacity;
    uint64_t written;
} FdBuffer;

static int write_all(int fd, const uint8_t *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fd_buffer_flush(FdBuffer *b) {
    if (b->error == 0 && b->used > 0) {
        b->error = write_all(b->fd, b->buffer, b->used);
    }
    b->used = 0;
}

static void fd_buffer_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
    FdBuffer *b = (FdBuffer *)buffer;
    if (b->error != 0) return;
    b->written += len;
    if (len >= b->capacity) {
        // A large payload (a tensor's raw_data) goes straight to the file.
        fd_buffer_flush(b);
        if (b->error == 0) b->error = write_all(b->fd, data, len);
        return;
    }
    if (b->used + len > b->capacity) fd_buffer_flush(b);
    for (size_t i = 0; i < len; i++) b->buffer[b->used + i] = data[i];
    b->used += len;
}

int mb_pack_to_fd(const ProtobufCMessage *message, int fd, uint64_t *bytes_written) {
    FdBuffer b;
    b.base.append = fd_buffer_append;
    b.fd = fd;
    b.error = 0;
    b.capacity = 1u << 20;
    b.used = 0;
    b.written = 0;
    b.buffer = malloc(b.capacity);
    if (b.buffer == NULL) return ENOMEM;
    protobuf_c_message_pack_to_buffer(message, &b.base);
    fd_buffer_flush(&b);
    free(b.buffer);
    if (bytes_written) *bytes_written = b.written;
    return b.error;
}

ProtobufCMessage *mb_unpack(const ProtobufCMessageDescriptor *descriptor, size_t len, const uint8_t *data) {
    return protobuf_c_message_unpack(descriptor, NULL, len, data);
}

void mb_free_unpacked(ProtobufCMessage *message) {
    protobuf_c_message_free_unpacked(message, NULL);
}

const ProtobufCMessageDescriptor *mb_model_descriptor(void) { return &onnx__model_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_training_info_descriptor(void) { return &onnx__training_info_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_device_configuration_descriptor(void) { return &onnx__device_configuration_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_node_device_configuration_descriptor(void) { return &onnx__node_device_configuration_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_tensor_descriptor(void) { return &onnx__tensor_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_sequence_descriptor(void) { return &onnx__sequence_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_optional_descriptor(void) { return &onnx__optional_proto__descriptor; }

const ProtobufCMessageDescriptor *mb_node_descriptor(void) { return &onnx__node_proto__descriptor; }
const ProtobufCMessageDescriptor *mb_attribute_descriptor(void) { return &onnx__attribute_proto__descriptor; }
