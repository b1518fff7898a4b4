/*
 * SSE subscribers in C for the delivery scenarios (bench/workers.py starts one per worker):
 * a load generator that reads faster than the servers it measures write, so a delivery rate
 * is the server's, not the reader's. The accounting is bench/sse_load.py's Tracker: offsets
 * of a channel are consecutive, so a run of events whose first offset is the one expected
 * and whose last is `count - 1` further lost, doubled and reordered nothing; anything else,
 * and every event of a subscriber under full check, is parsed event by event. A latency
 * sample is the send time in the oldest event of a read (its worst), or of every event
 * under full check.
 *
 *   sse_subscribers HOST PORT TOKEN|- FULL_EVERY
 *
 * stdin: the stream paths, a line each, then an empty line; later `go` (the measured window
 * starts) and `expect TIMEOUT_MS N1 N2 ...` (entries published to each subscriber's
 * channel, in order). stdout: `ready OPENED`, `progress NEXT` (the offset the slowest
 * subscriber expects next, every 2 ms while it moves), and at the end `result RECEIVED
 * LOST DUPS GAPS OPENED CLOSED REFUSED LAST_RECEIVE_NS CPU_SECONDS SAMPLES` followed by the
 * SAMPLES latency samples (nanoseconds, int64 in the machine's byte order).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

enum { READ_SIZE = 1 << 18, HANDSHAKES = 200, WAKEUPS = 256, COMMAND_SIZE = 1 << 20 };
static const int64_t PROGRESS_NS = 2000000;

#define MARK(name, text) static const char name[] = text; enum { name##_LEN = sizeof text - 1 }
MARK(EVENT, "event: ");
MARK(LOG, "log\n");
MARK(GAP, "gap\n");
MARK(OFFSET, "\"offset\":");
MARK(MESSAGE, "\"message\":\"");

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

enum State { WAITING, CONNECTING, HEAD, STREAMING, DONE };
enum Chunk { SIZE, DATA, TRAILER };

typedef struct {
    int fd;
    enum State state;
    const char *path;
    Buf head, rest; /* the response head until its end; an incomplete SSE event */
    int chunked;
    enum Chunk chunk;
    size_t need;    /* payload left in this chunk (its size, while the size line is read) */
    int size_ended; /* the size line's extension or CR started */
    int64_t next, received, dups, holes, gaps, expected;
    int full;
} Sub;

typedef struct {
    int64_t *data;
    size_t len, cap;
} Samples;

static Sub *subs;
static size_t nsubs, opened, closed_by_server, refused, handshaking, started;
static struct addrinfo *address;
static const char *host, *token;
static Samples latencies;
static int64_t last_receive_ns;
static Buf text; /* one read's events: a subscriber's rest, then the read's payload */

