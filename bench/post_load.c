/*
 * Single-entry HTTP POSTs in C for the post scenarios (bench/workers.py starts it): a
 * publisher that sends faster than the servers it measures answer, so a rate is the server's
 * and not the load generator's (a Python publisher on one pipelined connection topped out
 * near nchan's rate). Entry number k goes to channel k mod CHANNELS (round-robin), channel i
 * always on connection i mod CONNECTIONS, so a channel's entries reach the server in order.
 * Each connection is keep-alive and pipelined, with at most IN_FLIGHT POSTs unanswered; the
 * publisher also stays at most WINDOW entries per channel ahead of the slowest subscriber
 * (`progress` lines relayed from the subscribers: a closed loop, as bench/workers.py's
 * Python publisher).
 *
 *   post_load HOST PORT CONNECTIONS IN_FLIGHT WINDOW SECONDS TOKEN|-
 *
 * stdin: a line per channel, its POST path, a tab and its body template (the byte 0x01 where
 * the entry's number on its channel goes, 0x02 where its send time in nanoseconds goes, 19
 * digits), then an empty line; later `go` (the window opens), `progress NEXT` (the offset
 * the slowest subscriber expects next). stdout: `ready CONNECTIONS` once connected, and at the
 * end `result SENT ACCEPTED REFUSED FIRST_SEND_NS LAST_ANSWER_NS CPU_SECONDS`. An answer is
 * accepted when its status is 2xx and its body holds no `"error"`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

enum { READ_SIZE = 1 << 16, FLUSH_AT = 1 << 16, WAKEUPS = 64, COMMAND_SIZE = 1 << 16 };
enum { BODY_SIZE = 1 << 13 };
static const int64_t DRAIN_NS = 10000000000; /* answers still owed after the window */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

typedef struct {
    int fd;
    int64_t unanswered;
    int blocked; /* watched for room to write (the last write left some unsent) */
    Buf out, in; /* requests not yet written; answers not yet complete */
} Conn;

typedef struct {
    Buf head;     /* the request line and headers, Content-Length's value left to add */
    Buf template; /* the body, with 0x01 and 0x02 where the number and the time go */
} Channel;

static Conn *conns;
static Channel *channels;
static size_t nconns, nchannels;
static int64_t sent, accepted, refused, progress, first_send_ns, last_answer_ns;
static int64_t window, in_flight; /* the bounds of the command line */

