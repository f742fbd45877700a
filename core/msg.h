/*
 * msg.h - the protocol's JSON: parsing what clients send (a chat message,
 * REST bodies go through jansson directly) and writing what the server
 * sends (messages, chats, errors) with exactly the spec's field names.
 *
 * Output goes into a growable byte buffer (struct cc_sbuf) owned by the
 * caller.  Pure functions; any thread.
 */
#ifndef CC_MSG_H
#define CC_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <carechat/storage.h>

#include "uuid.h"

/* A growable byte buffer; zero-initialise, free with cc_sbuf_free. */
struct cc_sbuf {
    char *p;
    size_t len, cap;
};

void cc_sbuf_add(struct cc_sbuf *b, const void *data, size_t n);
void cc_sbuf_adds(struct cc_sbuf *b, const char *s);
void cc_sbuf_printf(struct cc_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cc_sbuf_free(struct cc_sbuf *b);

/* Append s[0..n) as a JSON string literal (quotes included).  s must be
 * valid UTF-8; it is copied through except for the characters JSON
 * requires escaped. */
void cc_json_str(struct cc_sbuf *b, const char *s, size_t n);

/* Where the value of key (say "\"sender_type\": \"") starts in a frame
 * that cc_json_message() wrote, or NULL.  Searched from the end: the
 * keys after "content" are short, so a long content is not read (every
 * delivered frame is classified and timed this way).  A key cannot
 * match inside content, whose quotes are escaped. */
const char *cc_msg_key_from_end(const char *payload, size_t len,
                                const char *key);

/* Append a message object {"id","content","sender_type","created_at"}
 * (then "client_id" when the message has one, and "is_read" when
 * with_is_read). */
void cc_json_message(struct cc_sbuf *b, const struct cc_message *m,
                     int with_is_read);

/* Append a chat object {"id","patient","professional","last_message",
 * "unread_count","created_at","updated_at"}. */
void cc_json_chat(struct cc_sbuf *b, const struct cc_chat *c);

/* Append {"error": msg}. */
void cc_json_error(struct cc_sbuf *b, const char *msg);

/* "patient" / "professional" for a CC_SIDE_*. */
const char *cc_side_name(int side);

/* What a client's frame (or REST body) asks for. */
#define CC_IN_MESSAGE 0   /* {"content": ...}: a chat message */
#define CC_IN_READ 1      /* {"read": "<message id>"}: a read mark;
                             "read": null: up to the newest */
#define CC_IN_TYPING 2    /* {"typing": true}: ephemeral */

struct cc_inbound {
    int kind;             /* CC_IN_* */
    const char *content;  /* NUL-terminated, owned: cc_inbound_free() */
    size_t content_len;
    int role;             /* CC_SIDE_NONE when not given */
    char client_id[CC_UUID_LEN + 1]; /* canonical, or "" when not given */
    int priority;         /* CC_PRIORITY_* (normal when not given) */
    char read_id[CC_UUID_LEN + 1];   /* CC_IN_READ: canonical, or ""
                                        for the newest */
    int typing;           /* CC_IN_TYPING: 1 for true, 0 for false */
    char *owned;          /* content's memory */
};

/* The spec's error strings, exact. */
#define CC_ERR_EMPTY "Message content cannot be empty"
#define CC_ERR_NOT_FOUND "Chat not found"
#define CC_ERR_JSON "Invalid JSON"
/* Not the spec's: what carechat adds. */
#define CC_ERR_CLIENT_ID "client_id must be a UUID"
#define CC_ERR_SINCE_BAD "since must be a message id (a UUID)"
#define CC_ERR_SINCE "since: no such message in this chat"
#define CC_ERR_SINCE_OLD "since is not supported by this server's storage " \
                         "plugin"
#define CC_ERR_PRIORITY "Invalid priority: use normal or urgent"
#define CC_ERR_READ "read must be a message id (a UUID)"
#define CC_ERR_TYPING "typing must be true or false"

/* Parse a client's text frame.  A message: {"content": str, "role"?:
 * str, "client_id"?: uuid, "priority"?: "normal" | "urgent"}; without
 * "content", a read mark {"read": uuid, "role"?: str} or typing
 * {"typing": bool}.  Returns 0, or -1 with *error set to a static
 * client-facing message: CC_ERR_JSON (not JSON, not an object, duplicate
 * keys), CC_ERR_EMPTY (content missing, empty or only whitespace, and no
 * "read" or "typing"), "Message content must be a string", "Invalid
 * role: use patient, professional or provider", CC_ERR_CLIENT_ID
 * (client_id neither null nor a UUID string), CC_ERR_PRIORITY, CC_ERR_READ
 * (read not a UUID string), CC_ERR_TYPING (typing not a boolean),
 * "Message content too long (max N characters)" (N = max_chars, counted
 * in Unicode code points; 0 means no limit).  err_buf holds the last. */
int cc_inbound_parse(const char *text, size_t len, size_t max_chars,
                     struct cc_inbound *out, const char **error,
                     char *err_buf, size_t err_size);
/* The same; fast 0 parses every frame with jansson, as the fast path
 * (plain flat frames, msg.c) must agree with it: for the tests and the
 * fuzz target. */
int cc_inbound_parse_with(const char *text, size_t len, size_t max_chars,
                          struct cc_inbound *out, const char **error,
                          char *err_buf, size_t err_size, int fast);
void cc_inbound_free(struct cc_inbound *in);

/* 1 when s[0..n) is empty or only whitespace (Python str.isspace()
 * semantics: ASCII and Unicode spaces). */
int cc_text_blank(const char *s, size_t n);

/* Number of Unicode code points in valid UTF-8 s[0..n). */
size_t cc_utf8_chars(const char *s, size_t n);

/* Parse a role string: "patient", "professional" or "provider".
 * Returns CC_SIDE_* or -1. */
int cc_role_parse(const char *s, size_t n);



/* The side a principal with profiles (my_patient, my_professional; "" when
 * absent) speaks as in the chat between chat_patient and
 * chat_professional, honouring an explicit requested side (CC_SIDE_NONE
 * for none).  Returns CC_SIDE_PATIENT or CC_SIDE_PROFESSIONAL, or -1 with
 * a client-facing *error: the requested role is not the caller's in this
 * chat, the caller holds both sides and gave no role, or neither. */
int cc_role_resolve(const char *my_patient, const char *my_professional,
                    const char *chat_patient, const char *chat_professional,
                    int requested, const char **error);

#endif