static void fail(const char *what) {
    fprintf(stderr, "sse_subscribers: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *grow(void *data, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return data;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    data = realloc(data, cap2 * item);
    if (!data) fail("realloc");
    *cap = cap2;
    return data;
}

static void append(Buf *b, const char *data, size_t n) {
    b->data = grow(b->data, &b->cap, b->len + n, 1);
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

static void sample(int64_t ns) {
    latencies.data = grow(latencies.data, &latencies.cap, latencies.len + 1, sizeof(int64_t));
    latencies.data[latencies.len++] = ns;
}

/* The decimal number right after the first `mark` at or after `from` (a send time is
 * followed by a space), or -1 when the mark is not there. */
static int64_t number_after(const char *from, const char *end, const char *mark, size_t len) {
    const char *at = memmem(from, (size_t)(end - from), mark, len);
    if (!at) return -1;
    int64_t value = 0;
    for (at += len; at < end && isdigit((unsigned char)*at); at++) value = value * 10 + (*at - '0');
    return value;
}

static void take_each(Sub *s, const char *p, const char *end, int64_t now) {
    for (const char *at = p; (at = memmem(at, (size_t)(end - at), EVENT, EVENT_LEN));) {
        at += EVENT_LEN;
        if ((size_t)(end - at) < LOG_LEN || memcmp(at, LOG, LOG_LEN)) continue;
        int64_t offset = number_after(at, end, OFFSET, OFFSET_LEN);
        int64_t sent = number_after(at, end, MESSAGE, MESSAGE_LEN);
        if (offset < s->next) {
            s->dups++;
            continue;
        }
        s->holes += offset - s->next;
        s->next = offset + 1;
        sample(now - sent);
    }
}

/* Account for a run of complete SSE events. */
static void take(Sub *s, const char *p, size_t n, int64_t now) {
    const char *end = p + n, *first = NULL, *last = NULL;
    int64_t count = 0;
    for (const char *at = p; (at = memmem(at, (size_t)(end - at), EVENT, EVENT_LEN));) {
        at += EVENT_LEN;
        if ((size_t)(end - at) >= LOG_LEN && !memcmp(at, LOG, LOG_LEN)) {
            first = first ? first : at;
            last = at;
            count++;
        } else if ((size_t)(end - at) >= GAP_LEN && !memcmp(at, GAP, GAP_LEN)) {
            s->gaps++;
        }
    }
    if (!count) return;
    s->received += count;
    last_receive_ns = now;
    int64_t low = number_after(first, end, OFFSET, OFFSET_LEN);
    int64_t high = number_after(last, end, OFFSET, OFFSET_LEN);
    if (s->full || low != s->next || high - low != count - 1) {
        take_each(s, p, end, now);
        return;
    }
    s->next = high + 1;
    sample(now - number_after(first, end, MESSAGE, MESSAGE_LEN));
}

/* Append the payload of chunked `data` to `text`. */
static void dechunk(Sub *s, const char *data, size_t n) {
    const char *at = data, *end = data + n;
    while (at < end) {
        if (s->chunk == DATA) {
            size_t step = s->need < (size_t)(end - at) ? s->need : (size_t)(end - at);
            append(&text, at, step);
            at += step;
            s->need -= step;
            if (!s->need) s->chunk = TRAILER;
            continue;
        }
        char c = *at++;
        if (c == '\n') { /* the end of a size line, or of the CRLF after a payload */
            s->chunk = s->chunk == SIZE && s->need ? DATA : SIZE;
            s->size_ended = 0;
        } else if (s->chunk == SIZE && !s->size_ended) {
            int digit = isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
            if (digit >= 0 && digit < 16) s->need = s->need * 16 + (size_t)digit;
            else s->size_ended = 1; /* a `;` extension or the CR */
        }
    }
}

static void body(Sub *s, const char *data, size_t n) {
    text.len = 0;
    append(&text, s->rest.data, s->rest.len);
    s->rest.len = 0;
    if (s->chunked) dechunk(s, data, n);
    else append(&text, data, n);
    size_t cut = text.len;
    while (cut >= 2 && !(text.data[cut - 1] == '\n' && text.data[cut - 2] == '\n')) cut--;
    if (cut < 2) {
        append(&s->rest, text.data, text.len);
        return;
    }
    take(s, text.data, cut, now_ns(CLOCK_REALTIME));
    append(&s->rest, text.data + cut, text.len - cut);
}

static void finish(Sub *s) {
    if (s->state == CONNECTING || s->state == HEAD) handshaking--;
    if (s->state == STREAMING) closed_by_server++;
    s->state = DONE;
    close(s->fd);
}

static void read_head(Sub *s, const char *data, size_t n) {
    append(&s->head, data, n);
    char *end = memmem(s->head.data, s->head.len, "\r\n\r\n", 4);
    if (!end) return;
    size_t head_len = (size_t)(end - s->head.data) + 4;
    char *head = s->head.data;
    for (size_t i = 0; i < head_len; i++) head[i] = (char)tolower((unsigned char)head[i]);
    int ok = s->head.len > 12 && !memcmp(s->head.data + 8, " 200", 4);
    s->chunked = memmem(s->head.data, head_len, "transfer-encoding: chunked", 26) != NULL;
    handshaking--;
    if (!ok) {
        refused++;
        s->state = DONE;
        close(s->fd);
        return;
    }
    opened++;
    s->state = STREAMING;
    if (s->head.len > head_len) body(s, s->head.data + head_len, s->head.len - head_len);
    free(s->head.data);
    s->head = (Buf){0};
}

static void send_request(Sub *s, int epoll) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error) {
        finish(s);
        return;
    }
    char request[4096];
    int size = snprintf(request, sizeof request,
                        "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s%s\r\n",
                        s->path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                        token ? "\r\n" : "");
    if (size >= (int)sizeof request || write(s->fd, request, (size_t)size) != size) {
        finish(s);
        return;
    }
    s->state = HEAD;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(epoll, EPOLL_CTL_MOD, s->fd, &e)) fail("epoll_ctl");
}

static void start_connections(int epoll) {
    while (started < nsubs && handshaking < HANDSHAKES) {
        Sub *s = &subs[started++];
        s->fd = socket(address->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (s->fd < 0) fail("socket");
        s->state = CONNECTING;
        handshaking++;
        if (connect(s->fd, address->ai_addr, address->ai_addrlen) && errno != EINPROGRESS) {
            finish(s);
            continue;
        }
        struct epoll_event e = {.events = EPOLLOUT, .data.ptr = s};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, s->fd, &e)) fail("epoll_ctl");
    }
}

static void on_socket(Sub *s, int epoll, char *buffer) {
    if (s->state == CONNECTING) {
        send_request(s, epoll);
        return;
    }
    ssize_t n = read(s->fd, buffer, READ_SIZE);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        finish(s);
        return;
    }
    if (s->state == HEAD) read_head(s, buffer, (size_t)n);
    else body(s, buffer, (size_t)n);
}

/* The offset the slowest open subscriber expects next (a refused or closed one cannot
 * move, and must not hold the publisher back). */
