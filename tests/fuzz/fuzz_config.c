/* fuzz_config.c - libFuzzer target: the INI config parser and the value
 * parsers the [server] section uses. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[256];
    struct cc_conf *conf = NULL;

    memcpy(text, data, size);
    text[size] = '\0';
    if (cc_conf_load_string(text, "fuzz.conf", &conf, err,
                            sizeof err) == 0) {
        const struct cc_conf_section *s = cc_conf_section(conf, "server");
        const char *v = s ? cc_conf_get(s, "max_body_size") : NULL;
        const char *why;
        uint64_t u;
        int b;

        if (v) {
            cc_conf_parse_size(v, 0, UINT64_MAX, &u, &why);
            cc_conf_parse_duration_ms(v, 0, UINT64_MAX, &u, &why);
            cc_conf_parse_u64(v, 0, UINT64_MAX, &u, &why);
            cc_conf_parse_bool(v, &b, &why);
        }
        cc_conf_free(conf);
    }
    free(text);
    return 0;
}
