#include <png.h>
#include <stdlib.h>
#include <string.h>

/* libpng's simplified API (no setjmp needed), wrapped so Swift sees plain functions.
 * mb_png_decode_rgba: 8-bit RGBA pixels, rows top to bottom, in a malloc'd buffer the caller
 * frees; 0 on success, otherwise non-zero and libpng's message (NUL-terminated) in `message`.
 * A header claiming more than `max_pixels` pixels is refused before any pixel memory is taken. */
static inline int mb_png_decode_rgba(const unsigned char *data, size_t size, unsigned long long max_pixels,
                                     unsigned char **pixels, unsigned *width, unsigned *height,
                                     char *message, size_t message_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    *pixels = NULL;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        snprintf(message, message_size, "%s", image.message);
        png_image_free(&image);
        return 1;
    }
    if ((unsigned long long)image.width * image.height > max_pixels) {
        snprintf(message, message_size, "the header claims %ux%u pixels, more than the %llu decoded at most",
                 image.width, image.height, max_pixels);
        png_image_free(&image);
        return 2;
    }
    image.format = PNG_FORMAT_RGBA;
    size_t bytes = (size_t)PNG_IMAGE_SIZE(image);
    unsigned char *buffer = malloc(bytes ? bytes : 1);
    if (!buffer) {
        snprintf(message, message_size, "out of memory for %ux%u pixels", image.width, image.height);
        png_image_free(&image);
        return 1;
    }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        snprintf(message, message_size, "%s", image.message);
        free(buffer);
        png_image_free(&image);
        return 1;
    }
    *pixels = buffer;
    *width = image.width;
    *height = image.height;
    return 0;
}

/* 8-bit RGB (channels 3) or gray (channels 1) pixels as a PNG file in a malloc'd buffer (the
 * tests' fixtures); 0 on success. */
static inline int mb_png_encode(const unsigned char *pixels, unsigned width, unsigned height, int channels,
                                unsigned char **out, size_t *out_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = width;
    image.height = height;
    image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    size_t size = 0;
    *out = NULL;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) return 1;
    unsigned char *buffer = malloc(size);
    if (!buffer) return 1;
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) { free(buffer); return 1; }
    *out = buffer;
    *out_size = size;
    return 0;
}
