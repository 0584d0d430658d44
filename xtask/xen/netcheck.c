/* netcheck: the dom0 side of test-xen's network cases.
 *
 *   netcheck HOST PORT [TCP_CLIENTS [UDP_DATAGRAMS]]
 *
 * Waits (up to 60 s) until HOST accepts TCP connections on PORT, then
 * opens TCP_CLIENTS connections at once and, in one process per
 * connection, sends random payloads of several sizes and checks that each
 * comes back byte for byte; then sends UDP_DATAGRAMS random datagrams and
 * checks each echo (a lost datagram is sent again, up to 5 times).
 * Prints "netcheck: tcp ok ..." and "netcheck: udp ok ..." or
 * "netcheck: FAIL ..." lines; exits 0 only if everything came back.
 * Built static by xtask (busybox's nc has no UDP, and dom0 has no python).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in peer;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void randomize(unsigned char *buf, size_t n) {
    int fd = open("/dev/urandom", O_RDONLY);
    size_t got = 0;
    while (fd >= 0 && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) break;
        got += r;
    }
    if (fd >= 0) close(fd);
    for (; got < n; got++) buf[got] = rand();
}

static void timeouts(int s, int secs) {
    struct timeval tv = {secs, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int tcp_connect(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    timeouts(s, 5);
    if (connect(s, (struct sockaddr *)&peer, sizeof peer) < 0) {
        close(s);
        return -1;
    }
    timeouts(s, 30);
    return s;
}

/* One connection's rounds; 0 if every payload came back. */
static int tcp_client(int s, int who) {
    static const size_t sizes[] = {1, 7, 64, 536, 1000, 1460, 1461, 3000, 9000, 16000, 40000};
    size_t max = 40000;
    unsigned char *out = malloc(max), *in = malloc(max);
    long total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i], done = 0, got = 0;
        randomize(out, n);
        while (done < n) {
            ssize_t w = write(s, out + done, n - done);
            if (w <= 0) {
                printf("netcheck: FAIL tcp client %d: write of %zu bytes: %s\n", who, n, strerror(errno));
                return 1;
            }
            done += w;
        }
        while (got < n) {
            ssize_t r = read(s, in + got, n - got);
            if (r <= 0) {
                printf("netcheck: FAIL tcp client %d: %zu of %zu bytes came back (%s)\n", who, got, n,
                       r == 0 ? "closed" : strerror(errno));
                return 1;
            }
            got += r;
        }
        if (memcmp(out, in, n) != 0) {
            printf("netcheck: FAIL tcp client %d: the %zu-byte echo differs\n", who, n);
            return 1;
        }
        total += n;
    }
    shutdown(s, SHUT_WR);
    char c;
    if (read(s, &c, 1) != 0) {
        printf("netcheck: FAIL tcp client %d: no clean close after the last echo\n", who);
        return 1;
    }
    close(s);
    printf("netcheck: tcp client %d: %zu round trips, %ld bytes\n", who, sizeof sizes / sizeof sizes[0], total);
    return 0;
}

static int udp_check(int count) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&peer, sizeof peer) < 0) {
        printf("netcheck: FAIL udp socket: %s\n", strerror(errno));
        return 1;
    }
    timeouts(s, 2);
    unsigned char out[1472], in[2048];
    int resent = 0;
    for (int i = 0; i < count; i++) {
        size_t n = 1 + (size_t)(rand() % (int)sizeof out);
        if (i == 0) n = 1472; /* the largest that fits one frame */
        randomize(out, n);
        int ok = 0;
        for (int attempt = 0; attempt < 5 && !ok; attempt++) {
            if (attempt) resent++;
            if (send(s, out, n, 0) != (ssize_t)n) continue;
            ssize_t r;
            while ((r = recv(s, in, sizeof in, 0)) >= 0) {
                if ((size_t)r == n && memcmp(in, out, n) == 0) {
                    ok = 1;
                    break;
                }
            }
        }
        if (!ok) {
            printf("netcheck: FAIL udp datagram %d (%zu bytes) never came back\n", i, n);
            return 1;
        }
    }
    printf("netcheck: udp ok: %d datagrams echoed (%d sent again)\n", count, resent);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: netcheck HOST PORT [TCP_CLIENTS [UDP_DATAGRAMS]]\n");
        return 2;
    }
    int clients = argc > 3 ? atoi(argv[3]) : 4, datagrams = argc > 4 ? atoi(argv[4]) : 50;
    if (clients < 1 || clients > 64) clients = 4;
    memset(&peer, 0, sizeof peer);
    peer.sin_family = AF_INET;
    peer.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1) {
        fprintf(stderr, "netcheck: bad address %s\n", argv[1]);
        return 2;
    }
    srand(time(NULL) ^ getpid());
    setvbuf(stdout, NULL, _IOLBF, 0);
    double start = now();
    int first = -1;
    while (now() - start < 60 && (first = tcp_connect()) < 0) usleep(200000);
    if (first < 0) {
        printf("netcheck: FAIL no TCP connection to %s:%s within 60 s\n", argv[1], argv[2]);
        return 1;
    }
    printf("netcheck: connected after %.2f s\n", now() - start);
    /* Every connection open at once: the guest serves them together. */
    int socks[64];
    socks[0] = first;
    for (int i = 1; i < clients; i++) {
        if ((socks[i] = tcp_connect()) < 0) {
            printf("netcheck: FAIL connection %d of %d: %s\n", i + 1, clients, strerror(errno));
            return 1;
        }
    }
    double t = now();
    for (int i = 0; i < clients; i++) {
        pid_t p = fork();
        if (p == 0) {
            for (int j = 0; j < clients; j++)
                if (j != i) close(socks[j]);
            _exit(tcp_client(socks[i], i));
        }
    }
    for (int i = 0; i < clients; i++) close(socks[i]);
    int failed = 0, st;
    while (wait(&st) > 0)
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
    if (failed) {
        printf("netcheck: FAIL %d of %d tcp clients\n", failed, clients);
        return 1;
    }
    printf("netcheck: tcp ok: %d clients at once in %.2f s\n", clients, now() - t);
    t = now();
    if (udp_check(datagrams)) return 1;
    printf("netcheck: udp took %.2f s\n", now() - t);
    return 0;
}