static void fail(const char *what) {
    fprintf(stderr, "post_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void append(Buf *b, const char *data, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = b->cap ? b->cap : 256;
        while (b->cap < b->len + n) b->cap *= 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) fail("realloc");
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

/* Append entry `k`'s request (its channel's head and rendered body) to its connection. */
static void render(int64_t k, int64_t now) {
    Channel *c = &channels[k % (int64_t)nchannels];
    char body[BODY_SIZE], *at = body;
    for (size_t i = 0; i < c->template.len; i++) {
        char b = c->template.data[i];
        if (b == 1) at += sprintf(at, "%lld", (long long)(k / (int64_t)nchannels));
        else if (b == 2) at += sprintf(at, "%019lld", (long long)now);
        else *at++ = b;
    }
    Conn *conn = &conns[(size_t)(k % (int64_t)nchannels) % nconns];
    char length[32];
    int n = snprintf(length, sizeof length, "%td\r\n\r\n", at - body);
    append(&conn->out, c->head.data, c->head.len);
    append(&conn->out, length, (size_t)n);
    append(&conn->out, body, (size_t)(at - body));
    conn->unanswered++;
}

/* Write what the connection owes; watch for room only while some is left. */
static void flush(Conn *conn, int epoll) {
    ssize_t n = conn->out.len ? write(conn->fd, conn->out.data, conn->out.len) : 0;
    if (n < 0 && errno != EAGAIN) fail("write");
    if (n > 0) {
        conn->out.len -= (size_t)n;
        memmove(conn->out.data, conn->out.data + n, conn->out.len);
    }
    int blocked = conn->out.len > 0;
    if (blocked == conn->blocked) return;
    conn->blocked = blocked;
    struct epoll_event e = {.events = EPOLLIN | (blocked ? EPOLLOUT : 0), .data.ptr = conn};
    if (epoll_ctl(epoll, EPOLL_CTL_MOD, conn->fd, &e)) fail("epoll_ctl");
}

/* The length of the complete answer at the start of `in` (0: not complete yet). */
static size_t answer_length(const Buf *in) {
    char *end = memmem(in->data, in->len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - in->data) + 4, body = 0;
    /* Each header line starts after a CRLF before `end`; a comparison stops at the first
     * byte that differs, the CR at the latest, so it never reads past the head. */
    char *at = in->data;
    while ((at = memmem(at, (size_t)(end - at), "\r\n", 2)) && (at += 2) < end) {
        if (!strncasecmp(at, "content-length:", 15)) body = strtoul(at + 15, NULL, 10);
        else if (!strncasecmp(at, "transfer-encoding:", 18)) {
            fprintf(stderr, "post_load: answers must have a Content-Length, not chunked\n");
            exit(1);
        }
    }
    return in->len >= head + body ? head + body : 0;
}

static void answers(Conn *conn) {
    size_t n;
    while (conn->in.len && (n = answer_length(&conn->in))) {
        char *end = memmem(conn->in.data, n, "\r\n\r\n", 4) + 4;
        int ok = n > 9 && conn->in.data[9] == '2' &&
                 !memmem(end, n - (size_t)(end - conn->in.data), "\"error\"", 7);
        ok ? accepted++ : refused++;
        conn->unanswered--;
        conn->in.len -= n;
        memmove(conn->in.data, conn->in.data + n, conn->in.len);
    }
    last_answer_ns = now_ns(CLOCK_REALTIME);
}

static void on_readable(Conn *conn) {
    char buffer[READ_SIZE];
    ssize_t n = read(conn->fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        fprintf(stderr, "post_load: the server closed a connection (%lld answers owed)\n",
                (long long)conn->unanswered);
        exit(1);
    }
    append(&conn->in, buffer, (size_t)n);
    answers(conn);
}

/* Read the channels (a line each, then an empty line) from stdin, blocking. */
static void read_channels(const char *host, const char *token) {
    char *line = NULL;
    size_t line_cap = 0, cap = 0;
    ssize_t n;
    while ((n = getline(&line, &line_cap, stdin)) > 1) {
        line[n - 1] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) {
            fprintf(stderr, "post_load: a channel line is PATH<tab>BODY\n");
            exit(2);
        }
        *tab = 0;
        if (nchannels == cap) {
            cap = cap ? cap * 2 : 64;
            channels = realloc(channels, cap * sizeof(Channel));
            if (!channels) fail("realloc");
        }
        Channel *c = &channels[nchannels++];
        *c = (Channel){0};
        char head[4096];
        int size = snprintf(head, sizeof head,
                            "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: application/json"
                            "\r\nContent-Length: ",
                            line, host, token ? "Authorization: Bearer " : "", token ? token : "",
                            token ? "\r\n" : "");
        append(&c->head, head, (size_t)size);
        if (strlen(tab + 1) > BODY_SIZE / 2) {
            fprintf(stderr, "post_load: a body template over %d bytes\n", BODY_SIZE / 2);
            exit(2);
        }
        append(&c->template, tab + 1, strlen(tab + 1));
    }
    free(line);
}

static void connect_all(struct addrinfo *address, int epoll) {
    for (size_t i = 0; i < nconns; i++) {
        Conn *conn = &conns[i];
        conn->fd = socket(address->ai_family, SOCK_STREAM, 0);
        if (conn->fd < 0 || connect(conn->fd, address->ai_addr, address->ai_addrlen))
            fail("connect");
        int one = 1;
        setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(conn->fd, F_SETFL, fcntl(conn->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = conn};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, conn->fd, &e)) fail("epoll_ctl");
    }
}

/* One line from the worker: `go` or `progress NEXT`; 1 for `go`. */
static int command(char *line) {
    if (!strncmp(line, "progress ", 9)) progress = strtoll(line + 9, NULL, 10);
    return !strcmp(line, "go");
}

/* Read what the worker sent and run each complete line; -1 once the worker went away,
 * else whether `go` came. */
