/*
 * minclient - the smallest honest latency client for carechatd, kept to
 * check carechat-bench against (doc/benchmarks.md, test_bench.py).
 *
 *   minclient PORT TOKENS_FILE RATE SECONDS
 *
 * TOKENS_FILE has one line per chat, "chat_id patient_tok pro_tok" (the
 * format of carechat-bench --tokens-file).  Opens both parties of every
 * chat (blocking sockets, TCP_NODELAY), then sends RATE messages/s in
 * all, round robin over the sockets, paced by a timerfd; a message's
 * time is taken right before its write().  Every socket is read as soon
 * as epoll says so; latency is that read's time minus the stamp.  Prints
 * one JSON line.  Not a load generator: no windows, no libevent.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAXC 4096

static int fds[MAXC];
static unsigned char buf[MAXC][8192];
static size_t have[MAXC];

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* A WebSocket to chat id as tok, upgraded, or exit. */
static int ws_open(int port, const char *id, const char *tok)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char req[4096], resp[4096];
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, n;
    size_t got = 0;

    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        exit(2);
    n = snprintf(req, sizeof req, "GET /ws/chat/%s/?token=%s HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
                 "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n", id, tok);
    if (write(fd, req, (size_t)n) != n)
        exit(2);
    while (got < sizeof resp - 1) {   /* the 101 and nothing after it */
        ssize_t r = read(fd, resp + got, 1);
        if (r <= 0)
            exit(2);
        resp[++got] = '\0';
        if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
            break;
    }
    if (strncmp(resp, "HTTP/1.1 101", 12))
        exit(2);
    return fd;
}

/* One masked text frame (mask 0: the server may not rely on it). */
static void send_msg(int fd, int from)
{
    char frame[128];
    int n = snprintf(frame + 6, sizeof frame - 6, "{\"content\": \"bench "
                     "%llu %d \"}", (unsigned long long)now_ns(), from);

    frame[0] = (char)0x81;
    frame[1] = (char)(0x80 | n);
    memset(frame + 2, 0, 4);
    if (write(fd, frame, (size_t)n + 6) != n + 6)
        exit(3);
}

int main(int argc, char **argv)
{
    char id[64], pt[2048], rt[2048];
    int n = 0, ep = epoll_create1(0), tfd, rate, next = 0;
    double secs;
    uint64_t sent = 0, due, got = 0, *lat, t_end, t_quit;
    FILE *f;
    struct itimerspec its = { { 0, 0 }, { 0, 1 } };

    if (argc != 5 || !(f = fopen(argv[2], "r")))
        return 2;
    rate = atoi(argv[3]);
    secs = atof(argv[4]);
    while (n + 2 <= MAXC && fscanf(f, "%63s %2047s %2047s", id, pt, rt) == 3) {
        fds[n++] = ws_open(atoi(argv[1]), id, pt);
        fds[n++] = ws_open(atoi(argv[1]), id, rt);
    }
    lat = calloc((size_t)(2 * rate * secs + 16), sizeof *lat);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    its.it_interval.tv_nsec = 1000000000 / rate;
    timerfd_settime(tfd, 0, &its, NULL);
    {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = MAXC };
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    }
    t_end = now_ns() + (uint64_t)(secs * 1e9);
    t_quit = t_end + 5000000000u;
    while (now_ns() < t_quit && (sent == 0 || got < 2 * sent ||
                                 now_ns() < t_end)) {
        struct epoll_event evs[64];
        int k = epoll_wait(ep, evs, 64, 100);

        for (int e = 0; e < k; e++) {
            int i = (int)evs[e].data.u32;
            ssize_t r;
            size_t off = 0;

            if (i == MAXC) {
                if (read(tfd, &due, sizeof due) != sizeof due)
                    return 3;
                while (due-- && now_ns() < t_end) {
                    send_msg(fds[next % n], next % n);
                    next++;
                    sent++;
                }
                continue;
            }
            r = read(fds[i], buf[i] + have[i], sizeof buf[i] - have[i]);
            if (r <= 0)
                return 3;
            uint64_t t = now_ns();
            have[i] += (size_t)r;
            /* Server frames are unmasked; chat messages are short. */
            while (have[i] - off >= 2) {
                size_t len = buf[i][off + 1] & 0x7f, hl = 2;
                if (len == 126) {
                    if (have[i] - off < 4)
                        break;
                    len = (size_t)buf[i][off + 2] << 8 | buf[i][off + 3];
                    hl = 4;
                }
                if (have[i] - off < hl + len)
                    break;
                char *p = memmem(buf[i] + off + hl, len, "\"bench ", 7);
                if (p && got < 2 * sent)
                    lat[got++] = t - strtoull(p + 7, NULL, 10);
                off += hl + len;
            }
            memmove(buf[i], buf[i] + off, have[i] - off);
            have[i] -= off;
        }
    }
    qsort(lat, got, sizeof *lat, cmp);
    printf("{\"connections\": %d, \"sent\": %llu, \"deliveries\": %llu, "
           "\"expected_deliveries\": %llu, \"latency_us\": {\"p50\": %.1f, "
           "\"p99\": %.1f}}\n", n, (unsigned long long)sent,
           (unsigned long long)got, (unsigned long long)(2 * sent),
           got ? lat[got / 2] / 1e3 : 0.0,
           got ? lat[got * 99 / 100] / 1e3 : 0.0);
    fflush(stdout);
    free(lat); /* (a sanitizer build checks for leaks at exit) */
    fclose(f);
    return got == 2 * sent ? 0 : 1;
}
