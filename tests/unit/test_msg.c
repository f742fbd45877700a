/* test_msg.c - protocol JSON: inbound validation, outbound encoding,
 * role resolution. */
#include "frame.h"
#include "inbound_same.h"
#include "msg.h"
#include "tap.h"
#include "timefmt.h"

#include <stddef.h>

#include <jansson.h>
#include <string.h>

#define PAT "11111111-1111-4111-8111-111111111111"
#define PRO "22222222-2222-4222-8222-222222222222"
#define OTHER "33333333-3333-4333-8333-333333333333"

static const char *parse_err(const char *text, size_t max_chars)
{
    static char ebuf[96];
    struct cc_inbound in;
    const char *err = NULL;

    if (cc_inbound_parse(text, strlen(text), max_chars, &in, &err, ebuf,
                         sizeof ebuf) == 0) {
        cc_inbound_free(&in);
        return NULL;
    }
    return err;
}

static void test_inbound(void)
{
    struct cc_inbound in;
    const char *err = NULL;
    char ebuf[96];
    const char *t = "{\"content\": \"Hello, how can I help you?\", "
                    "\"role\": \"patient\"}";

    is_int(cc_inbound_parse(t, strlen(t), 0, &in, &err, ebuf, sizeof ebuf),
           0, "spec example parses");
    is_str(in.content, "Hello, how can I help you?", "content");
    is_int(in.role, CC_SIDE_PATIENT, "role patient");
    cc_inbound_free(&in);
    t = "{\"content\": \"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\"}";
    is_int(cc_inbound_parse(t, strlen(t), 0, &in, &err, ebuf, sizeof ebuf),
           0, "escapes parse");
    is_str(in.content, "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80",
           "escapes decode to exact UTF-8");
    is_int(in.role, CC_SIDE_NONE, "no role");
    cc_inbound_free(&in);

    is_str(parse_err("not json", 0), CC_ERR_JSON, "not JSON");
    is_str(parse_err("[1,2]", 0), CC_ERR_JSON, "array is not an object");
    is_str(parse_err("\"content\"", 0), CC_ERR_JSON, "string is not an object");
    is_str(parse_err("{\"content\": \"a\", \"content\": \"b\"}", 0),
           CC_ERR_JSON, "duplicate keys refused");
    is_str(parse_err("{}", 0), CC_ERR_EMPTY, "missing content");
    is_str(parse_err("{\"content\": \"\"}", 0), CC_ERR_EMPTY, "empty content");
    is_str(parse_err("{\"content\": \" \\t\\n \"}", 0), CC_ERR_EMPTY,
           "ASCII whitespace only");
    is_str(parse_err("{\"content\": \"\\u3000\\u00a0\\u2003\"}", 0),
           CC_ERR_EMPTY, "Unicode whitespace only");
    is_str(parse_err("{\"content\": null}", 0), CC_ERR_EMPTY, "null content");
    is_str(parse_err("{\"content\": 42}", 0),
           "Message content must be a string", "number content");
    is_str(parse_err("{\"content\": \"hi\", \"role\": \"admin\"}", 0),
           "Invalid role: use patient, professional or provider",
           "unknown role");
    is_str(parse_err("{\"content\": \"hi\", \"role\": 1}", 0),
           "Invalid role: use patient, professional or provider",
           "non-string role");
    is_str(parse_err("{\"content\": \"hi\", \"role\": \"Patient\"}", 0),
           "Invalid role: use patient, professional or provider",
           "roles are case-sensitive");
    ok(parse_err("{\"content\": \"hi\", \"role\": \"provider\"}", 0) == NULL,
       "provider is accepted");
    ok(parse_err("{\"content\": \"\xc3\xa9\xc3\xa9\xc3\xa9\"}", 3) == NULL,
       "3 two-byte characters fit a limit of 3");
    is_str(parse_err("{\"content\": \"abcd\"}", 3),
           "Message content too long (max 3 characters)", "over the limit");
    ok(parse_err("{\"content\": \" x \"}", 0) == NULL,
       "content with surrounding spaces is not blank");
    ok(parse_err("{\"content\": \"hi\", \"extra\": [1]}", 0) == NULL,
       "unknown members are ignored");

    /* Priority, read marks and typing (issue 26). */
    t = "{\"content\": \"now\", \"priority\": \"urgent\"}";
    is_int(cc_inbound_parse(t, strlen(t), 0, &in, &err, ebuf, sizeof ebuf),
           0, "urgent parses");
    is_int(in.priority, CC_PRIORITY_URGENT, "urgent");
    is_int(in.kind, CC_IN_MESSAGE, "a message");
    cc_inbound_free(&in);
    ok(parse_err("{\"content\": \"x\", \"priority\": \"normal\"}", 0) ==
       NULL, "normal is accepted");
    is_str(parse_err("{\"content\": \"x\", \"priority\": \"high\"}", 0),
           CC_ERR_PRIORITY, "another priority");
    is_str(parse_err("{\"content\": \"x\", \"priority\": 1}", 0),
           CC_ERR_PRIORITY, "a number");
    t = "{\"read\": \"33333333-3333-4333-8333-33333333333A\"}";
    is_int(cc_inbound_parse(t, strlen(t), 0, &in, &err, ebuf, sizeof ebuf),
           0, "a read mark parses");
    is_int(in.kind, CC_IN_READ, "kind read");
    is_str(in.read_id, "33333333-3333-4333-8333-33333333333a",
           "its id, canonical");
    cc_inbound_free(&in);
    is_str(parse_err("{\"read\": \"x\"}", 0), CC_ERR_READ, "read: not a UUID");
    is_str(parse_err("{\"read\": 7}", 0), CC_ERR_READ, "read: a number");
    is_str(parse_err("{\"read\": \"" OTHER "\", \"role\": \"x\"}", 0),
           "Invalid role: use patient, professional or provider",
           "read with a bad role");
    t = "{\"typing\": true}";
    is_int(cc_inbound_parse(t, strlen(t), 0, &in, &err, ebuf, sizeof ebuf),
           0, "typing parses");
    ok(in.kind == CC_IN_TYPING && in.typing == 1, "typing true");
    cc_inbound_free(&in);
    is_str(parse_err("{\"typing\": \"yes\"}", 0), CC_ERR_TYPING,
           "typing: not a boolean");
    t = "{\"content\": \"both\", \"read\": \"" OTHER "\"}";
    is_int(cc_inbound_parse(t, strlen(t), 0, &in, &err, ebuf, sizeof ebuf),
           0, "content and read");
    is_int(in.kind, CC_IN_MESSAGE, "content wins");
    cc_inbound_free(&in);
}

