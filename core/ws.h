/*
 * ws.h - RFC 6455 framing, and only that: frame header parsing, message
 * assembly across fragments with interleaved control frames, UTF-8 and
 * close-code validation, server frame encoding, the handshake accept key.
 *
 * Pure functions over caller-owned buffers: no I/O, no libevent; the
 * connection code (session.c) moves bytes.  The reader owns its
 * reassembly buffer and frees it in cc_ws_reader_free().
 */
#ifndef CC_WS_H
#define CC_WS_H

#include <stddef.h>
#include <stdint.h>

#define CC_WS_OP_CONT 0x0
#define CC_WS_OP_TEXT 0x1
#define CC_WS_OP_BINARY 0x2
#define CC_WS_OP_CLOSE 0x8
#define CC_WS_OP_PING 0x9
#define CC_WS_OP_PONG 0xA

/* Close codes (RFC 6455 section 7.4.1). */
#define CC_WS_CLOSE_NORMAL 1000
#define CC_WS_CLOSE_GOING_AWAY 1001
#define CC_WS_CLOSE_PROTOCOL 1002
#define CC_WS_CLOSE_UNSUPPORTED 1003
#define CC_WS_CLOSE_NO_STATUS 1005   /* never sent: "no code received" */
#define CC_WS_CLOSE_INVALID_DATA 1007
#define CC_WS_CLOSE_POLICY 1008
#define CC_WS_CLOSE_TOO_BIG 1009
#define CC_WS_CLOSE_INTERNAL 1011
#define CC_WS_CLOSE_TRY_AGAIN 1013

/* The longest frame header: 2 + 8 (length) + 4 (mask). */
#define CC_WS_MAX_HEADER 14

struct cc_ws_frame {
    int fin;                 /* 1 when this is the final fragment */
    int opcode;              /* CC_WS_OP_* */
    int masked;              /* 1 when a mask key follows */
    unsigned char mask[4];
    uint64_t payload_len;
    size_t header_len;       /* bytes before the payload */
};

/* Parse the frame header at buf[0..len).  Returns the header length (> 0)
 * and fills *f; 0 when more bytes are needed; or minus a close code when
 * the header alone is a protocol fault:
 *   -1002  RSV bit set (no extension negotiated), unknown opcode, control
 *          frame fragmented or longer than 125, unmasked client frame
 *          (when require_mask), 64-bit length with the top bit set, or a
 *          length not in its shortest form;
 *   -1009  payload_len > max_payload. */
int cc_ws_parse_header(const unsigned char *buf, size_t len, int require_mask,
                       uint64_t max_payload, struct cc_ws_frame *f);

/* XOR n bytes of p with the mask, starting at payload offset off. */
void cc_ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4],
                  uint64_t off);

/* What the reader hands up; all pointers borrowed for the call. */
struct cc_ws_handler {
    void (*on_text)(void *arg, const char *data, size_t len);
    void (*on_ping)(void *arg, const unsigned char *data, size_t len);
    void (*on_pong)(void *arg, const unsigned char *data, size_t len);
    /* code is CC_WS_CLOSE_NO_STATUS when the frame had no payload. */
    void (*on_close)(void *arg, int code, const char *reason, size_t len);
};

struct cc_ws_reader {
    uint64_t max_message;    /* longest reassembled message (1009 above) */
    int in_message;          /* a fragmented message is being assembled */
    int msg_opcode;          /* opcode of the message being assembled */
    uint32_t utf8_state;     /* cc_utf8_feed state over the message */
    unsigned char *buf;      /* reassembly buffer (owned) */
    size_t len, cap;
};

void cc_ws_reader_init(struct cc_ws_reader *r, uint64_t max_message);
void cc_ws_reader_free(struct cc_ws_reader *r);

/* Process one complete frame whose header is f and whose payload (still
 * masked if f->masked) is payload[0..f->payload_len); the payload is
 * unmasked in place.  Calls at most one handler callback.  Returns 0, or
 * the close code the connection must now be closed with:
 *   1002 continuation without a message, data frame inside a message,
 *        close payload of 1 byte or with a code not allowed on the wire;
 *   1003 binary message (carechat speaks JSON text only);
 *   1007 text or close reason that is not UTF-8 (checked per fragment,
 *        so a bad byte fails before the message ends);
 *   1009 message over max_message. */
int cc_ws_reader_frame(struct cc_ws_reader *r, const struct cc_ws_frame *f,
                       unsigned char *payload, const struct cc_ws_handler *h,
                       void *arg);

/* 1 when code may appear in a close frame on the wire. */
int cc_ws_close_code_valid(int code);

/* Write a server (unmasked, FIN) frame header for opcode and len into out;
 * returns its length (2, 4 or 10). */
size_t cc_ws_header_encode(unsigned char out[10], int opcode, uint64_t len);

/* Build a close payload: 2-byte code then reason, truncated at a UTF-8
 * boundary to fit 125 bytes.  Returns its length. */
size_t cc_ws_close_payload(unsigned char out[125], int code,
                           const char *reason);

/* The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key:
 * base64(SHA-1(key + GUID)), 28 characters and a NUL into out.  Returns 0,
 * or -1 when key is not the base64 encoding of 16 bytes. */
int cc_ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
