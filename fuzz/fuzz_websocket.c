/*
 * libFuzzer target: the WebSocket handshake through the proxy, both halves. rampart
 * does not check Sec-WebSocket-Key or -Accept itself (as nginx, it passes the
 * handshake on and lets the two ends agree); what it decides is whether a client's
 * request asks for an upgrade it passes on (HTTP/1.1, "Connection: upgrade", no body,
 * never h2c: proxy.c's wants_upgrade and the request fields it writes upstream), and
 * whether the backend's answer switches protocols (a 101 with an Upgrade field:
 * switch_protocols), after which both connections become the tunnel (tunnel.c,
 * h1_tunnel.c) and bytes flow both ways.
 *
 * An input is what the client sends and what the backend answers, separated by a line
 * "###" ("\n###\n"); without one, the whole input is the client's and the backend
 * answers with a well-formed 101. The client's part is its request head and whatever
 * follows it (WebSocket frames once the tunnel is up); the backend's part is sent once
 * rampart's request head reached it (fuzz/rig.c), its head and then tunnel bytes. The
 * seeds (fuzz/corpus/websocket/) are the handshake of RFC 6455 as the python
 * websockets library sends it, with frames, and the ways a backend may refuse.
 *
 * Beyond ASan and UBSan: a 101 is only ever passed to the client with an Upgrade field.
 */
#include "fuzz.h"
#include "rig.h"

#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static rp_cycle_t *cycle;
#define OUT_CAP (1 << 20)
static uint8_t *out;

static const char default_answer[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char conf[2048], err[2048];
    int n = snprintf(conf, sizeof(conf),
                     "http {\n"
                     "  access_log /dev/null;\n"
                     "  upstream ws { server 127.0.0.1:%d max_fails=0; }\n"
                     "  server {\n"
                     "    listen 127.0.0.1:%d;\n"
                     "    location / { proxy_pass http://ws; }\n"
                     "  }\n"
                     "}\n",
                     rig_backend_port(), rig_free_port());
    cycle = rig_load("websocket.conf", conf, (size_t)n, err, sizeof(err));
    if (cycle == NULL) {
        fprintf(stderr, "fuzz_websocket: %s\n", err);
        abort();
    }
    rig_serve(cycle);
    out = malloc(OUT_CAP);
    return 0;
}

static const uint8_t *find(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0)
            return p + i;
    return NULL;
}

/* Whether the head at p (up to its blank line) has a field named name (any case). */
static int head_has_field(const uint8_t *p, size_t n, const char *name)
{
    const uint8_t *end = find(p, n, "\r\n\r\n");
    size_t hn = end ? (size_t)(end - p) : n, k = strlen(name);
    for (size_t i = 0; i + 2 + k < hn; i++) {
        if (p[i] != '\n')
            continue;
        if (strncasecmp((const char *)p + i + 1, name, k) == 0 && p[i + 1 + k] == ':')
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = find(data, size, "\n###\n");
    size_t client_len = sep ? (size_t)(sep - data) : size;
    const uint8_t *answer = sep ? sep + 5 : (const uint8_t *)default_answer;
    size_t answer_len = sep ? size - client_len - 5 : sizeof(default_answer) - 1;
    /* the backend's bytes in an allocation of their own: a read past them is an error */
    uint8_t *script = (uint8_t *)fuzz_copy(answer, answer_len);
    rig_backend_script(script, answer_len, rig_seen_h1_head);

    int fd = rig_client(cycle);
    size_t off = 0, outlen = 0;
    while (off < client_len) {
        ssize_t w = write(fd, data + off, client_len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    rig_run(fd, out, OUT_CAP, &outlen);
    rig_finish(fd);
    free(script);

    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "fuzz_websocket: %zu bytes to the client:\n%.*s\n", outlen, (int)outlen,
                out);
    /* a 101 reaches the client only with an Upgrade field */
    if (outlen >= 12 && memcmp(out, "HTTP/1.1 101", 12) == 0)
        FUZZ_CHECK(head_has_field(out, outlen, "upgrade"));
    return 0;
}
