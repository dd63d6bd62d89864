/* A small bounded HTTPS load client for bench/bench_proxy_load.py.
 *
 * C threads, one blocking TLS connection each (OpenSSL), so that the client costs the
 * shared cores as little as possible and the server under test is what is measured.
 *
 *   loadclient HOST PORT SNI SECONDS CONCURRENCY MODE CERT KEY PATH EXPECT
 *
 * MODE: "keepalive" (one connection per thread, requests back to back; reconnects when
 * the server closes) or "new" (a full handshake per request: no session resumption).
 * CERT/KEY: PEM client certificate and key ("-" for none). EXPECT: the status every
 * response must have. Prints one JSON object: requests, errors, bad_status, connects,
 * p50_ms, p99_ms, seconds.
 *
 * Built by the benchmark with: gcc -O2 -pthread loadclient.c -lssl -lcrypto
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 4000000

static const char *g_host, *g_sni, *g_path, *g_mode;
static int g_port, g_expect;
static double g_deadline;
static SSL_CTX *g_ctx;
static char g_request[1024];
static size_t g_request_len;

static double *g_samples;
static long g_nsamples;
static long g_errors, g_bad_status, g_connects;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static SSL *open_conn(int *fd_out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(g_port);
    inet_pton(AF_INET, g_host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return NULL;
    }
    SSL *ssl = SSL_new(g_ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, g_sni);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    *fd_out = fd;
    return ssl;
}

static void close_conn(SSL *ssl, int fd) {
    SSL_free(ssl); /* no close_notify wait: like a client that just goes */
    close(fd);
}

/* One request/response. Returns the status (>0), 0 when the server closed before a
 * response, -1 on error. *server_closes is set when the response says Connection: close. */
static int roundtrip(SSL *ssl, int *server_closes) {
    static __thread char buf[1 << 16];
    if (SSL_write(ssl, g_request, (int)g_request_len) != (int)g_request_len) return -1;
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        int n = SSL_read(ssl, buf + have, (int)(sizeof buf - 1 - have));
        if (n <= 0) return have ? -1 : 0;
        have += (size_t)n;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && have >= sizeof buf - 1) return -1;
    }
    int status = atoi(buf + 9);
    long length = 0;
    *server_closes = 0;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (!strncasecmp(line + 2, "content-length:", 15)) length = atol(line + 17);
        if (!strncasecmp(line + 2, "connection:", 11) && strstr(line, "close") &&
            strstr(line, "close") < strstr(line + 2, "\r\n"))
            *server_closes = 1;
    }
    long body = (long)(have - (size_t)(end + 4 - buf));
    while (body < length) {
        int n = SSL_read(ssl, buf, (int)sizeof buf);
        if (n <= 0) return -1;
        body += n;
    }
    return status;
}

static void record(double latency, int status) {
    pthread_mutex_lock(&g_lock);
    if (status < 0) g_errors++;
    else {
        if (status != g_expect) g_bad_status++;
        if (g_nsamples < MAX_SAMPLES) g_samples[g_nsamples++] = latency;
    }
    pthread_mutex_unlock(&g_lock);
}

static void *worker(void *arg) {
    (void)arg;
    int keepalive = !strcmp(g_mode, "keepalive");
    SSL *ssl = NULL;
    int fd = -1;
    long connects = 0;
    while (now() < g_deadline) {
        double t0 = now();
        if (!ssl) {
            ssl = open_conn(&fd);
            if (!ssl) {
                record(0, -1);
                usleep(1000);
                continue;
            }
            connects++;
        }
        int closes = 0;
        int status = roundtrip(ssl, &closes);
        if (status == 0 && keepalive) { /* server closed an idle connection: retry */
            close_conn(ssl, fd);
            ssl = NULL;
            continue;
        }
        record(now() - t0, status);
        if (!keepalive || closes || status < 0) {
            close_conn(ssl, fd);
            ssl = NULL;
        }
    }
    if (ssl) close_conn(ssl, fd);
    pthread_mutex_lock(&g_lock);
    g_connects += connects;
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr,
                "usage: %s HOST PORT SNI SECONDS CONCURRENCY keepalive|new CERT KEY PATH EXPECT\n",
                argv[0]);
        return 2;
    }
    g_host = argv[1];
    g_port = atoi(argv[2]);
    g_sni = argv[3];
    double seconds = atof(argv[4]);
    int concurrency = atoi(argv[5]);
    g_mode = argv[6];
    g_path = argv[9];
    g_expect = atoi(argv[10]);
    g_request_len = (size_t)snprintf(g_request, sizeof g_request,
                                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: loadclient\r\n\r\n",
                                     g_path, g_sni);
    g_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g_ctx, SSL_OP_NO_TICKET);
    if (strcmp(argv[7], "-")) {
        if (SSL_CTX_use_certificate_chain_file(g_ctx, argv[7]) != 1 ||
            SSL_CTX_use_PrivateKey_file(g_ctx, argv[8], SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "cannot load the client certificate/key\n");
            return 2;
        }
    }
    g_samples = malloc(sizeof(double) * MAX_SAMPLES);
    double start = now();
    g_deadline = start + seconds;
    pthread_t *threads = calloc((size_t)concurrency, sizeof *threads);
    for (int i = 0; i < concurrency; i++) pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < concurrency; i++) pthread_join(threads[i], NULL);
    double elapsed = now() - start;
    qsort(g_samples, (size_t)g_nsamples, sizeof(double), cmp);
    double p50 = g_nsamples ? g_samples[g_nsamples / 2] : 0;
    double p99 = g_nsamples ? g_samples[(long)(g_nsamples * 0.99)] : 0;
    printf("{\"requests\": %ld, \"errors\": %ld, \"bad_status\": %ld, \"connects\": %ld, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"seconds\": %.3f}\n",
           g_nsamples, g_errors, g_bad_status, g_connects, p50 * 1000, p99 * 1000, elapsed);
    return 0;
}
