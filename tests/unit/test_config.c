/* test_config.c - INI parsing, line numbers, typed values, secrets. */
#include "config.h"
#include "tap.h"

#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_parse(void)
{
    struct cc_conf *c;
    char err[256] = "";
    const char *text = "# comment\n"
                       "[server]\n"
                       "listen = 127.0.0.1:8000 ; inline comment\n"
                       "\n"
                       "[auth]\n"
                       "secret = s3cr3t=with=equals\n"
                       "leeway=5\n"
                       "[server]\n"
                       "log_level = debug\n";
    const struct cc_conf_entry *e;

    is_int(cc_conf_load_string(text, "t.conf", &c, err, sizeof err), 0,
           "valid file parses");
    e = cc_conf_entry(cc_conf_section(c, "server"), "listen");
    is_str(e ? e->value : NULL, "127.0.0.1:8000", "inline comment stripped");
    is_int(e ? e->line : 0, 3, "line number of listen");
    is_str(cc_conf_get(cc_conf_section(c, "auth"), "secret"),
           "s3cr3t=with=equals", "value keeps later '=' signs");
    e = cc_conf_entry(cc_conf_section(c, "auth"), "leeway");
    is_int(e ? e->line : 0, 7, "line number without spaces around '='");
    is_str(cc_conf_get(cc_conf_section(c, "server"), "log_level"), "debug",
           "a section may be reopened");
    ok(cc_conf_section(c, "fanout") == NULL, "absent section is NULL");
    ok(cc_conf_get(NULL, "x") == NULL, "lookup in NULL section is NULL");
    cc_conf_free(c);

    is_int(cc_conf_load_string("[a]\nb = 1\nno equals here\n", "bad.conf",
                               &c, err, sizeof err), -1,
           "a line without '=' is refused");
    is_str(err, "bad.conf:3: syntax error (expected [section] or key = "
                "value, and keys inside a section)", "error names file:line");
    is_int(cc_conf_load_string("key = 1\n", "top.conf", &c, err, sizeof err),
           -1, "a key before any section is refused");
    is_int(cc_conf_load("/nonexistent/carechat.conf", &c, err, sizeof err),
           -1, "missing file refused");
    ok(strstr(err, "/nonexistent/carechat.conf: cannot open") == err,
       "missing file message names the file: %s", err);
}

static void test_long_line(void)
{
    struct cc_conf *c;
    char err[256];
    size_t n = 5000;
    char *text = malloc(n + 32);

    memcpy(text, "[a]\nk = ", 8);
    memset(text + 8, 'x', n);
    memcpy(text + 8 + n, "\n", 2);
    is_int(cc_conf_load_string(text, "long.conf", &c, err, sizeof err), -1,
           "over-long line refused");
    ok(strncmp(err, "long.conf:2: line longer than", 29) == 0,
       "over-long line message: %s", err);
    memset(text + 8, 'y', 3000);
    memcpy(text + 8 + 3000, "\n", 2);
    is_int(cc_conf_load_string(text, "ok.conf", &c, err, sizeof err), 0,
           "3000-byte value accepted");
    is_int((long long)strlen(cc_conf_get(cc_conf_section(c, "a"), "k")),
           3000, "3000-byte value intact");
    cc_conf_free(c);
    free(text);
}

static void test_values(void)
{
    uint64_t v = 0;
    const char *why = NULL;
    int b = -1;

    is_int(cc_conf_parse_size("64k", 0, UINT64_MAX, &v, &why), 0, "64k");
    is_int((long long)v, 65536, "64k is 65536");
    is_int(cc_conf_parse_size("1MiB", 0, UINT64_MAX, &v, &why), 0, "1MiB");
    is_int((long long)v, 1048576, "1MiB is 1048576");
    is_int(cc_conf_parse_size("lots", 0, UINT64_MAX, &v, &why), -1,
           "size 'lots' refused");
    is_str(why, "expected a non-negative number", "why for 'lots'");
    is_int(cc_conf_parse_size("10q", 0, UINT64_MAX, &v, &why), -1,
           "unknown suffix refused");
    is_int(cc_conf_parse_size("99999999999999999999", 0, UINT64_MAX, &v,
                              &why), -1, "overflow refused");
    is_int(cc_conf_parse_size("512", 1024, 2048, &v, &why), -1,
           "below minimum refused");
    is_str(why, "value too small", "why for too small");
    is_int(cc_conf_parse_duration_ms("30", 0, UINT64_MAX, &v, &why), 0,
           "bare duration");
    is_int((long long)v, 30000, "bare duration is seconds");
    is_int(cc_conf_parse_duration_ms("250ms", 0, UINT64_MAX, &v, &why), 0,
           "ms duration");
    is_int((long long)v, 250, "250ms");
    is_int(cc_conf_parse_duration_ms("2h", 0, UINT64_MAX, &v, &why), 0,
           "hours");
    is_int((long long)v, 7200000, "2h in ms");
    is_int(cc_conf_parse_duration_ms("-1s", 0, UINT64_MAX, &v, &why), -1,
           "negative duration refused");
    is_int(cc_conf_parse_u64("12", 0, 100, &v, &why), 0, "plain number");
    is_int(cc_conf_parse_u64("12k", 0, 100, &v, &why), -1,
           "plain number takes no suffix");
    is_int(cc_conf_parse_u64("", 0, 100, &v, &why), -1, "empty refused");
    is_int(cc_conf_parse_bool("Yes", &b, &why), 0, "Yes is a bool");
    is_int(b, 1, "Yes is true");
    is_int(cc_conf_parse_bool("off", &b, &why), 0, "off is a bool");
    is_int(b, 0, "off is false");
    is_int(cc_conf_parse_bool("maybe", &b, &why), -1, "maybe refused");
}

static void test_addr(void)
{
    struct sockaddr_storage ss;
    int len;

    is_int(cc_conf_parse_addr("127.0.0.1:8000", &ss, &len), 0, "v4:port");
    is_int(cc_conf_parse_addr("[::1]:8000", &ss, &len), 0, "[v6]:port");
    is_int(cc_conf_parse_addr("127.0.0.1:0", &ss, &len), -1, "port 0");
    is_int(cc_conf_parse_addr("127.0.0.1", &ss, &len), -1, "no port");
    is_int(cc_conf_parse_addr("localhost:8000", &ss, &len), -1,
           "names are not resolved");
}

int main(void)
{
    test_parse();
    test_long_line();
    test_values();
    test_addr();
    return done_testing();
}
