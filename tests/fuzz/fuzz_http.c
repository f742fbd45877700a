/* fuzz_http.c - libFuzzer target: the HTTP/1.1 request head parser and
 * the helpers the server runs on what it parsed. */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cc_http_request req;
    char *buf = malloc(size ? size : 1), out[256];
    int rc;

    /* An exact-size copy: reads past the input are ASan errors. */
    memcpy(buf, data, size);
    rc = cc_http_parse_head(buf, size, 16384, &req);
    if (rc > 0) {
        const struct cc_http_header *h;
        char *dec = malloc(req.path.n + 1);

        if ((size_t)rc > size || req.n_headers > CC_HTTP_MAX_HEADERS)
            abort();
        cc_http_query_param(req.query, "token", out, sizeof out);
        cc_http_query_param(req.query, "page_size", out, 4);
        cc_http_pct_decode(req.path, dec, 0);
        free(dec);
        if ((h = cc_http_header(&req, "Connection")))
            cc_http_has_token(h->value, "upgrade");
        if ((h = cc_http_header(&req, "Sec-WebSocket-Extensions")))
            cc_http_has_token(h->value, "permessage-deflate");
    } else if (rc != 0 && rc != -400 && rc != -431 && rc != -505) {
        abort();
    }
    free(buf);
    return 0;
}
