/* fuzz_ws.c - libFuzzer target: the WebSocket frame decoder, message
 * reassembly with UTF-8 validation and close-frame checks, driven as the
 * session drives it (a stream of client frames). */
#include "ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_text(void *arg, const char *d, size_t n)
{
    /* Touch every byte: an out-of-bounds message is an ASan error. */
    volatile char sink = 0;

    for (size_t i = 0; i < n; i++)
        sink ^= d[i];
    (void)sink;
    (void)arg;
}

static void on_ctl(void *arg, const unsigned char *d, size_t n)
{
    if (n > 125)
        abort(); /* control payloads are at most 125 bytes */
    (void)arg;
    (void)d;
}

static void on_close(void *arg, int code, const char *reason, size_t n)
{
    if (code != CC_WS_CLOSE_NO_STATUS && !cc_ws_close_code_valid(code))
        abort();
    (void)arg;
    (void)reason;
    (void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct cc_ws_handler h = { on_text, on_ctl, on_ctl,
                                            on_close };
    struct cc_ws_reader r;
    unsigned char *buf = malloc(size ? size : 1);
    size_t off = 0;

    memcpy(buf, data, size);
    cc_ws_reader_init(&r, 4096);
    while (off < size) {
        struct cc_ws_frame f;
        int rc = cc_ws_parse_header(buf + off, size - off, 1, 8192, &f);

        if (rc <= 0)
            break; /* incomplete, or an error close code */
        if (f.header_len + f.payload_len > size - off)
            break;
        cc_ws_unmask(buf + off + f.header_len, (size_t)f.payload_len,
                     f.mask, 0);
        if (cc_ws_reader_frame(&r, &f, buf + off + f.header_len, &h,
                               NULL) != 0)
            break;
        off += f.header_len + (size_t)f.payload_len;
    }
    cc_ws_reader_free(&r);
    free(buf);
    return 0;
}
