/* The cheapest OTLP/HTTP collector stand-in for Benchmarks/scripts/telemetry_bench.py: on 127.0.0.1
   (an ephemeral port, printed as "port N"), it reads each HTTP/1.1 request (head, Content-Length
   body), discards it and answers 200 with an empty body, one thread per connection. It decodes
   nothing, so the CPU it takes from the 2 shared cores is a few system calls per batch of spans.
   SIGTERM prints "posts=N bytes=M" and exits. Build: cc -O2 -pthread -o otlp_sink otlp_sink.c */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static long posts, bytes_in;
static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";

static long content_length(char *head, size_t n) {
    char saved = head[n - 1];
    head[n - 1] = 0;
    char *field = strcasestr(head, "\r\ncontent-length:");
    long len = field ? strtol(field + 17, NULL, 10) : 0;
    head[n - 1] = saved;
    return len < 0 ? 0 : len;
}

static void *serve(void *arg) {
    int fd = (int)(long)arg;
    static __thread char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf) goto out;
            ssize_t n = read(fd, buf + have, sizeof buf - have);
            if (n <= 0) goto out;
            have += (size_t)n;
        }
        size_t head = (size_t)(end + 4 - buf);
        long len = content_length(buf, head);
        size_t body_here = have - head;
        if (body_here >= (size_t)len) {
            have = body_here - (size_t)len;
            memmove(buf, buf + head + len, have);
        } else {
            long left = len - (long)body_here;
            have = 0;
            while (left > 0) {
                ssize_t n = read(fd, buf, left < (long)sizeof buf ? (size_t)left : sizeof buf);
                if (n <= 0) goto out;
                left -= n;
            }
        }
        if (write(fd, answer, sizeof answer - 1) < 0) goto out;
        __atomic_add_fetch(&posts, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&bytes_in, (long)head + len, __ATOMIC_RELAXED);
    }
out:
    close(fd);
    return NULL;
}

static void report(int sig) {
    (void)sig;
    dprintf(1, "posts=%ld bytes=%ld\n", __atomic_load_n(&posts, __ATOMIC_RELAXED), __atomic_load_n(&bytes_in, __ATOMIC_RELAXED));
    _exit(0);
}

int main(void) {
    signal(SIGTERM, report);
    signal(SIGPIPE, SIG_IGN);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64) || getsockname(s, (struct sockaddr *)&a, &alen)) {
        perror("otlp_sink");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(long)c) == 0) pthread_detach(t);
        else close(c);
    }
}