static void test_encode(void)
{
    struct cc_sbuf b = { 0 };
    struct cc_message m = {
        .struct_size = sizeof m,
        .id = "019af85c-74bb-7000-8000-000000000001",
        .content = "quote \" backslash \\ nl \n tab \t \x01 \xd7\xa9",
        .created_at_us = 1765103400123456LL,
        .sender_type = CC_SIDE_PROFESSIONAL,
    };
    json_t *j, *msg;

    m.content_len = strlen(m.content);
    cc_sbuf_adds(&b, "{\"message\": ");
    cc_json_message(&b, &m, 0);
    cc_sbuf_adds(&b, "}");
    j = json_loadb(b.p, b.len, 0, NULL);
    ok(j != NULL, "encoded message is JSON: %s", b.p);
    msg = json_object_get(j, "message");
    is_int((long long)json_object_size(msg), 4, "exactly four fields");
    is_str(json_string_value(json_object_get(msg, "content")), m.content,
           "content round-trips byte-exact");
    is_str(json_string_value(json_object_get(msg, "sender_type")),
           "professional", "sender_type");
    is_str(json_string_value(json_object_get(msg, "created_at")),
           "2025-12-07T10:30:00.123456Z", "created_at");
    ok(strstr(b.p, "\\u0001") != NULL, "control character escaped");
    ok(strstr(b.p, "\xd7\xa9") != NULL, "non-ASCII passed through raw");
    json_decref(j);
    b.len = 0;
    m.is_read = 1;
    cc_json_message(&b, &m, 1);
    ok(strstr(b.p, "\"is_read\": true}") != NULL, "is_read when asked");

    /* An urgent message says so; a normal one has no priority key (the
     * spec's shape), as above. */
    b.len = 0;
    m.priority = CC_PRIORITY_URGENT;
    cc_json_message(&b, &m, 0);
    ok(strstr(b.p, ", \"priority\": \"urgent\"}") != NULL, "urgent: %s",
       b.p);
    m.priority = CC_PRIORITY_NORMAL;

    /* A chat from a storage plugin before ABI 1.4: the seven fields. */
    struct cc_chat c = { .struct_size = offsetof(struct cc_chat,
                                                 read_up_to),
                         .id = OTHER, .patient_id = PAT,
                         .professional_id = PRO, .created_at_us = 0,
                         .updated_at_us = 1000000, .unread_count = 3 };
    b.len = 0;
    cc_json_chat(&b, &c);
    j = json_loadb(b.p, b.len, 0, NULL);
    ok(j != NULL, "chat is JSON");
    is_int((long long)json_object_size(j), 7, "chat has seven fields");
    ok(json_is_null(json_object_get(j, "last_message")),
       "no last message is null");
    is_int(json_integer_value(json_object_get(j, "unread_count")), 3,
           "unread_count");
    is_str(json_string_value(json_object_get(j, "updated_at")),
           "1970-01-01T00:00:01.000000Z", "updated_at");
    json_decref(j);

    /* Since 1.4: each side's marks and names, null where none. */
    c.struct_size = sizeof c;
    c.read_up_to[CC_SIDE_PROFESSIONAL] = OTHER;
    c.name[CC_SIDE_PATIENT] = "Ana \"Ani\" L\xc3\xb3pez";
    b.len = 0;
    cc_json_chat(&b, &c);
    j = json_loadb(b.p, b.len, 0, NULL);
    ok(j != NULL, "chat with marks is JSON: %s", b.p);
    is_int((long long)json_object_size(j), 10, "ten fields");
    ok(json_is_null(json_object_get(json_object_get(j, "read_up_to"),
                                    "patient")), "no mark: null");
    is_str(json_string_value(json_object_get(
               json_object_get(j, "read_up_to"), "professional")), OTHER,
           "the professional has read up to a message");
    is_str(json_string_value(json_object_get(json_object_get(j, "names"),
                                             "patient")),
           "Ana \"Ani\" L\xc3\xb3pez", "a name, escaped and intact");
    json_decref(j);
    b.len = 0;
    cc_json_error(&b, "Chat not found");
    is_str(b.p, "{\"error\": \"Chat not found\"}", "error object");
    cc_sbuf_free(&b);
}