static int commands(char *buffer, size_t *len) {
    ssize_t got = read(0, buffer + *len, COMMAND_SIZE - *len - 1);
    if (got <= 0) return got < 0 && errno == EAGAIN ? 0 : -1;
    *len += (size_t)got;
    int go = 0;
    char *eol;
    while ((eol = memchr(buffer, '\n', *len))) {
        *eol = 0;
        go |= command(buffer);
        *len -= (size_t)(eol + 1 - buffer);
        memmove(buffer, eol + 1, *len);
    }
    return go;
}

/* Render every entry the window, the deadline and the in-flight bounds allow now. */
static void produce(int64_t deadline, int epoll) {
    int64_t now = now_ns(CLOCK_MONOTONIC), wall = now_ns(CLOCK_REALTIME);
    while (now < deadline && sent / (int64_t)nchannels + 1 - progress <= window) {
        Conn *conn = &conns[(size_t)(sent % (int64_t)nchannels) % nconns];
        if (conn->unanswered >= in_flight) break;
        if (!first_send_ns) first_send_ns = wall;
        render(sent++, wall);
        if (conn->out.len >= FLUSH_AT) flush(conn, epoll);
    }
    for (size_t i = 0; i < nconns; i++)
        if (conns[i].out.len) flush(&conns[i], epoll);
}

/* Wait for `go`, then publish until the deadline and collect the answers still owed. */
static void run(double seconds, int epoll) {
    char *lines = malloc(COMMAND_SIZE);
    size_t lines_len = 0;
    struct epoll_event ready[WAKEUPS];
    int go = 0;
    while (!go) {
        if (epoll_wait(epoll, ready, 1, -1) < 0 && errno != EINTR) fail("epoll_wait");
        if ((go = commands(lines, &lines_len)) < 0) exit(1);
    }
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + (int64_t)(seconds * 1e9);
    for (;;) {
        produce(deadline, epoll);
        int64_t owed = 0, now = now_ns(CLOCK_MONOTONIC);
        for (size_t i = 0; i < nconns; i++) owed += conns[i].unanswered;
        if (now >= deadline && (!owed || now >= deadline + DRAIN_NS)) {
            refused += owed; /* never answered */
            break;
        }
        int n = epoll_wait(epoll, ready, WAKEUPS, 1);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            Conn *conn = ready[i].data.ptr;
            if (!conn && commands(lines, &lines_len) < 0) exit(1); /* the worker went away */
            if (conn && ready[i].events & EPOLLOUT) flush(conn, epoll);
            if (conn && ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(conn);
        }
    }
    free(lines);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr,
                "usage: post_load HOST PORT CONNECTIONS IN_FLIGHT WINDOW SECONDS TOKEN|-\n");
        return 2;
    }
    const char *token = strcmp(argv[7], "-") ? argv[7] : NULL;
    nconns = (size_t)atoi(argv[3]);
    in_flight = atoll(argv[4]);
    window = atoll(argv[5]);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *address;
    int problem = getaddrinfo(argv[1], argv[2], &hints, &address);
    if (problem) {
        fprintf(stderr, "post_load: %s: %s\n", argv[1], gai_strerror(problem));
        return 1;
    }
    read_channels(argv[1], token);
    if (!nchannels || !nconns || in_flight < 1) {
        fprintf(stderr, "post_load: no channel, connection or request in flight\n");
        return 2;
    }
    nconns = nconns < nchannels ? nconns : nchannels;
    conns = calloc(nconns, sizeof(Conn));
    int epoll = epoll_create1(0);
    if (!conns || epoll < 0) fail("setup");
    connect_all(address, epoll);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, 0, &in)) fail("epoll_ctl stdin");
    printf("ready %zu\n", nconns);
    fflush(stdout);
    double cpu = cpu_seconds();
    run(atof(argv[6]), epoll);
    printf("result %lld %lld %lld %lld %lld %.6f\n", (long long)sent, (long long)accepted,
           (long long)refused, (long long)first_send_ns, (long long)last_answer_ns,
           cpu_seconds() - cpu);
    return fflush(stdout) ? 1 : 0;
}
