/*
 * test_audit.c - one audit line (audit.h) as an auditor's tool reads it:
 * RFC 3339 UTC time with milliseconds, the result derived from a status
 * or close code, the profile from the principal, and every string field
 * escaped (user ids come from tokens, chat ids from URLs), bytes that
 * are not UTF-8 replaced, absent fields left out.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "host.h"
#include "msg.h"
#include "tap.h"

/* The line for ev at a fixed time, parsed back; NULL when it is not one
 * JSON object ending in a single newline. */
static json_t *line_of(const struct cc_audit_event *ev, char *raw,
                       size_t raw_size)
{
    struct cc_sbuf b = { 0 };
    json_t *j;

    /* 2025-12-07T10:30:00.123456Z */
    cc_audit_format(&b, 1765103400123456LL, ev);
    snprintf(raw, raw_size, "%.*s", (int)b.len, b.p);
    if (!b.len || b.p[b.len - 1] != '\n' || memchr(b.p, '\n', b.len - 1)) {
        cc_sbuf_free(&b);
        return NULL;
    }
    j = json_loadb(b.p, b.len, 0, NULL);
    cc_sbuf_free(&b);
    return j;
}

static const char *str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

int main(void)
{
    struct cc_principal p = { .user_id = "u\"1\\\n\x01",
                              .patient_id = "0191e3b2-0000-7000-8000-"
                                            "000000000001" };
    struct cc_audit_event ev = { .event = "chat_read", .status = 200,
                                 .peer = "127.0.0.1:5000", .who = &p,
                                 .chat_id = "x\"}, \"event\": \"forged" };
    char raw[2048];
    json_t *j = line_of(&ev, raw, sizeof raw);

    ok(j != NULL, "one JSON object, one line: %s", raw);
    is_str(str(j, "time"), "2025-12-07T10:30:00.123Z", "time: UTC, ms");
    is_str(str(j, "event"), "chat_read", "event");
    is_str(str(j, "result"), "ok", "2xx is ok");
    is_int(json_integer_value(json_object_get(j, "status")), 200, "status");
    is_str(str(j, "remote"), "127.0.0.1:5000", "remote");
    is_str(str(j, "user_id"), "u\"1\\\n\x01", "user id escaped, intact");
    is_str(str(j, "profile"), "patient", "profile");
    is_str(str(j, "chat_id"), "x\"}, \"event\": \"forged",
           "a chat id cannot forge a field");
    ok(!json_object_get(j, "professional_id") &&
       !json_object_get(j, "message_id") && !json_object_get(j, "admin"),
       "absent fields are left out");
    json_decref(j);

    snprintf(p.user_id, sizeof p.user_id, "bad\xff\xfe utf8");
    ev = (struct cc_audit_event){ .event = "ws_leave", .status = 1006,
                                  .who = &p };
    j = line_of(&ev, raw, sizeof raw);
    ok(j != NULL, "bytes that are not UTF-8 still make JSON: %s", raw);
    is_str(str(j, "user_id"), "bad\xef\xbf\xbd\xef\xbf\xbd utf8",
           "they become U+FFFD");
    is_str(str(j, "result"), "error", "1006: error");
    json_decref(j);

    /* A claim that would mislead a reader of the file: a line separator
     * and a right-to-left override stay escapes in the line itself, and
     * a token carried in a claim is not written at all. */
    snprintf(p.user_id, sizeof p.user_id, "eve\xe2\x80\xa8" "evil\xe2\x80\xae"
             "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl");
    ev = (struct cc_audit_event){ .event = "ws_join", .who = &p };
    j = line_of(&ev, raw, sizeof raw);
    ok(j != NULL, "a misleading claim still makes JSON: %s", raw);
    ok(!strstr(raw, "\xe2\x80\xa8") && !strstr(raw, "\xe2\x80\xae") &&
       strstr(raw, "eve\\u2028evil\\u202e[jwt]"),
       "separators and overrides escaped, the token replaced: %s", raw);
    json_decref(j);

    static const struct {
        int status;
        const char *result;
    } results[] = { { 0, "ok" }, { 201, "ok" }, { 101, "ok" },
                    { 1000, "ok" }, { 1001, "ok" }, { 401, "denied" },
                    { 404, "denied" }, { 4401, "denied" },
                    { 4403, "denied" }, { 400, "error" }, { 503, "error" },
                    { 1013, "error" } };
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        ev = (struct cc_audit_event){ .event = "e",
                                      .status = results[i].status };
        j = line_of(&ev, raw, sizeof raw);
        is_str(str(j, "result"), results[i].result, "status %d: %s",
               results[i].status, results[i].result);
        ok(!json_object_get(j, "user_id") && !json_object_get(j, "remote"),
           "no principal, no peer: no such fields");
        json_decref(j);
    }
    ev = (struct cc_audit_event){ .event = "ws_message_send",
                                  .result = "denied" };
    j = line_of(&ev, raw, sizeof raw);
    is_str(str(j, "result"), "denied", "an explicit result wins");
    ok(!json_object_get(j, "status"), "status 0: left out");
    json_decref(j);

    struct cc_principal both = { .user_id = "u", .patient_id = "a",
                                 .professional_id = "b", .is_admin = 1 };
    ev = (struct cc_audit_event){ .event = "e", .who = &both };
    j = line_of(&ev, raw, sizeof raw);
    is_str(str(j, "profile"), "patient,professional", "both profiles");
    ok(json_is_true(json_object_get(j, "admin")), "admin: true");
    json_decref(j);
    return done_testing();
}
