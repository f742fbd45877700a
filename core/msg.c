/*
 * msg.c - protocol JSON in and out (see msg.h).
 *
 * Output is written by hand rather than through jansson: every broadcast
 * message is encoded here once, and a direct writer is both faster and
 * byte-for-byte predictable.
 */
#include "msg.h"
#include "timefmt.h"
#include "utf8.h"
#include "xalloc.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sbuf_reserve(struct cc_sbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p)
        abort();
    b->cap = cap;
}

void cc_sbuf_add(struct cc_sbuf *b, const void *data, size_t n)
{
    sbuf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void cc_sbuf_adds(struct cc_sbuf *b, const char *s)
{
    cc_sbuf_add(b, s, strlen(s));
}

void cc_sbuf_printf(struct cc_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cc_sbuf_free(struct cc_sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void cc_json_str(struct cc_sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, run;

    sbuf_reserve(b, n + 2);
    b->p[b->len++] = '"';
    while (i < n) {
        for (run = i; run < n; run++) {
            unsigned char c = (unsigned char)s[run];
            if (c < 0x20 || c == '"' || c == '\\')
                break;
        }
        if (run > i)
            cc_sbuf_add(b, s + i, run - i);
        if (run >= n)
            break;
        unsigned char c = (unsigned char)s[run];
        char esc[6] = { '\\', 0 };
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        cc_sbuf_add(b, esc, elen);
        i = run + 1;
    }
    cc_sbuf_add(b, "\"", 1);
}

const char *cc_side_name(int side)
{
    return side == CC_SIDE_PATIENT ? "patient" : "professional";
}

static void json_time(struct cc_sbuf *b, int64_t us)
{
    char t[CC_TIME_LEN + 1];

    cc_time_format(us, t);
    cc_sbuf_add(b, "\"", 1);
    cc_sbuf_add(b, t, CC_TIME_LEN);
    cc_sbuf_add(b, "\"", 1);
}

static void json_id(struct cc_sbuf *b, const char *id)
{
    if (!id) {
        cc_sbuf_adds(b, "null");
        return;
    }
    cc_json_str(b, id, strlen(id));
}

const char *cc_msg_key_from_end(const char *payload, size_t len,
                                const char *key)
{
    size_t k = strlen(key);

    for (size_t at = len >= k ? len - k + 1 : 0; at-- > 0;)
        if (payload[at] == key[0] && memcmp(payload + at, key, k) == 0)
            return payload + at + k;
    return NULL;
}

void cc_json_message(struct cc_sbuf *b, const struct cc_message *m,
                     int with_is_read)
{
    cc_sbuf_adds(b, "{\"id\": ");
    json_id(b, m->id);
    cc_sbuf_adds(b, ", \"content\": ");
    cc_json_str(b, m->content, m->content_len);
    cc_sbuf_adds(b, ", \"sender_type\": \"");
    cc_sbuf_adds(b, cc_side_name(m->sender_type));
    cc_sbuf_adds(b, "\", \"created_at\": ");
    json_time(b, m->created_at_us);
    if (CC_HAS_MEMBER(m, struct cc_message, client_id) && m->client_id) {
        cc_sbuf_adds(b, ", \"client_id\": ");
        json_id(b, m->client_id);
    }
    /* Normal messages keep the spec's shape: no key at all. */
    if (CC_HAS_MEMBER(m, struct cc_message, priority) &&
        m->priority == CC_PRIORITY_URGENT)
        cc_sbuf_adds(b, ", \"priority\": \"urgent\"");
    if (with_is_read)
        cc_sbuf_adds(b, m->is_read ? ", \"is_read\": true"
                                   : ", \"is_read\": false");
    cc_sbuf_adds(b, "}");
}

/* ", \"key\": {\"patient\": v, \"professional\": v}" from a by-side
 * array; ids (as ids) or strings; null where NULL. */
static void json_sides(struct cc_sbuf *b, const char *key,
                       const char *const v[3], int ids)
{
    cc_sbuf_printf(b, ", \"%s\": {", key);
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        const char *s = v[side];
        cc_sbuf_printf(b, "%s\"%s\": ", side == CC_SIDE_PATIENT ? "" : ", ",
                       cc_side_name(side));
        if (!s)
            cc_sbuf_adds(b, "null");
        else if (ids)
            json_id(b, s);
        else
            cc_json_str(b, s, strlen(s));
    }
    cc_sbuf_adds(b, "}");
}

void cc_json_chat(struct cc_sbuf *b, const struct cc_chat *c)
{
    cc_sbuf_adds(b, "{\"id\": ");
    json_id(b, c->id);
    cc_sbuf_adds(b, ", \"patient\": ");
    json_id(b, c->patient_id);
    cc_sbuf_adds(b, ", \"professional\": ");
    json_id(b, c->professional_id);
    cc_sbuf_adds(b, ", \"last_message\": ");
    if (c->last_message)
        cc_json_message(b, c->last_message, 1);
    else
        cc_sbuf_adds(b, "null");
    cc_sbuf_printf(b, ", \"unread_count\": %lld",
                   (long long)c->unread_count);
    cc_sbuf_adds(b, ", \"created_at\": ");
    json_time(b, c->created_at_us);
    cc_sbuf_adds(b, ", \"updated_at\": ");
    json_time(b, c->updated_at_us);
    if (CC_HAS_MEMBER(c, struct cc_chat, name)) {
        json_sides(b, "read_up_to", c->read_up_to, 1);
        json_sides(b, "delivered_up_to", c->delivered_up_to, 1);
        json_sides(b, "names", c->name, 0);
    }
    cc_sbuf_adds(b, "}");
}

void cc_json_error(struct cc_sbuf *b, const char *msg)
{
    cc_sbuf_adds(b, "{\"error\": ");
    cc_json_str(b, msg, strlen(msg));
    cc_sbuf_adds(b, "}");
}

/* Decode one UTF-8 code point at s[*i] (input already valid). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    uint32_t c = s[(*i)++];
    int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;

    if (more)
        c &= 0x3fu >> more;
    while (more-- > 0 && *i < n)
        c = (c << 6) | (s[(*i)++] & 0x3fu);
    return c;
}

/* Python's str.isspace() set. */
static int is_space_cp(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) ||
           c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

int cc_text_blank(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n)
        if (!is_space_cp(utf8_next((const unsigned char *)s, n, &i)))
            return 0;
    return 1;
}

size_t cc_utf8_chars(const char *s, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            count++;
    return count;
}

int cc_role_parse(const char *s, size_t n)
{
    if (n == 7 && memcmp(s, "patient", 7) == 0)
        return CC_SIDE_PATIENT;
    if ((n == 12 && memcmp(s, "professional", 12) == 0) ||
        (n == 8 && memcmp(s, "provider", 8) == 0))
        return CC_SIDE_PROFESSIONAL;
    return -1;
}

/* A field of an inbound frame as both parsers see it: absent, a string
 * (s[0..n), unescaped), null, true, false, or anything else. */
enum { JV_ABSENT, JV_STRING, JV_NULL, JV_TRUE, JV_FALSE, JV_OTHER };
struct jv {
    int t;
    const char *s;
    size_t n;
};

/* The fields the protocol knows: f[F_*], named in field_names. */
enum { F_CONTENT, F_ROLE, F_CLIENT_ID, F_PRIORITY, F_READ, F_TYPING,
       N_FIELDS };
struct fields {
    struct jv f[N_FIELDS];
};
static const struct {
    const char *name;
    size_t len;
} field_names[N_FIELDS] = {
    [F_CONTENT] = { "content", 7 }, [F_ROLE] = { "role", 4 },
    [F_CLIENT_ID] = { "client_id", 9 }, [F_PRIORITY] = { "priority", 8 },
    [F_READ] = { "read", 4 }, [F_TYPING] = { "typing", 6 },
};

/* ------------------------------------------------- the flat fast path */

/* Most frames are one flat object of short strings ({"content": "..."},
 * {"read": "<id>"}); building and freeing jansson's tree for them was a
 * fifth of the loop's time in a flood with receipts (doc/benchmarks.md).
 * flat_parse takes exactly the frames whose meaning is plain: an object
 * of the known keys, each once, whose values are true, false, null or a
 * string without escapes or control characters, in valid UTF-8.  Any
 * other text (escapes, numbers, nesting, unknown or repeated keys,
 * invalid JSON) returns 0 and jansson decides, so what is accepted and
 * refused is jansson's; fuzz_msg.c checks the two agree. */
static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* At a '"': the string's end, v its bytes; NULL when not plain. */
static const char *flat_string(const char *p, const char *e, struct jv *v)
{
    const char *s = p + 1, *q = memchr(s, '"', (size_t)(e - s));

    if (!q)
        return NULL;
    for (const char *c = s; c < q; c++)
        if ((unsigned char)*c < 0x20 || *c == '\\')
            return NULL;
    if (!cc_utf8_valid(s, (size_t)(q - s)))
        return NULL;
    v->t = JV_STRING;
    v->s = s;
    v->n = (size_t)(q - s);
    return q + 1;
}

static const char *flat_value(const char *p, const char *e, struct jv *v)
{
    static const struct { const char *w; size_t n; int t; } lit[] = {
        { "true", 4, JV_TRUE }, { "false", 5, JV_FALSE },
        { "null", 4, JV_NULL },
    };

    if (p < e && *p == '"')
        return flat_string(p, e, v);
    for (size_t i = 0; i < sizeof lit / sizeof lit[0]; i++)
        if ((size_t)(e - p) >= lit[i].n &&
            memcmp(p, lit[i].w, lit[i].n) == 0) {
            v->t = lit[i].t;
            return p + lit[i].n;
        }
    return NULL;
}

/* 1 with f filled when text is a plain frame, 0 for jansson. */
static int flat_parse(const char *text, size_t len, struct fields *f)
{
    const char *p = text, *e = text + len;
    struct jv key, *v;
    size_t i;

    memset(f, 0, sizeof *f);
    p = skip_ws(p, e);
    if (p == e || *p++ != '{')
        return 0;
    p = skip_ws(p, e);
    if (p < e && *p == '}')
        return skip_ws(p + 1, e) == e;
    for (;;) {
        if (p == e || *p != '"' || !(p = flat_string(p, e, &key)))
            return 0;
        for (i = 0; i < N_FIELDS; i++)
            if (field_names[i].len == key.n &&
                memcmp(field_names[i].name, key.s, key.n) == 0)
                break;
        if (i == N_FIELDS || (v = &f->f[i])->t != JV_ABSENT)
            return 0;
        p = skip_ws(p, e);
        if (p == e || *p++ != ':')
            return 0;
        if (!(p = flat_value(skip_ws(p, e), e, v)))
            return 0;
        p = skip_ws(p, e);
        if (p < e && *p == '}')
            return skip_ws(p + 1, e) == e;
        if (p == e || *p++ != ',')
            return 0;
        p = skip_ws(p, e);
    }
}

/* ------------------------------------------------------------ jansson */

static void from_json(json_t *root, struct fields *f)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        json_t *j = json_object_get(root, field_names[i].name);
        struct jv *v = &f->f[i];

        v->t = !j ? JV_ABSENT : json_is_string(j) ? JV_STRING
             : json_is_null(j) ? JV_NULL : json_is_true(j) ? JV_TRUE
             : json_is_false(j) ? JV_FALSE : JV_OTHER;
        v->s = v->t == JV_STRING ? json_string_value(j) : NULL;
        v->n = v->t == JV_STRING ? json_string_length(j) : 0;
    }
}

