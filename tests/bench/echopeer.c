/*
 * echopeer - the harness floor: a peer that speaks just enough of the
 * carechat protocol for carechat-bench, and does nothing else.
 *
 *   echopeer PORT        (127.0.0.1; runs until killed)
 *
 * REST: any POST is answered 201 with a new chat id (profiles and chats
 * alike, no check of anything).  GET /ws/chat/ID/ with an Upgrade is
 * answered 101 (no Sec-WebSocket-Accept: the bench does not check it).
 * A text frame {...} from a member of chat ID goes back, unmasked, as
 * {"message": {...}} to every member of ID, the sender included: what
 * carechatd does, minus authentication, storage and everything else.
 * carechat-bench against it measures what the bench and the kernel's
 * loopback cost (doc/benchmarks.md, "The harness floor").  One thread,
 * epoll, blocking writes: a client that does not read stalls it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define BUF 65536

struct peer {
    unsigned char in[BUF];
    size_t n;
    int ws;                  /* upgraded: frames follow */
    int chat;                /* the chat of a WebSocket, -1 none */
    int next;                /* next member of the same chat, -1 last */
};

static struct peer *peers[MAXFD];
static int *heads;           /* first member of each chat, -1 none */
static int n_chats, max_chats = 1 << 16;

static void drop(int ep, int fd)
{
    struct peer *p = peers[fd];

    if (p->chat >= 0) {      /* unlink from its chat's members */
        for (int *q = &heads[p->chat]; *q >= 0; q = &peers[*q]->next)
            if (*q == fd) {
                *q = p->next;
                break;
            }
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(p);
    peers[fd] = NULL;
}

/* A whole HTTP request in p->in: answer it; 0 to keep the socket. */
static int http(int fd, struct peer *p, size_t hlen)
{
    char out[256], id_json[128];
    const char *cl = memmem(p->in, hlen, "Content-Length: ", 16);
    size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
    int n;

    if (!strncmp((char *)p->in, "POST ", 5)) {
        if (p->n < hlen + body)
            return 0;        /* the body is still coming */
        n = snprintf(id_json, sizeof id_json, "{\"id\": \"00000000-0000-"
                     "4000-8000-%012d\"}", n_chats < max_chats ? n_chats++
                                                          : 0);
        n = snprintf(out, sizeof out, "HTTP/1.1 201 Created\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     n, id_json);
        if (write(fd, out, (size_t)n) != n)
            perror("echopeer: write");
        return -1;           /* answered: close (Connection: close) */
    }
    const char *id = memmem(p->in, hlen, "/ws/chat/", 9);
    if (!id || strncmp((char *)p->in, "GET ", 4))
        return -1;
    p->chat = atoi(id + 9 + 24) % max_chats;
    p->next = heads[p->chat];
    heads[p->chat] = fd;
    p->ws = 1;
    memmove(p->in, p->in + hlen, p->n - hlen);
    p->n -= hlen;
    n = snprintf(out, sizeof out, "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    return write(fd, out, (size_t)n) == n ? 0 : -1;
}

/* Complete frames in p->in: each text one to its chat; -1 to close. */
static int frames(struct peer *p)
{
    static unsigned char out[BUF + 32];
    size_t off = 0;

    while (p->n - off >= 6) {
        unsigned char *f = p->in + off, *m;
        size_t len = f[1] & 0x7f, hl = 2, o;

        if (len == 126) {
            len = (size_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (len == 127) {
            return -1;       /* nothing the bench sends */
        }
        if (p->n - off < hl + 4 + len)
            break;
        m = f + hl;
        if ((f[0] & 0x0f) == 0x8)
            return -1;
        if ((f[0] & 0x0f) == 0x1 && len + 13 < BUF) {
            size_t body = len + 13;     /* {"message": ...} */
            o = 0;
            out[o++] = 0x81;
            if (body < 126) {
                out[o++] = (unsigned char)body;
            } else {
                out[o++] = 126;
                out[o++] = (unsigned char)(body >> 8);
                out[o++] = (unsigned char)body;
            }
            memcpy(out + o, "{\"message\": ", 12);
            for (size_t i = 0; i < len; i++)
                out[o + 12 + i] = m[4 + i] ^ m[i & 3];
            out[o + 12 + len] = '}';
            o += body;
            for (int fd = heads[p->chat]; fd >= 0; fd = peers[fd]->next)
                if (write(fd, out, o) != (ssize_t)o)
                    return -1;
        }
        off += hl + 4 + len;
    }
    memmove(p->in, p->in + off, p->n - off);
    p->n -= off;
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int ls = socket(AF_INET, SOCK_STREAM, 0), ep = epoll_create1(0), one = 1;
    struct epoll_event ev = { .events = EPOLLIN };

    if (argc != 2)
        return 2;
    heads = malloc(sizeof *heads * (size_t)max_chats);
    memset(heads, 0xff, sizeof *heads * (size_t)max_chats);
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(ls, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 4096)) {
        perror("echopeer");
        return 1;
    }
    ev.data.fd = ls;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, -1);

        for (int e = 0; e < k; e++) {
            int fd = evs[e].data.fd;
            struct peer *p;
            ssize_t r;

            if (fd == ls) {
                int c = accept(ls, NULL, NULL);
                if (c < 0 || c >= MAXFD ||
                    !(peers[c] = calloc(1, sizeof *peers[c]))) {
                    if (c >= 0)
                        close(c);
                    continue;
                }
                peers[c]->chat = peers[c]->next = -1;
                ev.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                continue;
            }
            if (!(p = peers[fd]))
                continue;
            r = read(fd, p->in + p->n, BUF - p->n);
            if (r <= 0) {
                drop(ep, fd);
                continue;
            }
            p->n += (size_t)r;
            if (!p->ws) {
                unsigned char *end = memmem(p->in, p->n, "\r\n\r\n", 4);
                if (!end && p->n < BUF)
                    continue;
                if (!end || http(fd, p, (size_t)(end + 4 - p->in)) < 0) {
                    drop(ep, fd);
                    continue;
                }
            }
            if (p->ws && frames(p) < 0)
                drop(ep, fd);
        }
    }
}
