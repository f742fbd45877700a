/* fuzz_msg.c - libFuzzer target: a client's chat message (JSON text
 * frame) through validation, and the JSON string writer on its content;
 * the flat fast path and jansson must give the same answer. */
#include "msg.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_as_jansson(const char *text, size_t size)
{
    struct cc_inbound a, b;
    const char *ea = NULL, *eb = NULL;
    char ba[96], bb[96];
    int ra = cc_inbound_parse_with(text, size, 50, &a, &ea, ba, sizeof ba, 1);
    int rb = cc_inbound_parse_with(text, size, 50, &b, &eb, bb, sizeof bb, 0);

    if (ra != rb || (ra < 0 && strcmp(ea, eb) != 0))
        abort();
    if (ra < 0)
        return;
    if (a.kind != b.kind || a.role != b.role || a.priority != b.priority ||
        a.typing != b.typing || strcmp(a.client_id, b.client_id) != 0 ||
        strcmp(a.read_id, b.read_id) != 0 ||
        a.content_len != b.content_len || !a.content != !b.content ||
        (a.content && memcmp(a.content, b.content, a.content_len) != 0))
        abort();
    cc_inbound_free(&a);
    cc_inbound_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cc_inbound in;
    const char *error = NULL;
    char ebuf[96], *text = malloc(size ? size : 1);

    memcpy(text, data, size);
    same_as_jansson(text, size);
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