/* ------------------------------------------------------------- checks */

/* A read mark or typing (no "content"): 0, 1 when it is neither, or -1
 * with *error. */
static int parse_action(const struct fields *f, struct cc_inbound *out,
                        const char **error)
{
    const struct jv *read = &f->f[F_READ], *typing = &f->f[F_TYPING];

    if (read->t != JV_ABSENT) {
        out->kind = CC_IN_READ;
        if (read->t == JV_NULL)
            return 0; /* up to the newest: read_id "" */
        if (read->t != JV_STRING ||
            cc_uuid_canon(read->s, read->n, out->read_id) < 0) {
            *error = CC_ERR_READ;
            return -1;
        }
        return 0;
    }
    if (typing->t != JV_ABSENT) {
        out->kind = CC_IN_TYPING;
        if (typing->t != JV_TRUE && typing->t != JV_FALSE) {
            *error = CC_ERR_TYPING;
            return -1;
        }
        out->typing = typing->t == JV_TRUE;
        return 0;
    }
    return 1;
}

/* "role": absent, null or a role name: 0, or -1 with *error. */
static int parse_role(const struct jv *role, struct cc_inbound *out,
                      const char **error)
{
    int r;

    out->role = CC_SIDE_NONE;
    if (role->t == JV_ABSENT || role->t == JV_NULL)
        return 0;
    r = role->t == JV_STRING ? cc_role_parse(role->s, role->n) : -1;
    if (r < 0) {
        *error = "Invalid role: use patient, professional or provider";
        return -1;
    }
    out->role = r;
    return 0;
}

