/*
 * libFuzzer target: an HTTP/2 connection as a client drives it (src/http/h2_conn.c
 * with nghttp2, the phases, content handlers and response filters behind it).
 *
 * An input is the bytes a client sends on a cleartext `listen ... http2` port: the
 * preface and frames, as captured from curl, nghttp, h2load and grpcio or written with
 * python-h2 (fuzz/corpus/h2_conn/). rampart takes the server end of a socketpair as an
 * accepted connection (fuzz/rig.c) and the input arrives in a few pieces cut where a
 * generator seeded with its hash says, the event loop running until idle after each,
 * so frames split across reads and several frames in one read both happen. The
 * locations answer without a backend: `return` (small, 404, 204 with a header built from
 * a request field), Lua that writes 100 KB (more than the client's initial window, so
 * flow control and WINDOW_UPDATE matter) or echoes the request body (the server's own
 * WINDOW_UPDATEs), and gzip. Limits are small (8 concurrent streams, 40 requests, a
 * 16 KB receive window, 4 KB header lists) so the refusals, resets and GOAWAY are
 * reached by short inputs. Then the client goes away and everything is freed.
 *
 * Beyond ASan and UBSan, what rampart sent after a whole client preface must be HTTP/2:
 * whole frames, the first one SETTINGS on stream 0 when it answered at all, and nothing after a
 * GOAWAY but frames nghttp2 may still send on streams the GOAWAY covered (no new stream past it).
 */
#include "fuzz.h"
#include "rig.h"

#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static rp_cycle_t *cycle;
#define OUT_CAP (1 << 20)
static uint8_t *out;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char conf[4096], err[2048];
    int n = snprintf(
        conf, sizeof(conf),
        "http {\n"
        "  access_log /dev/null;\n"
        "  server {\n"
        "    listen 127.0.0.1:%d http2;\n"
        "    http2_max_concurrent_streams 8;\n"
        "    http2_max_requests 40;\n"
        "    http2_body_preread_size 16k;\n"
        "    http2_max_header_list_size 4k;\n"
        "    client_max_body_size 64k;\n"
        "    location / { return 200 \"hello\\n\"; }\n"
        "    location /missing { return 404; }\n"
        "    location /hdr { add_header X-Echo $http_x_a; return 204; }\n"
        "    location /big { content_by_lua_block { ngx.print(string.rep(\"x\", 100000)) } }\n"
        "    location /echo {\n"
        "      content_by_lua_block {\n"
        "        ngx.req.read_body()\n"
        "        ngx.print(ngx.req.get_body_data() or \"\")\n"
        "      }\n"
        "    }\n"
        "    location /gz {\n"
        "      gzip on; gzip_types text/plain; gzip_min_length 1; default_type text/plain;\n"
        "      return 200 \"a body to compress, a body to compress, a body to compress\";\n"
        "    }\n"
        "  }\n"
        "}\n",
        rig_free_port());
    cycle = rig_load("h2_conn.conf", conf, (size_t)n, err, sizeof(err));
    if (cycle == NULL) {
        fprintf(stderr, "fuzz_h2_conn: %s\n", err);
        abort();
    }
    rig_serve(cycle);
    out = malloc(OUT_CAP);
    return 0;
}

static uint32_t be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* The server's bytes are whole frames: SETTINGS first, no new stream after GOAWAY. */
static void check_output(const uint8_t *p, size_t n)
{
    size_t off = 0;
    int first = 1, goaway = 0;
    uint32_t last_id = 0;
    while (off < n) {
        FUZZ_CHECK(n - off >= 9);
        uint32_t len = be24(p + off);
        uint8_t type = p[off + 3];
        uint32_t id = ((uint32_t)p[off + 5] << 24 | (uint32_t)p[off + 6] << 16 |
                       (uint32_t)p[off + 7] << 8 | p[off + 8]) &
                      0x7fffffffu;
        FUZZ_CHECK(n - off - 9 >= len);
        if (first)
            FUZZ_CHECK(type == 4 && id == 0);
        first = 0;
        if (type == 7) {
            FUZZ_CHECK(len >= 8 && id == 0);
            goaway = 1;
        } else if (goaway && type == 1) {
            FUZZ_CHECK(id <= last_id); /* HEADERS only on a stream that existed */
        }
        if (id > last_id && !goaway)
            last_id = id;
        off += 9 + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = rig_client(cycle);
    size_t cuts[FUZZ_MAX_CUTS];
    size_t ncuts = fuzz_cuts(CUT_RANDOM, data, size, fuzz_hash(data, size, 0x68326332), cuts);
    size_t outlen = 0, start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : size;
        while (start < end) {
            ssize_t w = write(fd, data + start, end - start);
            if (w <= 0)
                break; /* rampart stopped reading, or closed */
            start += (size_t)w;
        }
        rig_run(fd, out, OUT_CAP, &outlen);
        start = end;
    }
    rig_finish(fd);
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "fuzz_h2_conn: %zu bytes in, %zu bytes out\n", size, outlen);
    /* without the preface the port speaks HTTP/1 (and answers 400) */
    if (outlen < OUT_CAP && size >= 24 && memcmp(data, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) == 0)
        check_output(out, outlen);
    return 0;
}
