#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

/* libjpeg(-turbo) reports errors by calling error_exit, which by default ends the process.
 * These wrappers return instead (setjmp/longjmp, which Swift cannot do), and treat warnings
 * (a truncated or corrupt stream that libjpeg would fill in with grey) as errors too. */
struct mb_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int warned;
};

static void mb_jpeg_error_exit(j_common_ptr cinfo) {
    struct mb_jpeg_error *e = (struct mb_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void mb_jpeg_emit_message(j_common_ptr cinfo, int level) {
    struct mb_jpeg_error *e = (struct mb_jpeg_error *)cinfo->err;
    if (level < 0 && !e->warned) {  /* a warning: keep the first one */
        (*cinfo->err->format_message)(cinfo, e->message);
        e->warned = 1;
    }
}

/* 8-bit RGB pixels (any JPEG libjpeg can convert to RGB: YCbCr, grayscale), rows top to bottom,
 * in a malloc'd buffer the caller frees; 0 on success, otherwise non-zero and the message.
 * A header claiming more than `max_pixels` pixels is refused before any pixel memory is taken. */
static inline int mb_jpeg_decode_rgb(const unsigned char *data, size_t size, unsigned long long max_pixels,
                                     unsigned char **pixels, unsigned *width, unsigned *height,
                                     char *message, size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    struct mb_jpeg_error err;
    unsigned char *volatile buffer = NULL;
    memset(&err, 0, sizeof err);
    *pixels = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = mb_jpeg_error_exit;
    err.pub.emit_message = mb_jpeg_emit_message;
    if (setjmp(err.jump)) {
        snprintf(message, message_size, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if ((unsigned long long)cinfo.image_width * cinfo.image_height > max_pixels) {
        snprintf(message, message_size, "the header claims %ux%u pixels, more than the %llu decoded at most",
                 cinfo.image_width, cinfo.image_height, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    buffer = malloc(stride * cinfo.output_height + 1);
    if (!buffer) {
        snprintf(message, message_size, "out of memory for %ux%u pixels", cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buffer + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (err.warned) {
        snprintf(message, message_size, "%s", err.message);
        jpeg_destroy_decompress(&cinfo);
        free(buffer);
        return 1;
    }
    *width = cinfo.output_width;
    *height = cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    *pixels = buffer;
    return 0;
}

/* 8-bit RGB pixels as a baseline JPEG of the given quality in a malloc'd buffer (the tests'
 * fixtures); 0 on success. */
static inline int mb_jpeg_encode_rgb(const unsigned char *pixels, unsigned width, unsigned height, int quality,
                                     unsigned char **out, size_t *out_size) {
    struct jpeg_compress_struct cinfo;
    struct mb_jpeg_error err;
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    memset(&err, 0, sizeof err);
    *out = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = mb_jpeg_error_exit;
    err.pub.emit_message = mb_jpeg_emit_message;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = size;
    return 0;
}