/* "priority": absent, null, "normal" or "urgent": 0, or -1. */
static int parse_priority(const struct jv *v, int *out)
{
    *out = CC_PRIORITY_NORMAL;
    if (v->t == JV_ABSENT || v->t == JV_NULL)
        return 0;
    if (v->t != JV_STRING)
        return -1;
    if (v->n == 6 && memcmp(v->s, "urgent", 6) == 0)
        *out = CC_PRIORITY_URGENT;
    else if (v->n != 6 || memcmp(v->s, "normal", 6) != 0)
        return -1;
    return 0;
}

/* The checks of a frame's fields; out->content points into f's text. */
static int inbound_fields(const struct fields *f, size_t max_chars,
                          struct cc_inbound *out, const char **error,
                          char *err_buf, size_t err_size)
{
    const struct jv *content = &f->f[F_CONTENT], *cid = &f->f[F_CLIENT_ID];
    const struct jv *role = &f->f[F_ROLE];
    int rc;

    if (content->t == JV_ABSENT && (rc = parse_action(f, out, error)) <= 0)
        return rc < 0 ? -1 : parse_role(role, out, error);
    if (content->t != JV_ABSENT && content->t != JV_STRING &&
        content->t != JV_NULL) {
        *error = "Message content must be a string";
        return -1;
    }
    if (content->t != JV_STRING || cc_text_blank(content->s, content->n)) {
        *error = CC_ERR_EMPTY;
        return -1;
    }
    out->content = content->s;
    out->content_len = content->n;
    if (parse_role(role, out, error) < 0)
        return -1;
    if (cid->t != JV_ABSENT && cid->t != JV_NULL &&
        (cid->t != JV_STRING ||
         cc_uuid_canon(cid->s, cid->n, out->client_id) < 0)) {
        *error = CC_ERR_CLIENT_ID;
        return -1;
    }
    if (parse_priority(&f->f[F_PRIORITY], &out->priority) < 0) {
        *error = CC_ERR_PRIORITY;
        return -1;
    }
    /* Last: the one check that reads the whole content. */
    if (max_chars && cc_utf8_chars(out->content, out->content_len) >
                         max_chars) {
        snprintf(err_buf, err_size,
                 "Message content too long (max %zu characters)", max_chars);
        *error = err_buf;
        return -1;
    }
    return 0;
}