static int64_t slowest(void) {
    int64_t low = INT64_MAX;
    for (size_t i = 0; i < nsubs; i++)
        if (subs[i].state != DONE && subs[i].next < low) low = subs[i].next;
    return low == INT64_MAX ? 0 : low;
}

static int owed(void) {
    for (size_t i = 0; i < nsubs; i++)
        if (subs[i].next < subs[i].expected) return 1;
    return 0;
}

static void result(double cpu_at_go) {
    int64_t received = 0, lost = 0, dups = 0, gaps = 0;
    for (size_t i = 0; i < nsubs; i++) {
        Sub *s = &subs[i];
        received += s->received;
        lost += s->holes + (s->expected > s->next ? s->expected - s->next : 0);
        dups += s->dups;
        gaps += s->gaps;
    }
    printf("result %lld %lld %lld %lld %zu %zu %zu %lld %.6f %zu\n", (long long)received,
           (long long)lost, (long long)dups, (long long)gaps, opened, closed_by_server, refused,
           (long long)last_receive_ns, cpu_seconds() - cpu_at_go, latencies.len);
    if (fwrite(latencies.data, sizeof(int64_t), latencies.len, stdout) != latencies.len ||
        fflush(stdout))
        fail("stdout");
}

/* Read the stream paths (one a line, then an empty line) from stdin, blocking. Only they go
 * through stdio's buffer: the worker sends nothing more until it has read `ready`. */
static void read_paths(int full_every) {
    size_t cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    while ((n = getline(&line, &line_cap, stdin)) > 1) {
        line[n - 1] = 0;
        subs = grow(subs, &cap, nsubs + 1, sizeof(Sub));
        int full = nsubs % (size_t)full_every == 0;
        subs[nsubs++] = (Sub){.fd = -1, .path = strdup(line), .full = full};
    }
    free(line);
}

static int going, expecting;
static int64_t deadline;
static double cpu_at_go;

/* One line from the worker: `go` or `expect TIMEOUT_MS N1 N2 ...`. */
static void command(char *line) {
    if (!strcmp(line, "go")) {
        going = 1;
        cpu_at_go = cpu_seconds();
        latencies.len = 0;
    } else if (!strncmp(line, "expect ", 7)) {
        char *at = line + 7;
        deadline = now_ns(CLOCK_MONOTONIC) + strtoll(at, &at, 10) * 1000000;
        for (size_t k = 0; k < nsubs; k++) subs[k].expected = strtoll(at, &at, 10);
        expecting = 1;
    }
}

/* Read what the worker sent and run each complete line; 0 once the worker went away. */
static int commands(char *buffer, size_t *len) {
    ssize_t got = read(0, buffer + *len, COMMAND_SIZE - *len - 1);
    if (got <= 0) return got < 0 && errno == EAGAIN;
    *len += (size_t)got;
    char *eol;
    while ((eol = memchr(buffer, '\n', *len))) {
        *eol = 0;
        command(buffer);
        *len -= (size_t)(eol + 1 - buffer);
        memmove(buffer, eol + 1, *len);
    }
    return 1;
}

static void report_progress(int64_t *reported) {
    int64_t low = slowest();
    if (low == *reported) return;
    printf("progress %lld\n", (long long)low);
    fflush(stdout);
    *reported = low;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: sse_subscribers HOST PORT TOKEN|- FULL_EVERY\n");
        return 2;
    }
    host = argv[1];
    token = strcmp(argv[3], "-") ? argv[3] : NULL;
    int full_every = atoi(argv[4]);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int problem = getaddrinfo(host, argv[2], &hints, &address);
    if (problem) {
        fprintf(stderr, "sse_subscribers: %s: %s\n", host, gai_strerror(problem));
        return 1;
    }
    read_paths(full_every > 0 ? full_every : 1);
    int epoll = epoll_create1(0);
    if (epoll < 0) fail("epoll_create1");
    char *buffer = malloc(READ_SIZE), *lines = malloc(COMMAND_SIZE);
    if (!buffer || !lines) fail("malloc");
    size_t lines_len = 0;
    struct epoll_event ready[WAKEUPS], in = {.events = EPOLLIN, .data.ptr = NULL};
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, 0, &in)) fail("epoll_ctl stdin");
    int64_t progress_at = 0, reported = -1;
    for (int announced = 0;;) {
        start_connections(epoll);
        if (!announced && started == nsubs && !handshaking) {
            printf("ready %zu\n", opened);
            fflush(stdout);
            announced = 1;
        }
        int n = epoll_wait(epoll, ready, WAKEUPS, 1);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            if (ready[i].data.ptr) on_socket(ready[i].data.ptr, epoll, buffer);
            else if (!commands(lines, &lines_len)) return 1; /* the worker went away */
        }
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (going && now >= progress_at) {
            progress_at = now + PROGRESS_NS;
            report_progress(&reported);
        }
        if (expecting && (!owed() || now >= deadline)) {
            result(cpu_at_go);
            return 0;
        }
    }
}
