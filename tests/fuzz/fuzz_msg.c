/* fuzz_msg.c - libFuzzer target: a client's chat message (JSON text
 * frame) through validation, and the JSON string writer on its content;
 * the flat fast path and jansson must give the same answer. */
#include "inbound_same.h"
#include "msg.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cc_inbound in;
    const char *error = NULL;
    char ebuf[96], *text = malloc(size ? size : 1);

    memcpy(text, data, size);
    if (!inbound_parsers_agree(text, size, 50))
        abort(); /* the fast path must answer as jansson does */
    if (cc_inbound_parse(text, size, 50, &in, &error, ebuf,
                         sizeof ebuf) == 0) {
        struct cc_sbuf b = { 0 };

        if (!cc_utf8_valid(in.content, in.content_len))
            abort(); /* only valid UTF-8 content may be stored */
        cc_json_str(&b, in.content, in.content_len);
        cc_sbuf_free(&b);
        cc_inbound_free(&in);
    } else if (!error) {
        abort(); /* every refusal names its error */
    }
    free(text);
    return 0;
}