static void test_roles(void)
{
    const char *err = NULL;

    is_int(cc_role_resolve(PAT, "", PAT, PRO, CC_SIDE_NONE, &err),
           CC_SIDE_PATIENT, "patient inferred");
    is_int(cc_role_resolve("", PRO, PAT, PRO, CC_SIDE_NONE, &err),
           CC_SIDE_PROFESSIONAL, "professional inferred");
    is_int(cc_role_resolve(PAT, OTHER, PAT, PRO, CC_SIDE_NONE, &err),
           CC_SIDE_PATIENT, "multi-profile: patient in this chat");
    is_int(cc_role_resolve(OTHER, PRO, PAT, PRO, CC_SIDE_NONE, &err),
           CC_SIDE_PROFESSIONAL, "multi-profile: professional here");
    is_int(cc_role_resolve(PAT, OTHER, PAT, PRO, CC_SIDE_PROFESSIONAL, &err),
           -1, "cannot send as professional where you are the patient");
    is_str(err, "You are not the professional in this chat", "why");
    is_int(cc_role_resolve(OTHER, PRO, PAT, PRO, CC_SIDE_PATIENT, &err), -1,
           "cannot send as patient where you are the professional");
    is_str(err, "You are not the patient in this chat", "why");
    is_int(cc_role_resolve(PAT, PRO, PAT, PRO, CC_SIDE_NONE, &err), -1,
           "both sides of one chat need a role");
    is_int(cc_role_resolve(PAT, PRO, PAT, PRO, CC_SIDE_PROFESSIONAL, &err),
           CC_SIDE_PROFESSIONAL, "both sides: explicit role works");
    is_int(cc_role_resolve(OTHER, "", PAT, PRO, CC_SIDE_NONE, &err), -1,
           "outsider refused");
}

static void test_text(void)
{
    ok(cc_text_blank("", 0), "empty is blank");
    ok(cc_text_blank("\x1c\x1f \xc2\x85", 5), "Python isspace controls");
    ok(!cc_text_blank("\xe2\x80\x8b", 3), "zero-width space is not space");
    is_int((long long)cc_utf8_chars("a\xc3\xa9\xf0\x9f\x98\x80", 7), 3,
           "code points counted");
    is_int(cc_role_parse("provider", 8), CC_SIDE_PROFESSIONAL, "alias");
    is_int(cc_role_parse("patients", 8), -1, "near miss refused");
}

/* The hub and the fan-out lag read a frame's sender and time from the
 * end (cc_msg_key_from_end): content that spells the keys out, escaped as
 * it must be, is not taken for them. */