int cc_inbound_parse_with(const char *text, size_t len, size_t max_chars,
                          struct cc_inbound *out, const char **error,
                          char *err_buf, size_t err_size, int fast)
{
    json_error_t jerr;
    json_t *root = NULL;
    struct fields f;
    int rc;

    memset(out, 0, sizeof *out);
    if (!fast || !flat_parse(text, len, &f)) {
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root || !json_is_object(root)) {
            json_decref(root);
            *error = CC_ERR_JSON;
            return -1;
        }
        from_json(root, &f);
    }
    rc = inbound_fields(&f, max_chars, out, error, err_buf, err_size);
    /* The content is copied and the tree freed now, while it is in the
     * cache: a message's job lives until storage answers, and freeing a
     * cold tree then cost the loop more than the copy (issue 26). */
    if (rc == 0 && out->content) {
        out->owned = cc_xmalloc(out->content_len + 1);
        memcpy(out->owned, out->content, out->content_len);
        out->owned[out->content_len] = '\0';
        out->content = out->owned;
    }
    json_decref(root);
    if (rc < 0)
        cc_inbound_free(out);
    return rc;
}

int cc_inbound_parse(const char *text, size_t len, size_t max_chars,
                     struct cc_inbound *out, const char **error,
                     char *err_buf, size_t err_size)
{
    return cc_inbound_parse_with(text, len, max_chars, out, error, err_buf,
                                 err_size, 1);
}

void cc_inbound_free(struct cc_inbound *in)
{
    free(in->owned);
    memset(in, 0, sizeof *in);
}

int cc_role_resolve(const char *my_patient, const char *my_professional,
                    const char *chat_patient, const char *chat_professional,
                    int requested, const char **error)
{
    int is_pat = my_patient && my_patient[0] &&
                 strcmp(my_patient, chat_patient) == 0;
    int is_pro = my_professional && my_professional[0] &&
                 strcmp(my_professional, chat_professional) == 0;

    if (requested == CC_SIDE_PATIENT) {
        if (is_pat)
            return CC_SIDE_PATIENT;
        *error = "You are not the patient in this chat";
        return -1;
    }
    if (requested == CC_SIDE_PROFESSIONAL) {
        if (is_pro)
            return CC_SIDE_PROFESSIONAL;
        *error = "You are not the professional in this chat";
        return -1;
    }
    if (is_pat && is_pro) {
        *error = "Role required: you are both the patient and the "
                 "professional in this chat";
        return -1;
    }
    if (is_pat)
        return CC_SIDE_PATIENT;
    if (is_pro)
        return CC_SIDE_PROFESSIONAL;
    *error = "You are not a participant in this chat";
    return -1;
}