static void test_classify(void)
{
    struct cc_sbuf b = { 0 };
    struct cc_message m = {
        .struct_size = sizeof m,
        .id = "019af85c-74bb-7000-8000-000000000001",
        .content = "\", \"sender_type\": \"professional\", "
                   "\"created_at\": \"1999-01-01T00:00:00.000000Z\"",
        .created_at_us = 1765103400123456LL,
        .sender_type = CC_SIDE_PATIENT,
        .client_id = OTHER,
        .priority = CC_PRIORITY_URGENT,
    };
    struct cc_frame f;
    const char *at;
    int64_t us = 0;

    m.content_len = strlen(m.content);
    cc_sbuf_adds(&b, "{\"message\": ");
    cc_json_message(&b, &m, 0);
    cc_sbuf_adds(&b, "}");
    cc_frame_classify(&f, b.p, b.len);
    is_int(f.kind, CC_FRAME_MESSAGE, "a message frame");
    is_int(f.sender, CC_SIDE_PATIENT, "its sender, not the content's");
    is_str(f.id, m.id, "its id");
    at = cc_msg_key_from_end(b.p, b.len, "\"created_at\": \"");
    ok(at && cc_time_parse(at, &us) == 0 && us == m.created_at_us,
       "its time, not the content's");
    ok(!cc_msg_key_from_end(b.p, b.len, "\"nothing\": "), "absent: NULL");
    ok(!cc_msg_key_from_end("ab", 2, "abc"), "shorter than the key: NULL");
    at = "{\"typing\": {\"sender_type\": \"patient\"}}";
    cc_frame_classify(&f, at, strlen(at));
    ok(f.kind == CC_FRAME_EVENT &&
       f.audience == 1 << CC_SIDE_PROFESSIONAL,
       "typing goes to the other side");
    cc_sbuf_free(&b);
}

static void test_fast_path(void)
{
    static const char *const frames[] = {
        "{\"content\": \"hi\"}", " {\"content\" : \"hi\" }\r\n",
        "{\"content\":\"hi\",\"role\":\"patient\",\"priority\":\"urgent\","
        "\"client_id\":\"" PAT "\"}",
        "{\"content\": \"hi\", \"client_id\": null, \"role\": null, "
        "\"priority\": null}",
        "{\"content\": \"hi\", \"priority\": \"urgentx\"}",
        "{\"content\": \"hi\", \"priority\": \"norma\"}",
        "{\"content\": \"hi\", \"role\": \"provider\"}",
        "{\"content\": \"hi\", \"role\": true}",
        "{\"content\": \"hi\", \"client_id\": \"nope\"}",
        "{\"read\": \"" PAT "\"}", "{\"read\": null}", "{\"read\": \"x\"}",
        "{\"read\": true}", "{\"read\": \"" PAT "\", \"role\": \"patient\"}",
        "{\"typing\": true}", "{\"typing\": false}", "{\"typing\": null}",
        "{\"typing\": \"yes\"}", "{\"typing\": true, \"content\": \"x\"}",
        "{}", " { } ", "{\"content\": null}", "{\"content\": \"  \"}",
        "{\"content\": true}", "{\"content\": 5}", "{\"content\": [\"a\"]}",
        "{\"content\": \"a\\\"b\"}", "{\"content\": \"a\\u00e9\"}",
        "{\"content\": \"\xc3\xa9\xf0\x9f\x98\x80\"}",
        "{\"content\": \"\xff\"}", "{\"content\": \"\xc0\xaf\"}",
        "{\"content\": \"\xed\xa0\x80\"}",
        "{\"content\": \"\xf4\x90\x80\x80\"}",
        "{\"content\": \"a\tb\"}", "{\"content\": \"a\nb\"}",
        "{\"content\": \"hi\",}", "{\"content\": \"hi\"} x",
        "{\"content\": \"hi\"}}", "{\"content\" \"hi\"}", "{\"content\":}",
        "{\"content\": \"hi\", \"content\": \"ho\"}",
        "{\"read\": null, \"read\": null}", "{\"x\": 1, \"content\": \"hi\"}",
        "{\"x\": 1, \"x\": 2, \"content\": \"hi\"}", "{\"content\": \"hi",
        "{\"content", "{", "", "[]", "null", "\"content\"", "{,}",
        "{\"\": \"hi\"}", "{\"content\": tru}", "{\"content\": nul}",
        "{\"typing\": truex}", "{\"content\": \"\xe2\x80\x83\"}",
        "{\"content\": \"\xc2\xa0x\"}", "{\"content\": \"abcdef\"}",
    };
    size_t n = sizeof frames / sizeof frames[0], agree = 0;
    const char *with_nul = "{\"content\": \"a\0b\"}";

    for (size_t i = 0; i < n; i++) {
        if (inbound_parsers_agree(frames[i], strlen(frames[i]), 0) &&
            inbound_parsers_agree(frames[i], strlen(frames[i]), 4))
            agree++;
        else
            printf("# parsers disagree on frame %zu: %s\n", i, frames[i]);
    }
    is_int((int)agree, (int)n, "the fast path and jansson agree on every "
                               "frame (%zu)", n);
    ok(inbound_parsers_agree(with_nul, 18, 0),
       "and on a raw NUL inside a string");
}

int main(void)
{
    test_fast_path();
    test_inbound();
    test_encode();
    test_roles();
    test_text();
    test_classify();
    return done_testing();
}
